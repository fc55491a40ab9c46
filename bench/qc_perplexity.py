"""Perplexity filter on real instructions with gibberish mixed in (self_instruct, 252 + 175 rows).

Every real text gets a word-shuffled copy and a random-character copy of the same length. Prints
how much gibberish the filter removes and how much real text it removes, for the rule given.

    python bench/qc_perplexity.py [--max 200] [--model smollm2]
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "self_instruct"

from rich.table import Table  # noqa: E402

from bench.report import report  # noqa: E402
from factory.record import Record  # noqa: E402
from filters.base import Chain  # noqa: E402
from filters.config import PerplexityBlock  # noqa: E402
from filters.perplexity import PerplexityFilter  # noqa: E402


def real_texts() -> list[str]:
    rows = []
    for name in ("user_oriented_instructions.jsonl", "seed_tasks.jsonl"):
        rows += [json.loads(line)["instruction"] for line in (DATA / name).open() if line.strip()]
    return rows


def gibberish(texts: list[str], rng: random.Random) -> tuple[list[str], list[str]]:
    shuffled, chars = [], []
    alphabet = string.ascii_letters + string.digits + string.punctuation + " " * 8
    for t in texts:
        words = t.split()
        rng.shuffle(words)
        shuffled.append(" ".join(words))
        chars.append("".join(rng.choice(alphabet) for _ in range(len(t))))
    return shuffled, chars


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--max", type=float, default=None, help="absolute cut (default: the filter's default)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rng = random.Random(0)
    real = real_texts()
    shuffled, chars = gibberish(real, rng)
    texts = [("real", t) for t in real] + [("shuffled", t) for t in shuffled] + [("chars", t) for t in chars]
    records = [Record(f"{kind}-{i}", {"response": t}, "bench") for i, (kind, t) in enumerate(texts)]
    block = PerplexityBlock(filter="perplexity", **({"max": args.max} if args.max else {}))
    started = time.perf_counter()
    result = Chain([PerplexityFilter(block)]).run(records)
    elapsed = time.perf_counter() - started
    dropped = {r.record.id for r in result.rejects}
    by_kind = {k: [r.id for r in records if r.id.startswith(k)] for k in ("real", "shuffled", "chars")}
    rate = {k: sum(i in dropped for i in ids) / len(ids) for k, ids in by_kind.items()}
    gib = by_kind["shuffled"] + by_kind["chars"]
    gib_rate = sum(i in dropped for i in gib) / len(gib)
    info = result.info["perplexity"]
    table = Table(title=f"perplexity filter ({args.model}, cut {info['cut']} by {info['rule']})")
    for col in ("figure", "measured", "target"):
        table.add_column(col)
    table.add_row("gibberish removed", f"{gib_rate:.1%} of {len(gib)}", ">= 95%")
    table.add_row("  word-shuffled removed", f"{rate['shuffled']:.1%}", "")
    table.add_row("  random-character removed", f"{rate['chars']:.1%}", "")
    table.add_row("real text removed", f"{rate['real']:.1%} of {len(by_kind['real'])}", "<= 5%")
    table.add_row("time (incl. model load)", f"{elapsed:.1f} s for {len(records)} texts", "")
    report(table, {"model": args.model, "cut": info["cut"], "rule": info["rule"],
                   "gibberish_removed": gib_rate,
                   "real_removed": rate["real"], "by_kind": rate, "seconds": elapsed}, "qc_perplexity-")


if __name__ == "__main__":
    main()
