"""Self-Instruct's novelty check: is a new instruction's ROUGE-L against every pooled one < threshold?

rouge-score's LCS is pure Python (~50 µs a pair), so scoring a candidate against a 10,000-instruction
pool one pair at a time costs about half a second. The LCS of two token lists is at most their
multiset overlap (sum over tokens of the smaller count), so ROUGE-L F1 = 2·LCS/(|a|+|b|) is at most
2·overlap/(|a|+|b|). An inverted index gives the overlap with every pooled instruction at once
(numpy), and only the few whose bound reaches the threshold are scored exactly with rouge-score.
Tokens come from rouge-score's own tokenizer, so the verdict and the score equal a brute-force
rouge-score loop exactly (tests/test_self_instruct_novelty.py checks it on random pools).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # rouge-score pulls in nltk (seconds of import): only recipes that use it pay
    from rouge_score import rouge_scorer

# The bound is exact arithmetic; rouge-score computes F1 as 2pr/(p+r) in floats, which can land an
# ulp above 2·lcs/(|a|+|b|). The slack keeps such a pair on the shortlist (it costs nothing else).
_SLACK = 1e-9


@dataclass(frozen=True)
class Match:
    """The most similar pooled instruction: its position in the pool, text and ROUGE-L F1."""

    index: int
    text: str
    score: float


def make_scorer() -> "rouge_scorer.RougeScorer":
    from rouge_score import rouge_scorer

    """The paper's scorer: ROUGE-L, no stemming."""
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def brute_force_match(text: str, pool: list[str], threshold: float,
                      scorer: "rouge_scorer.RougeScorer | None" = None) -> Match | None:
    """Reference check (the paper's loop): the best pooled match with score ≥ threshold, or None.

    Ties go to the earliest pooled instruction.
    """
    scorer = scorer or make_scorer()
    best: Match | None = None
    for i, other in enumerate(pool):
        score = scorer.score(text, other)["rougeL"].fmeasure
        if score >= threshold and (best is None or score > best.score):
            best = Match(i, other, score)
    return best


class NoveltyPool:
    """A growing pool of instructions with a fast exact "too similar to any of them?" query."""

    def __init__(self, threshold: float = 0.7) -> None:
        self.threshold = threshold
        self.scorer = make_scorer()
        self.texts: list[str] = []
        self._lengths: list[int] = []
        self._vocab: dict[str, int] = {}
        # token id -> (pool indices, counts); lists grow on add, arrays are rebuilt when stale
        self._postings: list[tuple[list[int], list[int]]] = []
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._length_array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def tokens(self, text: str) -> list[str]:
        return self.scorer._tokenizer.tokenize(text)

    def add(self, text: str) -> None:
        index = len(self.texts)
        counts = Counter(self.tokens(text))
        self.texts.append(text)
        self._lengths.append(sum(counts.values()))
        self._length_array = None
        for token, n in counts.items():
            tid = self._vocab.setdefault(token, len(self._vocab))
            if tid == len(self._postings):
                self._postings.append(([], []))
            ids, ns = self._postings[tid]
            ids.append(index)
            ns.append(n)
            self._arrays.pop(tid, None)

    def best_match(self, text: str) -> Match | None:
        """The pooled instruction most similar to ``text`` if its ROUGE-L F1 ≥ threshold, else None.

        Same answer as ``brute_force_match(text, self.texts, threshold)``, ties included.
        """
        counts = Counter(self.tokens(text))
        length = sum(counts.values())
        if not self.texts or length == 0:
            return None  # rouge-score scores an empty side 0
        overlap = np.zeros(len(self.texts), dtype=np.int64)
        for token, n in counts.items():
            tid = self._vocab.get(token)
            if tid is None:
                continue
            ids, ns = self._posting_arrays(tid)
            overlap[ids] += np.minimum(ns, n)  # a pool index appears once per token's posting
        if self._length_array is None:
            self._length_array = np.asarray(self._lengths, dtype=np.float64)
        bound = 2.0 * overlap / (length + self._length_array)
        shortlist = np.flatnonzero(bound >= self.threshold - _SLACK)
        best: Match | None = None
        for i in shortlist.tolist():  # ascending pool order: ties keep the earliest, as brute force
            score = self.scorer.score(text, self.texts[i])["rougeL"].fmeasure
            if score >= self.threshold and (best is None or score > best.score):
                best = Match(i, self.texts[i], score)
        return best

    def _posting_arrays(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        arrays = self._arrays.get(tid)
        if arrays is None:
            ids, ns = self._postings[tid]
            arrays = self._arrays[tid] = (np.asarray(ids, dtype=np.int64), np.asarray(ns, dtype=np.int64))
        return arrays
