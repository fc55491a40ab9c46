"""The method-step contract: ``requests(fields)`` to ask, ``parse(fields, completions)`` to read.

A step never raises on bad model output: ``parse`` returns ``Rejected(reason)`` and the raw text
travels with the reject. The engine owns concurrency, caching, lineage and bookkeeping.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from factory.backends.base import Completion, Request, SamplingParams
from factory.record import Rejected


class StepRunner(ABC):
    def __init__(self, spec: Any, params: SamplingParams) -> None:
        self.spec = spec
        self.params = params  # the backend's params with the step's overrides applied

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    def requests(self, fields: dict[str, Any]) -> list[Request] | Rejected:
        """The LLM calls this record needs (or a rejection that needs no call)."""

    @abstractmethod
    def parse(self, fields: dict[str, Any], completions: list[Completion]) -> dict[str, Any] | Rejected:
        """New columns from the completions, one per request in order."""


def render(template: str, fields: dict[str, Any]) -> str:
    return template.format_map({k: v if isinstance(v, str) else str(v) for k, v in fields.items()})
