"""Layer 8, ``factory build``: plan -> engine on backends -> QC chain -> dataset folder, and
``run.json`` (this run's calls and time, kept out of the reproducible files).

Without a QC chain or a review gate the engine's outcomes stream straight into the writer: the
records are never all in memory. QC and review need the whole set, so then they are collected.

Every model call of a build (steps and QC judges) goes through one LLM session
(``factory.llm.session``): one cache, one ``--budget-usd``, one set of counts."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.core.errors import BudgetExceeded
from factory.core.record import Record, Reject
from factory.engine.executor import BoundStep, Engine, ProgressHook
from factory.engine.plan import BuildOptions, Plan
from factory.engine.sampling_check import check_sampling
from factory.engine.tally import Tally
from factory.engine.wiring import bind_steps, draft_samplers, open_backends, open_session
from factory.llm.backends import Backend
from factory.llm.dispatch import CallStats
from factory.llm.pricing import Budget
from factory.llm.session import LLMSession
from factory.output.card import render_card, review_card


@dataclass
class BuildResult:
    output: Path
    stats: dict[str, Any]
    calls: dict[str, dict[str, int]]
    elapsed_s: float


@dataclass
class Stages:
    """What ran after the engine: its outcomes (none kept when they streamed into ``writer``), and
    the QC and review results if any."""

    outcomes: list[Record | Reject]
    writer: Any = None  # a DatasetWriter that already holds every outcome
    tally: Tally = field(default_factory=Tally)
    qc: tuple[list[Record | Reject], dict[str, Any], Any] | None = None
    review: Any = None
    not_sent: dict[str, dict[str, str]] = field(default_factory=dict)
    diversity: Any = None  # a DiversityTally of the kept records (filters.diversity)


async def run_build(plan: Plan, options: BuildOptions, on_step_done: ProgressHook | None = None,
                    backends: dict[str, Backend] | None = None) -> BuildResult:
    """Run the graph over every seed record and write the dataset. ``backends`` lets tests inject."""
    started = time.perf_counter()
    stages = Stages([])
    try:
        return await _build(plan, options, on_step_done, backends, started, stages)
    except BaseException:
        if stages.writer is not None:  # nothing half-written moves into place
            stages.writer.abort()
        raise


async def _build(plan: Plan, options: BuildOptions, on_step_done: ProgressHook | None,
                 backends: dict[str, Backend] | None, started: float, stages: Stages) -> BuildResult:
    async with open_session(options) as llm:  # closes the cache and what it opened
        await draft_samplers(plan, llm)  # topic trees and personas, before any step
        stages.diversity = _diversity_tally(plan)
        async with AsyncExitStack() as stack:
            not_sent: dict[str, dict[str, str]] = {}
            if options.executor == "ray":
                from factory.engine.ray_executor import open_ray_engine

                engine, backends = await open_ray_engine(plan, options, llm, stack, on_step_done)
                bound = engine.steps
            else:
                for key, backend in (backends or {}).items():  # injected: the caller closes them
                    llm.adopt(plan.recipe.backend_block(key), backend)
                backends = open_backends(plan, llm)
                not_sent = check_sampling(plan, backends)  # before any call: a refused recipe costs nothing
                bound = bind_steps(plan, backends, llm)
                concurrency = sum(plan.recipe.backend_block(k).concurrency for k in backends)
                engine = Engine(plan.graph, bound, window=max(64, 4 * concurrency),
                                on_step_done=on_step_done, seed=plan.seed)
            stages.not_sent = not_sent
            outcomes = engine.stream(plan.seed_records(), plan.seed_count)
            if plan.recipe.qc or plan.recipe.review is not None:  # they need the whole set
                stages.outcomes = [o async for o in outcomes]
            else:
                await _stream_into_writer(plan, outcomes, stages)
        # Free the generation models before QC loads its own, but for those a QC judge calls.
        await llm.close_backends(keep=_qc_judge_blocks(plan))
        _check_budget(llm.budget)
        outcomes = stages.outcomes
        entered = [o for o in outcomes if isinstance(o, Record)]
        if plan.recipe.qc:
            stages.qc = await _run_qc(plan, options, outcomes, llm)
            _check_budget(llm.budget)  # a QC judge refused by the budget stops the build the same way
            stages.outcomes = stages.qc[0]  # QC drops become rejects, so the totals include them
        stages.review = _run_review(plan, entered, stages.outcomes, stages.qc)
        if stages.review is not None:
            stages.outcomes = stages.review.outcomes  # rows people dropped become rejects too
        return _write(plan, engine, stages, llm, bound, backends, started)


async def _stream_into_writer(plan: Plan, outcomes: AsyncIterator[Record | Reject], stages: Stages) -> None:
    """Each outcome to the split files as it comes, counted on the way."""
    from factory.output.writer import DatasetWriter

    stages.writer = DatasetWriter(plan.output, plan.recipe.outputs.splits)
    async for outcome in outcomes:
        stages.tally.add(outcome)
        stages.writer.add(outcome)
        if isinstance(outcome, Record):
            stages.diversity.add(outcome.fields)


def _qc_judge_blocks(plan: Plan) -> list[Any]:
    if not plan.recipe.qc:
        return []
    from filters.build_qc import judge_blocks

    return judge_blocks(plan.recipe.qc)


def _check_budget(budget: Budget | None) -> None:
    if budget is not None and budget.exhausted:
        raise BudgetExceeded(
            f"budget reached: ${budget.spent:.4f} spent of --budget-usd {budget.cap:g}; "
            f"{budget.refused} call(s) not made. Finished calls are cached: rerun with a "
            "higher --budget-usd to resume")


def _write(plan: Plan, engine: Engine, stages: Stages, llm: LLMSession, bound: dict[str, BoundStep],
           backends: dict[str, Backend], started: float) -> BuildResult:
    """Stats, card, splits, and ``run.json`` (every model call of the build, by user)."""
    from factory.output.writer import write_dataset

    calls = llm.calls()
    outcomes, qc, review = stages.outcomes, stages.qc, stages.review
    if stages.writer is None:
        for outcome in outcomes:
            stages.tally.add(outcome)
            if isinstance(outcome, Record):
                stages.diversity.add(outcome.fields)
    totals = stages.tally.totals(engine.inputs, *engine.created_consumed())
    stats = {"recipe": plan.recipe.name, "seed": plan.seed, "totals": totals,
             "steps": {name: s.as_dict() for name, s in engine.stats.items()},
             "requests": {k: v["made"] + v["cached"] for k, v in calls.items()}}
    if stages.not_sent:
        stats["sampling_not_sent"] = stages.not_sent
    judges = {name: m for name, b in bound.items() if (m := b.runner.measurement()) is not None}
    if judges:  # every judge's mode and, when gated, its measured agreement
        stats["judges"] = judges
    if qc is not None:
        stats["qc"] = qc[1]
    if review is not None:
        stats["review"] = review.stats
    stats.update(_diversity_stats(plan, stages.diversity))
    models = {k: b.model_id for k, b in backends.items()}
    sections = [bound[s.name].runner.card_section(engine.stats[s.name].figures) for s in plan.graph.order]
    card = render_card(plan.recipe, plan.loaded.path, plan.graph, stats, models, [s for s in sections if s])
    output = plan.output
    if qc is not None:
        from filters.build_qc import failed_gate_dir, qc_card

        card += qc_card(stats["qc"])
        if stats["qc"]["gate_failed"]:  # keep everything made, beside (not over) the good dataset
            output = failed_gate_dir(plan.output)
    if review is not None:
        card += review_card(review.stats)
    if stages.writer is not None:  # every outcome is in its files already
        splits = stages.writer.finish(stats, card)
        stages.writer = None
    else:
        kept = [o for o in outcomes if isinstance(o, Record)]
        rejects = [o for o in outcomes if isinstance(o, Reject)]
        splits = write_dataset(output, plan.recipe.outputs.splits, kept, rejects, stats, card,
                               review.files if review is not None else None)
    if review is not None and review.stop is not None:
        raise review.stop  # the dataset and the review queue are written: people review, then rebuild
    if output != plan.output:
        from filters.base import QCGateFailed

        raise QCGateFailed(f"{stats['qc']['gate_failed']}; build stopped, what was generated is in "
                           f"{output} (LLM calls are cached)")
    stats["splits"] = splits
    elapsed = time.perf_counter() - started
    # Run-specific facts stay out of stats.json so that the dataset files are reproducible.
    step_calls = {name: _step_calls(b) for name, b in bound.items()}
    (plan.output / "run.json").write_text(json.dumps(
        {"calls": calls, "step_calls": step_calls, "total_calls": llm.stats().as_dict(),
         "elapsed_s": round(elapsed, 3)}, indent=2) + "\n")
    return BuildResult(plan.output, stats, calls, elapsed)


async def _run_qc(plan: Plan, options: BuildOptions, outcomes: list[Record | Reject],
                  llm: LLMSession) -> tuple[list[Record | Reject], dict[str, Any], Any]:
    """The recipe's QC chain on the kept records, in a thread; its model calls (judges) go through
    the build's session, on this loop."""
    import asyncio

    from filters.build_qc import merge_outcomes, run_recipe_qc

    kept = [o for o in outcomes if isinstance(o, Record)]
    seeds = list(plan.seed_rows())
    encode = None
    if options.executor == "ray":  # embedding batches as Ray tasks; the FAISS search stays here
        from factory.engine.ray_executor import encode_remote as encode
    result = await asyncio.to_thread(run_recipe_qc, plan.recipe.qc, kept, seeds, encode, llm)
    return merge_outcomes(outcomes, result), result.summary(len(kept)), result


