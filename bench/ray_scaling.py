"""Local executor vs `--executor ray` with 2 workers, on a latency-bound fake backend.

Each backend instance serves at most `concurrency` calls at once, each taking `latency` seconds
(a server with a fixed number of slots), so a second worker with its own instance doubles capacity.
Scaling efficiency = (t_local / t_ray) / workers; the Ray time includes connecting and starting
the workers (a whole `factory build`). Ray runs as a local cluster started in-process.

    python bench/ray_scaling.py [--records 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
RECIPE = """name: bench_ray
seeds: {{path: {seeds}}}
backend:
  name: fake
  concurrency: {concurrency}
  options: {{latency: {latency}}}
steps:
  - {{name: answer, kind: generate, reads: [prompt], writes: answer, prompt: "{{prompt}}"}}
  - {{name: critique, kind: generate, reads: [answer], writes: critique, prompt: "Critique: {{answer}}"}}
outputs:
  splits:
    sft: {{format: sft, completion: answer}}
"""


def measure(records: int, workers: int = 2, latency: float = 0.05, concurrency: int = 4) -> dict[str, Any]:
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = [json.loads(line)["prompt"] for line in SEEDS.read_text().splitlines()]
        seeds = work / "seeds.jsonl"
        seeds.write_text("".join(json.dumps({"prompt": f"{rows[i % len(rows)]} ({i})"}) + "\n"
                                 for i in range(records)))
        recipe = work / "recipe.yaml"
        recipe.write_text(RECIPE.format(seeds=seeds, concurrency=concurrency, latency=latency))
        # A throwaway in-process cluster: without this Ray 2.60 writes ~/.ray/auth_token, which
        # turns token auth on for every later `ray start` on the machine.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        try:
            times, outputs = {}, {}
            for name, extra in (("local", {}), ("ray", {"executor": "ray", "workers": workers})):
                options = BuildOptions(output=work / name, use_cache=False, **extra)
                started = time.perf_counter()
                asyncio.run(run_build(plan_build(recipe, options), options))
                times[name] = time.perf_counter() - started
                outputs[name] = {p.name: p.read_bytes() for p in (work / name).iterdir()
                                 if p.name != "run.json"}
        finally:
            ray.shutdown()
    speedup = times["local"] / times["ray"]
    return {"records": records, "calls": 2 * records, "workers": workers, "latency_s": latency,
            "concurrency_per_worker": concurrency, "local_s": times["local"], "ray_s": times["ray"],
            "speedup": speedup, "efficiency": speedup / workers,
            "identical": outputs["local"] == outputs["ray"],
            "ideal_local_s": 2 * records * latency / concurrency}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=400)
    print(json.dumps(measure(ap.parse_args().records), indent=2))


if __name__ == "__main__":
    main()
