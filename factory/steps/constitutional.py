"""``kind: constitutional`` — Constitutional AI's supervised stage (Bai et al. 2022): a response is
critiqued against a sampled principle and revised, for R rounds.

The dialogue continues as in the paper: after the human's request and the assistant's response,
a "Critique Request: ..." turn asks for a critique, then a "Revision Request: ..." turn asks for
the rewritten response; the next principle's requests are appended after that revision
(``history: full``), or start again from the request and the latest revision (``history: latest``,
shorter prompts for small context windows). Outputs feed an SFT split (prompt, final revision)
and a DPO split (the revision chosen over the initial response).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from factory.core.record import Rejected
from factory.core.templates import check_overrides, merged
from factory.llm.request import Completion, Request
from factory.steps.base import StepBase, StepContext, StepRunner, render
from factory.steps.constitution import Principle, principles_before

# The paper's turn labels; the principle's own request text fills {request}.
TEMPLATES = {"critique_turn": "Critique Request: {request}",
             "revision_turn": "Revision Request: {request}"}
PLACEHOLDERS = {"critique_turn": ("request",), "revision_turn": ("request",)}
LABEL = re.compile(r"^\s*\**\s*(critique|revision)\s*\**\s*:\s*\**\s*", re.I)


class ConstitutionalStep(StepBase):
    """``reads: [prompt, initial_response]``; ``writes: [revision, critiques]``."""

    kind: Literal["constitutional"]
    principles: list[Principle] = Field(min_length=1, description="a YAML file (path relative "
                                        "to the recipe) or an inline list of principles")
    rounds: int = Field(1, ge=1, le=16, description="critique→revise rounds")
    principles_per_round: int = Field(1, ge=1, le=16, description="principles sampled per round, "
                                      "each critiqued and revised in turn")
    history: Literal["full", "latest"] = Field("full", description="full: each critique sees the "
                                               "whole dialogue so far; latest: only the request "
                                               "and the latest revision")
    system: str | None = Field(None, description="system message for the dialogue")
    templates: dict[str, str] = Field(default_factory=dict, description="override the turn "
                                      f"templates: {', '.join(TEMPLATES)}")

    @field_validator("principles", mode="before")
    @classmethod
    def principles_file(cls, value: Any, info: ValidationInfo) -> Any:
        return principles_before(value, info)

    @field_validator("templates")
    @classmethod
    def known_templates(cls, value: dict[str, str]) -> dict[str, str]:
        check_overrides(value, TEMPLATES, PLACEHOLDERS)
        return value

    @model_validator(mode="after")
    def positional_columns(self) -> "ConstitutionalStep":
        self.require_columns("[prompt, initial_response]", "[revision, critiques]")
        return self


class Constitutional(StepRunner):
    def __init__(self, spec: ConstitutionalStep, params: Any) -> None:
        super().__init__(spec, params)
        self.templates = merged(spec.templates, TEMPLATES)

    def opening(self, prompt: str, response: str) -> list[dict[str, str]]:
        chat = [{"role": "system", "content": self.spec.system}] if self.spec.system else []
        return chat + [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]

    async def run(self, fields: dict[str, Any], ctx: StepContext) -> dict[str, Any] | Rejected:
        prompt_col, response_col = self.spec.reads
        prompt, initial = str(fields[prompt_col]), str(fields[response_col]).strip()
        chat = self.opening(prompt, initial)
        current, critiques, step = initial, [], 0
        for round_ in range(1, self.spec.rounds + 1):
            k = min(self.spec.principles_per_round, len(self.spec.principles))
            for principle in ctx.rng(round_).sample(self.spec.principles, k):
                step += 1
                ctx.count(f"principle.{principle.name}")
                if self.spec.history == "latest":
                    chat = self.opening(prompt, current)
                critique_turn = render(self.templates["critique_turn"], {"request": principle.critique})
                chat = chat + [{"role": "user", "content": critique_turn}]
                (reply,) = await ctx.ask([Request.chat(chat, self.params, sample_index=step)])
                critique = strip_label(reply.text)
                failure = self.check(reply, critique, "critique", round_, principle)
                if failure:
                    return self.fail(failure, critiques)
                revision_turn = render(self.templates["revision_turn"], {"request": principle.revision})
                chat = chat + [{"role": "assistant", "content": critique},
                               {"role": "user", "content": revision_turn}]
                (reply,) = await ctx.ask([Request.chat(chat, self.params, sample_index=step)])
                revision = strip_label(reply.text)
                failure = self.check(reply, revision, "revision", round_, principle)
                if failure:
                    return self.fail(failure, critiques + [
                        {"round": round_, "principle": principle.name, "critique": critique}])
                if same(revision, current):
                    ctx.count("unchanged_steps")  # nothing to fix for this principle: not a failure
                critiques.append({"round": round_, "principle": principle.name, "critique": critique,
                                  "revision": revision})
                chat = chat + [{"role": "assistant", "content": revision}]
                current = revision
        if same(current, initial):
            # No pair can be made from a revision equal to the response it revises.
            return Rejected("revision_unchanged", f"after {step} critique→revise steps the "
                            "response is unchanged", raw=critiques)
        revision_col, critiques_col = self.spec.writes
        return {revision_col: current, critiques_col: critiques}

    def check(self, reply: Completion, text: str, what: str, round_: int,
              principle: Principle) -> Rejected | None:
        where = f"round {round_}, principle {principle.name!r}"
        if reply.finish_reason == "length":
            return Rejected("truncated", f"{what} hit max_tokens={self.params.max_tokens} ({where})",
                            reply.text)
        if not text:
            return Rejected(f"empty_{what}", f"no {what} text ({where})", reply.text)
        return None

    def fail(self, failure: Rejected, critiques: list[dict[str, Any]]) -> Rejected:
        # The raw text of the failed turn, plus the steps that went well, stay with the reject.
        return Rejected(failure.reason, failure.detail, {"failed_turn": failure.raw,
                                                         "critiques": critiques})


def strip_label(text: str) -> str:
    """The reply without a leading ``Critique:`` / ``Revision:`` label the model may echo."""
    return LABEL.sub("", text.strip(), count=1).strip()


def same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())
