"""The streaming engine: each record walks the step graph on its own, steps start when their inputs
are ready, so a slow step never holds back an independent branch or another record.

Concurrency is bounded twice: per backend (the dispatcher's slots) and in records in flight (a
window): seeds are pulled from a lazy iterator as records finish, and outcomes come out in input
order through a small reorder buffer, so a million seeds never become a million live tasks or a
million records in memory. Set-level steps (barriers) need every record: a graph with one collects
the set first.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from typing import Any

from factory.core.errors import FactoryError, StepCrashed
from factory.core.record import Record, Reject, Rejected, StepTrace
from factory.engine.tally import summarize
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
    prepared: bool = False  # its first step's ``prepare`` sees every record first (a judge's gate)


def parts_of(stages: list[Stage]) -> list[list[Stage]]:
    """Stages grouped for walking: runs of per-record stages, and each set stage alone."""
    parts: list[list[Stage]] = []
    for stage in stages:
        if stage.is_set or stage.prepared or not parts or parts[-1][0].is_set:
            parts.append([stage])
        else:
            parts[-1].append(stage)
    return parts


def stages_of(graph: Graph, steps: dict[str, BoundStep]) -> list[Stage]:
    out: list[Stage] = [Stage([])]
    for step in graph.order:
        runner = steps[step.name].runner
        if isinstance(runner, SetRunner):
            out += [Stage([step], is_set=True), Stage([])]
            continue
        if runner.needs_all_inputs():  # its prepare() sees every record first: a stage of its own
            out.append(Stage([], prepared=True))
        out[-1].steps.append(step)
        if runner.fans_out:
            out.append(Stage([]))
    return [s for s in out if s.steps]


class Engine:
    def __init__(self, graph: Graph, steps: dict[str, BoundStep], window: int = 256,
                 on_step_done: ProgressHook | None = None, seed: int = 0) -> None:
        self.graph = graph
        self.steps = steps
        self.window = window  # seed records in flight at once
        self.held = 4 * window  # ...and at most this many between the oldest not yet emitted and the newest
        self.seed = seed
        self.on_step_done = on_step_done or (lambda name: None)
        self.stats = {s.name: StepStats(rates=getattr(steps[s.name].runner, "rates", StepStats.rates))
                      for s in graph.order}
        self.stages = stages_of(graph, steps)
        self.parts = parts_of(self.stages)
        self.inputs = 0  # seed records pulled so far

    async def run(self, records: Iterable[Record]) -> list[Record | Reject]:
        """``stream`` collected into a list."""
        return [o async for o in self.stream(records)]

    async def stream(self, records: Iterable[Record],
                     count: int | None = None) -> AsyncIterator[Record | Reject]:
        """Outcomes in input order (children right after where their parent was; records a set step
        made after all inputs), whatever order the calls finished in.

        Per-record stages stream: seeds are pulled lazily, at most ``window`` in flight. A set step
        needs the whole set, so a graph with one collects every record first (and sorts at the end).
        ``count``: how many records there are, when known (a Ray executor sizes its chunks by it).
        """
        if count is None and isinstance(records, Sized):
            count = len(records)
        records = self._counted(records)
        if not self.parts:
            for record in records:
                yield record
        elif len(self.parts) == 1 and not (self.parts[0][0].is_set or self.parts[0][0].prepared):
            async for outs in self.walk(self.parts[0], records, count):
                for outcome in outs:
                    yield outcome
        else:
            for outcome in await self._materialized(list(records)):
                yield outcome

    def _counted(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.inputs += 1
            yield record

    async def _materialized(self, records: list[Record]) -> list[Record | Reject]:
        """Every part over the whole set, each outcome with a position key, sorted at the end."""
        current: list[tuple[tuple[int, ...], Record]] = [((i,), r) for i, r in enumerate(records)]
        done: list[tuple[tuple[int, ...], Record | Reject]] = []
        top = len(records)  # records a set step makes go after every input
        for part in self.parts:
            if part[0].is_set:
                position = {id(r): p for p, r in current}
                kept, rejects = await self._set_stage(part[0].steps[0], [r for _, r in current])
                made = [r for r in kept + [j.record for j in rejects] if id(r) not in position]
                position.update({id(r): (top + k,) for k, r in enumerate(made)})
                top += len(made)
                done += [(position[id(j.record)], j) for j in rejects]
                current = [(position[id(r)], r) for r in kept]
                continue
            if part[0].prepared:  # e.g. a judge's gate: measured on every input before it decides any
                await self._prepare(part[0].steps[0], [r for _, r in current])
            walked = await self.walk_records(part, [r for _, r in current])
            following: list[tuple[tuple[int, ...], Record]] = []
            for (where, record), outs in zip(current, walked):
                for k, o in enumerate(outs):  # children sit right after where their parent was
                    same = len(outs) == 1 and (o.record if isinstance(o, Reject) else o).id == record.id
                    at = where if same else where + (k,)
                    if isinstance(o, Reject):
                        done.append((at, o))
                    else:
                        following.append((at, o))
            current = following
        return [o for _, o in sorted(done + current, key=lambda item: item[0])]

    async def walk_records(self, stages: list[Stage], records: list[Record]) -> list[list[Record | Reject]]:
        """``walk`` over a list, collected: one outcome list per input record, in input order."""
        return [outs async for outs in self.walk(stages, records, len(records))]

    async def walk(self, stages: list[Stage], records: Iterable[Record],
                   count: int | None = None) -> AsyncIterator[list[Record | Reject]]:
        """Every record through consecutive per-record stages: its outcomes (itself, children or a
        reject), one list per input record, in input order. At most ``window`` records are in flight;
        a slow record holds back only the emission of the ones after it (up to ``held`` of them).
        ``count`` is how many records there are, when known. The Ray executor overrides this."""
        source = iter(records)
        queue: deque[asyncio.Task[list[Record | Reject]]] = deque()
        running = 0
        wake = asyncio.Event()
        crashed: list[BaseException] = []  # a step that raised stops the build now, not in turn

        def finished(task: asyncio.Task) -> None:
            nonlocal running
            running -= 1
            if not task.cancelled() and task.exception() is not None:
                crashed.append(task.exception())
            wake.set()

        more = True
        try:
            while True:
                while more and running < self.window and len(queue) < self.held:
                    record = next(source, None)
                    if record is None:
                        more = False
                        break
                    task = asyncio.ensure_future(self._walk_chain(record, stages))
                    task.add_done_callback(finished)
                    running += 1
                    queue.append(task)
                if crashed:
                    raise crashed[0]
                if not queue:
                    return
                if queue[0].done():
                    yield queue.popleft().result()
                    continue
                wake.clear()
                await wake.wait()
        finally:
            for task in queue:
                task.cancel()

    async def _walk_chain(self, record: Record, stages: list[Stage]) -> list[Record | Reject]:
        """One record through ``stages``; a fan-out's children walk the rest side by side."""
        outs = await self._walk(record, stages[0])
        if len(stages) == 1:
            return outs
        rest = stages[1:]
        if len(outs) == 1:
            return await self._walk_chain(outs[0], rest) if isinstance(outs[0], Record) else outs
        children = [self._walk_chain(o, rest) for o in outs if isinstance(o, Record)]
        walked = iter(await asyncio.gather(*children))
        return [x for o in outs for x in (next(walked) if isinstance(o, Record) else [o])]

    def totals(self, outcomes: Iterable[Record | Reject], input_count: int) -> dict[str, Any]:
        created, consumed = self.created_consumed()
        return summarize(outcomes, input_count, created, consumed)

    def created_consumed(self) -> tuple[int, int]:
        return (sum(s.created for s in self.stats.values()), sum(s.consumed for s in self.stats.values()))

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
            if len(requests) == 1:  # the common case: no task for a gather of one
                return [await dispatcher.complete(requests[0])]
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
        backend = bound.dispatcher.backend
        # A code-only step (constrain) names no backend or model in the lineage: none answered it.
        trace = StepTrace(name, "none", "none", []) if runner.local else \
            StepTrace(name, backend.name, backend.model_id, ctx.prompt_hashes)
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
