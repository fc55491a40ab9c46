"""Message Batches mode of the anthropic backend: half price, answers within 24 h.

Requests arriving within ``batch_wait_s`` of each other (up to ``batch_max``) go out as one batch;
each request's ``custom_id`` is its cache key. Every submitted key is written to a small SQLite file
(``batch_state``, default next to the request cache) *before* waiting, so a build killed while a
batch runs picks the same batch up on rerun instead of paying twice. When a batch ends its results
are handed back at once (the dispatcher caches each as it comes); expired, canceled, missing or
server-errored entries are resubmitted up to ``max_resubmits`` times; invalid requests fail.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from factory.core.paths import default_cache_path
from factory.core.sqlite_wal import open_wal
from factory.llm.backends.http_common import MALFORMED, ApiBackend, CallFailed
from factory.llm.request import Completion, Request, request_key


class BatchState:
    """key -> batch id for every request submitted and not yet answered (survives restarts)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = open_wal(path, "CREATE TABLE IF NOT EXISTS pending "
                                 "(key TEXT PRIMARY KEY, batch TEXT NOT NULL)")

    def batch_of(self, key: str) -> str | None:
        row = self.db.execute("SELECT batch FROM pending WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def keys_of(self, batch: str) -> set[str]:
        return {k for (k,) in self.db.execute("SELECT key FROM pending WHERE batch = ?", (batch,))}

    def add(self, keys: list[str], batch: str) -> None:
        self.db.executemany("INSERT OR REPLACE INTO pending VALUES (?, ?)", [(k, batch) for k in keys])

    def remove(self, key: str) -> None:
        self.db.execute("DELETE FROM pending WHERE key = ?", (key,))

    def close(self) -> None:
        self.db.close()


STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                "model_context_window_exceeded": "length"}


def to_completion(message: Any) -> Completion:
    """A Message (SDK object) as a Completion; a reply without the expected shape is malformed."""
    try:
        text = "".join(block.text for block in message.content if block.type == "text")
        usage = message.usage
        return Completion(text, STOP_REASONS.get(message.stop_reason or "", "stop"),
                          int(usage.input_tokens), int(usage.output_tokens))
    except (AttributeError, TypeError, ValueError) as exc:
        raise CallFailed(MALFORMED, f"unexpected message shape: {exc}") from None


