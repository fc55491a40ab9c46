"""How far people agree with the machine verdicts and with each other: raw agreement and Cohen's kappa.

Labels are binary: a person's keep or edit is ``keep`` (the row stays), a drop is ``drop``; a
machine rater is the QC chain as a whole (``qc``), one filter (``qc.reward``) or a judge with a cut
(``judge.<step>``). Kappa is undefined (None) when both raters gave one same label to every row:
agreement by chance is then 1, and no figure can say more than "they agreed".
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Any

from filters.review_store import HumanVerdict


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen (1960): (p_o - p_e) / (1 - p_e) over paired labels; None when p_e == 1 or no pairs."""
    if len(a) != len(b):
        raise ValueError("paired labels differ in length")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca.keys() | cb.keys()) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def _pair(a: dict[str, str], b: dict[str, str]) -> dict[str, Any]:
    shared = sorted(a.keys() & b.keys())
    la, lb = [a[k] for k in shared], [b[k] for k in shared]
    kappa = cohen_kappa(la, lb)
    return {"rows": len(shared),
            "agreement": round(sum(x == y for x, y in zip(la, lb)) / len(shared), 4) if shared else None,
            "kappa": round(kappa, 4) if kappa is not None else None}


def agreement(machine: dict[str, dict[str, str]],
              people: dict[str, dict[str, HumanVerdict]]) -> dict[str, list[dict[str, Any]]]:
    """``machine``: row id -> rater -> keep|drop; ``people``: reviewer -> row id -> latest verdict.
    Returns rows for a table: each reviewer vs each machine rater, and each pair of reviewers."""
    raters = sorted({r for labels in machine.values() for r in labels}, key=lambda r: (r != "qc", r))
    by_rater = {r: {rid: labels[r] for rid, labels in machine.items() if r in labels} for r in raters}
    labels = {who: {rid: v.label for rid, v in rows.items()} for who, rows in sorted(people.items())}
    vs_machine = [{"reviewer": who, "rater": r, **_pair(mine, by_rater[r])}
                  for who, mine in labels.items() for r in raters]
    vs_people = [{"reviewer": a, "rater": b, **_pair(labels[a], labels[b])}
                 for a, b in combinations(labels, 2)]
    return {"machine": [row for row in vs_machine if row["rows"]],
            "reviewers": [row for row in vs_people if row["rows"]]}


def describe(row: dict[str, Any]) -> str:
    """``28 rows, 82% agree, kappa 0.41`` for a table cell or a console line."""
    kappa = "n/a" if row["kappa"] is None else f"{row['kappa']:.2f}"
    agree = "n/a" if row["agreement"] is None else f"{row['agreement']:.0%}"
    return f"{row['rows']} rows, {agree} agree, kappa {kappa}"
