"""One run's model calls: the request cache, the dollar budget, the backends and their dispatchers,
and the call counts per user.

Every model call of a run goes through a session: a build's steps and its QC judges, ``factory
eval``, ``factory init``. So ``--cache`` / ``--no-cache``, ``--budget-usd`` and the counts in
``run.json`` cover all of them, and two users of the same backend block share one backend
instance (one model load, one connection pool) and one dispatcher (slots, in-flight coalescing).

Users are named by what they are (a recipe backend key such as ``default``, ``qc.reward``,
``eval``); each gets its own dispatcher views, so its counts, tokens and dollars stay its own.

Blocking code (the QC chain runs in a worker thread) calls models with ``run_sync``: the calls
run on the session's own event loop, where its backends live, never on a second loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

from factory.core.paths import default_cache_path
from factory.llm.backends import Backend, BackendSettings, backend_class
from factory.llm.cache import RequestCache
from factory.llm.dispatch import CallStats, Dispatcher
from factory.llm.pricing import Budget
from factory.llm.spec import BackendBlock

T = TypeVar("T")


def block_identity(block: BackendBlock) -> str:
    """Blocks that make the same backend instance: all but the sampling params (those are per
    request, so two steps with other temperatures share one model)."""
    return json.dumps(block.model_dump(exclude={"params"}), sort_keys=True, default=str)


class LLMSession:
    """Use as ``async with LLMSession.open(...) as llm:``; it closes what it opened, cache included."""

    def __init__(self, cache: RequestCache | Path | None, budget: Budget | None = None) -> None:
        self._cache = cache  # a path is opened on first use: a run that calls no model touches no file
        self.budget = budget
        self.loop: asyncio.AbstractEventLoop | None = None  # where the backends live (set on enter)
        self._by_block: dict[str, Backend] = {}
        self._dispatchers: dict[int, Dispatcher] = {}  # id(backend) -> the one dispatcher
        self._owned: list[Backend] = []  # opened here, closed here (injected ones are not)
        self._uses: list[tuple[str, Dispatcher]] = []  # (user, its view) for the counts

    @classmethod
    def open(cls, cache_path: Path | None = None, use_cache: bool = True,
             budget_usd: float | None = None) -> "LLMSession":
        """``cache_path`` None: ``$FACTORY_CACHE_DIR`` or ``~/.cache/factory``; ``use_cache`` False:
        neither read nor write any cache (``--no-cache``)."""
        cache = (Path(cache_path) if cache_path else default_cache_path()) if use_cache else None
        return cls(cache, Budget(budget_usd) if budget_usd is not None else None)

    @property
    def cache(self) -> RequestCache | None:
        if isinstance(self._cache, Path):
            self._cache = RequestCache(self._cache)
        return self._cache

    async def __aenter__(self) -> "LLMSession":
        self.loop = asyncio.get_running_loop()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # ---- backends and dispatchers -------------------------------------------------------------

    def backend(self, block: BackendBlock) -> Backend:
        """The backend for ``block``, opened on first use; a constructor's error propagates."""
        key = block_identity(block)
        if key not in self._by_block:
            settings = BackendSettings(block.model, block.concurrency, dict(block.options))
            backend = backend_class(block.name)(settings)
            self._owned.append(backend)
            self._by_block[key] = backend
        return self._by_block[key]

    def adopt(self, block: BackendBlock, backend: Backend) -> None:
        """Let ``backend`` (made by the caller, e.g. a test's instance) serve ``block``; the caller
        closes it."""
        self._by_block.setdefault(block_identity(block), backend)

    def dispatcher(self, backend: Backend, concurrency: int, user: str) -> Dispatcher:
        """A view of the backend's one dispatcher (shared cache, budget, slots and in-flight
        calls) that counts for ``user``."""
        base = self._dispatchers.get(id(backend))
        if base is None:
            base = self._dispatchers[id(backend)] = Dispatcher(backend, self.cache, concurrency,
                                                               self.budget)
        view = base.for_step()
        self._uses.append((user, view))
        return view

    def dispatcher_for(self, block: BackendBlock, user: str) -> Dispatcher:
        return self.dispatcher(self.backend(block), block.concurrency, user)

    async def close_backends(self, keep: Iterable[BackendBlock] = ()) -> None:
        """Close the backends opened so far but those serving ``keep`` (free model memory between
        phases of a run: a build's steps, then its QC); a later request opens a fresh one. Counts
        are kept."""
        kept = {id(self._by_block[k]) for k in map(block_identity, keep) if k in self._by_block}
        closing = [b for b in self._owned if id(b) not in kept]
        self._owned = [b for b in self._owned if id(b) in kept]
        self._by_block = {k: b for k, b in self._by_block.items() if all(b is not c for c in closing)}
        for backend in closing:
            self._dispatchers.pop(id(backend), None)
        for backend in closing:
            await backend.close()

    async def aclose(self) -> None:
        try:
            await self.close_backends()
        finally:
            if isinstance(self._cache, RequestCache):
                self._cache.close()

    # ---- counts ---------------------------------------------------------------------------------

    def stats(self, user: str | None = None) -> CallStats:
        """Summed counts of one user, or of every user."""
        total = CallStats()
        for name, view in self._uses:
            if user is None or name == user:
                total.add(view.stats)
        return total

    def calls(self) -> dict[str, dict[str, Any]]:
        """Per user, in the order users first asked: calls made, served from cache, failed, refused
        by the budget, tokens and dollars, with its backends' own counters (retries, throttles;
        a backend shared by two users reports its counters under both)."""
        totals: dict[str, CallStats] = {}
        backends: dict[str, dict[int, Backend]] = {}
        for user, view in self._uses:
            totals.setdefault(user, CallStats()).add(view.stats)
            backends.setdefault(user, {})[id(view.backend)] = view.backend
        out = {}
        for user, stats in totals.items():
            counters: dict[str, Any] = {}
            for backend in backends[user].values():
                for name, value in backend.counters().items():
                    summable = isinstance(value, (int, float)) and name in counters
                    counters[name] = counters[name] + value if summable else value
            out[user] = {**counters, **stats.as_dict()}
        return out

    # ---- blocking callers -------------------------------------------------------------------

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the session's loop from a worker thread and wait for its result."""
        if self.loop is None or self.loop.is_closed():
            coro.close()
            raise RuntimeError("LLMSession.run_sync: the session is not open (use `async with`)")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise RuntimeError("LLMSession.run_sync called on the session's own loop: await instead")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


def run_blocking(fn: Callable[[LLMSession], T], cache_path: Path | None = None, use_cache: bool = True,
                 budget_usd: float | None = None) -> T:
    """``fn(session)`` in a worker thread while this thread's loop serves the session's model calls
    (``factory qc`` / ``audit``: a QC chain outside a build)."""

    async def main() -> T:
        async with LLMSession.open(cache_path, use_cache, budget_usd) as llm:
            return await asyncio.to_thread(fn, llm)

    return asyncio.run(main())
