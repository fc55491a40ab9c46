"""Turn one-request-at-a-time calls (the dispatcher's) into batches for offline engines.

``submit`` enqueues and awaits; one task gathers what arrives within ``wait_s`` (up to
``max_batch``) and runs the blocking ``run_batch`` on a worker thread, one batch at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from factory.llm.request import Completion, Request


class MicroBatcher:
    def __init__(self, run_batch: Callable[[list[Request]], list[Completion]], max_batch: int,
                 wait_s: float = 0.02) -> None:
        self.run_batch, self.max_batch, self.wait_s = run_batch, max_batch, wait_s
        self.queue: list[tuple[Request, asyncio.Future[Completion]]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self.batches = 0

    async def submit(self, requests: list[Request]) -> list[Completion]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in requests]
        self.queue.extend(zip(requests, futures))
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())
        return list(await asyncio.gather(*futures))

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            if len(self.queue) < self.max_batch:
                await asyncio.sleep(self.wait_s)  # let the rest of this wave arrive
            take, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch:]
            if not self.queue:
                self._wake.clear()
            live = [(r, f) for r, f in take if not f.done()]
            if not live:
                continue
            try:
                results = await asyncio.to_thread(self.run_batch, [r for r, _ in live])
            except Exception as exc:  # a failed batch fails its requests, never hangs them
                results = [Completion("", "error", error=f"batch failed: {exc!r}") for _ in live]
            self.batches += 1
            for (_, future), completion in zip(live, results):
                if not future.done():
                    future.set_result(completion)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
