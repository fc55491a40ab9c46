"""Engine overhead: records/s through `factory build` vs a distilabel 1.5.3 Pipeline, same graph.

Both run generate -> judge (single-answer rubric, one call per step per record) on an LLM that
answers instantly with canned text, so what is measured is the engine: scheduling, batching,
serialization, caching and writing the dataset. Both sides run with their defaults and a cold
cache (factory: request cache on, empty file; distilabel: `use_cache=True`, empty cache dir).

    python bench/vs_distilabel.py [--records 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factory.build import run_build  # noqa: E402
from factory.engine.plan import BuildOptions, plan_build  # noqa: E402

SEEDS = ROOT / "datasets" / "seeds" / "dpo_prompts.jsonl"
ANSWER = "A short canned answer to the question."
VERDICT = "correctness: 4\nhelpfulness: 4\nclarity: 3"
VERDICT_YAML = VERDICT.replace("\n", "\\n")  # inside a YAML double-quoted string
JUDGE_SYSTEM = "You are an impartial judge. Score the answer on correctness, helpfulness, clarity."

FACTORY_RECIPE = """name: bench_vs_distilabel
seeds: {{path: {seeds}}}
backend:
  name: fake
  concurrency: 64
  options:
    default: "{answer}"
    rules:
      - {{match: "impartial judge", reply: "{verdict}"}}
steps:
  - {{name: answer, kind: generate, reads: [prompt], writes: answer, prompt: "{{prompt}}"}}
  - {{name: judge, kind: judge_score, reads: [prompt, answer], writes: [score, judgement]}}
outputs:
  splits:
    sft: {{format: sft, completion: answer, columns: [score]}}
"""


def prompts(records: int) -> list[str]:
    rows = [json.loads(line)["prompt"] for line in SEEDS.read_text().splitlines()]
    return [f"{rows[i % len(rows)]} (variant {i})" for i in range(records)]


def factory_side(work: Path, records: int) -> dict[str, Any]:
    seeds = work / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts(records)))
    recipe = work / "factory.yaml"
    recipe.write_text(FACTORY_RECIPE.format(seeds=seeds, answer=ANSWER, verdict=VERDICT_YAML))
    options = BuildOptions(output=work / "factory_out", cache_path=work / "factory.sqlite")
    started = time.perf_counter()
    result = asyncio.run(run_build(plan_build(recipe, options), options))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "records_per_s": records / seconds, "kept": result.stats["totals"]["kept"],
            "calls": result.calls["default"]["made"]}


def distilabel_side(work: Path, records: int, timeout: float = 1800) -> dict[str, Any]:
    """In a subprocess with a timeout: distilabel's runtime can hang instead of failing (#1065)."""
    cmd = [sys.executable, str(Path(__file__).parent / "distilabel_side.py"), str(work), str(records)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DISTILABEL_LOG_LEVEL": "ERROR"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"distilabel side failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(records: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours = factory_side(work, records)
        theirs = distilabel_side(work, records)
    return {"records": records, "mode": "defaults, cold cache on both sides", "factory": ours,
            "distilabel": theirs, "ratio": ours["records_per_s"] / theirs["records_per_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000)
    print(json.dumps(measure(ap.parse_args().records), indent=2))


if __name__ == "__main__":
    main()
