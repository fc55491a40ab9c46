"""Step kinds by name: each module holds a step's recipe spec (pydantic) and its runner.

Adding a kind = one module + one line here; the recipe's ``kind`` field picks the pair.
"""

from __future__ import annotations

from factory.steps.base import SetRunner, StepContext, StepRunner
from factory.steps.constitutional import Constitutional, ConstitutionalStep
from factory.steps.constitutional_preference import ConstitutionalPreference, ConstitutionalPreferenceStep
from factory.steps.constrain import Constrain, ConstrainStep
from factory.steps.distilabel_task import DistilabelTask, DistilabelTaskStep
from factory.steps.evol_instruct import EvolInstruct, EvolInstructStep
from factory.steps.generate import Generate, GenerateStep
from factory.steps.judge import JudgePairwiseStep, PairwiseJudge
from factory.steps.judge_score import JudgeScore, JudgeScoreStep
from factory.steps.rejection_sampling import RejectionSampling, RejectionSamplingStep
from factory.steps.self_instruct import SelfInstruct, SelfInstructStep

KINDS: list[tuple[type, type[StepRunner]]] = [
    (GenerateStep, Generate),
    (JudgePairwiseStep, PairwiseJudge),
    (JudgeScoreStep, JudgeScore),
    (RejectionSamplingStep, RejectionSampling),
    (DistilabelTaskStep, DistilabelTask),
    (EvolInstructStep, EvolInstruct),
    (ConstitutionalStep, Constitutional),
    (ConstitutionalPreferenceStep, ConstitutionalPreference),
    (SelfInstructStep, SelfInstruct),
    (ConstrainStep, Constrain),
]

STEP_SPECS = tuple(spec for spec, _ in KINDS)
STEP_KINDS: dict[str, type[StepRunner]] = {
    spec.model_fields["kind"].annotation.__args__[0]: runner for spec, runner in KINDS}

__all__ = ["STEP_KINDS", "STEP_SPECS", "SetRunner", "StepContext", "StepRunner"]
