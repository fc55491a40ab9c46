"""Drift check on real text: self_instruct seeds vs a held-back half of them, and vs GSM8K questions.

    python bench/qc_drift.py
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

from rich.table import Table  # noqa: E402

from bench.qc_perplexity import real_texts  # noqa: E402
from bench.report import report  # noqa: E402
from factory.core.record import Record  # noqa: E402
from filters.base import QCContext  # noqa: E402
from filters.config import DriftBlock  # noqa: E402
from filters.drift import DriftFilter  # noqa: E402


def main() -> None:
    rng = random.Random(0)
    texts = real_texts()
    rng.shuffle(texts)
    seeds, held = texts[: len(texts) // 2], texts[len(texts) // 2:]
    gsm = [json.loads(line)["question"] for line in (SHARED / "gsm8k" / "test.jsonl").open()]
    off_topic = rng.sample(gsm, len(held))
    table = Table(title="drift gate (default thresholds: warn AUC >= 0.7 or MMD p < 0.01, fail AUC >= 0.85); "
                        f"{len(seeds)} self_instruct seeds vs {len(held)} texts")
    for col in ("synthetic set", "classifier AUC", "MMD²", "MMD p", "gate", "expected"):
        table.add_column(col)
    results = {}
    for name, synth, expected in (("held-back half of the seeds", held, "ok"),
                                  ("GSM8K questions (off-topic)", off_topic, "fail")):
        f = DriftFilter(DriftBlock(filter="drift", column="prompt"))
        started = time.perf_counter()
        f.filter_batch([Record(str(i), {"prompt": t}, "bench") for i, t in enumerate(synth)],
                       QCContext(seeds=[{"prompt": t} for t in seeds]))
        i = f.info
        table.add_row(name, f"{i['auc']:.3f}", f"{i['mmd2']:.4f}", f"{i['mmd_p']:.3f}", i["gate"], expected)
        results[name] = {k: i[k] for k in ("auc", "mmd2", "mmd_p", "gate")} | {
            "seconds": time.perf_counter() - started}
    report(table, results, "qc_drift-")


if __name__ == "__main__":
    main()
