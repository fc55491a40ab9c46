"""Verifiable instruction-following constraints (IFEval's families, Zhou et al. 2023).

- ``catalog.CATALOG``: every type: parameters, prompt phrasings, sampler, checker.
- ``sampling.sample_constraints``: 1-3 compatible constraints per prompt from a seeded RNG.
- ``check_constraints``: per-constraint verdicts for a response (lm-eval's IFEval checker classes,
  run offline by ``lm_eval_bridge``, or the hand-written ones in ``checks``).

The ``constraints`` verifier (``factory.core.verifiers``) scores a response by the share of its
record's constraints met; rejection sampling and GRPO use it like any verifier.
"""

from __future__ import annotations

from typing import Any

from factory.core.constraints.catalog import CATALOG
from factory.core.constraints.lm_eval_bridge import lm_eval_check
from factory.core.constraints.spec import Constraint, ConstraintError, parse_constraints


def check_one(constraint: Constraint, response: str) -> bool:
    """Does ``response`` follow ``constraint``? An empty response follows nothing."""
    if not response.strip():
        return False
    ctype = CATALOG[constraint.id]
    if ctype.check is not None:
        return bool(ctype.check(response, constraint.kwargs))
    return lm_eval_check(constraint.id, constraint.kwargs, response)


def check_constraints(response: str, constraints: Any) -> list[dict[str, Any]]:
    """``[{"id": ..., "ok": bool}]`` in the order given; ``constraints`` is a record's column value
    (a list of {id, kwargs} or its JSON). Raises ConstraintError on an unknown id or bad kwargs."""
    parsed = constraints if _parsed(constraints) else parse_constraints(constraints, CATALOG)
    return [{"id": c.id, "ok": check_one(c, response)} for c in parsed]


def _parsed(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(c, Constraint) for c in value)


__all__ = ["CATALOG", "Constraint", "ConstraintError", "check_constraints", "check_one",
           "parse_constraints"]
