"""Between steps and a backend: cache lookup, bounded concurrency, in-flight coalescing, counts."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

from factory.backends.base import Backend, Completion, Request, request_key
from factory.cache import RequestCache


@dataclass
class CallStats:
    made: int = 0  # calls the backend actually served
    cached: int = 0  # answered from the cache
    failed: int = 0  # calls that came back with an error (not cached)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Dispatcher:
    def __init__(self, backend: Backend, cache: RequestCache | None, concurrency: int) -> None:
        self.backend = backend
        self.cache = cache
        self.slots = asyncio.Semaphore(concurrency)
        self.stats = CallStats()
        self._inflight: dict[str, asyncio.Future[Completion]] = {}

    def key(self, request: Request) -> str:
        return request_key(self.backend.name, self.backend.model_id, request)

    async def complete(self, request: Request) -> Completion:
        key = self.key(request)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.stats.cached += 1
            return hit
        if key in self._inflight:  # the same call asked twice at once: make it once
            return await asyncio.shield(self._inflight[key])
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            async with self.slots:
                (completion,) = await self.backend.generate([request])
            self._count(completion)
            if self.cache is not None:
                self.cache.put(key, completion)
            future.set_result(completion)
            return completion
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            del self._inflight[key]

    def _count(self, completion: Completion) -> None:
        self.stats.made += 1
        self.stats.failed += completion.error is not None
        self.stats.prompt_tokens += completion.prompt_tokens
        self.stats.completion_tokens += completion.completion_tokens
