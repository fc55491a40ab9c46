"""Recipe schema: pydantic models with ``extra="forbid"`` so a typo is an error, not a silent default.

Only shape and types live here; wiring (which step reads what another writes, cycles, files that
must exist) is checked in ``factory.graph`` and ``factory.recipe_loader``.
"""

from __future__ import annotations

import string
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from factory.backends import BACKENDS
from factory.backends.base import SamplingParams
from factory.errors import did_you_mean
from filters.config import QCBlock

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Params(Strict):
    """Sampling parameters; on a step, only the ones given override the backend's."""

    temperature: float | None = Field(None, ge=0, le=2, description="0 = greedy")
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, description="0 = off")
    max_tokens: int | None = Field(None, ge=1, le=32768)
    stop: list[str] | None = None

    def over(self, base: SamplingParams) -> SamplingParams:
        given = {k: v for k, v in self.model_dump().items() if v is not None}
        if "stop" in given:
            given["stop"] = tuple(given["stop"])
        return SamplingParams(**{**base.as_dict(), "stop": tuple(base.stop), **given})


class BackendBlock(Strict):
    name: str = Field(description="one of factory.backends.BACKENDS")
    model: str | None = Field(None, description="backend-specific model name or path")
    params: Params = Params()
    concurrency: int = Field(8, ge=1, le=4096, description="requests in flight at once")
    options: dict[str, Any] = Field(default_factory=dict, description="backend-specific settings")

    @field_validator("name")
    @classmethod
    def known_backend(cls, value: str) -> str:
        if value not in BACKENDS:
            raise ValueError(f"unknown backend {value!r}{did_you_mean(value, BACKENDS)}; "
                             f"known: {', '.join(sorted(BACKENDS))}")
        return value

    def sampling(self, seed: int) -> SamplingParams:
        return self.params.over(SamplingParams(seed=seed))


class SeedsBlock(Strict):
    path: str | None = Field(None, description="jsonl/json/parquet/csv file or HF dataset folder, "
                                               "relative to the recipe")
    rows: list[dict[str, Any]] | None = Field(None, description="inline seed rows")
    split: str | None = Field(None, description="split of a Hugging Face dataset folder")
    limit: int | None = Field(None, ge=1, description="use only the first N rows")

    @model_validator(mode="after")
    def one_source(self) -> "SeedsBlock":
        if (self.path is None) == (self.rows is None):
            raise ValueError("give exactly one of 'path' or 'rows'")
        if self.rows is not None and not self.rows:
            raise ValueError("'rows' is empty")
        return self


class StepBase(Strict):
    name: str = Field(pattern=IDENTIFIER)
    reads: list[str] = Field(default_factory=list, description="columns this step reads")
    writes: list[str] = Field(description="columns this step writes")
    backend: str = Field("default", description="'default' or a key of the recipe's 'backends'")
    params: Params = Params()

    @field_validator("writes", mode="before")
    @classmethod
    def one_name_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def template_fields(template: str) -> list[str]:
    """The ``{column}`` names a prompt template uses."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


class GenerateStep(StepBase):
    """Render a prompt from the record's columns and write the model's answer to one column."""

    kind: Literal["generate"]
    prompt: str = Field(description="template; {column} inserts a column the step reads")
    system: str | None = Field(None, description="system message (template too)")
    samples: int = Field(1, ge=1, le=256, description=">1 writes a list of samples")

    @field_validator("prompt", "system")
    @classmethod
    def template_reads_declared(cls, value: str | None, info: ValidationInfo) -> str | None:
        reads = info.data.get("reads", [])
        try:
            used = template_fields(value or "")
        except ValueError as exc:
            raise ValueError(f"bad template: {exc}") from None
        for name in used:
            if name not in reads:
                raise ValueError(f"template uses {{{name}}} but 'reads' does not list it"
                                 f"{did_you_mean(name, reads)}")
        return value

    @model_validator(mode="after")
    def one_column(self) -> "GenerateStep":
        if len(self.writes) != 1:
            raise ValueError("a generate step writes exactly one column")
        return self


class JudgePairwiseStep(StepBase):
    """LLM-as-judge on two answers, asked in both orders; disagreement is a tie, not a pair.

    ``reads: [question, answer_1, answer_2]``; ``writes: [chosen, rejected, judgement]``.
    """

    kind: Literal["judge_pairwise"]
    criteria: list[str] = Field(default_factory=lambda: ["correctness", "helpfulness", "clarity"],
                                min_length=1)
    system: str | None = Field(None, description="judge system message")
    min_margin: float = Field(0.0, ge=0, description="minimum rubric-score margin for a pair")

    @model_validator(mode="after")
    def positional_columns(self) -> "JudgePairwiseStep":
        if len(self.reads) != 3:
            raise ValueError("judge_pairwise reads exactly [question, answer_1, answer_2]")
        if len(self.writes) != 3:
            raise ValueError("judge_pairwise writes exactly [chosen, rejected, judgement]")
        return self


Step = Annotated[Union[GenerateStep, JudgePairwiseStep], Field(discriminator="kind")]


class SplitSpec(Strict):
    """One output split. ``dpo`` and ``sft`` write TRL's conversational format."""

    format: Literal["dpo", "sft", "columns"]
    prompt: str = Field("prompt", description="column holding the user prompt")
    chosen: str = Field("chosen", description="dpo: preferred answer column")
    rejected: str = Field("rejected", description="dpo: other answer column")
    completion: str = Field("response", description="sft: answer column")
    system: str | None = Field(None, description="system message to put first in each chat")
    columns: list[str] = Field(default_factory=list, description="extra columns to carry over")

    def reads(self) -> list[str]:
        needed = {"dpo": [self.prompt, self.chosen, self.rejected],
                  "sft": [self.prompt, self.completion], "columns": []}[self.format]
        return needed + list(self.columns)


class OutputsBlock(Strict):
    dir: str | None = Field(None, description="default: datasets/<name>")
    splits: dict[str, SplitSpec] = Field(min_length=1)

    @field_validator("splits")
    @classmethod
    def split_names(cls, value: dict[str, SplitSpec]) -> dict[str, SplitSpec]:
        for name in value:
            if not name.isidentifier() or name == "rejects":
                raise ValueError(f"bad split name {name!r}: use an identifier other than 'rejects'")
        return value


class Recipe(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = Field(0, description="global seed; per-request seeds derive from it")
    seeds: SeedsBlock
    backend: BackendBlock
    backends: dict[str, BackendBlock] = Field(default_factory=dict,
                                              description="extra named backends for steps")
    steps: list[Step] = Field(min_length=1)
    qc: list[QCBlock] = Field(default_factory=list, description="QC chain (filters/config.py)")
    outputs: OutputsBlock

    def backend_block(self, name: str) -> BackendBlock:
        return self.backend if name == "default" else self.backends[name]
