"""``kind: magpie`` — Magpie (Xu et al. 2024): an aligned model writes the user's instruction itself.

The model gets only its chat template's pre-query prefix (the system turn, then the user role
header) as a raw prompt and continues it: what it writes is a user query drawn from what it was
aligned on. The instruction is then answered as an ordinary chat. A ``system`` template steers
the domain (with sampled columns: ``You help {persona} with {topic}.``).

Every record draws its own instruction: the prefix alone is the same for many records, so the
request's sample index comes from the record id (stable across runs, so the cache answers a
rebuild). Needs a backend with raw prompts (llama_cpp, transformers, vllm, openai_compatible,
fake); a chat-only API is a recipe error.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from factory.core.record import Rejected
from factory.core.templates import check_template
from factory.llm.request import Completion, Request
from factory.llm.spec import Params
from factory.steps.base import StepBase, StepContext, StepOutput, StepRunner, render


class MagpieStep(StepBase):
    """Draw an instruction from the pre-query prefix, then (with two ``writes``) answer it."""

    kind: Literal["magpie"]
    system: str | None = Field(None, description="system message in the prefix (a template over "
                                                 "'reads'); none: the template's own default")
    pre_query: str | None = Field(None, description="the prefix to send, instead of rendering the "
                                                    "model's chat template (servers whose template "
                                                    "is not visible)")
    response_params: Params = Field(Params(), description="sampling for the answer, over the "
                                                          "step's params")
    needs_raw_prompts: ClassVar[bool] = True

    @field_validator("system")
    @classmethod
    def template_reads_declared(cls, value: str | None, info: ValidationInfo) -> str | None:
        check_template(value, info.data.get("reads", []))
        return value

    @model_validator(mode="after")
    def columns(self) -> "MagpieStep":
        if len(self.writes) not in (1, 2):
            raise ValueError("magpie writes [instruction] or [instruction, response]")
        return self


class Magpie(StepRunner):
    def prefix(self, system: str | None) -> str:
        if self.spec.pre_query is not None:
            return self.spec.pre_query
        assert self.backend is not None, "bind_steps sets the backend"
        return self.backend.pre_query_prefix(system)

    async def run(self, fields: dict[str, Any], ctx: StepContext) -> StepOutput:
        system = render(self.spec.system, fields) if self.spec.system else None
        draw = Request.text(self.prefix(system), self.params, sample_index=int(ctx.record_id[:8], 16))
        (drawn,) = await ctx.ask([draw])
        instruction = drawn.text.strip()
        problem = _problem(drawn, instruction, "instruction", self.params.max_tokens)
        if problem:
            return problem
        out = {self.spec.writes[0]: instruction}
        if len(self.spec.writes) == 2:
            params = self.spec.response_params.over(self.params)
            chat = ([{"role": "system", "content": system}] if system else []) + \
                [{"role": "user", "content": instruction}]
            (answer,) = await ctx.ask([Request.chat(chat, params)])
            problem = _problem(answer, answer.text.strip(), "response", params.max_tokens)
            if problem:
                return problem
            out[self.spec.writes[1]] = answer.text.strip()
        return out


def _problem(completion: Completion, text: str, what: str, max_tokens: int) -> Rejected | None:
    if not text:
        return Rejected(f"empty_{what}", raw=completion.text)
    if completion.finish_reason == "length":
        return Rejected(f"truncated_{what}", f"hit max_tokens={max_tokens}", raw=completion.text)
    return None
