"""Scorers for best-of-N: a verifier, the rubric judge, or a reward model, picked by ``type``.

Each scorer turns N samples of one prompt into N scores (None: the scorer could not read that
sample) and says which scores pass. Scores are only ever compared within one prompt.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, field_validator

from factory.core.errors import FactoryError, did_you_mean
from factory.core.schema import Strict
from factory.core.templates import check_overrides
from factory.core.verifiers import VERIFIERS, get_verifier, is_user_verifier
from factory.llm.request import Request, SamplingParams
from factory.llm.reward_model import RewardModel
from factory.llm.rubric import (
    DEFAULT_CRITERIA,
    JUDGE_OPTIONAL_FIELDS,
    JUDGE_TEMPLATE_FIELDS,
    JUDGE_TEMPLATES,
    parse_rubric,
    rubric_request,
)
from factory.llm.spec import Params

if TYPE_CHECKING:  # factory.steps imports the step kinds, which import this module
    from factory.steps.base import StepContext



class VerifierScorer(Strict):
    """A verifier's 0-1 score on the sample against the row's reference column."""

    type: Literal["verifier"]
    verifier: str = Field(description=f"{', '.join(VERIFIERS)}, or module:function (--trust-code)")
    answer: str = Field(description="column with the reference: a number, text, regex, JSON schema, "
                                    "or (constraints) the record's constraint list")
    threshold: float = Field(1.0, description="a sample passes when its score is at least this")

    @field_validator("verifier")
    @classmethod
    def known(cls, value: str) -> str:
        if not is_user_verifier(value) and value not in VERIFIERS:
            raise ValueError(f"unknown verifier {value!r}{did_you_mean(value, VERIFIERS)}; one of "
                             f"{', '.join(VERIFIERS)}, or module:function")
        return value


class JudgeScorer(Strict):
    """The single-answer rubric judge (``factory/rubric.py``): mean 0-5 score over the criteria."""

    type: Literal["judge"]
    backend: str = Field("default", description="'default' or a key of the recipe's 'backends'")
    criteria: list[str] = Field(default_factory=lambda: list(DEFAULT_CRITERIA), min_length=1)
    threshold: float = Field(3.0, ge=0, le=5, description="a sample passes when its mean score is "
                                                          "at least this")
    params: Params = Field(Params(), description="the judge's sampling overrides")
    templates: dict[str, str] = Field(default_factory=dict, description="override 'system' and/or "
                                      "'prompt' (fields: {question} {answer} {criteria_list} {score_shape})")

    @field_validator("templates")
    @classmethod
    def known_templates(cls, value: dict[str, str]) -> dict[str, str]:
        return check_overrides(value, JUDGE_TEMPLATES, JUDGE_TEMPLATE_FIELDS, JUDGE_OPTIONAL_FIELDS)


class RewardModelScorer(Strict):
    """A reward model (one logit) scores (prompt, sample): a Hugging Face sequence-classification
    folder or a ``factory train reward`` output, scored as the QC reward filter scores it."""

    type: Literal["reward_model"]
    path: str = Field(description="model folder (relative to the recipe) with a 1-label score head, "
                      "or a 'factory train reward' output")
    threshold: float | None = Field(None, description="a sample passes when its reward is at least "
                                    "this; none: every readable sample passes")
    batch_size: int = Field(8, ge=1, le=1024)
    max_length: int = Field(1024, ge=16, description="tokens; longer inputs lose the prompt's start "
                            "(the answer is kept)")


Scorer = Annotated[Union[VerifierScorer, JudgeScorer, RewardModelScorer], Field(discriminator="type")]


@dataclass
class Scored:
    scores: list[float | None]  # per sample; None: unreadable (no answer / judge unparseable)
    unparseable_judge: int = 0  # judge replies that could not be read (a figure)
    checks: list[Any] | None = None  # per sample: the verifier's per-check results (constraints)
    bad_reference: str | None = None  # the row's reference cannot be checked against (the reason)


class VerifierScoring:
    def __init__(self, spec: VerifierScorer, recipe_dir: Path | None) -> None:
        self.spec = spec
        # Built-ins resolve now; user code was allowed (or refused) when the recipe was planned.
        self.verify = get_verifier(spec.verifier, trust_code=True, search_dir=recipe_dir)

    def passes(self, score: float) -> bool:
        return score >= self.spec.threshold

    async def score(self, question: str, samples: list[str], fields: dict[str, Any],
                    ctx: StepContext) -> Scored:
        reference = fields[self.spec.answer]
        try:
            verdicts = [self.verify(text, reference) for text in samples]
        except FactoryError as exc:  # bad data in the row (a constraint list, a regex): a reject
            return Scored([None] * len(samples), bad_reference=str(exc))
        checks = [v.checks for v in verdicts]
        return Scored([v.score for v in verdicts], checks=checks if any(c is not None for c in checks)
                      else None)


class JudgeScoring:
    def __init__(self, spec: JudgeScorer, params: SamplingParams, step_backend: str) -> None:
        self.spec = spec
        self.params = spec.params.over(params)
        # ctx.ask takes None for the step's own backend, a key for another one.
        self.backend = None if spec.backend == step_backend else spec.backend
        self.templates = {**JUDGE_TEMPLATES, **spec.templates}

    def passes(self, score: float) -> bool:
        return score >= self.spec.threshold

    def requests(self, question: str, samples: list[str]) -> list[Request]:
        return [rubric_request(question, text, self.params, self.spec.criteria,
                               self.templates["prompt"], self.templates["system"]) for text in samples]

    async def score(self, question: str, samples: list[str], fields: dict[str, Any],
                    ctx: StepContext) -> Scored:
        completions = await ctx.ask(self.requests(question, samples), backend=self.backend)
        out: list[float | None] = []
        unparseable = 0
        for completion in completions:
            parsed = parse_rubric(completion, self.spec.criteria)
            if isinstance(parsed, dict):
                out.append(float(parsed["score"]))
            else:
                out.append(None)
                unparseable += 1
        return Scored(out, unparseable)


class RewardModelScoring:
    """The shared reward-model scorer (``factory.llm.reward_model``): the QC reward filter's ``hf``
    and ``trained`` scorers give the same (prompt, answer) the same score."""

    def __init__(self, spec: RewardModelScorer, recipe_dir: Path | None) -> None:
        self.spec = spec
        path = Path(spec.path).expanduser()
        self.path = path if path.is_absolute() or recipe_dir is None else recipe_dir / path
        self.model = RewardModel(self.path, spec.batch_size, spec.max_length)
        self._run_lock = asyncio.Lock()  # one forward pass at a time: torch uses every core already

    def passes(self, score: float) -> bool:
        return self.spec.threshold is None or score >= self.spec.threshold

    async def score(self, question: str, samples: list[str], fields: dict[str, Any],
                    ctx: StepContext) -> Scored:
        readable_at = [i for i, s in enumerate(samples) if s.strip()]
        async with self._run_lock:
            values = await asyncio.to_thread(self.model.score, [question] * len(readable_at),
                                             [samples[i] for i in readable_at])
        out: list[float | None] = [None] * len(samples)
        for i, value in zip(readable_at, values):
            out[i] = value
        return Scored(out)


def make_scoring(spec: VerifierScorer | JudgeScorer | RewardModelScorer, params: SamplingParams,
                 step_backend: str, recipe_dir: Path | None) -> Any:
    if isinstance(spec, VerifierScorer):
        return VerifierScoring(spec, recipe_dir)
    if isinstance(spec, JudgeScorer):
        return JudgeScoring(spec, params, step_backend)
    return RewardModelScoring(spec, recipe_dir)


def validate_scorer(scorer: Any, reads: list[str]) -> None:
    """Cross-field checks a step with a scorer runs in its model validator."""
    if isinstance(scorer, VerifierScorer) and scorer.answer not in reads:
        raise ValueError(f"scorer.answer column {scorer.answer!r} must be listed in 'reads'")