class BatchRunner:
    def __init__(self, backend: ApiBackend, batch_wait_s: float = 2.0, batch_max: int = 10000,
                 poll_s: float = 30.0, batch_state: str | None = None, max_resubmits: int = 3) -> None:
        self.backend = backend
        self.wait_s, self.batch_max, self.poll_s = float(batch_wait_s), int(batch_max), float(poll_s)
        self.max_resubmits = int(max_resubmits)
        self.state = BatchState(Path(batch_state) if batch_state else
                                default_cache_path().parent / "anthropic_batches.sqlite")
        self.requests: dict[str, Request] = {}  # keys someone in this run waits for
        self.waiters: dict[str, list[asyncio.Future[Completion]]] = {}
        self.early: dict[str, Completion] = {}  # answers from a resumed batch nobody asked for yet
        self.queue: dict[str, Request] = {}  # keys waiting to go out in the next batch
        self.watchers: dict[str, asyncio.Task[None]] = {}
        self.resubmits: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self._flusher: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    async def generate(self, requests: list[Request]) -> list[Completion]:
        return list(await asyncio.gather(*(self._ask(r) for r in requests)))

    def _ask(self, request: Request) -> asyncio.Future[Completion]:
        key = request_key(self.backend.name, self.backend.model_id, request)
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        if key in self.early:
            future.set_result(self.early.pop(key))
            return future
        first = key not in self.waiters
        self.waiters.setdefault(key, []).append(future)
        self.requests[key] = request
        if first:
            batch = self.state.batch_of(key)
            if batch is not None:  # submitted by an earlier run: wait for that batch, don't repay
                self.counts["resumed"] += 1
                self._watch(batch)
            else:
                self._enqueue(key)
        return future

    # ---- submitting -------------------------------------------------------------------------

    def _enqueue(self, key: str) -> None:
        self.queue[key] = self.requests[key]
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        try:
            await self._flush_forever()
        except Exception as exc:  # a bug here must fail the waiting requests, not hang them
            for key in list(self.waiters):
                self._resolve(key, self._error(f"batch loop failed: {exc!r}"))
            raise

    async def _flush_forever(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            if len(self.queue) < self.batch_max:
                await asyncio.sleep(self.wait_s)  # let the rest of this wave arrive
            take = dict(list(self.queue.items())[: self.batch_max])
            for key in take:
                del self.queue[key]
            if not self.queue:
                self._wake.clear()
            await self._submit(take)

    async def _submit(self, take: dict[str, Request]) -> None:
        entries = [{"custom_id": key, "params": self.backend.params(r)} for key, r in take.items()]
        try:
            batch = await self.backend.with_retries(self._create, entries)
        except CallFailed as exc:
            for key in take:
                self._resolve(key, self._error(f"batch create failed: {exc.kind}: {exc}"))
            return
        self.counts["batches"] += 1
        self.state.add(list(take), batch.id)  # durable before we wait: a restart resumes this batch
        self._watch(batch.id)

    async def _create(self, entries: list[dict[str, Any]]) -> Any:
        return await self.backend.client.messages.batches.create(requests=entries)

    # ---- waiting ----------------------------------------------------------------------------

    def _watch(self, batch: str) -> None:
        if batch not in self.watchers or self.watchers[batch].done():
            self.watchers[batch] = asyncio.create_task(self._watch_batch(batch))

    async def _watch_batch(self, batch_id: str) -> None:
        try:
            await self._follow(batch_id)
        except Exception as exc:  # a bug here must fail the batch's requests, not hang them
            for key in self.state.keys_of(batch_id) & set(self.waiters):
                self._resolve(key, self._error(f"batch {batch_id} watcher failed: {exc!r}"))
            raise

    async def _follow(self, batch_id: str) -> None:
        client = self.backend.client
        try:
            while True:
                batch = await self.backend.with_retries(client.messages.batches.retrieve, batch_id)
                if batch.processing_status == "ended":
                    break
                await asyncio.sleep(self.poll_s)
            items = await self.backend.with_retries(self._results, batch_id)
        except CallFailed as exc:  # keep the state: a rerun resumes this batch
            for key in self.state.keys_of(batch_id) & set(self.waiters):
                self._resolve(key, self._error(f"batch {batch_id}: {exc.kind}: {exc}"))
            return
        seen = set()
        for item in items:
            seen.add(item.custom_id)
            self._take(item)
        for key in self.state.keys_of(batch_id) - seen:
            self._again(key, "missing from the batch results")

    async def _results(self, batch_id: str) -> list[Any]:
        decoder = await self.backend.client.messages.batches.results(batch_id)
        return [item async for item in decoder]

    def _take(self, item: Any) -> None:
        key, result = item.custom_id, item.result
        if result.type == "succeeded":
            try:
                completion = to_completion(result.message)
            except CallFailed as exc:
                return self._again(key, str(exc))
            self.backend.cost_usd += self.backend.cost(completion.prompt_tokens, completion.completion_tokens)
            self.state.remove(key)
            return self._resolve(key, completion)
        if result.type == "errored":
            kind = getattr(getattr(result.error, "error", None), "type", "api_error")
            if kind == "invalid_request_error":  # the same request fails again: don't resubmit
                self.state.remove(key)
                return self._resolve(key, self._error(f"batch entry {kind}"))
            return self._again(key, f"errored ({kind})")
        return self._again(key, result.type)  # expired | canceled

    def _again(self, key: str, why: str) -> None:
        self.state.remove(key)
        if key not in self.waiters:
            return  # nobody in this run asked: a later ask submits it afresh
        if self.resubmits[key] >= self.max_resubmits:
            return self._resolve(key, self._error(f"batch entry {why} {self.resubmits[key] + 1} times"))
        self.resubmits[key] += 1
        self.counts["resubmitted"] += 1
        self._enqueue(key)

    def _resolve(self, key: str, completion: Completion) -> None:
        waiters = self.waiters.pop(key, [])
        self.requests.pop(key, None)
        if not waiters and completion.error is None:
            self.early[key] = completion
        for future in waiters:
            if not future.done():
                future.set_result(completion)

    def _error(self, message: str) -> Completion:
        return Completion("", "error", error=self.backend.redact(f"anthropic batch: {message}"))

    async def close(self) -> None:
        tasks = [t for t in [self._flusher, *self.watchers.values()] if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.state.close()