def _run_review(plan: Plan, entered: list[Record], outcomes: list[Record | Reject],
                qc: tuple[Any, dict[str, Any], Any] | None) -> Any:
    """The recipe's review gate (filters/build_review.py); None without one or after a failed QC gate."""
    if plan.recipe.review is None or (qc is not None and qc[1]["gate_failed"]):
        return None
    from filters.build_review import run_review_stage

    return run_review_stage(plan.recipe, plan.output, entered, outcomes, qc[2] if qc else None, plan.seed)


def _diversity_tally(plan: Plan) -> Any:
    """A sample of each split's prompt and answer texts, and the sampler axes' values, as records
    are kept (``filters.diversity``; out of the hot path: a few dict lookups per record)."""
    from filters.diversity import DiversityTally

    columns, maybe = [], []
    for spec in plan.recipe.outputs.splits.values():
        if spec.format != "columns":
            columns += [spec.prompt, spec.chosen if spec.format == "dpo" else spec.completion]
        maybe += spec.columns  # extra columns: measured when they hold text, not labels
    samplers = plan.recipe.samplers
    axes = samplers.sampled_columns() if samplers is not None else []
    return DiversityTally(list(dict.fromkeys(columns)), axes, plan.seed, maybe=list(dict.fromkeys(maybe)))


