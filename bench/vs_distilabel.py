"""Engine overhead, like for like: records/s of `factory build` vs a distilabel 1.5.3 Pipeline.

Both sides run generate -> rubric judge (one call per step per record) over the same records on
an LLM that answers instantly with the same canned texts, so what is measured is the engine:
scheduling, batching, serialization, caching and writing the dataset. Like for like:

- the same width: factory's backend concurrency = distilabel's batch size (``--batch``, default
  50, distilabel's default; several values sweep both sides together);
- the same messages: the judge prompt on the distilabel side is factory's own rubric prompt, and
  the answers are parsed by factory's own rubric parser;
- the same caching: a cold cache on both sides (factory's request cache in an empty file,
  distilabel's `use_cache=True` in an empty folder), each run in a fresh process and folder
  (distilabel's runtime can hang on resume: upstream issue #1065);
- the same work: after every run pair the two outputs are compared (one row per input, the same
  answer, score and judgement for every prompt); any difference stops the benchmark.

Rounds alternate (factory, distilabel, factory, distilabel, ...); per side the median and min-max
records/s are printed, and the ratio's median and min-max over the rounds. Each side's time is
the work inside its process (factory: plan + build + dataset written; distilabel: pipeline.run
including its Distiset), not the interpreter start or imports.

    python bench/vs_distilabel.py [--records 10000] [--rounds 3] [--batch 50 [64 ...]]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEEDS = ROOT / "datasets" / "seeds" / "dpo_prompts.jsonl"
ANSWER = "A short canned answer to the question."
# JSON, as factory's rubric prompt asks for; both sides parse it with factory.llm.rubric.parse_rubric.
VERDICT = '{"reasoning": "Correct and clear.", "correctness": 4, "helpfulness": 4, "clarity": 3}'
JUDGE_MARK = "impartial judge"  # in factory's rubric system prompt: the canned LLM answers it with VERDICT

FACTORY_RECIPE = """name: bench_vs_distilabel
seeds: {{path: {seeds}}}
backend:
  name: fake
  concurrency: {concurrency}
  options:
    default: {answer}
    rules:
      - {{match: {mark}, reply: {verdict}}}
steps:
  - {{name: answer, kind: generate, reads: [prompt], writes: answer, prompt: "{{prompt}}"}}
  - {{name: judge, kind: judge_score, reads: [prompt, answer], writes: [score, judgement]}}
outputs:
  splits:
    sft: {{format: sft, completion: answer, columns: [score, judgement]}}
