"""What every paid HTTP backend shares: adaptive concurrency, retries, a hard timeout, cost, counters.

``ApiBackend.generate`` runs each request through: wait for a slot of the adaptive limiter ->
``_call`` under a hard timeout -> classify any failure -> back off (``retry-after`` when the server
sent one) and retry, or give up with ``Completion(error=...)``. Subclasses only translate one
request into one SDK call (``_call``) and say which price table they use.

Common options (the recipe's ``backend.options``): ``base_url``, ``timeout`` (hard seconds per
attempt, default 120), ``max_attempts`` (default 6), ``min_concurrency`` (default 1), ``price``
(``{input, output}`` USD per million tokens), ``backoff_s`` (first backoff, default 1.0).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from abc import abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from factory.llm.backends.base import Backend, BackendSettings
from factory.llm.pricing import Price, find_price
from factory.llm.request import Completion, Request

T = TypeVar("T")
THROTTLE, SERVER, TIMEOUT, MALFORMED, FATAL = "throttled", "server_error", "timeout", "malformed", "fatal"


class AdaptiveLimiter:
    """AIMD concurrency: +1 slot per window of successes, x``decrease`` on a throttle (429/529).

    Only a throttle of a request that started after the last decrease cuts again: one overload
    episode (many 429s for the same window of requests) halves the limit once, as in TCP.
    """

    def __init__(self, max_limit: int, min_limit: int = 1, decrease: float = 0.7) -> None:
        self.max_limit = max(1, max_limit)
        self.min_limit = max(1, min(min_limit, self.max_limit))
        self.limit = float(self.max_limit)
        self.decrease = decrease
        self.in_flight = 0
        self.last_cut = 0.0
        self.started = time.monotonic()
        self.trace: list[tuple[float, float, str]] = []  # (seconds since start, limit, event)
        self._cond: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:  # made lazily: it binds to the running event loop
            self._cond = asyncio.Condition()
        return self._cond

    async def acquire(self) -> float:
        """Wait for a slot; returns the start time to hand back to ``on_throttle``."""
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1
        return time.monotonic()

    async def release(self) -> None:
        cond = self._condition()
        async with cond:
            self.in_flight -= 1
            # Wake only as many waiters as there are free slots: notify_all would wake every
            # waiter on every release (quadratic with a thousand requests queued).
            cond.notify(max(1, int(self.limit) - self.in_flight))

    def on_success(self) -> None:
        """Call before ``release``: grow only while the limit is what holds requests back."""
        if self.limit < self.max_limit and self.in_flight >= int(self.limit):
            self.limit = min(self.max_limit, self.limit + 1.0 / self.limit)
            self._note("up")

    def on_throttle(self, started: float) -> None:
        if started < self.last_cut:
            return  # sent before the last cut: part of the overload that cut already answered
        self.last_cut = time.monotonic()
        self.limit = max(float(self.min_limit), self.limit * self.decrease)
        self._note("cut")

    def _note(self, event: str) -> None:
        self.trace.append((round(time.monotonic() - self.started, 3), round(self.limit, 2), event))


class CallFailed(Exception):
    """One failed attempt, classified: ``kind`` decides whether and how long before retrying."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind, self.retry_after = kind, retry_after