def _diversity_stats(plan: Plan, generated: Any) -> dict[str, Any]:
    """stats.json's ``samplers`` (axes and how often each value was drawn, what drafting took) and
    ``diversity`` (seeds vs kept records: filters.diversity)."""
    from factory.recipe.samplers import axis_counts, iter_sampled, possible_values
    from filters.diversity import DiversityTally, diversity_stats

    out: dict[str, Any] = {}
    samplers = plan.recipe.samplers
    possible = possible_values(samplers, plan.pools) if samplers is not None else {}
    if samplers is not None:
        drawn = axis_counts(samplers, plan.pools, iter_sampled(samplers, plan.pools, plan.seed,
                                                               plan.seed_count))
        out["samplers"] = {**drawn, "drafted": plan.drafted}
    seeds = DiversityTally(None, generated.axes, plan.seed)
    for row in plan.seed_rows():
        seeds.add(row)
    out["diversity"] = diversity_stats(seeds, generated, possible, plan.seed)
    return out


def _step_calls(bound: BoundStep) -> dict[str, Any]:
    """One step's calls over all the backends it uses (its own and any judge or scorer)."""
    total = CallStats()
    for dispatcher in [bound.dispatcher, *bound.others.values()]:
        total.add(dispatcher.stats)
    return total.as_dict()
