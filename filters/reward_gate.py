"""The reward filter's gate: does its scorer tell a real answer from a degraded copy of it?

Before a reward cut deletes anything, its scorer scores sanity pairs made from the data being
filtered (``factory.core.degrade.sanity_pairs``: each answer against a copy of it degraded the
ways small models fail: a repetition loop, a truncation, another prompt's answer, shuffled words,
an empty reply). A scorer that ranks the original above its copy in fewer than ``min_agreement``
of the pairs deletes nothing: the filter reports its scores only and says why. The embedded
SmolLM2 judge lands near 50% here, so its "bottom 10%" would delete a random 10% of the data.

``pair_agreement`` takes any ``score(prompts, answers) -> scores`` function, so a judge
evaluation can measure a judge the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from factory.core.degrade import SanityPair, sanity_pairs

ScoreFn = Callable[[list[str], list[str]], list[float | None]]


@dataclass(frozen=True)
class PairAgreement:
    """How often a scorer put the original above its degraded copy. A tie counts half (a scorer
    that cannot tell them apart sits at 0.5); a pair with either side unscored is left out."""

    pairs: int  # pairs asked
    wins: int  # original scored strictly higher
    ties: int
    unscored: int
    per_kind: dict[str, float] = field(default_factory=dict)  # agreement per degradation kind

    @property
    def scored(self) -> int:
        return self.pairs - self.unscored

    @property
    def agreement(self) -> float | None:
        return (self.wins + 0.5 * self.ties) / self.scored if self.scored else None

    def as_dict(self) -> dict[str, object]:
        value = self.agreement
        return {"pairs": self.pairs, "scored": self.scored, "wins": self.wins, "ties": self.ties,
                "agreement": None if value is None else round(value, 4),
                "per_kind": {k: round(v, 4) for k, v in self.per_kind.items()}}


def pair_agreement(score: ScoreFn, pairs: Sequence[SanityPair]) -> PairAgreement:
    """Score both sides of every pair in one call and count how often the original wins."""
    prompts = [p.prompt for p in pairs] * 2
    answers = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    values = score(prompts, answers)
    good, bad = values[: len(pairs)], values[len(pairs):]
    wins = ties = unscored = 0
    kinds: dict[str, list[float]] = {}
    for pair, g, b in zip(pairs, good, bad):
        if g is None or b is None:
            unscored += 1
            continue
        point = 1.0 if g > b else 0.5 if g == b else 0.0
        wins += point == 1.0
        ties += point == 0.5
        kinds.setdefault(pair.kind, []).append(point)
    return PairAgreement(len(pairs), wins, ties, unscored,
                         {k: sum(v) / len(v) for k, v in sorted(kinds.items())})


def gate_pairs(rows: Sequence[tuple[str, str]], count: int, seed: int = 0) -> list[SanityPair]:
    """Up to ``count`` sanity pairs from the data's own (prompt, answer) rows, spread over the
    default kinds (``sanity_pairs`` uses answers of at least 8 words with a sentence end)."""
    from factory.core.degrade import SANITY_KINDS

    per_kind = -(-count // len(SANITY_KINDS))
    try:
        pairs = sanity_pairs(rows, SANITY_KINDS, per_kind=per_kind, seed=seed)
    except ValueError:  # one distinct usable answer: no other prompt's answer to swap in
        kinds = [k for k in SANITY_KINDS if k != "other_answer"]
        pairs = sanity_pairs(rows, kinds, per_kind=-(-count // len(kinds)), seed=seed)
    # Interleave the kinds before trimming, so a short list still has every kind in it.
    by_kind: dict[str, list[SanityPair]] = {}
    for p in pairs:
        by_kind.setdefault(p.kind, []).append(p)
    mixed = [p for group in zip(*by_kind.values()) for p in group] if by_kind else []
    rest = [p for p in pairs if p not in mixed]
    return (mixed + rest)[:count]
