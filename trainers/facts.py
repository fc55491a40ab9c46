"""What the rank and learning-rate tables need to know about a model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from factory.core.models import ModelRef
from trainers.doctrine import active_experts


@dataclass(frozen=True)
class ModelFacts:
    name: str
    model_type: str
    hidden_size: int
    params: int
    experts: int


def model_facts(ref: ModelRef, model: Any) -> ModelFacts:
    """What the rank and LR tables need, from a meta or loaded model."""
    config = model.config
    name = ref.gguf_file.split(".")[0] if ref.gguf_file else ref.folder.name
    return ModelFacts(name, config.model_type, config.hidden_size,
                      sum(p.numel() for p in model.parameters()), active_experts(config))
