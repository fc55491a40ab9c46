"""Streaming at scale: the same generate -> judge build at 10,000 and 1,000,000 records, side by side.

Each size is one `factory build` in a fresh subprocess on the `fake` backend (zero latency: what is
measured is the engine, the request cache and the writer), with a cold request cache. Per size:
peak RSS of that process (its own ru_maxrss, from os.wait4) and records/s over the whole command
(seed scan, every call, cache writes, splits written). A third subprocess only imports the CLI:
its peak RSS is the floor every build starts from. The seed files are written by this script into
a temporary folder. Sizes up to 100,000 run ``--repeat`` times (the median run is shown, with the
min-max records/s: on a shared machine one short run is noise); larger ones once. Target: peak RSS
<= 1.5 GB at 1,000,000 records.

    python bench/scale.py [--sizes 10000 1000000] [--concurrency 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from rich.table import Table  # noqa: E402

from report import report  # noqa: E402
from vs_distilabel import factory_recipe, write_seeds  # noqa: E402

TARGET_MIB = 1536


def child(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run ``cmd``; its wall seconds and its own peak RSS in MiB (os.wait4: this child's rusage,
    not the largest of every child so far)."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd[:5])} failed: {err.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss // 1024


def build_once(work: Path, records: int, concurrency: int) -> dict[str, Any]:
    seeds = work / f"seeds_{records}.jsonl"
    write_seeds(seeds, records)
    recipe = work / f"scale_{records}.yaml"
    recipe.write_text(factory_recipe(seeds, concurrency))
    out = work / f"out_{records}"
    env = {**os.environ, "FACTORY_CACHE_DIR": str(work / f"cache_{records}")}
    load_before = os.getloadavg()[0]
    seconds, rss = child([sys.executable, "-m", "factory.cli", "build", str(recipe), "--output",
                             str(out)], env)
    stats = json.loads((out / "stats.json").read_text())
    run = json.loads((out / "run.json").read_text())
    totals = stats["totals"]
    if totals["input"] != records or totals["kept"] != records:
        raise RuntimeError(f"{records} seeds: {totals}")
    result = {"records": records, "seconds": seconds, "records_per_s": records / seconds,
              "peak_rss_mib": rss, "calls_made": run["calls"]["default"]["made"],
              "kept": totals["kept"], "sft_rows": stats["splits"]["sft"]["rows"],
              "sft_jsonl_mib": (out / "sft.jsonl").stat().st_size / 2**20,
              "cache_mib": sum(f.stat().st_size for f in (work / f"cache_{records}").iterdir()) / 2**20,
              "load_avg_before": load_before, "load_avg_after": os.getloadavg()[0]}
    for path in [seeds, *(work / f"cache_{records}").iterdir()]:  # keep the disk use to one size
        path.unlink()
    return result


def median_run(work: Path, records: int, concurrency: int, repeat: int) -> dict[str, Any]:
    runs = [build_once(work, records, concurrency) for _ in range(repeat if records <= 100_000 else 1)]
    rates = sorted(r["records_per_s"] for r in runs)
    middle = next(r for r in runs if r["records_per_s"] == rates[len(rates) // 2])
    return {**middle, "repeats": len(runs), "records_per_s_min": rates[0], "records_per_s_max": rates[-1],
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in runs)}


def measure(sizes: list[int], concurrency: int = 64, repeat: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        imports = "import factory.cli.main, factory.build, factory.output.writer, factory.steps"
        _, floor = child([sys.executable, "-c", imports], dict(os.environ))
        runs = [median_run(work, n, concurrency, repeat) for n in sizes]
    small, large = runs[0], runs[-1]
    return {"concurrency": concurrency, "import_floor_rss_mib": floor, "runs": runs,
            "rate_ratio": large["records_per_s"] / small["records_per_s"],
            "rss_ratio": large["peak_rss_mib"] / small["peak_rss_mib"],
            "target_mib": TARGET_MIB, "met": large["peak_rss_mib"] <= TARGET_MIB, "cpus": os.cpu_count()}


def table_of(results: dict[str, Any]) -> Table:
    table = Table(title=f"factory build, generate -> judge, fake backend, concurrency "
                        f"{results['concurrency']} ({results['cpus']} CPUs; imports alone: "
                        f"{results['import_floor_rss_mib']} MiB)")
    for col in ("records", "seconds", "records/s", "peak RSS MiB", "calls made", "load avg before/after"):
        table.add_column(col, justify="right")
    for r in results["runs"]:
        rate = f"{r['records_per_s']:,.0f}"
        if r["repeats"] > 1:
            rate += f" ({r['records_per_s_min']:,.0f}-{r['records_per_s_max']:,.0f}, {r['repeats']} runs)"
        table.add_row(f"{r['records']:,}", f"{r['seconds']:.1f}", rate,
                      f"{r['peak_rss_mib']:,}", f"{r['calls_made']:,}",
                      f"{r['load_avg_before']:.1f} / {r['load_avg_after']:.1f}")
    table.add_row("ratio", "", f"{results['rate_ratio']:.2f}", f"{results['rss_ratio']:.2f}", "", "",
                  style="bold")
    table.caption = (f"target: peak RSS <= {TARGET_MIB} MiB at the largest size: "
                     f"{'met' if results['met'] else 'NOT met'}")
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each size up to 100,000 (median shown)")
    args = ap.parse_args()
    os.environ.setdefault("COLUMNS", "150")  # rich: a readable table when piped to a file
    results = measure(args.sizes, args.concurrency, args.repeat)
    print(f"figures: {report(table_of(results), results, 'scale-')}")


if __name__ == "__main__":
    main()
