"""The anthropic backend against the fake Anthropic server (run in its own process, so the server's
CPU is not the client's).

1. Throughput: N requests at L s latency, concurrency C, no faults. Efficiency =
   throughput / (C / L); 1.0 means the client never left a slot idle.
2. Adaptive limiter: the server answers 429 above a hidden concurrency limit; the client starts at a
   much higher concurrency. Prints the limit trace and the mean limit over the second half.

    python bench/api_backend.py [--requests 1000] [--latency 0.2] [--concurrency 16] [--hidden 12]

The client, not the server, is the ceiling: the anthropic SDK costs ~10 ms of CPU per request
(measured on 2 shared cores), so past ~80 req/s (concurrency 16 at 200 ms) efficiency falls.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from factory.llm.backends import backend_class  # noqa: E402
from factory.llm.backends.base import BackendSettings
from factory.llm.request import Request, SamplingParams
from report import report  # noqa: E402


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "factory.llm.backends.fake_api", *args],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    return proc, proc.stdout.readline().strip()


async def drive(url: str, n: int, concurrency: int) -> tuple[float, object]:
    backend = backend_class("anthropic")(BackendSettings(
        "claude-haiku-4-5", concurrency, {"base_url": url, "backoff_s": 0.05}))
    requests = [Request.chat([{"role": "user", "content": f"question {i}"}], SamplingParams(max_tokens=8))
                for i in range(n)]
    # Warm up: the SDK builds its pydantic types on first use (seconds), a one-off, not throughput.
    warm = Request.chat([{"role": "user", "content": "warm"}], SamplingParams(max_tokens=1))
    await backend.generate([warm])
    backend.limiter.trace.clear()
    start = time.perf_counter()
    out = await backend.generate(requests)
    elapsed = time.perf_counter() - start
    await backend.close()
    assert all(c.error is None for c in out), [c.error for c in out if c.error][:3]
    return elapsed, backend


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=12, help="hidden server concurrency limit")
    parser.add_argument("--start", type=int, default=64, help="client concurrency in the limiter run")
    args = parser.parse_args()
    os.environ.setdefault("ANTHROPIC_API_KEY", "bench-key")

    proc, url = start_server("--latency", str(args.latency))
    try:
        elapsed, _ = asyncio.run(drive(url, args.requests, args.concurrency))
    finally:
        proc.kill()
    throughput = args.requests / elapsed
    ideal = args.concurrency / args.latency
    efficiency = throughput / ideal

    proc, url = start_server("--latency", str(args.latency), "--limit", str(args.hidden))
    try:
        limited_elapsed, backend = asyncio.run(drive(url, args.requests, args.start))
    finally:
        proc.kill()
    trace = backend.limiter.trace
    late = [limit for t, limit, _ in trace if t >= trace[-1][0] / 2] or [backend.limiter.limit]
    mean_late = sum(late) / len(late)
    print("limiter trace (seconds, limit, event), every cut and every 10th raise:")
    for i, (t, limit, event) in enumerate(trace):
        if event == "cut" or i % 10 == 0:
            print(f"  {t:7.3f}s  {limit:6.2f}  {event}")

    table = Table(title="anthropic backend vs fake server")
    for col in ("run", "requests", "latency s", "concurrency", "elapsed s", "req/s", "ideal req/s",
                "efficiency"):
        table.add_column(col, justify="right")
    table.add_row("throughput", str(args.requests), f"{args.latency}", str(args.concurrency),
                  f"{elapsed:.2f}", f"{throughput:.1f}", f"{ideal:.1f}", f"{efficiency:.3f}")
    limited_rate, limited_ideal = args.requests / limited_elapsed, args.hidden / args.latency
    table.add_row(f"hidden limit {args.hidden}", str(args.requests), f"{args.latency}",
                  f"start {args.start}", f"{limited_elapsed:.2f}", f"{limited_rate:.1f}",
                  f"{limited_ideal:.1f}", f"{limited_rate / limited_ideal:.3f}")
    counters = backend.counters()
    path = report(table, {"throughput": {"requests": args.requests, "latency_s": args.latency,
                                         "concurrency": args.concurrency, "elapsed_s": elapsed,
                                         "req_per_s": throughput, "efficiency": efficiency},
                          "limiter": {"hidden_limit": args.hidden, "start": args.start,
                                      "mean_limit_second_half": mean_late, "elapsed_s": limited_elapsed,
                                      "throttled": counters["throttled"], "trace": trace}},
                  prefix="api_backend-")
    print(f"efficiency {efficiency:.3f} (target >= 0.9); limiter mean over the second half "
          f"{mean_late:.1f} vs hidden limit {args.hidden}; {counters['throttled']} throttled; {path}")


if __name__ == "__main__":
    main()
