"""Recipe schema: pydantic models with ``extra="forbid"`` so a typo is an error, not a silent default.

Only shape and types live here; wiring (which step reads what another writes, cycles, files that
must exist) is checked in ``factory.recipe.graph`` and ``factory.recipe.loader``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from factory.core.schema import Strict
from factory.llm.spec import BackendBlock
from factory.recipe.samplers_spec import SamplersBlock
from factory.recipe.teach_spec import EvalBlock, TaskBlock, TrainBlock
from factory.steps import STEP_SPECS
from factory.steps.judge_gate import JudgeGate
from filters.config import QCBlock


class SeedsBlock(Strict):
    path: str | None = Field(None, description="jsonl/json/parquet/csv file or HF dataset folder, "
                                               "relative to the recipe")
    rows: list[dict[str, Any]] | None = Field(None, description="inline seed rows")
    split: str | None = Field(None, description="split of a Hugging Face dataset folder")
    task: Literal["train", "test"] | None = Field(None, description="the recipe task's train or "
                                                  "test problems")
    limit: int | None = Field(None, ge=1, description="use only the first N rows")

    @model_validator(mode="after")
    def one_source(self) -> "SeedsBlock":
        if sum(x is not None for x in (self.path, self.rows, self.task)) != 1:
            raise ValueError("give exactly one of 'path', 'rows' or 'task'")
        if self.rows is not None and not self.rows:
            raise ValueError("'rows' is empty")
        return self


Step = Annotated[Union[STEP_SPECS], Field(discriminator="kind")]


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


class ReviewBlock(Strict):
    """A review gate: the build stops after QC until people have judged a sample (factory review)."""

    fraction: float = Field(0.05, gt=0, le=1, description="share of the kept rows in the random sample")
    min_rows: int = Field(20, ge=1, description="sample at least this many rows (all, if fewer)")
    borderline: int = Field(10, ge=0, description="also this many rows nearest the QC cut lines and "
                                                  "the lowest judge margins")
    min_keep_rate: float = Field(0.8, ge=0, le=1, description="stop (exit 7) when people keep fewer "
                                                              "of the sampled rows than this")
    stratify: list[str] | None = Field(None, description="columns to stratify the sample by "
                                                         "(default: category, when records have it)")


class Recipe(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = Field(0, description="global seed; per-request seeds derive from it")
    seeds: SeedsBlock | None = Field(None, description="seed rows (optional with samplers.count)")
    samplers: SamplersBlock | None = Field(None, description="seed columns drawn from declared axes")
    backend: BackendBlock
    backends: dict[str, BackendBlock] = Field(default_factory=dict,
                                              description="extra named backends for steps")
    steps: list[Step] = Field(min_length=1)
    qc: list[QCBlock] = Field(default_factory=list, description="QC chain (filters/config.py)")
    review: ReviewBlock | None = Field(None, description="people review a sample after QC "
                                                         "(factory review); the next build applies it")
    outputs: OutputsBlock
    task: TaskBlock | None = Field(None, description="problems with known answers, made by code")
    train: TrainBlock | None = Field(None, description="LoRA SFT then DPO on the built splits")
    eval: EvalBlock | None = Field(None, description="held-out accuracy of base and trained models")
    judge_gate: JudgeGate | None = Field(None, description="the judge_gate of every judge_pairwise "
                                         "step that has none of its own")

    @model_validator(mode="after")
    def gate_the_judges(self) -> "Recipe":
        if self.judge_gate is None:
            return self
        judges = [s for s in self.steps if s.kind == "judge_pairwise"]
        if not judges:
            raise ValueError("judge_gate: no judge_pairwise step to measure")
        for step in judges:
            if step.judge_gate is None:
                step.judge_gate = self.judge_gate
        return self

    @model_validator(mode="after")
    def teach_sections(self) -> "Recipe":
        if self.seeds is None and (self.samplers is None or self.samplers.count is None):
            raise ValueError("give 'seeds' or 'samplers' with a 'count'")
        if self.seeds is not None and self.samplers is not None and self.samplers.count is not None:
            raise ValueError("samplers.count: with 'seeds' the seed rows set the count; remove one")
        if self.seeds is not None and self.seeds.task is not None and self.task is None:
            raise ValueError("seeds.task needs a 'task:' section")
        if self.eval is not None and self.eval.benchmark == "task" and self.task is None:
            raise ValueError("eval: needs a 'task:' section (the held-out problems) or "
                             "benchmark: ifeval")
        if self.train is not None:
            wanted = [(self.train.sft_split, "sft")] + \
                ([(self.train.dpo_split, "dpo")] if self.train.dpo is not None else [])
            for split, fmt in wanted:
                spec = self.outputs.splits.get(split)
                if spec is None or spec.format != fmt:
                    raise ValueError(f"train: needs an outputs split {split!r} with format {fmt}")
        return self

    def backend_block(self, name: str) -> BackendBlock:
        return self.backend if name == "default" else self.backends[name]