"""


def factory_recipe(seeds: Path, concurrency: int) -> str:
    q = json.dumps  # a JSON string is a valid YAML scalar: the canned texts go in verbatim
    return FACTORY_RECIPE.format(seeds=seeds, concurrency=concurrency, answer=q(ANSWER),
                                 mark=q(JUDGE_MARK), verdict=q(VERDICT.replace("{", "{{").replace("}", "}}")))


def prompts(records: int) -> list[str]:
    rows = [json.loads(line)["prompt"] for line in SEEDS.read_text().splitlines()]
    return [f"{rows[i % len(rows)]} (variant {i})" for i in range(records)]


def write_seeds(path: Path, records: int) -> None:
    rows = [json.loads(line)["prompt"] for line in SEEDS.read_text().splitlines()]
    with path.open("w") as fh:
        for i in range(records):
            fh.write(json.dumps({"prompt": f"{rows[i % len(rows)]} (variant {i})"}) + "\n")


def factory_side(work: Path, records: int, batch: int) -> dict[str, Any]:
    """In this process (called as a fresh subprocess by ``run_side``)."""
    from factory.build import run_build
    from factory.engine.plan import BuildOptions, plan_build

    seeds = work / "seeds.jsonl"
    write_seeds(seeds, records)
    recipe = work / "factory.yaml"
    recipe.write_text(factory_recipe(seeds, batch))
    options = BuildOptions(output=work / "factory_out", cache_path=work / "factory.sqlite")
    started = time.perf_counter()
    result = asyncio.run(run_build(plan_build(recipe, options), options))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "records_per_s": records / seconds, "kept": result.stats["totals"]["kept"],
            "calls": result.calls["default"]["made"]}


def factory_rows(work: Path) -> dict[str, tuple]:
    out = {}
    for line in (work / "factory_out" / "sft.jsonl").read_text().splitlines():
        row = json.loads(line)
        user, assistant = row["messages"][-2]["content"], row["messages"][-1]["content"]
        out[user] = (assistant, row["score"], row["judgement"])
    return out


def distilabel_rows(work: Path) -> dict[str, tuple]:
    out = {}
    for line in (work / "distilabel_rows.jsonl").read_text().splitlines():
        row = json.loads(line)
        out[row["instruction"]] = (row["generation"], row["score"], row["judgement"])
    return out


def same_work(work: Path, records: int) -> None:
    """Both sides made one row per input with the same answer, score and judgement: else stop."""
    ours, theirs = factory_rows(work), distilabel_rows(work)
    expected = set(prompts(records))
    problems = []
    for side, rows in (("factory", ours), ("distilabel", theirs)):
        if set(rows) != expected:
            problems.append(f"{side}: {len(rows)} rows, {len(expected - set(rows))} inputs missing")
    differ = [p for p in expected & set(ours) & set(theirs) if ours[p] != theirs[p]]
    if differ:
        first = differ[0]
        problems.append(f"{len(differ)} inputs differ, e.g. {first!r}: {ours[first]} vs {theirs[first]}")
    if problems:
        raise SystemExit("vs_distilabel: the two sides did not do the same work: " + "; ".join(problems))


def run_side(side: str, work: Path, records: int, batch: int, timeout: float = 1800) -> dict[str, Any]:
    """One side in a fresh process with a timeout (distilabel's runtime can hang: #1065)."""
    script = Path(__file__).parent / ("distilabel_side.py" if side == "distilabel" else "vs_distilabel.py")
    cmd = [sys.executable, str(script), *(["--factory-side"] if side == "factory" else []),
           str(work), str(records), str(batch)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DISTILABEL_LOG_LEVEL": "ERROR"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{side} side failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(records: int, rounds: int = 3, batch: int = 50) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"factory": [], "distilabel": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            work = Path(tmp) / f"round_{r}"
            work.mkdir()
            for side in ("factory", "distilabel"):  # A B, A B, ...
                runs[side].append(run_side(side, work, records, batch))
            same_work(work, records)
    rate = {side: [run["records_per_s"] for run in rs] for side, rs in runs.items()}
    ratios = [f / d for f, d in zip(rate["factory"], rate["distilabel"])]
    return {"records": records, "rounds": rounds, "batch": batch, "same_work": True,
            "mode": f"factory concurrency {batch} = distilabel batch size {batch}; cold cache both sides",
            "factory": {**spread(rate["factory"]), "runs": runs["factory"]},
            "distilabel": {**spread(rate["distilabel"]), "runs": runs["distilabel"]},
            "ratio": spread(ratios), "ratios": ratios}


def table_of(results: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    first = results[0]
    table = Table(title=f"factory vs distilabel 1.5.3: generate -> rubric judge, instant canned LLM, "
                        f"{first['records']:,} records, {first['rounds']} alternating rounds, cold caches")
    for col in ("width", "factory records/s", "distilabel records/s", "factory ÷ distilabel", "same work"):
        table.add_column(col, justify="right")

    def fmt(s: dict[str, float], digits: int = 0) -> str:
        return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"

    for r in results:
        table.add_row(f"concurrency = batch = {r['batch']}", fmt(r["factory"]), fmt(r["distilabel"]),
                      fmt(r["ratio"], 2), "yes" if r["same_work"] else "NO")
    table.caption = ("median (min-max) over the rounds; the ratio is per round: factory ÷ the distilabel "
                     "run after it")
    return table


def main() -> None:
    if sys.argv[1:2] == ["--factory-side"]:
        work, records, batch = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(factory_side(work, records, batch)))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, nargs="+", default=[50],
                    help="factory concurrency = distilabel batch size; several values sweep both")
    args = ap.parse_args()
    os.environ.setdefault("COLUMNS", "150")  # rich: a readable table when piped to a file
    sys.path.insert(0, str(ROOT / "bench"))
    from report import report

    results = [measure(args.records, args.rounds, b) for b in args.batch]
    print(f"figures: {report(table_of(results), {'sweep': results}, 'vs_distilabel-')}")


if __name__ == "__main__":
    main()
