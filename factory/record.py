"""The one record type that flows through every step, filter and writer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StepTrace:
    """What one step did to a record: which backend/model answered which prompts."""

    step: str
    backend: str
    model: str
    prompt_hashes: list[str]


@dataclass
class Record:
    id: str
    fields: dict[str, Any]
    recipe: str
    parent_ids: list[str] = field(default_factory=list)
    trace: list[StepTrace] = field(default_factory=list)

    def lineage(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "parent_ids": list(self.parent_ids),
                "steps": [{"step": t.step, "backend": t.backend, "model": t.model,
                           "prompt_hashes": list(t.prompt_hashes)} for t in self.trace]}


@dataclass
class Rejected:
    """Why a step did not produce a record. The raw model text is kept, never thrown away."""

    reason: str  # a short machine-countable code, e.g. "judge_tie"
    detail: str = ""
    raw: Any = None


def seed_record_id(recipe: str, index: int, row: dict[str, Any]) -> str:
    """Stable id for the index-th seed row: same recipe + same row -> same id on every run."""
    payload = json.dumps([recipe, index, row], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
