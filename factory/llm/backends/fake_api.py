"""Fake Anthropic and OpenAI-compatible servers on 127.0.0.1, with injected faults (tests, bench).

Both speak enough of the real wire format for the official ``anthropic`` and ``openai`` clients:
``POST /v1/messages``, the Message Batches endpoints, ``POST /v1/chat/completions``,
``POST /v1/completions`` (raw prompts; the body of each is kept in ``received``). Faults are
drawn per HTTP request from a seeded RNG, so a retried call can succeed: 429 (with
``retry-after``), 500, 529, a stall past the client's timeout, a body cut off mid-way (connection
dropped), and malformed JSON. A hidden concurrency limit answers 429 above it (limiter tests).
The server runs its own event loop in a thread, so sync tests and ``asyncio.run`` callers share it.

Replies are a pure function of the prompt: ``reply to: <last user message, first 60 chars>``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Faults:
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_529: float = 0.0
    rate_timeout: float = 0.0
    rate_truncated: float = 0.0
    rate_malformed: float = 0.0
    latency: float = 0.0  # seconds per successful reply
    retry_after: float = 0.05  # seconds, sent with every 429/529
    stall: float = 30.0  # how long a "timeout" fault hangs (set above the client's timeout)
    concurrency_limit: int | None = None  # 429 when more replies than this are being made
    batch_seconds: float = 0.2  # how long a Message Batch stays in_progress
    batch_expire_rate: float = 0.0  # batch entries that come back "expired"
    batch_error_rate: float = 0.0  # batch entries that come back "errored" (api_error)
    seed: int = 0

    def drawn(self, rng: random.Random) -> str | None:
        x = rng.random()
        for kind in ("429", "500", "529", "timeout", "truncated", "malformed"):
            rate = getattr(self, f"rate_{kind}")
            if x < rate:
                return kind
            x -= rate
        return None

    @classmethod
    def uniform(cls, fault_rate: float, malformed: float, **kw: Any) -> "Faults":
        """``fault_rate`` split evenly over 429/500/529/timeout/truncated, plus ``malformed``."""
        each = fault_rate / 5
        return cls(rate_429=each, rate_500=each, rate_529=each, rate_timeout=each, rate_truncated=each,
                   rate_malformed=malformed, **kw)


def reply_text(messages: list[dict[str, Any]]) -> str:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
    content = last["content"]
    if isinstance(content, list):
        content = " ".join(block.get("text", "") for block in content)
    return f"reply to: {content[:60]}"


def alternatives(token: str, k: int) -> list[dict[str, Any]]:
    """The top-k a request with ``top_logprobs`` gets at each token: the token at -0.5, then
    ``alt1``, ``alt2``, ... at -1.5, -2.5, ... (fixed values a test can check)."""
    ranked = [(token, -0.5)] + [(f"alt{i}", -0.5 - i) for i in range(1, k)]
    return [{"token": t, "logprob": lp, "bytes": None} for t, lp in ranked[:k]]


def _tokens(text: str) -> int:
    return len(text.split()) + 1


@dataclass
class FakeServer:
    """``with FakeServer(faults, api_key=...) as server: server.base_url``"""

    faults: Faults = field(default_factory=Faults)
    api_key: str | None = None  # when set, requests without it get 401
    counts: Counter = field(default_factory=Counter)
    max_in_flight: int = 0
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)  # /v1/completions bodies, in order

    def __post_init__(self) -> None:
        self.rng = random.Random(self.faults.seed)
        self.in_flight = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> "FakeServer":
        self._thread = threading.Thread(target=self._serve, name="fake-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake API server did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        # Clients that time out or drop mid-request are the point of this server: not news.
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/batches", self._batch_create)
        app.router.add_get("/v1/messages/batches/{id}", self._batch_get)
        app.router.add_get("/v1/messages/batches/{id}/results", self._batch_results)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._complete)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    # ---- faults -----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.counts["requests"] += 1
        openai_style = request.path.endswith("/completions")
        if self.api_key is not None:
            given = request.headers.get("x-api-key") or request.headers.get("authorization", "")
            if given.removeprefix("Bearer ") != self.api_key:
                return self._error(401, "authentication_error", "invalid x-api-key", openai_style)
        limit = self.faults.concurrency_limit
        if limit is not None and self.in_flight >= limit:
            self.counts["429_over_limit"] += 1
            return self._error(429, "rate_limit_error", "over the concurrency limit", openai_style)
        fault = self.faults.drawn(self.rng)
        if fault is not None:
            self.counts[f"fault_{fault}"] += 1
        if fault in ("429", "529"):
            return self._error(int(fault), "rate_limit_error" if fault == "429" else "overloaded_error",
                               "injected", openai_style)
        if fault == "500":
            return self._error(500, "api_error", "injected", openai_style)
        if fault == "timeout":
            await asyncio.sleep(self.faults.stall)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.faults.latency and request.method == "POST" and "batches" not in request.path:
                await asyncio.sleep(self.faults.latency)
            response = await handler(request)
        finally:
            self.in_flight -= 1
        if fault == "malformed":
            return web.Response(text='{"id": "msg_x", "content": [{"type": "text", "te',
                                content_type="application/json")
        if fault == "truncated":
            return await self._truncate(request, response)
        self.counts["ok"] += 1
        return response

    async def _truncate(self, request: web.Request, response: web.Response) -> web.StreamResponse:
        """Promise the whole body, send half, drop the connection."""
        body = response.body if isinstance(response.body, bytes) else b"{}"
        stream = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        stream.content_length = len(body)
        await stream.prepare(request)
        await stream.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.close()
        return stream

    def _error(self, status: int, kind: str, message: str, openai_style: bool) -> web.Response:
        headers = {"retry-after": str(self.faults.retry_after)} if status in (429, 529) else {}
        body = ({"error": {"message": message, "type": kind, "code": None}} if openai_style
                else {"type": "error", "error": {"type": kind, "message": message}})
        return web.json_response(body, status=status, headers=headers)

    # ---- Anthropic --------------------------------------------------------------------------

    @staticmethod
    def _message(params: dict[str, Any]) -> dict[str, Any]:
        text = reply_text(params["messages"])
        words = text.split()
        stop = "end_turn"
        if len(words) > params.get("max_tokens", 1 << 30):
            words, stop = words[: params["max_tokens"]], "max_tokens"
        prompt = " ".join(str(m.get("content")) for m in params["messages"]) + str(params.get("system", ""))
        return {"id": f"msg_{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant",
                "model": params.get("model", "fake"), "content": [{"type": "text", "text": " ".join(words)}],
                "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": _tokens(prompt), "output_tokens": len(words)}}

    async def _messages(self, request: web.Request) -> web.Response:
        return web.json_response(self._message(await request.json()))

    def _batch_view(self, batch: dict[str, Any]) -> dict[str, Any]:
        ended = time.monotonic() >= batch["ends"]
        n = len(batch["requests"])
        counts = {"processing": 0 if ended else n, "succeeded": n if ended else 0, "errored": 0,
                  "canceled": 0, "expired": 0}
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {"id": batch["id"], "type": "message_batch", "created_at": now, "expires_at": now,
                "processing_status": "ended" if ended else "in_progress", "request_counts": counts,
                "ended_at": now if ended else None,
                "results_url": f"{self.base_url}/v1/messages/batches/{batch['id']}/results"
                if ended else None}

    async def _batch_create(self, request: web.Request) -> web.Response:
        body = await request.json()
        batch_id = f"msgbatch_{uuid.uuid4().hex[:16]}"
        self.batches[batch_id] = {"id": batch_id, "requests": body["requests"],
                                  "ends": time.monotonic() + self.faults.batch_seconds}
        self.counts["batches"] += 1
        self.counts["batch_entries"] += len(body["requests"])
        return web.json_response(self._batch_view(self.batches[batch_id]))

    async def _batch_get(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self._error(404, "not_found_error", "no such batch", False)
        return web.json_response(self._batch_view(batch))

    async def _batch_results(self, request: web.Request) -> web.Response:
        batch = self.batches[request.match_info["id"]]
        if "results" not in batch:  # drawn once: the results file does not change between reads
            lines = []
            for entry in batch["requests"]:
                x = self.rng.random()
                if x < self.faults.batch_expire_rate:
                    result: dict[str, Any] = {"type": "expired"}
                elif x < self.faults.batch_expire_rate + self.faults.batch_error_rate:
                    result = {"type": "errored", "error": {"type": "error", "error": {
                        "type": "api_error", "message": "injected"}}}
                else:
                    result = {"type": "succeeded", "message": self._message(entry["params"])}
                lines.append(json.dumps({"custom_id": entry["custom_id"], "result": result}))
            batch["results"] = "\n".join(lines) + "\n"
        return web.Response(text=batch["results"], content_type="application/binary")

    # ---- OpenAI -----------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.Response:
        params = await request.json()
        text = reply_text(params["messages"])
        words = text.split()
        finish = "stop"
        if len(words) > params.get("max_tokens", 1 << 30):
            words, finish = words[: params["max_tokens"]], "length"
        logprobs = None
        if params.get("logprobs"):
            k = int(params.get("top_logprobs") or 0)
            logprobs = {"content": [{"token": w, "logprob": -0.5, "bytes": None,
                                     "top_logprobs": alternatives(w, k)} for w in words]}
        prompt = " ".join(str(m.get("content")) for m in params["messages"])
        return web.json_response({
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
            "created": int(time.time()),
            "model": params.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
                         "finish_reason": finish, "logprobs": logprobs}],
            "usage": {"prompt_tokens": _tokens(prompt), "completion_tokens": len(words),
                      "total_tokens": _tokens(prompt) + len(words)}})

    async def _complete(self, request: web.Request) -> web.Response:
        """Raw completions: the reply continues the prompt with ``completion of: <its last 40 chars>``."""
        params = await request.json()
        self.received.append(params)
        prompt = str(params.get("prompt", ""))
        words = f"completion of: {prompt[-40:]}".split()
        finish = "stop"
        if len(words) > params.get("max_tokens", 1 << 30):
            words, finish = words[: params["max_tokens"]], "length"
        return web.json_response({
            "id": f"cmpl-{uuid.uuid4().hex[:12]}", "object": "text_completion", "created": int(time.time()),
            "model": params.get("model", "fake"),
            "choices": [{"index": 0, "text": " ".join(words), "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": _tokens(prompt), "completion_tokens": len(words),
                      "total_tokens": _tokens(prompt) + len(words)}})


def main() -> None:
    """``python -m factory.llm.backends.fake_api --latency 0.2 [--limit N] [--fault-rate R --malformed M]``:
    serve until killed, printing the base URL (benchmarks run it apart from the client's CPU)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--limit", type=int, default=None, help="hidden concurrency limit (429 above)")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--malformed", type=float, default=0.0)
    parser.add_argument("--retry-after", type=float, default=0.05)
    args = parser.parse_args()
    faults = Faults.uniform(args.fault_rate, args.malformed, latency=args.latency,
                            concurrency_limit=args.limit, retry_after=args.retry_after)
    with FakeServer(faults) as server:
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
