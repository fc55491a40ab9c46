"""Measuring a pairwise judge against labelled pairs: what ``factory judge-eval`` reports and what a
recipe's ``judge_gate`` checks, computed the same way.

A judge runner (``judge_pairwise``) turns each pair into a ``PairDecision`` through its own
requests, dispatcher and cache; ``summarize`` turns decisions and labels into figures: agreement
with the label over all pairs (a tie is a miss) and over decided pairs, coverage, position
consistency, ties by cause, Cohen's kappa, 95% intervals, and for probability modes a calibration
curve and its expected calibration error (ECE).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from factory.llm.request import Completion, Request
from factory.steps.base import BackendFailure, StepContext
from filters.agreement import cohen_kappa

Z95 = 1.959963984540054
CAUSES = ("tie_verdict", "position", "balanced", "unparseable", "low_margin", "low_confidence",
          "identical")
# The reject reason a build writes for each way a pair is not made.
REASONS = {"identical": "identical_answers", "unparseable": "judge_unparseable",
           "tie_verdict": "judge_tie", "position": "judge_tie", "balanced": "judge_tie",
           "low_margin": "judge_low_margin", "low_confidence": "judge_low_confidence"}


@dataclass
class PairDecision:
    """What a pairwise judge made of one pair, asked in both orders.

    ``winner``: 1 (the first answer), 2 (the second) or None (no pair). ``cause``: ``decided``, or
    why not: ``tie_verdict`` (it said TIE), ``position`` (the orders disagree: the verdict followed
    the position), ``balanced`` (probabilities that cancel exactly), ``unparseable``,
    ``low_margin`` / ``low_confidence`` (under the step's bar), ``identical`` (no call made), or
    ``failed`` (a backend error; measured pairs only)."""

    winner: int | None
    cause: str
    consistency: str | None = None  # consistent / inconsistent / unparseable (both orders read)
    detail: str = ""
    margin: float | None = None  # text mode: rubric-score lead of the winner
    preference: float | None = None  # probability modes: P(the first answer is better)
    orders: list[Any] = field(default_factory=list)  # per order: what was read (shares, votes)
    raw: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str | None:
        return REASONS.get(self.cause)


@dataclass(frozen=True)
class LabelledPair:
    """Two answers to one question; ``label`` says which is better (1: first, 2: second)."""

    question: str
    first: str
    second: str
    label: int
    kind: str = "pairs"


def labelled(question: str, chosen: str, rejected: str, kind: str, rng: random.Random) -> LabelledPair:
    """The chosen answer first or second at random, so labels are balanced (kappa needs both)."""
    if rng.random() < 0.5:
        return LabelledPair(question, chosen, rejected, 1, kind)
    return LabelledPair(question, rejected, chosen, 2, kind)


AskFn = Callable[[list[Request], str | None], Awaitable[list[Completion]]]


async def judge_pairs(runner: Any, pairs: Sequence[LabelledPair], ask: AskFn, seed: int = 0,
                      window: int = 64) -> list[PairDecision]:
    """Each pair through the runner's own requests and decision, via ``ask`` (a dispatcher);
    a backend error is a ``failed`` decision, not a verdict."""
    gate = asyncio.Semaphore(window)
    question_col, first_col, second_col = runner.spec.reads

    async def one(i: int, pair: LabelledPair) -> PairDecision:
        fields = {question_col: pair.question, first_col: pair.first, second_col: pair.second}
        ctx = StepContext(f"pair{i}", runner.name, seed, ask)
        async with gate:
            requests = runner.requests(fields)
            if not isinstance(requests, list):
                return runner.decide(fields, None)
            try:
                completions = await ctx.ask(requests)
            except BackendFailure as exc:
                return PairDecision(None, "failed", detail=str(exc))
        return runner.decide(fields, completions)

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(pairs))))


# ------------------------------------------------------------------------------------ figures


def wilson(k: int, n: int, z: float = Z95) -> list[float] | None:
    """The Wilson score interval of k successes in n (95% by default); None when n is 0."""
    if n == 0:
        return None
    p = k / n
    scale = 1 + z * z / n
    center = (p + z * z / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [round(max(0.0, center - half), 4), round(min(1.0, center + half), 4)]


def rate(k: int, n: int) -> dict[str, Any]:
    return {"k": k, "n": n, "rate": round(k / n, 4) if n else None, "ci95": wilson(k, n)}


def kappa_interval(labels: list[str], picks: list[str], resamples: int = 1000,
                   seed: int = 0) -> list[float] | None:
    """Percentile bootstrap 95% interval of Cohen's kappa (seeded: the same figures every run)."""
    if len(labels) < 2:
        return None
    rng = random.Random(seed)
    n = len(labels)
    values = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        k = cohen_kappa([labels[i] for i in idx], [picks[i] for i in idx])
        if k is not None:
            values.append(k)
    if len(values) < resamples // 2:
        return None
    values.sort()
    return [round(values[int(0.025 * len(values))], 4), round(values[int(0.975 * len(values)) - 1], 4)]


def calibration(points: list[tuple[float, float]], bins: int = 5) -> dict[str, Any]:
    """Reliability of (confidence in the picked answer, 1 correct / 0 wrong / 0.5 no pick) points:
    equal-width bins over [0.5, 1], each bin's mean confidence and accuracy, and the expected
    calibration error ECE = sum over bins of n_b / N * |accuracy_b - confidence_b|."""
    table = [[0, 0.0, 0.0] for _ in range(bins)]
    for confidence, correct in points:
        b = min(bins - 1, int((confidence - 0.5) / 0.5 * bins))
        table[b][0] += 1
        table[b][1] += confidence
        table[b][2] += correct
    curve, ece = [], 0.0
    for b, (n, conf, acc) in enumerate(table):
        low = 0.5 + 0.5 * b / bins
        curve.append({"bin": [round(low, 3), round(low + 0.5 / bins, 3)], "n": n,
                      "confidence": round(conf / n, 4) if n else None,
                      "accuracy": round(acc / n, 4) if n else None})
        if n:
            ece += n / len(points) * abs(acc / n - conf / n)
    return {"bins": curve, "ece": round(ece, 4) if points else None, "points": len(points),
            "mean_confidence": round(sum(c for c, _ in points) / len(points), 4) if points else None}


def summarize(pairs: Sequence[LabelledPair], decisions: Sequence[PairDecision],
              seed: int = 0) -> dict[str, Any]:
    """Every figure for a set of pairs, then the same per kind (``by_kind``)."""
    out = _figures(pairs, decisions, seed)
    kinds = list(dict.fromkeys(p.kind for p in pairs))
    if len(kinds) > 1:
        out["by_kind"] = {kind: _figures(*zip(*[(p, d) for p, d in zip(pairs, decisions)
                                                 if p.kind == kind]), seed, brief=True)
                          for kind in kinds}
    return out


def _figures(pairs: Sequence[LabelledPair], decisions: Sequence[PairDecision], seed: int,
             brief: bool = False) -> dict[str, Any]:
    judged = [(p, d) for p, d in zip(pairs, decisions) if d.cause != "failed"]
    n = len(judged)
    correct = sum(d.winner == p.label for p, d in judged)
    decided = sum(d.winner is not None for _, d in judged)
    consistency = Counter(d.consistency for _, d in judged if d.consistency)
    both = consistency["consistent"] + consistency["inconsistent"]
    out: dict[str, Any] = {
        "pairs": len(pairs), "failed": len(pairs) - n,
        "agreement": rate(correct, n), "decided_agreement": rate(correct, decided),
        "coverage": rate(decided, n), "position_consistency": rate(consistency["consistent"], both),
        "ties": dict(sorted(Counter(d.cause for _, d in judged if d.winner is None).items()))}
    labels = [str(p.label) for p, _ in judged]
    picks = [str(d.winner or "tie") for _, d in judged]
    kappa = cohen_kappa(labels, picks) if judged else None
    out["kappa"] = {"value": None if kappa is None else round(kappa, 4),
                    "ci95": None if brief or kappa is None else kappa_interval(labels, picks, seed=seed)}
    points = [_point(p, d) for p, d in judged if d.preference is not None]
    if points and not brief:
        out["calibration"] = calibration(points)
    elif points:
        out["ece"] = calibration(points)["ece"]
    return out


def _point(pair: LabelledPair, decision: PairDecision) -> tuple[float, float]:
    p = float(decision.preference or 0.5)
    if p == 0.5:
        return 0.5, 0.5
    picked = 1 if p > 0.5 else 2
    return max(p, 1 - p), 1.0 if picked == pair.label else 0.0


def headline(figures: dict[str, Any]) -> str:
    """``agreement 31/40 = 77.5% [62.5%, 87.7%], decided 31/33, coverage 82.5%, consistency 85%``"""
    a, d, c, pc = (figures[k] for k in ("agreement", "decided_agreement", "coverage",
                                        "position_consistency"))
    text = f"agreement {a['k']}/{a['n']} = {_pct(a['rate'])}"
    if a["ci95"]:
        text += f" [{_pct(a['ci95'][0])}, {_pct(a['ci95'][1])}]"
    text += f"; on decided pairs {d['k']}/{d['n']} = {_pct(d['rate'])}; coverage {_pct(c['rate'])}"
    text += f"; position consistency {_pct(pc['rate'])}"
    kappa = figures["kappa"]["value"]
    return text + f"; kappa {'n/a' if kappa is None else f'{kappa:.2f}'}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
