"""Between steps and a backend: cache lookup, bounded concurrency, in-flight coalescing, counts,
and the build's dollar budget (checked before each call that the cache cannot answer)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

from factory.llm.backends.base import Backend
from factory.llm.cache import RequestCache
from factory.llm.pricing import Budget
from factory.llm.request import Completion, Request, request_key

BUDGET_ERROR = "budget_exhausted"


@dataclass
class CallStats:
    made: int = 0  # calls the backend actually served
    cached: int = 0  # answered from the cache
    failed: int = 0  # calls that came back with an error (not cached)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    not_made_budget: int = 0  # calls refused because they could exceed --budget-usd

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cost_usd"] = round(self.cost_usd, 6)
        return out

    def add(self, other: "CallStats") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


class Dispatcher:
    def __init__(self, backend: Backend, cache: RequestCache | None, concurrency: int,
                 budget: Budget | None = None) -> None:
        self.backend = backend
        self.cache = cache
        self.budget = budget
        self.slots = asyncio.Semaphore(concurrency)
        self.stats = CallStats()
        self._inflight: dict[str, asyncio.Future[Completion]] = {}

    def for_step(self) -> "Dispatcher":
        """A view with its own stats (per-step tokens and cost) sharing slots, cache and budget."""
        view = Dispatcher.__new__(Dispatcher)
        view.__dict__.update(self.__dict__)
        view.stats = CallStats()
        return view

    def key(self, request: Request) -> str:
        return request_key(self.backend.name, self.backend.cache_id, request)

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
                completion = await self._call(request)
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

    async def _call(self, request: Request) -> Completion:
        estimate = self.backend.estimate_cost(request) if self.budget is not None else 0.0
        if self.budget is not None and not self.budget.reserve(estimate):
            self.stats.not_made_budget += 1
            return Completion("", "error", error=f"{BUDGET_ERROR}: the next call could exceed "
                                                 f"--budget-usd {self.budget.cap:g}")
        try:
            (completion,) = await self.backend.generate([request])
        except BaseException:
            if self.budget is not None:
                self.budget.settle(estimate, 0.0)
            raise
        cost = self.backend.cost(completion.prompt_tokens, completion.completion_tokens)
        if self.budget is not None:
            self.budget.settle(estimate, cost)
        self._count(completion, cost)
        return completion

    def _count(self, completion: Completion, cost: float) -> None:
        self.stats.made += 1
        self.stats.failed += completion.error is not None
        self.stats.prompt_tokens += completion.prompt_tokens
        self.stats.completion_tokens += completion.completion_tokens
        self.stats.cost_usd += cost
