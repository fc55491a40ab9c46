"""The streaming engine: each record walks the step graph on its own, steps start when their inputs
are ready, so a slow step never holds back an independent branch or another record.

Concurrency is bounded twice: per backend (the dispatcher's slots) and in records in flight (a
window), so a million seeds do not become a million live tasks.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from factory.dispatch import Dispatcher
from factory.graph import Graph
from factory.record import Record, Rejected, StepTrace
from factory.steps import StepRunner


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


@dataclass
class StepStats:
    entered: int = 0
    ok: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    skipped: int = 0  # an upstream step dropped the record first

    def as_dict(self) -> dict[str, Any]:
        return {"in": self.entered, "ok": self.ok, "rejected": dict(sorted(self.rejected.items())),
                "failed": dict(sorted(self.failed.items())), "skipped": self.skipped}


@dataclass
class BoundStep:
    runner: StepRunner
    dispatcher: Dispatcher


ProgressHook = Callable[[str], None]


class Engine:
    def __init__(self, graph: Graph, steps: dict[str, BoundStep], window: int = 256,
                 on_step_done: ProgressHook | None = None) -> None:
        self.graph = graph
        self.steps = steps
        self.window = window
        self.on_step_done = on_step_done or (lambda name: None)
        self.stats = {s.name: StepStats() for s in graph.order}

    async def run(self, records: list[Record]) -> list[Record | Reject]:
        """Outcomes in input order, whatever order the calls finished in."""
        gate = asyncio.Semaphore(self.window)

        async def one(record: Record) -> Record | Reject:
            async with gate:
                return await self._walk(record)

        return list(await asyncio.gather(*(one(r) for r in records)))

    async def _walk(self, record: Record) -> Record | Reject:
        tasks: dict[str, asyncio.Task[Reject | StepTrace | None]] = {}
        for step in self.graph.order:  # topological: every dependency's task exists already
            deps = [tasks[d] for d in sorted(self.graph.deps[step.name])]
            tasks[step.name] = asyncio.create_task(self._step(step.name, record, deps))
        outcomes = {name: await task for name, task in tasks.items()}
        record.trace = [o for s in self.graph.order if isinstance(o := outcomes[s.name], StepTrace)]
        record.fields = {k: record.fields[k] for k in self._column_order(record)}
        # The first drop in graph order is the record's reason: deterministic whatever finished first.
        for step in self.graph.order:
            if isinstance(outcomes[step.name], Reject):
                return outcomes[step.name]
        return record

    def _column_order(self, record: Record) -> list[str]:
        written = [c for s in self.graph.order for c in s.writes]
        return [c for c in record.fields if c not in written] + [c for c in written if c in record.fields]

    async def _step(self, name: str, record: Record, deps: list[asyncio.Task]) -> Reject | StepTrace | None:
        upstream = [await d for d in deps]
        stats = self.stats[name]
        if any(isinstance(u, Reject) or u is None for u in upstream):
            stats.skipped += 1
            self.on_step_done(name)
            return None
        stats.entered += 1
        try:
            result = await self._call(name, record)
        except Exception as exc:  # a bug in a step must not lose the record: it goes to rejects
            result = Reject(record, name, "step_error", f"{type(exc).__name__}: {exc}", failed=True)
        if isinstance(result, Reject):
            (stats.failed if result.failed else stats.rejected)[result.reason] += 1
        else:
            stats.ok += 1
        self.on_step_done(name)
        return result

    async def _call(self, name: str, record: Record) -> Reject | StepTrace:
        bound = self.steps[name]
        runner, dispatcher = bound.runner, bound.dispatcher
        missing = [c for c in runner.spec.reads if c not in record.fields or record.fields[c] is None]
        if missing:
            return Reject(record, name, "missing_column", f"no value for {', '.join(missing)}")
        requests = runner.requests(record.fields)
        if isinstance(requests, Rejected):
            return Reject(record, name, requests.reason, requests.detail, requests.raw)
        completions = await asyncio.gather(*(dispatcher.complete(r) for r in requests))
        errors = [c.error for c in completions if c.error is not None]
        if errors:
            return Reject(record, name, "backend_error", errors[0], failed=True)
        parsed = runner.parse(record.fields, list(completions))
        if isinstance(parsed, Rejected):
            return Reject(record, name, parsed.reason, parsed.detail, parsed.raw)
        record.fields.update(parsed)
        return StepTrace(name, dispatcher.backend.name, dispatcher.backend.model_id,
                         [r.prompt_hash() for r in requests])


def summarize(outcomes: list[Record | Reject]) -> dict[str, Any]:
    """input = kept + rejected + failed, with counts per (step, reason)."""
    by_reason: dict[str, Counter] = defaultdict(Counter)
    kept = rejected = failed = 0
    for o in outcomes:
        if isinstance(o, Reject):
            by_reason[o.step][o.reason] += 1
            failed += o.failed
            rejected += not o.failed
        else:
            kept += 1
    assert kept + rejected + failed == len(outcomes)
    return {"input": len(outcomes), "kept": kept, "rejected": rejected, "failed": failed,
            "dropped_by_step": {s: dict(sorted(c.items())) for s, c in sorted(by_reason.items())}}
