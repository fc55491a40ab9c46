"""``kind: constitutional_preference`` — Constitutional AI's RL stage labels (RL-CAI, Bai et al.
2022): a feedback model answers a multiple-choice question ("Which of these responses is less
harmful? (A)/(B)") under a sampled principle, in both orders.

``mode: votes`` (default): asking twice with the responses swapped cancels position bias: a
principle whose two answers disagree casts no vote. Each sampled principle votes; more votes for
one response makes the pair, anything else is a ``preference_tie`` (rejected, never a fake
preference). ``mode: logprob``: the paper's soft labels — the feedback model's normalized (A)/(B)
probabilities where it wrote its answer, in both orders (balanced position calibration), averaged
over the sampled principles: P(first response is better). The pair goes to the response above
0.5 when that confidence reaches ``min_confidence``; the soft label goes to the preference column.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from factory.core.record import Rejected
from factory.core.structured import json_object
from factory.core.templates import check_overrides, merged
from factory.llm.request import Completion, Request
from factory.llm.verdicts import balanced_preference, letter_share
from factory.steps.base import StepBase, StepContext, StepRunner, render
from factory.steps.constitution import Principle, principles_before

# The paper's multiple-choice format, in our words: conversation, principle question, options.
CHOICE = """Consider this conversation between a human and an assistant:
Human: {prompt}
{question}
Options:
(A) {a}
(B) {b}
The answer is:"""

TEMPLATES = {"choice": CHOICE}
PLACEHOLDERS = {"choice": ("prompt", "question", "a", "b")}
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"enum": ["A", "B"]}},
                 "required": ["answer"], "additionalProperties": False}
# "(A)", a line starting with "B", or "answer is A"; capital letters only, so an article "a" is no vote.
OPTION = re.compile(r"\(\s*([AB])\s*\)|^\s*([AB])\b|(?i:answer)(?:\s+is)?\s*[:\-]?\s*([AB])\b", re.M)


class ConstitutionalPreferenceStep(StepBase):
    """``reads: [prompt, response_1, response_2]``; ``writes: [chosen, rejected, preference]``."""

    kind: Literal["constitutional_preference"]
    principles: list[Principle] = Field(min_length=1, description="a YAML file (path relative "
                                        "to the recipe) or an inline list; only principles with "
                                        "a 'choice' question are used")
    principles_per_pair: int = Field(1, ge=1, le=16, description="principles sampled per pair, "
                                     "each asked in both orders; the majority of votes wins")
    templates: dict[str, str] = Field(default_factory=dict, description="override the template: "
                                      "choice")
    mode: Literal["votes", "logprob"] = Field("votes", description="votes: each principle's constrained "
                                              "answers vote; logprob: soft labels from P(A)/P(B)")
    top_logprobs: int = Field(20, ge=2, le=100, description="logprob mode: alternatives read per token")
    min_confidence: float = Field(0.5, ge=0.5, le=1, description="logprob mode: minimum soft label of "
                                  "the chosen response (0.5: any lean)")

    @field_validator("principles", mode="before")
    @classmethod
    def principles_file(cls, value: Any, info: ValidationInfo) -> Any:
        return principles_before(value, info)

    @field_validator("principles")
    @classmethod
    def some_have_choice(cls, value: list[Principle]) -> list[Principle]:
        if not any(p.choice for p in value):
            raise ValueError("no principle has a 'choice' question for the multiple-choice label")
        return value

    @field_validator("templates")
    @classmethod
    def known_templates(cls, value: dict[str, str]) -> dict[str, str]:
        check_overrides(value, TEMPLATES, PLACEHOLDERS)
        return value

    @model_validator(mode="after")
    def positional_columns(self) -> "ConstitutionalPreferenceStep":
        self.require_columns("[prompt, response_1, response_2]", "[chosen, rejected, preference]")
        return self

    def logprob_refs(self) -> dict[str, str]:
        return {"mode": self.backend} if self.mode == "logprob" else {}


class ConstitutionalPreference(StepRunner):
    def __init__(self, spec: ConstitutionalPreferenceStep, params: Any) -> None:
        super().__init__(spec, params)
        self.templates = merged(spec.templates, TEMPLATES)
        self.choosable = [p for p in spec.principles if p.choice]

    def request(self, prompt: str, question: str, a: str, b: str) -> Request:
        text = render(self.templates["choice"], {"prompt": prompt, "question": question, "a": a, "b": b})
        top = self.spec.top_logprobs if self.spec.mode == "logprob" else 0
        return Request.chat([{"role": "user", "content": text}], self.params, json_schema=ANSWER_SCHEMA,
                            top_logprobs=top)

    async def run(self, fields: dict[str, Any], ctx: StepContext) -> dict[str, Any] | Rejected:
        prompt_col, first_col, second_col = self.spec.reads
        prompt, first, second = (str(fields[c]) for c in self.spec.reads)
        if first.strip() == second.strip():
            return Rejected("identical_responses", "both responses are the same text")
        k = min(self.spec.principles_per_pair, len(self.choosable))
        principles = ctx.rng().sample(self.choosable, k)
        requests = [r for p in principles for r in (self.request(prompt, p.choice or "", first, second),
                                                    self.request(prompt, p.choice or "", second, first))]
        replies = await ctx.ask(requests)
        raw = [c.text for c in replies]
        if self.spec.mode == "logprob":
            return self.soft_label(fields, principles, replies, ctx)
        votes = {"first": 0, "second": 0, "inconsistent": 0}
        for principle, forward, swapped in zip(principles, replies[::2], replies[1::2]):
            a, b = read_option(forward), read_option(swapped)
            if a is None or b is None:
                return Rejected("preference_unparseable", f"no (A)/(B) answer under "
                                f"{principle.name!r}", raw)
            # Forward shows the first response as (A); swapped shows it as (B).
            if a == "A" and b == "B":
                votes["first"] += 1
            elif a == "B" and b == "A":
                votes["second"] += 1
            else:
                votes["inconsistent"] += 1
                ctx.count("inconsistent_orders")
        if votes["first"] == votes["second"]:
            return Rejected("preference_tie", f"votes {votes}", raw)
        winner, loser = (first_col, second_col) if votes["first"] > votes["second"] else \
            (second_col, first_col)
        chosen_col, rejected_col, info_col = self.spec.writes
        return {chosen_col: fields[winner], rejected_col: fields[loser],
                info_col: {"winner": winner, "principles": [p.name for p in principles],
                           "votes": votes, "answers": raw}}


    def soft_label(self, fields: dict[str, Any], principles: list[Principle], replies: list[Completion],
                   ctx: StepContext) -> dict[str, Any] | Rejected:
        """The paper's soft label: per principle, the balanced P(first response is better) from the
        two orders' normalized (A)/(B) probabilities; averaged over the principles."""
        raw = [c.text for c in replies]
        per_principle = {}
        for principle, forward, swapped in zip(principles, replies[::2], replies[1::2]):
            a, b = letter_share(forward), letter_share(swapped)
            if a is None or b is None:
                return Rejected("preference_unparseable", f"no P(A)/P(B) where the answer was written "
                                f"under {principle.name!r}", raw)
            if (a > 0.5) == (b > 0.5):  # both orders lean to the same position
                ctx.count("inconsistent_orders")
            per_principle[principle.name] = balanced_preference(a, b)
        p = sum(per_principle.values()) / len(per_principle)
        _, first_col, second_col = self.spec.reads
        confidence = max(p, 1 - p)
        if abs(p - 0.5) < 1e-9 or confidence < self.spec.min_confidence:
            return Rejected("preference_tie", f"soft label {p:.3f} (minimum confidence "
                            f"{self.spec.min_confidence})", raw)
        winner, loser = (first_col, second_col) if p > 0.5 else (second_col, first_col)
        chosen_col, rejected_col, info_col = self.spec.writes
        return {chosen_col: fields[winner], rejected_col: fields[loser],
                info_col: {"winner": winner, "principles": list(per_principle), "mode": "logprob",
                           "soft_label": {first_col: round(p, 4), second_col: round(1 - p, 4)},
                           "per_principle": {k: round(v, 4) for k, v in per_principle.items()},
                           "confidence": round(confidence, 4), "answers": raw}}


def read_option(completion: Completion) -> str | None:
    """'A' or 'B' from the constrained JSON answer, else from an ``(A)`` / ``B`` in prose."""
    text = completion.text
    data = json_object(text)
    if data is not None and data.get("answer") in ("A", "B"):
        return data["answer"]
    match = OPTION.search(text)
    return next(g for g in match.groups() if g) if match else None
