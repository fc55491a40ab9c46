"""``factory build``: recipe -> checked graph -> engine on backends -> dataset folder."""

from __future__ import annotations

import json
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.backends import Backend, BackendSettings, backend_class
from factory.backends.pricing import Budget
from factory.cache import RequestCache, default_cache_path
from factory.card import render_card
from factory.dispatch import CallStats, Dispatcher
from factory.errors import FactoryError
from factory.executor import BoundStep, Engine, ProgressHook, Reject
from factory.graph import Graph, build_graph
from factory.recipe import BackendBlock, Recipe
from factory.recipe_loader import LoadedRecipe, load_recipe
from factory.record import Record, seed_record_id
from factory.seeds import load_seeds
from factory.steps import STEP_KINDS


@dataclass
class BuildOptions:
    limit: int | None = None
    output: Path | None = None
    seed: int | None = None
    cache_path: Path | None = None  # None: $FACTORY_CACHE_DIR or ~/.cache/factory
    use_cache: bool = True
    trust_code: bool = False  # --trust-code: allow recipe steps that import user code (module:function)
    budget_usd: float | None = None  # stop before a call could take the build's spend past this
    executor: str = "local"  # "ray": per-record stages on Ray workers (factory/ray_executor.py)
    address: str | None = None  # Ray cluster address (host:port); None starts a local Ray
    workers: int | None = None  # Ray workers (default: one per GPU for GPU backends, else per CPU)


@dataclass
class Plan:
    """A recipe that passed every check: nothing has been called yet."""

    loaded: LoadedRecipe
    graph: Graph
    records: list[Record]
    seed: int
    output: Path

    @property
    def recipe(self) -> Recipe:
        return self.loaded.recipe


@dataclass
class BuildResult:
    output: Path
    stats: dict[str, Any]
    calls: dict[str, dict[str, int]]
    elapsed_s: float
    outcomes: list[Record | Reject] = field(repr=False, default_factory=list)


def plan_build(recipe_path: str | Path, options: BuildOptions) -> Plan:
    loaded = load_recipe(recipe_path)
    check_code_refs(loaded, options.trust_code)
    rows = load_seeds(loaded, options.limit)
    columns = {c for row in rows for c in row}
    graph = build_graph(loaded, columns)
    recipe = loaded.recipe
    records = [Record(seed_record_id(recipe.name, i, row), dict(row), recipe.name)
               for i, row in enumerate(rows)]
    seed = recipe.seed if options.seed is None else options.seed
    output = options.output or Path(recipe.outputs.dir or f"datasets/{recipe.name}")
    return Plan(loaded, graph, records, seed, output)


def check_code_refs(loaded: LoadedRecipe, trust_code: bool) -> None:
    """A recipe that names user code fails before any call unless the build trusts it."""
    for i, step in enumerate(loaded.recipe.steps):
        step._recipe_dir = loaded.path.parent.resolve()
        for where, ref in step.code_refs().items():
            if not trust_code:
                raise loaded.error(("steps", i, *where.split(".")), f"{ref!r} runs code named in the "
                                   "recipe; pass --trust-code to allow it")


def open_backends(plan: Plan, stack: AsyncExitStack) -> dict[str, Backend]:
    """One backend instance per backend block the steps use; closed when the stack unwinds."""
    out: dict[str, Backend] = {}
    for key in sorted({k for s in plan.recipe.steps for k in s.backends_used()}):
        block: BackendBlock = plan.recipe.backend_block(key)
        settings = BackendSettings(block.model, block.concurrency, dict(block.options))
        try:
            backend = backend_class(block.name)(settings)
        except (ValueError, RuntimeError, OSError) as exc:
            where = "backend" if key == "default" else f"backends.{key}"
            raise FactoryError(f"{plan.loaded.path}: {where}: {exc}") from None
        stack.push_async_callback(backend.close)
        out[key] = backend
    return out


def bind_steps(plan: Plan, backends: dict[str, Backend], cache: RequestCache | None,
               budget: Budget | None = None) -> dict[str, BoundStep]:
    dispatchers = {key: Dispatcher(b, cache, plan.recipe.backend_block(key).concurrency, budget)
                   for key, b in backends.items()}
    bound = {}
    for step in plan.recipe.steps:
        params = step.params.over(plan.recipe.backend_block(step.backend).sampling(plan.seed))
        # One view per dispatcher and step: steps sharing a backend share its slots, cache and
        # in-flight calls but count their own tokens and cost.
        others = {key: dispatchers[key].for_step() for key in step.backends_used() if key != step.backend}
        runner = STEP_KINDS[step.kind](step, params)
        # A step's other backends (a separate judge or scorer) sample with their own block's params.
        runner.backend_params = {key: plan.recipe.backend_block(key).sampling(plan.seed) for key in others}
        bound[step.name] = BoundStep(runner, dispatchers[step.backend].for_step(), others)
    return bound


class BudgetExceeded(FactoryError):
    exit_code = 4


def open_cache(options: BuildOptions) -> RequestCache | None:
    return RequestCache(options.cache_path or default_cache_path()) if options.use_cache else None


