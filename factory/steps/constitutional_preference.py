"""``kind: constitutional_preference`` — Constitutional AI's RL stage labels (RL-CAI, Bai et al.
2022): a feedback model answers a multiple-choice question ("Which of these responses is less
harmful? (A)/(B)") under a sampled principle, in both orders.

Asking twice with the responses swapped cancels position bias: a principle whose two answers
disagree casts no vote. Each sampled principle votes; more votes for one response makes the pair,
anything else is a ``preference_tie`` (rejected, never a fake preference). The paper uses the
feedback model's (A)/(B) probabilities as soft labels; backends here need not give log-probs, so
the labels are the constrained answers' votes.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from factory.core.record import Rejected
from factory.core.structured import json_object
from factory.core.templates import check_overrides, merged
from factory.llm.request import Completion, Request
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


class ConstitutionalPreference(StepRunner):
    def __init__(self, spec: ConstitutionalPreferenceStep, params: Any) -> None:
        super().__init__(spec, params)
        self.templates = merged(spec.templates, TEMPLATES)
        self.choosable = [p for p in spec.principles if p.choice]

    def request(self, prompt: str, question: str, a: str, b: str) -> Request:
        text = render(self.templates["choice"], {"prompt": prompt, "question": question, "a": a, "b": b})
        return Request.chat([{"role": "user", "content": text}], self.params, json_schema=ANSWER_SCHEMA)

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


def read_option(completion: Completion) -> str | None:
    """'A' or 'B' from the constrained JSON answer, else from an ``(A)`` / ``B`` in prose."""
    text = completion.text
    data = json_object(text)
    if data is not None and data.get("answer") in ("A", "B"):
        return data["answer"]
    match = OPTION.search(text)
    return next(g for g in match.groups() if g) if match else None
