"""Intervals and paired tests for eval results: Wilson intervals for a share of independent items,
a bootstrap over prompts for a share of items clustered in prompts (IFEval's instruction-level
accuracy: a prompt's 1-3 instructions are not independent), and McNemar's exact test with a paired
bootstrap interval for the difference between two models on the same prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BOOTSTRAP_SAMPLES = 10_000


def wilson(correct: int, total: int, level: float = 0.95) -> list[float]:
    """The Wilson score interval for a binomial proportion (scipy's implementation)."""
    if total == 0:
        return [0.0, 1.0]
    from scipy.stats import binomtest

    ci = binomtest(correct, total).proportion_ci(confidence_level=level, method="wilson")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def share(passes: Sequence[bool]) -> dict[str, Any]:
    """Correct of n, the accuracy and its 95% Wilson interval."""
    n, k = len(passes), sum(passes)
    return {"n": n, "correct": k, "accuracy": round(k / n, 4) if n else 0.0, "ci95": wilson(k, n)}


def clustered_share(groups: Sequence[Sequence[bool]], seed: int = 0) -> dict[str, Any]:
    """Share of all items that pass, with a 95% percentile bootstrap interval that resamples whole
    groups (prompts), so correlated items of one prompt are not counted as independent evidence."""
    import numpy as np

    flat = [x for g in groups for x in g]
    n, k = len(flat), sum(flat)
    out = {"n": n, "correct": k, "accuracy": round(k / n, 4) if n else 0.0, "ci95": [0.0, 1.0]}
    if not groups or n == 0:
        return out
    hits = np.array([sum(g) for g in groups], dtype=float)
    sizes = np.array([len(g) for g in groups], dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(groups), size=(BOOTSTRAP_SAMPLES, len(groups)))
    ratios = hits[picks].sum(1) / np.maximum(sizes[picks].sum(1), 1)
    out["ci95"] = [round(float(np.quantile(ratios, 0.025)), 4), round(float(np.quantile(ratios, 0.975)), 4)]
    return out


def paired(before: Sequence[bool], after: Sequence[bool], seed: int = 0) -> dict[str, Any]:
    """Two models scored on the same items: the difference in accuracy (after - before) with a 95%
    paired bootstrap interval, and McNemar's exact two-sided p-value on the discordant items (items
    only one model got right)."""
    import numpy as np
    from scipy.stats import binomtest

    if len(before) != len(after):
        raise ValueError(f"paired comparison needs the same items: {len(before)} vs {len(after)}")
    a, b = np.array(before, dtype=float), np.array(after, dtype=float)
    n = len(a)
    gained, lost = int(((b == 1) & (a == 0)).sum()), int(((b == 0) & (a == 1)).sum())
    p = float(binomtest(gained, gained + lost, 0.5).pvalue) if gained + lost else 1.0
    out = {"n": n, "before": round(float(a.mean()), 4) if n else 0.0,
           "after": round(float(b.mean()), 4) if n else 0.0,
           "difference": round(float((b - a).mean()), 4) if n else 0.0,
           "gained": gained, "lost": lost, "mcnemar_p": float(f"{p:.3g}"), "ci95": [0.0, 0.0]}
    if n:
        picks = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_SAMPLES, n))
        diffs = (b - a)[picks].mean(1)
        out["ci95"] = [round(float(np.quantile(diffs, 0.025)), 4), round(float(np.quantile(diffs, 0.975)), 4)]
    return out