async def run_build(plan: Plan, options: BuildOptions, on_step_done: ProgressHook | None = None,
                    backends: dict[str, Backend] | None = None) -> BuildResult:
    """Run the graph over every seed record and write the dataset. ``backends`` lets tests inject."""
    from factory.outputs import write_dataset

    started = time.perf_counter()
    cache = open_cache(options)
    try:
        async with AsyncExitStack() as stack:
            budget = Budget(options.budget_usd) if options.budget_usd is not None else None
            if options.executor == "ray":
                from factory.ray_executor import open_ray_engine

                engine, backends = await open_ray_engine(plan, options, stack, cache, on_step_done)
                bound = engine.steps
            else:
                backends = backends if backends is not None else open_backends(plan, stack)
                bound = bind_steps(plan, backends, cache, budget)
                concurrency = sum(plan.recipe.backend_block(k).concurrency for k in backends)
                engine = Engine(plan.graph, bound, window=max(64, 4 * concurrency),
                                on_step_done=on_step_done, seed=plan.seed)
            outcomes = await engine.run(plan.records)
            calls = _calls(plan, bound)
        if budget is not None and budget.exhausted:
            raise BudgetExceeded(
                f"budget reached: ${budget.spent:.4f} spent of --budget-usd {budget.cap:g}; "
                f"{budget.refused} call(s) not made. Finished calls are cached: rerun with a "
                "higher --budget-usd to resume")
        qc = await _run_qc(plan, options, outcomes) if plan.recipe.qc else None
        if qc is not None:
            outcomes = qc[0]  # QC drops become rejects, so the totals below include them
        totals = engine.totals(outcomes, len(plan.records))
        stats = {"recipe": plan.recipe.name, "seed": plan.seed, "totals": totals,
                 "steps": {name: s.as_dict() for name, s in engine.stats.items()},
                 "requests": {k: v["made"] + v["cached"] for k, v in calls.items()}}
        if qc is not None:
            stats["qc"] = qc[1]
        kept = [o for o in outcomes if isinstance(o, Record)]
        rejects = [o for o in outcomes if isinstance(o, Reject)]
        models = {k: b.model_id for k, b in backends.items()}
        card = render_card(plan.recipe, plan.loaded.path, plan.graph, stats, models)
        output = plan.output
        if qc is not None:
            from filters.build_qc import failed_gate_dir, qc_card

            card += qc_card(stats["qc"])
            if stats["qc"]["gate_failed"]:  # keep everything made, beside (not over) the good dataset
                output = failed_gate_dir(plan.output)
        splits = write_dataset(output, plan.recipe.outputs.splits, kept, rejects, stats, card)
        if output != plan.output:
            from filters.base import QCGateFailed

            raise QCGateFailed(f"{stats['qc']['gate_failed']}; build stopped, what was generated is in "
                               f"{output} (LLM calls are cached)")
        stats["splits"] = splits
        elapsed = time.perf_counter() - started
        # Run-specific facts stay out of stats.json so that the dataset files are reproducible.
        step_calls = {name: _step_calls(b) for name, b in bound.items()}
        (plan.output / "run.json").write_text(json.dumps(
            {"calls": calls, "step_calls": step_calls, "elapsed_s": round(elapsed, 3)}, indent=2) + "\n")
        return BuildResult(plan.output, stats, calls, elapsed, outcomes)
    finally:
        if cache is not None:
            cache.close()


async def _run_qc(plan: Plan, options: BuildOptions,
                  outcomes: list[Record | Reject]) -> tuple[list[Record | Reject], dict[str, Any]]:
    """The recipe's QC chain on the kept records, in a thread (its scorers run their own loops)."""
    import asyncio

    from filters.build_qc import merge_outcomes, run_recipe_qc

    kept = [o for o in outcomes if isinstance(o, Record)]
    seeds = load_seeds(plan.loaded, options.limit)
    encode = None
    if options.executor == "ray":  # embedding batches as Ray tasks; the FAISS search stays here
        from factory.ray_executor import encode_remote as encode
    result = await asyncio.to_thread(run_recipe_qc, plan.recipe.qc, kept, seeds, encode)
    return merge_outcomes(outcomes, result), result.summary(len(kept))


def _calls(plan: Plan, bound: dict[str, BoundStep]) -> dict[str, dict[str, Any]]:
    """Call counts per backend block (the sum of its steps), with the backend's own counters."""
    totals: dict[str, CallStats] = {}
    backends: dict[str, Backend] = {}
    for step in plan.recipe.steps:
        for key in step.backends_used():
            dispatcher = bound[step.name].dispatcher_for(None if key == step.backend else key)
            totals.setdefault(key, CallStats()).add(dispatcher.stats)
            backends[key] = dispatcher.backend
    return {k: {**backends[k].counters(), **t.as_dict()} for k, t in totals.items()}


def _step_calls(bound: BoundStep) -> dict[str, Any]:
    """One step's calls over all the backends it uses (its own and any judge or scorer)."""
    total = CallStats()
    for dispatcher in [bound.dispatcher, *bound.others.values()]:
        total.add(dispatcher.stats)
    return total.as_dict()
