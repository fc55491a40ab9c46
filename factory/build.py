"""``factory build``: recipe -> checked graph -> engine on backends -> dataset folder."""

from __future__ import annotations

import json
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.core.errors import BudgetExceeded
from factory.core.record import Record, Reject
from factory.engine.executor import BoundStep, Engine, ProgressHook
from factory.engine.plan import BuildOptions, Plan
from factory.engine.wiring import bind_steps, open_backends, open_cache
from factory.llm.backends import Backend
from factory.llm.dispatch import CallStats
from factory.llm.pricing import Budget
from factory.output.card import render_card
from factory.recipe.seeds import load_seeds


@dataclass
class BuildResult:
    output: Path
    stats: dict[str, Any]
    calls: dict[str, dict[str, int]]
    elapsed_s: float
    outcomes: list[Record | Reject] = field(repr=False, default_factory=list)


async def run_build(plan: Plan, options: BuildOptions, on_step_done: ProgressHook | None = None,
                    backends: dict[str, Backend] | None = None) -> BuildResult:
    """Run the graph over every seed record and write the dataset. ``backends`` lets tests inject."""
    from factory.output.writer import write_dataset

    started = time.perf_counter()
    cache = open_cache(options)
    try:
        async with AsyncExitStack() as stack:
            budget = Budget(options.budget_usd) if options.budget_usd is not None else None
            if options.executor == "ray":
                from factory.engine.ray_executor import open_ray_engine

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
        sections = [bound[s.name].runner.card_section(engine.stats[s.name].figures) for s in plan.graph.order]
        card = render_card(plan.recipe, plan.loaded.path, plan.graph, stats, models,
                           [s for s in sections if s])
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
        from factory.engine.ray_executor import encode_remote as encode
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
