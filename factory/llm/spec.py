"""The recipe schema of what the LLM layer is configured by: sampling parameters and backend blocks.

Shared by recipes, QC chain files (a judge scorer's backend) and tools (``factory judge-eval``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from factory.core.errors import did_you_mean
from factory.core.schema import Strict
from factory.llm.backends import BACKENDS
from factory.llm.request import SamplingParams


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
    name: str = Field(description="one of factory.llm.backends.BACKENDS")
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
