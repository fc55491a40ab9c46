"""Step kinds by name: the recipe's ``kind`` field picks the runner."""

from __future__ import annotations

from factory.steps.base import StepRunner
from factory.steps.generate import Generate
from factory.steps.judge import PairwiseJudge

STEP_KINDS: dict[str, type[StepRunner]] = {
    "generate": Generate,
    "judge_pairwise": PairwiseJudge,
}

__all__ = ["STEP_KINDS", "StepRunner"]
