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

from factory.core.errors import FactoryError, StepCrashed
from factory.core.record import Record, Reject, Rejected, StepTrace
from factory.llm.dispatch import Dispatcher
from factory.llm.request import Completion, Request
from factory.recipe.graph import Graph
from factory.recipe.spec import Step
from factory.steps import SetRunner, StepContext, StepRunner
from factory.steps.base import BackendFailure, child_id


@dataclass
class StepStats:
    entered: int = 0
    ok: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    skipped: int = 0  # an upstream step dropped the record first
    created: int = 0  # records this step made (fan-out children, set-step outputs)
    consumed: int = 0  # input records a set step used up
    figures: Counter = field(default_factory=Counter)  # step-specific counts (ctx.count)
    # Derived from the summed figures at the end (integers in, so the rates never depend on order).
    rates: Callable[[Counter], dict[str, float]] = lambda figures: {}

    def as_dict(self) -> dict[str, Any]:
        out = {"in": self.entered, "ok": self.ok, "rejected": dict(sorted(self.rejected.items())),
               "failed": dict(sorted(self.failed.items())), "skipped": self.skipped}
        if self.created or self.consumed:
            out.update(created=self.created, consumed=self.consumed)
        if self.figures:
            out["figures"] = dict(sorted(self.figures.items()))
            rates = self.rates(self.figures)
            if rates:
                out["rates"] = {k: round(v, 4) for k, v in sorted(rates.items())}
        return out


@dataclass
class BoundStep:
    runner: StepRunner
    dispatcher: Dispatcher
    others: dict[str, Dispatcher] = field(default_factory=dict)  # extra backends, by recipe key

    def dispatcher_for(self, key: str | None) -> Dispatcher:
        return self.dispatcher if key is None else self.others[key]


ProgressHook = Callable[[str], None]


@dataclass
class FanOut:
    """A step's result that replaces its record by children (made once the stage is done)."""

    children: list[dict[str, Any]]
    trace: StepTrace


@dataclass
class Stage:
    """Steps that run per record without a barrier; a set step or a fan-out ends a stage."""

    steps: list[Step]
    is_set: bool = False


def stages_of(graph: Graph, steps: dict[str, BoundStep]) -> list[Stage]:
    out: list[Stage] = [Stage([])]
    for step in graph.order:
        runner = steps[step.name].runner
        if isinstance(runner, SetRunner):
            out += [Stage([step], is_set=True), Stage([])]
            continue
        if runner.needs_all_inputs() and out[-1].steps:  # its prepare() sees every record first
            out.append(Stage([]))
        out[-1].steps.append(step)
        if runner.fans_out:
            out.append(Stage([]))
    return [s for s in out if s.steps]


