"""The capacity check that runs before every training run and behind ``factory capacity``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.core.models import ModelRef, load_tokenizer, meta_model
from trainers.capacity import Capacity, Verdict, count_lora, count_tokens
from trainers.facts import ModelFacts, model_facts
from trainers.method import Method


@dataclass
class CapacityReport:
    facts: ModelFacts
    capacity: Capacity
    verdict: Verdict | None  # None when no dataset was given


def dataset_tokens(path: Path, method: Method, tokenizer: Any) -> int:
    """Target tokens (what the loss is computed on), counted with the model's own tokenizer."""
    _, rows = method.rows(path, method.config())
    return count_tokens(method.target_texts(rows), tokenizer)


def check_capacity(ref: ModelRef, rank: int, method: Method, targets: list[str] | None = None,
                   dataset: Path | None = None, model: Any = None,
                   tokenizer: Any = None) -> CapacityReport:
    """Count from ``model`` when given (a loaded model), else from the config on the meta device."""
    model = model if model is not None else meta_model(ref)
    capacity = count_lora(model, rank, targets)
    verdict = None
    if dataset is not None:
        tokens = dataset_tokens(dataset, method, tokenizer or load_tokenizer(ref))
        verdict = Verdict(capacity, tokens, method.name)
    return CapacityReport(model_facts(ref, model), capacity, verdict)
