"""Dedup at cosine 0.95 on 50,000 texts with injected near-duplicates (MiniLM + FAISS).

Texts: sentences of the GSM8K train set (../shared/data/gsm8k), deduplicated, plus near-duplicate
copies (case, punctuation, swapped neighbour words) of random ones. Prints the recall of the exact
path and of the approximate path against brute-force numpy cosine, and total time ÷ embedding time.

    python bench/qc_dedup.py [--n 50000] [--dups 5000]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "gsm8k"

import numpy as np  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.report import report  # noqa: E402
from filters.dedup import duplicate_pairs  # noqa: E402
from filters.embed import Embedder  # noqa: E402

THRESHOLD = 0.95


def base_texts(n: int) -> list[str]:
    seen: dict[str, None] = {}
    for name in ("train.jsonl", "test.jsonl"):
        for line in (DATA / name).open():
            row = json.loads(line)
            text = row["question"] + " " + re.sub(r"<<[^>]*>>|####.*", "", row["answer"])
            for s in re.split(r"(?<=[.?!])\s+|\n", text):
                if len(s.split()) >= 6:
                    seen.setdefault(s.strip(), None)
    texts = list(seen)
    random.Random(0).shuffle(texts)
    return texts[:n]


def near_copy(text: str, rng: random.Random) -> str:
    words = text.split()
    kind = rng.randrange(3)
    if kind == 0:
        return text.lower()
    if kind == 1:
        return text.rstrip(".?!") + rng.choice(["!", " .", "?", ""])
    i = rng.randrange(len(words) - 1)
    words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def brute_force(vecs: np.ndarray, threshold: float, block: int = 4096) -> set[tuple[int, int]]:
    out = set()
    for s in range(0, len(vecs), block):
        sims = vecs[s:s + block] @ vecs.T
        rows, cols = np.nonzero(sims >= threshold)
        out.update((s + r, c) for r, c in zip(rows.tolist(), cols.tolist()) if s + r < c)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dups", type=int, default=5_000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    table, results = measure(args.n, args.dups, args.threads)
    report(table, results, "qc_dedup-")


def measure(n: int, dups: int, threads: int = 2) -> tuple[Table, dict]:
    """Embed n texts (dups of them near-copies), search both paths, compare with brute force."""
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    rng = random.Random(1)
    texts = base_texts(n - dups)
    sources = [rng.randrange(len(texts)) for _ in range(dups)]
    texts += [near_copy(texts[i], rng) for i in sources]
    embedder = Embedder(cache_path=None)  # no cache: the embedding time is the real one
    embedder.cache.db = None
    vecs = embedder.encode(texts)
    embed_s = embedder.seconds
    rows = {}
    truth = brute_force(vecs, THRESHOLD + 1e-5)  # a hair above: float rounding at the boundary
    for name, limit in (("exact (IndexFlatIP range search)", 10**9), ("default (auto)", 20_000)):
        started = time.perf_counter()
        pairs, method = duplicate_pairs(vecs, THRESHOLD, limit)
        search_s = time.perf_counter() - started
        found = set(map(tuple, pairs.tolist()))
        recall = len(truth & found) / len(truth) if truth else 1.0
        injected = sum((min(i, len(texts) - dups + k), max(i, len(texts) - dups + k)) in found
                       for k, i in enumerate(sources)) / dups
        rows[name] = {"method": method, "search_s": search_s, "recall": recall, "injected_found": injected,
                      "ratio": (embed_s + search_s) / embed_s}
    table = Table(title=f"dedup at cosine {THRESHOLD}: {len(texts):,} texts, {dups:,} injected "
                        f"near-duplicates; embedding {embed_s:.1f} s ({len(texts) / embed_s:,.0f} texts/s)")
    for col in ("path", "search s", "recall vs numpy", "injected pairs found", "total ÷ embedding"):
        table.add_column(col)
    for name, r in rows.items():
        table.add_row(f"{name}: {r['method']}", f"{r['search_s']:.1f}", f"{r['recall']:.4f}",
                      f"{r['injected_found']:.1%}", f"{r['ratio']:.3f}")
    table.caption = (f"{len(truth):,} pairs at cosine >= {THRESHOLD} by brute force; targets: exact "
                     "recall 1.0, total ÷ embedding <= 1.1")
    results = {"n": len(texts), "dups": dups, "embed_s": embed_s, "pairs": len(truth), "paths": rows}
    return table, results


if __name__ == "__main__":
    main()
