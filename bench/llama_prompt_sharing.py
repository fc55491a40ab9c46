"""Best-of-n on the embedded model: calls/s with prompts sharing KV cells (the n samples of a
prompt share all of it; prompts after the same few-shot turns share those turns) vs each sample
computing its own prompt (``share_prompts: false``), same requests, same run.

    python bench/llama_prompt_sharing.py [--problems 12] [--n 8] [--threads N]

The requests are teach_sort's: a sorting question after three few-shot turns, sampled n times at
temperature 0.8 / top-k 40 / top-p 0.95, 16 tokens at most. The texts must come out identical.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rich.table import Table  # noqa: E402

from factory.llm.backends.base import BackendSettings  # noqa: E402
from factory.llm.backends.llama_cpp import LlamaCppBackend  # noqa: E402
from factory.llm.request import Request, SamplingParams  # noqa: E402
from factory.recipe.loader import load_recipe  # noqa: E402
from factory.recipe.seeds import task_problems  # noqa: E402
from factory.steps.base import template_chat  # noqa: E402
from report import report  # noqa: E402


def requests(problems: int, n: int) -> list[Request]:
    loaded = load_recipe(ROOT / "recipes" / "teach_sort.yaml")
    step = loaded.recipe.steps[0]
    params = SamplingParams(temperature=0.8, top_k=40, top_p=0.95, max_tokens=16)
    examples = [(e.user, e.assistant) for e in step.examples]
    train = task_problems(loaded)[0][:problems]
    return [Request.chat(template_chat(step.system, step.prompt, p.row(), examples), params, sample_index=i)
            for p in train for i in range(n)]


async def measure(batch: list[Request], share: bool, threads: int) -> tuple[float, list[str]]:
    backend = LlamaCppBackend(BackendSettings("embedded", 8, {"share_prompts": share, "n_threads": threads}))
    try:
        await backend.generate([Request.chat([{"role": "user", "content": "hi"}], batch[0].params)])
        start = time.perf_counter()
        done = await asyncio.gather(*(backend.generate([r]) for r in batch))
        return time.perf_counter() - start, [c[0].text for c in done]
    finally:
        await backend.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=12)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    batch = requests(args.problems, args.n)
    own_s, own = asyncio.run(measure(batch, False, args.threads))
    shared_s, shared = asyncio.run(measure(batch, True, args.threads))
    results = {"calls": len(batch), "own_prompt_calls_per_s": round(len(batch) / own_s, 2),
               "shared_prompt_calls_per_s": round(len(batch) / shared_s, 2),
               "speedup": round(own_s / shared_s, 2), "identical_texts": own == shared}
    table = Table(title=f"best-of-{args.n} on the embedded model, {len(batch)} calls")
    for col in ("figure", "value"):
        table.add_column(col)
    for key, value in results.items():
        table.add_row(key, str(value))
    report(table, results, "llama_prompt_sharing-")


if __name__ == "__main__":
    main()
