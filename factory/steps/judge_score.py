"""``kind: judge_score`` — single-answer LLM-as-judge on a rubric (MT-Bench style, Zheng et al. 2023).

One request per record: the judge reasons first, then scores each criterion 0-5 (``factory/rubric.py``
holds the prompt, the JSON schema and the parser). A reply that cannot be read is a reject with its
reason, never a guessed score. ``mode: logprob`` weights each score by the probabilities of 0-5 at
the token where it was written (G-Eval, Liu et al. 2023): a judge torn between 3 and 4 scores 3.5.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from factory.core.record import Rejected
from factory.core.templates import check_overrides
from factory.llm.request import Completion, Request
from factory.llm.rubric import (
    DEFAULT_CRITERIA,
    JUDGE_OPTIONAL_FIELDS,
    JUDGE_TEMPLATE_FIELDS,
    JUDGE_TEMPLATES,
    parse_rubric,
    rubric_request,
)
from factory.llm.verdicts import expected_score
from factory.steps.base import StepBase, StepRunner


class JudgeScoreStep(StepBase):
    """``reads: [question, answer]``; ``writes: [score, judgement]`` (mean 0-5; scores + reasoning)."""

    kind: Literal["judge_score"]
    criteria: list[str] = Field(default_factory=lambda: list(DEFAULT_CRITERIA), min_length=1)
    templates: dict[str, str] = Field(default_factory=dict, description="override 'system' and/or "
                                      "'prompt' (fields: {question} {answer} {criteria_list} {score_shape})")
    min_score: float | None = Field(None, ge=0, le=5, description="reject answers whose mean score is "
                                                                  "below this (low_score)")
    mode: Literal["text", "logprob"] = Field("text", description="text: the scores as written; "
                                             "logprob: each score weighted by the probabilities of "
                                             "0-5 where it was written (G-Eval)")
    top_logprobs: int = Field(20, ge=6, le=100, description="logprob mode: alternatives read per token")

    @field_validator("templates")
    @classmethod
    def known_templates(cls, value: dict[str, str]) -> dict[str, str]:
        return check_overrides(value, JUDGE_TEMPLATES, JUDGE_TEMPLATE_FIELDS, JUDGE_OPTIONAL_FIELDS)

    @model_validator(mode="after")
    def positional_columns(self) -> "JudgeScoreStep":
        if len(self.reads) != 2:
            raise ValueError("judge_score reads exactly [question, answer]")
        if len(self.writes) != 2:
            raise ValueError("judge_score writes exactly [score, judgement]")
        return self

    def logprob_refs(self) -> dict[str, str]:
        return {"mode": self.backend} if self.mode == "logprob" else {}


class JudgeScore(StepRunner):
    spec: JudgeScoreStep

    def requests(self, fields: dict[str, Any]) -> list[Request] | Rejected:
        question, answer = (str(fields[c]) for c in self.spec.reads)
        if not answer.strip():
            return Rejected("empty_answer", f"column {self.spec.reads[1]!r} is empty")
        templates = {**JUDGE_TEMPLATES, **self.spec.templates}
        request = rubric_request(question, answer, self.params, self.spec.criteria,
                                 templates["prompt"], templates["system"])
        if self.spec.mode == "logprob":
            request = replace(request, top_logprobs=self.spec.top_logprobs)
        return [request]

    def parse(self, fields: dict[str, Any], completions: list[Completion]) -> dict[str, Any] | Rejected:
        parsed = parse_rubric(completions[0], self.spec.criteria)
        if isinstance(parsed, Rejected):
            return parsed
        if self.spec.mode == "logprob":
            parsed = _weighted(parsed, completions[0], self.spec.criteria)
        if self.spec.min_score is not None and parsed["score"] < self.spec.min_score:
            return Rejected("low_score", f"mean score {parsed['score']} < {self.spec.min_score}",
                            completions[0].text)
        score_col, judgement_col = self.spec.writes
        judgement = {"scores": parsed["scores"], "reasoning": parsed["reasoning"]}
        if self.spec.mode == "logprob":
            judgement.update(mode="logprob", written=parsed["written"], unweighted=parsed["unweighted"])
        return {score_col: parsed["score"], judgement_col: judgement}


def _weighted(parsed: dict[str, Any], completion: Completion, criteria: list[str]) -> dict[str, Any]:
    """G-Eval (Liu et al. 2023): each criterion's score is sum(s * P(s)) over 0-5 at the token where
    the judge wrote it. A criterion whose probabilities cannot be read keeps its written score and
    is listed in ``unweighted``."""
    scores, unweighted = {}, []
    for c in criteria:
        expected = expected_score(completion, c)
        if expected is None:
            unweighted.append(c)
        scores[c] = round(expected, 4) if expected is not None else parsed["scores"][c]
    return {**parsed, "scores": scores, "score": round(sum(scores.values()) / len(scores), 4),
            "written": parsed["scores"], "unweighted": unweighted}
