"""A judge measured before it decides: ``judge_gate`` on a ``judge_pairwise`` step (or the recipe).

Before the judge sees any real pair, it judges sanity pairs made from the build's own data: each
question's answer (the first usable of the two it is about to compare) against a copy degraded in
a way any competent judge catches (``factory.core.degrade``: a repetition loop, a cut mid-sentence,
another question's answer, shuffled words, an empty answer). Under ``min_agreement`` the build
stops with one line (``on_fail: stop``), or goes on and records the figure (``warn``). Either way
the figures go to ``stats.json`` (``judges``) and the dataset card.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import Field, field_validator

from factory.core.degrade import KINDS, SANITY_KINDS, sanity_pairs, usable
from factory.core.errors import FactoryError
from factory.core.record import Record
from factory.core.schema import Strict
from factory.steps.base import StepContext
from factory.steps.judge_measure import headline, judge_pairs, labelled, summarize

EXIT_JUDGE_GATE = 8


class JudgeGateFailed(FactoryError):
    """The judge agreed with too few sanity pairs: nothing it would decide can be trusted."""

    exit_code = EXIT_JUDGE_GATE
    label = "judge gate"


class JudgeGate(Strict):
    """``judge_gate: {pairs: 40, min_agreement: 0.8, on_fail: stop}``"""

    pairs: int = Field(40, ge=5, le=2000, description="sanity pairs, spread evenly over the kinds")
    min_agreement: float = Field(0.8, ge=0, le=1, description="share of all sanity pairs the judge "
                                 "must decide for the real answer (a tie counts as a miss)")
    on_fail: Literal["stop", "warn"] = Field("stop", description="stop the build, or warn and record")
    kinds: list[str] = Field(default_factory=lambda: list(SANITY_KINDS),
                             description="degradations (factory.core.degrade.KINDS)", min_length=1)

    @field_validator("kinds")
    @classmethod
    def known_kinds(cls, value: list[str]) -> list[str]:
        unknown = [k for k in value if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown degradation {unknown[0]!r}; known: {', '.join(KINDS)}")
        return value


def answer_rows(records: list[Record], reads: list[str]) -> list[tuple[str, str]]:
    """(question, answer) per distinct question: the first of its two answers that sanity pairs
    can use. One answer per question, so "another question's answer" is never the other answer
    to the same question."""
    rows: dict[str, str] = {}
    question_col, *answer_cols = reads
    for record in records:
        question = str(record.fields.get(question_col) or "")
        if question in rows:
            continue
        answers = [str(record.fields.get(c) or "") for c in answer_cols]
        good = next((a for a in answers if usable(a)), None)
        if good is not None:
            rows[question] = good
    return list(rows.items())


async def run_gate(runner: Any, gate: JudgeGate, records: list[Record], ctx: StepContext) -> dict[str, Any]:
    """Measure ``runner`` on sanity pairs from ``records``; raise ``JudgeGateFailed`` under the bar
    with ``on_fail: stop``; return the figures (with ``passed``)."""
    rows = answer_rows(records, runner.spec.reads)
    per_kind = max(1, gate.pairs // len(gate.kinds))
    made = sanity_pairs(rows, gate.kinds, per_kind, ctx.seed) if len(rows) >= 2 else []
    rng = random.Random(f"{ctx.seed}/judge_gate/{runner.name}")
    pairs = [labelled(p.prompt, p.chosen, p.rejected, p.kind, rng) for p in made]
    settings = {"pairs_asked": gate.pairs, "min_agreement": gate.min_agreement,
                "on_fail": gate.on_fail, "kinds": list(gate.kinds), "source": "build answers",
                "answers": len(rows)}
    if not pairs:
        why = (f"no sanity pairs could be made: {len(rows)} question(s) with an answer of 8+ words "
               "ending a sentence (2 needed)")
        report = {"measured": False, "passed": False, "why": why, **settings}
        _fail_or_warn(runner, gate, report, f"step {runner.name!r}: {why}")
        return report
    decisions = await judge_pairs(runner, pairs, ctx._ask, ctx.seed)
    figures = summarize(pairs, decisions, ctx.seed)
    for d in decisions:
        ctx.count(f"gate_{d.cause}")
    agreement = figures["agreement"]["rate"] or 0.0
    report = {"measured": True, "passed": agreement >= gate.min_agreement, **settings, **figures}
    if figures["failed"]:
        raise FactoryError(f"judge gate of step {runner.name!r}: {figures['failed']} of {len(pairs)} "
                           "sanity pairs failed (backend errors); finished calls are cached, rerun")
    if not report["passed"]:
        _fail_or_warn(runner, gate, report, f"step {runner.name!r} on {len(pairs)} sanity pairs: "
                      f"{headline(figures)}; below min_agreement {gate.min_agreement:.0%}")
    return report


def _fail_or_warn(runner: Any, gate: JudgeGate, report: dict[str, Any], message: str) -> None:
    if gate.on_fail == "stop":
        raise JudgeGateFailed(f"{message}; the build stopped before the judge decided any pair "
                              "(finished calls are cached)")
    report["warning"] = message