class Engine:
    def __init__(self, graph: Graph, steps: dict[str, BoundStep], window: int = 256,
                 on_step_done: ProgressHook | None = None, seed: int = 0) -> None:
        self.graph = graph
        self.steps = steps
        self.window = window
        self.seed = seed
        self.on_step_done = on_step_done or (lambda name: None)
        self.stats = {s.name: StepStats(rates=getattr(steps[s.name].runner, "rates", StepStats.rates))
                      for s in graph.order}
        self.stages = stages_of(graph, steps)

    async def run(self, records: list[Record]) -> list[Record | Reject]:
        """Outcomes in input order (children right after where their parent was; records a set step
        made after all inputs), whatever order the calls finished in."""
        position: dict[int, tuple[int, ...]] = {id(r): (i,) for i, r in enumerate(records)}
        done: list[Record | Reject] = []
        current = records
        for stage in self.stages:
            if stage.is_set:
                current, rejects = await self._set_stage(stage.steps[0], current)
                first = 1 + max((p[0] for p in position.values()), default=-1)
                made = [r for r in current + [j.record for j in rejects] if id(r) not in position]
                position.update({id(r): (first + k,) for k, r in enumerate(made)})
                done += rejects
                continue
            await self._prepare(stage.steps[0], current)
            per_record = await self.walk_stage(stage, current)
            for record, outs in zip(current, per_record):
                for k, o in enumerate(outs):  # children sit right after their parent
                    child = o.record if isinstance(o, Reject) else o
                    # By id, not identity: a remote executor hands back copies of the same record.
                    position[id(child)] = position[id(record)] + ((k,) if child.id != record.id else ())
            walked = [o for outs in per_record for o in outs]
            done += [o for o in walked if isinstance(o, Reject)]
            current = [o for o in walked if isinstance(o, Record)]
        return sorted(done + current,
                      key=lambda o: position[id(o.record if isinstance(o, Reject) else o)])

    async def walk_stage(self, stage: Stage, records: list[Record]) -> list[list[Record | Reject]]:
        """Every record through one per-record stage: its outcomes (itself, children or a reject),
        one list per input record in input order. The Ray executor overrides this to shard."""
        gate = asyncio.Semaphore(self.window)

        async def one(record: Record) -> list[Record | Reject]:
            async with gate:
                return await self._walk(record, stage)

        return list(await asyncio.gather(*(one(r) for r in records)))

    def totals(self, outcomes: list[Record | Reject], input_count: int) -> dict[str, Any]:
        created = sum(s.created for s in self.stats.values())
        consumed = sum(s.consumed for s in self.stats.values())
        return summarize(outcomes, input_count, created, consumed)

    async def _walk(self, record: Record, stage: Stage) -> list[Record | Reject]:
        names = {s.name for s in stage.steps}
        tasks: dict[str, asyncio.Task[Reject | StepTrace | FanOut | None]] = {}
        for step in stage.steps:  # topological: every dependency's task exists already
            deps = [tasks[d] for d in sorted(self.graph.deps[step.name] & names)]
            tasks[step.name] = asyncio.create_task(self._step(step.name, record, deps))
        outcomes = {name: await task for name, task in tasks.items()}
        traces = [o.trace if isinstance(o, FanOut) else o for s in stage.steps
                  if isinstance(o := outcomes[s.name], (StepTrace, FanOut))]
        record.trace = record.trace + traces
        # Column order from the graph, not from which call finished first: rejects carry the fields.
        record.fields = {k: record.fields[k] for k in self._column_order(record)}
        # The first drop in graph order is the record's reason: deterministic whatever finished first.
        for step in stage.steps:
            if isinstance(outcomes[step.name], Reject):
                return [outcomes[step.name]]
        last = outcomes[stage.steps[-1].name]
        if not isinstance(last, FanOut):
            return [record]
        children = []
        for i, fields in enumerate(last.children):
            child = Record(child_id(record.id, last.trace.step, i), {**record.fields, **fields},
                           record.recipe, [record.id], list(record.trace))
            child.fields = {k: child.fields[k] for k in self._column_order(child)}
            children.append(child)
        return children

    def _column_order(self, record: Record) -> list[str]:
        written = [c for s in self.graph.order for c in s.writes]
        return [c for c in record.fields if c not in written] + [c for c in written if c in record.fields]

    async def _step(self, name: str, record: Record, deps: list[asyncio.Task]) -> Any:
        upstream = [await d for d in deps]
        stats = self.stats[name]
        if any(isinstance(u, Reject) or u is None for u in upstream):
            stats.skipped += 1
            self.on_step_done(name)
            return None
        stats.entered += 1
        try:
            result = await self._call(name, record)
        except BackendFailure as exc:  # retried on the next run: the failure was not cached
            result = Reject(record, name, "backend_error", str(exc), failed=True)
        except Exception as exc:  # steps return Rejected for bad model output: anything raised is a bug
            raise StepCrashed(name, record.id, exc) from exc
        if isinstance(result, Reject):
            (stats.failed if result.failed else stats.rejected)[result.reason] += 1
        else:
            stats.ok += 1
        self.on_step_done(name)
        return result

    def _context(self, name: str, record_id: str) -> StepContext:
        bound = self.steps[name]

        async def ask(requests: list[Request], backend: str | None) -> list[Completion]:
            dispatcher = bound.dispatcher_for(backend)
            return list(await asyncio.gather(*(dispatcher.complete(r) for r in requests)))

        return StepContext(record_id, name, self.seed, ask)

    async def _call(self, name: str, record: Record) -> Reject | StepTrace | FanOut:
        bound = self.steps[name]
        runner = bound.runner
        missing = [c for c in runner.spec.reads if c not in record.fields or record.fields[c] is None]
        if missing:
            return Reject(record, name, "missing_column", f"no value for {', '.join(missing)}")
        ctx = self._context(name, record.id)
        result = await runner.run(record.fields, ctx)
        self.stats[name].figures.update(ctx.counters)
        if isinstance(result, Rejected):
            return Reject(record, name, result.reason, result.detail, result.raw)
        trace = StepTrace(name, bound.dispatcher.backend.name, bound.dispatcher.backend.model_id,
                          ctx.prompt_hashes)
        if isinstance(result, list):  # fan-out: one child record per field dict
            if not runner.fans_out:
                raise TypeError(f"step {name} returned several records but does not fan out")
            self.stats[name].created += len(result)
            self.stats[name].consumed += 1
            return FanOut(result, trace)
        record.fields.update(result)
        return trace

    async def _prepare(self, step: Step, records: list[Record]) -> None:
        """A step that needs all its inputs first (a judge's gate) sees them before it runs."""
        runner = self.steps[step.name].runner
        if not runner.needs_all_inputs():
            return
        ctx = self._context(step.name, "")
        try:
            await runner.prepare(records, ctx)
        except FactoryError:
            raise
        except Exception as exc:
            raise StepCrashed(step.name, "", exc) from exc
        self.stats[step.name].figures.update(ctx.counters)

    async def _set_stage(self, step: Step, records: list[Record]) -> tuple[list[Record], list[Reject]]:
        bound = self.steps[step.name]
        runner = bound.runner
        assert isinstance(runner, SetRunner)
        stats = self.stats[step.name]
        stats.entered += len(records)
        ctx = self._context(step.name, "")
        try:
            outcome = await runner.run_set(records, ctx)
        except BackendFailure as exc:  # nothing is lost: every input fails, the rerun resumes from cache
            stats.failed["backend_error"] += len(records)
            self.on_step_done(step.name)
            return [], [Reject(r, step.name, "backend_error", f"BackendFailure: {exc}", failed=True)
                        for r in records]
        except Exception as exc:
            raise StepCrashed(step.name, "", exc) from exc
        stats.figures.update(ctx.counters)
        trace = StepTrace(step.name, bound.dispatcher.backend.name, bound.dispatcher.backend.model_id,
                          sorted(set(ctx.prompt_hashes)))
        inputs = {id(r) for r in records}
        for record in outcome.records:
            stats.created += id(record) not in inputs
            record.trace = record.trace + [trace]
            record.fields = {k: record.fields[k] for k in self._column_order(record)}
        stats.ok = len(outcome.records)
        stats.consumed += len(outcome.consumed)
        rejects = []
        for record, why in outcome.rejects:
            stats.created += id(record) not in inputs
            stats.rejected[why.reason] += 1
            rejects.append(Reject(record, step.name, why.reason, why.detail, why.raw))
        self.on_step_done(step.name)
        return outcome.records, rejects


def summarize(outcomes: list[Record | Reject], input_count: int | None = None, created: int = 0,
              consumed: int = 0) -> dict[str, Any]:
    """input + created = kept + rejected + failed + consumed, with counts per (step, reason)."""
    by_reason: dict[str, Counter] = defaultdict(Counter)
    kept = rejected = failed = 0
    for o in outcomes:
        if isinstance(o, Reject):
            by_reason[o.step][o.reason] += 1
            failed += o.failed
            rejected += not o.failed
        else:
            kept += 1
    input_count = len(outcomes) - created + consumed if input_count is None else input_count
    if input_count + created != kept + rejected + failed + consumed:
        raise AssertionError(f"records lost: {input_count} in + {created} created != {kept} kept + "
                             f"{rejected} rejected + {failed} failed + {consumed} consumed")
    out = {"input": input_count, "kept": kept, "rejected": rejected, "failed": failed,
           "dropped_by_step": {s: dict(sorted(c.items())) for s, c in sorted(by_reason.items())}}
    if created or consumed:
        out.update(created=created, consumed=consumed)
    return out
