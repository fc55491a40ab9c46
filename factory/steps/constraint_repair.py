"""Repair for best-of-N on the ``constraints`` verifier (``rejection_sampling`` with ``repair: true``).

When none of a prompt's N samples meets all of its constraints, the samples are repaired in order
of their score (complete answers before cut-off ones at equal score): ``finish`` then each
constraint type's repair (``factory.core.constraints.repair``). The first repaired answer that the
step's own verifier accepts becomes ``chosen``; the sample it came from, unedited, is ``rejected``
(a minimal-edit DPO pair). The record's lineage names what was applied. A prompt whose samples
all fail the repair or its re-check is rejected as ``unrepairable``.
"""

from __future__ import annotations

from typing import Any

from factory.core.constraints import CATALOG, ConstraintError, parse_constraints
from factory.core.constraints.repair import repair_answer
from factory.core.record import Rejected
from factory.steps.base import StepContext


async def repair_best(scoring: Any, prompt: str, fields: dict[str, Any], column: str,
                      texts: list[str], truncated: list[bool], scores: list[float | None],
                      ctx: StepContext) -> tuple[str, int, list[str]] | Rejected:
    """(repaired text, index of the sample it came from, lineage), or an ``unrepairable`` /
    ``bad_reference`` reject."""
    try:
        constraints = parse_constraints(fields[column], CATALOG)
    except ConstraintError as exc:
        return Rejected("bad_reference", str(exc), {"samples": texts})
    order = sorted((i for i, t in enumerate(texts) if t),
                   key=lambda i: (-(scores[i] if scores[i] is not None else -1.0), truncated[i], i))
    reasons: list[str] = []
    for i in order:
        fixed = repair_answer(texts[i], constraints, prompt, truncated[i])
        if not fixed.ok:
            reasons.append(fixed.reason)
            continue
        # The step's verifier has the last word, whatever the repair believes of itself.
        scored = await scoring.score(prompt, [fixed.text], fields, ctx)
        if scored.scores[0] is None or not scoring.passes(scored.scores[0]):
            ctx.count("repair_rejected_by_verifier")
            reasons.append("verifier rejected the repair")
            continue
        ctx.count("repaired")
        for step in fixed.applied:
            ctx.count(f"repaired_by:{step}")
        return fixed.text, i, list(fixed.applied)
    ctx.count("unrepairable")
    why = "; ".join(sorted(set(reasons))) or "no non-empty sample"
    return Rejected("unrepairable", f"0 of {len(texts)} passed and no repair passed the re-check "
                    f"({why})", {"samples": texts, "scores": scores})
