"""The one record type that flows through every step, filter and writer, and the reject that
keeps a record that did not make it (with where and why) so nothing is ever dropped silently."""

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


@dataclass
class Reject:
    """A record that did not make it: where, why, and everything it had so far."""

    record: Record
    step: str
    reason: str
    detail: str = ""
    raw: Any = None
    failed: bool = False  # True: a backend or code failure (retried next run); False: a rejection

    def as_row(self) -> dict[str, Any]:
        return {"id": self.record.id, "step": self.step, "reason": self.reason,
                "detail": self.detail, "kind": "failed" if self.failed else "rejected",
                "raw": self.raw, "fields": self.record.fields, "lineage": self.record.lineage()}


def seed_record_id(recipe: str, index: int, row: dict[str, Any]) -> str:
    """Stable id for the index-th seed row: same recipe + same row -> same id on every run."""
    payload = json.dumps([recipe, index, row], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
