"""The benchmark suite: every figure a ratio of two things measured side by side in this one run.

    python bench/suite.py            # full sizes (10,000 records, 50,000 dedup texts): ~15-25 min on 2 cores
    python bench/suite.py --quick    # smaller sizes, same figures: a few minutes

Figures (each from the bench script that owns it, imported, not copied):
  engine    records/s of `factory build` ÷ a distilabel 1.5.3 Pipeline, generate -> judge on an
            instant canned LLM, like for like: factory concurrency = distilabel batch size, cold
            caches, outputs checked equal, alternating rounds (bench/vs_distilabel.py)
  embedded  build tokens/s ÷ raw llama.cpp batched tokens/s, same prompts, greedy (bench/run.py):
            the default build (flash attention off, batch-invariant) and one with flash_attn: true
  rebuild   second build time ÷ first, unchanged recipe, embedded model (bench/run.py)
  dedup     total ÷ embedding time and recall vs brute force (bench/qc_dedup.py)
  ray       local vs `--executor ray` with 2 workers on a latency-bound fake backend (bench/ray_scaling.py)
The table is printed and the figures are written to bench/results/suite-<time>.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rich.table import Table  # noqa: E402

from report import report  # noqa: E402

SIZES = {  # full / quick
    "records": (10_000, 2_000), "rounds": (3, 2), "prompts": (32, 8), "max_tokens": (96, 48),
    "dedup_n": (50_000, 5_000), "dedup_dups": (5_000, 500), "ray_records": (400, 200),
}


def run_all(quick: bool, skip: set[str]) -> dict[str, Any]:
    size = {k: v[1] if quick else v[0] for k, v in SIZES.items()}
    results: dict[str, Any] = {"quick": quick, "sizes": size}
    if "engine" not in skip:
        from vs_distilabel import measure as vs_distilabel

        results["engine"] = vs_distilabel(size["records"], size["rounds"])
    if "embedded" not in skip:
        from run import bench_llama

        with tempfile.TemporaryDirectory() as tmp:
            results["embedded"] = bench_llama(Path(tmp), size["prompts"], size["max_tokens"], parallel=8)
    if "dedup" not in skip:
        from qc_dedup import measure as dedup

        results["dedup"] = dedup(size["dedup_n"], size["dedup_dups"])[1]
    if "ray" not in skip:
        from ray_scaling import measure as ray_scaling

        results["ray"] = ray_scaling(size["ray_records"])
    return results


def table_of(results: dict[str, Any]) -> Table:
    table = Table(title="factory benchmark suite" + (" (--quick)" if results["quick"] else ""))
    for col in ("figure", "ratio", "side by side", "target", "met"):
        table.add_column(col, justify="right" if col in ("ratio", "met") else "left")

    def row(figure: str, ratio: float, detail: str, target: str, met: bool) -> None:
        table.add_row(figure, f"{ratio:.3f}", detail, target, "yes" if met else "NO")

    if e := results.get("engine"):
        f, d, r = e["factory"], e["distilabel"], e["ratio"]
        row(f"engine: factory ÷ distilabel records/s ({e['records']:,} records, concurrency = batch = "
            f"{e['batch']}, median of {e['rounds']} rounds)", r["median"],
            f"{f['median']:,.0f}/s vs {d['median']:,.0f}/s; ratio {r['min']:.2f}-{r['max']:.2f}",
            "same work both sides", e["same_work"])
    if m := results.get("embedded"):
        row("embedded: build ÷ raw llama.cpp tokens/s (batch-invariant default)", m["ratio"],
            f"{m['build_tokens_per_s']:.1f} vs {m['raw_tokens_per_s']:.1f} tok/s", ">= 0.9",
            m["ratio"] >= 0.9)
        row("embedded: same, build with flash_attn: true (raw's attention)", m["flash_ratio"],
            f"{m['flash_tokens_per_s']:.1f} vs {m['raw_tokens_per_s']:.1f} tok/s", ">= 0.9",
            m["flash_ratio"] >= 0.9)
        row("rebuild: second ÷ first build time", m["rebuild_ratio"],
            f"{m['rebuild_seconds']:.2f}s vs {m['build_seconds']:.1f}s, {m['rebuild_calls']} calls",
            "<= 0.02, 0 calls", m["rebuild_ratio"] <= 0.02 and m["rebuild_calls"] == 0)
    if q := results.get("dedup"):
        auto = q["paths"]["default (auto)"]
        exact = q["paths"]["exact (IndexFlatIP range search)"]
        row(f"dedup: total ÷ embedding time ({q['n']:,} texts, {auto['method']})", auto["ratio"],
            f"search {auto['search_s']:.1f}s vs embed {q['embed_s']:.1f}s", "<= 1.1", auto["ratio"] <= 1.1)
        row("dedup: recall vs brute force (exact path / default path)", exact["recall"],
            f"default path recall {auto['recall']:.4f}", "1.0 exact", exact["recall"] >= 0.9999)
    if r := results.get("ray"):
        row(f"ray: scaling efficiency, {r['workers']} workers ({r['calls']} calls of {r['latency_s']}s)",
            r["efficiency"], f"local {r['local_s']:.1f}s vs ray {r['ray_s']:.1f}s; identical output: "
            f"{r['identical']}", ">= 0.7", r["efficiency"] >= 0.7 and r["identical"])
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (minutes, not tens of minutes)")
    ap.add_argument("--skip", action="append", default=[], choices=["engine", "embedded", "dedup", "ray"],
                    help="leave a figure out (repeatable)")
    args = ap.parse_args()
    os.environ.setdefault("COLUMNS", "150")  # rich: a readable table when piped to a file
    results = run_all(args.quick, set(args.skip))
    path = report(table_of(results), results, "suite-")
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
