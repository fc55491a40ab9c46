"""Layer 4, ``factory.steps``: the generation methods. Imports ``factory.core`` and ``factory.llm``.

Contract (``base``): a step kind is one module holding its recipe spec (a ``StepBase`` subclass)
and its runner: ``requests(fields)`` + ``parse(fields, completions)``, or ``run(fields, ctx)`` for
multi-call methods, or ``run_set(records, ctx)`` for set-level steps. Model calls go only through
``ctx.ask`` (the dispatcher); bad model output is a ``Rejected(reason)``, never an exception.
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
from factory.steps.magpie import Magpie, MagpieStep
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
    (MagpieStep, Magpie),
    (ConstrainStep, Constrain),
]

STEP_SPECS = tuple(spec for spec, _ in KINDS)
STEP_KINDS: dict[str, type[StepRunner]] = {
    spec.model_fields["kind"].annotation.__args__[0]: runner for spec, runner in KINDS}

__all__ = ["STEP_KINDS", "STEP_SPECS", "SetRunner", "StepContext", "StepRunner"]
