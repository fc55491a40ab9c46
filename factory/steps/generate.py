"""``kind: generate`` — one prompt template, one answer column (a list when samples > 1)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from factory.core.record import Rejected
from factory.core.templates import check_template
from factory.llm.request import Completion, Request
from factory.steps.base import StepBase, StepRunner, template_chat


class GenerateStep(StepBase):
    """Render a prompt from the record's columns and write the model's answer to one column."""

    kind: Literal["generate"]
    prompt: str = Field(description="template; {column} inserts a column the step reads")
    system: str | None = Field(None, description="system message (template too)")
    samples: int = Field(1, ge=1, le=256, description=">1 writes a list of samples")

    @field_validator("prompt", "system")
    @classmethod
    def template_reads_declared(cls, value: str | None, info: ValidationInfo) -> str | None:
        check_template(value, info.data.get("reads", []))
        return value

    @model_validator(mode="after")
    def one_column(self) -> "GenerateStep":
        if len(self.writes) != 1:
            raise ValueError("a generate step writes exactly one column")
        return self


class Generate(StepRunner):
    def messages(self, fields: dict[str, Any]) -> list[dict[str, str]]:
        return template_chat(self.spec.system, self.spec.prompt, fields)

    def requests(self, fields: dict[str, Any]) -> list[Request]:
        chat = self.messages(fields)
        return [Request.chat(chat, self.params, sample_index=i) for i in range(self.spec.samples)]

    def parse(self, fields: dict[str, Any], completions: list[Completion]) -> dict[str, Any] | Rejected:
        texts = [c.text.strip() for c in completions]
        for c, text in zip(completions, texts):
            if not text:
                return Rejected("empty_response", raw=c.text)
            if c.finish_reason == "length":
                # A cut-off answer teaches the model to stop mid-sentence; never keep it silently.
                return Rejected("truncated", f"hit max_tokens={self.params.max_tokens}", raw=text)
        column = self.spec.writes[0]
        return {column: texts if self.spec.samples > 1 else texts[0]}
