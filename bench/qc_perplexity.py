"""Perplexity filter on real instructions with gibberish mixed in (self_instruct, 252 + 175 rows).

Half the real texts are the seeds the cut is learned from (a percentile of their perplexity); the
other half is scored together with a word-shuffled and a random-character copy of each of its texts.
Prints how much gibberish and how much real text each rule removes (per-char and per-token).

    python bench/qc_perplexity.py [--percentile 97.5] [--model smollm2] [--threads 2]
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
from factory.core.record import Record  # noqa: E402
from filters.base import Chain, QCContext  # noqa: E402
from filters.config import PerplexityBlock  # noqa: E402
from filters.perplexity import PerplexityFilter, PerplexityScorer  # noqa: E402


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
    ap.add_argument("--percentile", type=float, default=97.5, help="cut at this percentile of the seeds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context", default="<|im_start|>user", help="lead-in before each text, not scored "
                    "(default: SmolLM2's user-turn header; '' for none)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rng = random.Random(0)
    real = real_texts()
    rng.shuffle(real)
    # Half the real texts play the seeds (the cut is learned on them); the other half is evaluated,
    # mixed with a word-shuffled and a random-character copy of each of its texts.
    seeds, held = real[: len(real) // 2], real[len(real) // 2:]
    shuffled, chars = gibberish(held, rng)
    texts = [("real", t) for t in held] + [("shuffled", t) for t in shuffled] + [("chars", t) for t in chars]
    records = [Record(f"{kind}-{i}", {"response": t}, "bench") for i, (kind, t) in enumerate(texts)]
    scorer = PerplexityScorer(args.model)  # shared: the second rule reuses the first one's forward passes
    blocks = [PerplexityBlock(filter="perplexity", model=args.model, per=per, reference="seeds",
                              percentile=args.percentile, context=args.context or None)
              for per in ("char", "token")]
    filters = [PerplexityFilter(b, scorer=scorer) for b in blocks]
    started = time.perf_counter()
    result = Chain(filters).run(records, QCContext(seeds=[{"response": t} for t in seeds], report_only=True))
    elapsed = time.perf_counter() - started
    table = Table(title=f"perplexity filter on self_instruct ({len(held)} real + {2 * len(held)} gibberish; "
                        f"cut = p{args.percentile:g} of {len(seeds)} other real texts; {args.model}; "
                        f"context {args.context!r})")
    for col in ("rule", "cut", "gibberish removed (>= 95%)", "shuffled", "random chars",
                "real removed (<= 5%)"):
        table.add_column(col)
    figures = {}
    for f in filters:
        dropped = {r.record.id for r in result.rejects if r.step == f"qc.{f.label}"}
        rate = {k: sum(r.id in dropped for r in records if r.id.startswith(k)) / len(held)
                for k in ("real", "shuffled", "chars")}
        gib = (rate["shuffled"] + rate["chars"]) / 2
        info = result.info[f.label]
        table.add_row(info["rule"], f"{info['cut']:g}", f"{gib:.1%}", f"{rate['shuffled']:.1%}",
                      f"{rate['chars']:.1%}", f"{rate['real']:.1%}")
        figures[info["rule"]] = {"cut": info["cut"], "gibberish_removed": gib, **rate}
    table.caption = f"{elapsed:.0f} s including the model load ({len(records) + len(seeds)} texts scored)"
    report(table, {"model": args.model, "percentile": args.percentile, "rules": figures, "seconds": elapsed},
           "qc_perplexity-")


if __name__ == "__main__":
    main()
