"""Recipe sections of the self-teaching loop: ``task:`` (problems with known answers), ``train:``
(LoRA SFT, then DPO from the SFT model, for one or more rounds) and ``eval:`` (held-out accuracy).

The trainer settings are checked against the trainer config dataclasses here, at load time, so a
typo in ``train.sft`` is a recipe error with a line number, not a failure after generation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from factory.core.errors import did_you_mean
from factory.core.schema import Strict


class TaskBlock(Strict):
    family: str = Field(description="factory/tasks.py FAMILIES: sort_numbers, add_numbers, "
                                    "largest_number, gsm8k")
    train: int = Field(ge=1, description="problems to sample answers for (the seeds)")
    test: int = Field(ge=1, description="held-out problems for eval (disjoint from train)")
    seed: int = Field(0, description="RNG seed of the problem generator")
    options: dict[str, Any] = Field(default_factory=dict, description="family settings (number "
                                    "count/range; train_path/test_path for file families)")

    @field_validator("family")
    @classmethod
    def known_family(cls, value: str) -> str:
        from factory.recipe.tasks import FAMILIES

        if value not in FAMILIES:
            raise ValueError(f"unknown task family {value!r}{did_you_mean(value, FAMILIES)}; "
                             f"known: {', '.join(FAMILIES)}")
        return value


def _check_fields(value: dict[str, Any], cls_path: str) -> dict[str, Any]:
    from trainers import config

    cls = getattr(config, cls_path)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in value:
        if key not in names or key in ("model", "output_dir", "base_adapters"):
            raise ValueError(f"{key}: not a {cls_path} field{did_you_mean(key, names)} (model and "
                             "output_dir are set by the train block)")
    return value


class TrainBlock(Strict):
    model: str = Field(description="the base model as the trainers load it: 'smollm2' (the embedded "
                                   "model), an HF folder or a .gguf file")
    output_dir: str | None = Field(None, description="adapters and metrics (default runs/<recipe name>)")
    sft: dict[str, Any] = Field(default_factory=dict, description="SFTLoraConfig fields "
                                "(trainers/config.py), over trainers/sft_lora.yaml")
    dpo: dict[str, Any] | None = Field(default_factory=dict, description="DPOLoraConfig fields; "
                                       "null: no DPO stage")
    sft_split: str = Field("sft", description="output split the SFT stage trains on")
    dpo_split: str = Field("dpo", description="output split the DPO stage trains on")
    rounds: int = Field(1, ge=1, le=10, description="most rounds; round r > 1 samples from the model "
                                                    "trained in round r-1 (ReST-EM / STaR)")
    min_gain: float = Field(0.02, ge=0, description="stop when a round lifts held-out accuracy "
                                                    "(not copyable) by less than this")
    resample_backend: dict[str, Any] = Field(
        default_factory=lambda: {"name": "transformers", "concurrency": 32},
        description="backend block for rounds > 1; its model and adapters are set by the loop")
    force: bool = Field(False, description="train even when the capacity check fails")

    @field_validator("sft")
    @classmethod
    def sft_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_fields(value, "SFTLoraConfig")

    @field_validator("dpo")
    @classmethod
    def dpo_fields(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_fields(value, "DPOLoraConfig")


class EvalBlock(Strict):
    benchmark: Literal["task", "ifeval"] = Field("task", description="task: the task: section's "
                                                 "held-out problems; ifeval: an IFEval-format file "
                                                 "(data:) scored by lm-eval's IFEval checker")
    data: str | None = Field(None, description="ifeval: the prompts file (key, prompt, "
                             "instruction_id_list, kwargs), relative to the recipe")
    limit: int | None = Field(None, ge=1, description="ifeval: only the first N prompts")
    max_tokens: int = Field(32, ge=1, le=4096, description="greedy answer length (the same cap "
                            "for every model)")
    batch_size: int = Field(32, ge=1, le=1024, description="problems decoded together")
    system: str | None = Field(None, description="system message (same as the sampling step's)")
    threads: int | None = Field(None, ge=1, description="CPU threads for eval decoding")
    backend: Literal["transformers", "llama_cpp"] = Field(
        "transformers", description="the decoder for every model: transformers (adapters merged "
        "into the weights) or llama_cpp (adapters as GGUF LoRA adapters; needs a GGUF base)")
    options: dict[str, Any] = Field(default_factory=dict, description="more decoder backend "
                                    "options, e.g. {dtype: float32} for llama_cpp")

    @model_validator(mode="after")
    def data_for_ifeval(self) -> "EvalBlock":
        if (self.benchmark == "ifeval") != (self.data is not None):
            raise ValueError("data: is the IFEval prompts file: give it with benchmark: ifeval only")
        if self.limit is not None and self.benchmark != "ifeval":
            raise ValueError("limit: applies to benchmark: ifeval (a task sets its test size)")
        return self
