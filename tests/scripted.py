"""A step context whose calls go to the fake backend and are recorded, for method-step tests."""

from __future__ import annotations

import asyncio
from typing import Any

from factory.llm.backends.base import BackendSettings
from factory.llm.backends.fake import FakeBackend
from factory.llm.request import Request
from factory.steps.base import StepContext


class Scripted:
    """The fake backend behind ``ctx.ask``; ``sent`` holds (backend key, request) in call order."""

    def __init__(self, rules: list[dict[str, Any]], default: str = "Default reply {hash}.") -> None:
        self.fake = FakeBackend(BackendSettings(options={"rules": rules, "default": default}))
        self.sent: list[tuple[str | None, Request]] = []

    def context(self, record_id: str = "r0", step: str = "s", seed: int = 0) -> StepContext:
        async def ask(requests: list[Request], backend: str | None) -> list:
            self.sent += [(backend, r) for r in requests]
            return await self.fake.generate(requests)
        return StepContext(record_id, step, seed, ask)

    def run(self, runner: Any, fields: dict[str, Any], **ctx: Any) -> tuple[Any, StepContext]:
        context = self.context(**ctx)
        return asyncio.run(runner.run(fields, context)), context

    def last_user(self, i: int) -> str:
        return next(c for r, c in reversed(self.sent[i][1].messages) if r == "user")