def retry_after_seconds(headers: Any) -> float | None:
    """``retry-after-ms`` or ``retry-after`` (seconds) from response headers, if sent."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                return None
    return None


def classify(exc: BaseException) -> CallFailed:
    """Map an SDK (anthropic / openai, both on httpx) or transport error to a retry decision."""
    if isinstance(exc, CallFailed):
        return exc
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    message = f"{name}: {str(exc)[:300]}"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) or "Timeout" in name:
        return CallFailed(TIMEOUT, message)
    if isinstance(status, int):
        after = retry_after_seconds(getattr(response, "headers", None))
        if status in (429, 529):
            return CallFailed(THROTTLE, message, after)
        if status >= 500 or status in (408, 409):
            return CallFailed(SERVER, message, after)
        return CallFailed(FATAL, message)  # 400/401/403/404/413/422: the same call fails again
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)) or "Validation" in name \
            or "Decode" in name:
        return CallFailed(MALFORMED, message)
    if "Connection" in name or "Protocol" in name or isinstance(exc, (ConnectionError, OSError)):
        return CallFailed(SERVER, message)  # dropped connection, truncated body
    return CallFailed(FATAL, message)


class ApiBackend(Backend):
    """Base of the HTTP backends: subclasses implement ``_call`` and set ``prices``."""

    prices: ClassVar[dict[str, Price]] = {}
    key_env: ClassVar[str | None] = None  # environment variable holding the API key

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.opts: dict[str, Any] = dict(settings.options)
        self.base_url: str | None = self.opts.pop("base_url", None)
        self.timeout = float(self.opts.pop("timeout", 120.0))
        self.max_attempts = int(self.opts.pop("max_attempts", 6))
        self.backoff_s = float(self.opts.pop("backoff_s", 1.0))
        min_concurrency = int(self.opts.pop("min_concurrency", 1))
        self.price = find_price(self.model_id, self.prices, self.opts.pop("price", None))
        self.limiter = AdaptiveLimiter(settings.concurrency, min_concurrency)
        self.counts: Counter[str] = Counter()
        self.cost_usd = 0.0
        self._rng = random.Random(0)  # backoff jitter only; never touches any answer

    def check_options(self) -> None:
        """Call at the end of a subclass ``__init__``: leftover options are typos."""
        if self.opts:
            raise ValueError(f"unknown {self.name} backend option(s): {', '.join(sorted(self.opts))}")

    def api_key(self, env: str, required: bool = True) -> str | None:
        """The key, from the environment only; never stored anywhere but the SDK client."""
        key = os.environ.get(env)
        if required and not key:
            raise ValueError(f"{env} is not set (the {self.name} backend reads its key from it)")
        return key

    # ---- money ------------------------------------------------------------------------------

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return self.price.cost(prompt_tokens, completion_tokens) if self.price else 0.0

    def estimate_cost(self, request: Request) -> float:
        return self.cost(self.count_tokens(request.message_dicts()), request.params.max_tokens)

    def counters(self) -> dict[str, Any]:
        return {"retries": self.counts["retries"], "throttled": self.counts[THROTTLE],
                "server_errors": self.counts[SERVER], "timeouts": self.counts[TIMEOUT],
                "malformed": self.counts[MALFORMED], "cost_usd": round(self.cost_usd, 6),
                "concurrency_limit": round(self.limiter.limit, 2)}

    # ---- the call path ----------------------------------------------------------------------

    async def generate(self, requests: list[Request]) -> list[Completion]:
        return list(await asyncio.gather(*(self._complete(r) for r in requests)))

    async def _complete(self, request: Request) -> Completion:
        try:
            completion = await self.with_retries(self._call, request)
        except CallFailed as exc:
            return Completion("", "error", error=self.redact(f"{self.name}: {exc.kind}: {exc}"))
        self.cost_usd += self.cost(completion.prompt_tokens, completion.completion_tokens)
        return completion

    async def with_retries(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``fn(*args)`` under the limiter and timeout, retried; raises the last ``CallFailed``."""
        retrying = AsyncRetrying(stop=stop_after_attempt(self.max_attempts), wait=self._wait,
                                 retry=retry_if_exception(lambda e: getattr(e, "kind", FATAL) != FATAL),
                                 before_sleep=self._before_sleep, reraise=True)
        return await retrying(self._attempt, fn, *args)

    async def _attempt(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        started = await self.limiter.acquire()
        try:
            async with asyncio.timeout(self.timeout):  # hard cap, whatever the transport does
                result = await fn(*args)
        except Exception as exc:  # every failure is classified; none escapes unclassified
            failure = classify(exc)
            self.counts[failure.kind] += 1
            if failure.kind == THROTTLE:
                self.limiter.on_throttle(started)
            raise failure from None
        else:
            self.limiter.on_success()
            return result
        finally:
            await self.limiter.release()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return after + self._rng.uniform(0, 0.1 * max(after, 0.1))  # honor it, desynchronised
        base = self.backoff_s * 2 ** (state.attempt_number - 1)
        return min(30.0, base) * self._rng.uniform(0.5, 1.0)  # exponential, full-ish jitter

    def _before_sleep(self, state: RetryCallState) -> None:
        self.counts["retries"] += 1

    def redact(self, text: str) -> str:
        """Belt and braces: an error text never carries the key, whatever the SDK put in it."""
        key = os.environ.get(self.key_env) if self.key_env else None
        return text.replace(key, "***") if key else text

    @abstractmethod
    async def _call(self, request: Request) -> Completion:
        """One attempt: raise on failure (it is classified), return the completion on success."""


def split_system(request: Request) -> tuple[str | None, list[dict[str, str]]]:
    """System messages joined into one string (Anthropic takes them apart from the chat)."""
    system = "\n\n".join(c for r, c in request.messages if r == "system") or None
    return system, [{"role": r, "content": c} for r, c in request.messages if r != "system"]
