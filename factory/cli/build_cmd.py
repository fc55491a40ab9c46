"""``factory validate`` and ``factory build`` (with ``--dry-run``): progress, summary, estimate."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from factory.build import BuildResult, run_build
from factory.cli.common import CacheOption, NoCacheOption, err, guard, out, reasons
from factory.core.errors import FactoryError, RecordsFailed
from factory.engine.plan import BuildOptions, Plan, plan_build


def validate(recipe: Path = typer.Argument(..., help="recipe YAML file"),
             trust_code: bool = typer.Option(False, "--trust-code", help="allow steps that import "
                                             "code the recipe names")) -> None:
    """Check a recipe (schema, files, column wiring, cycles) without calling any model."""

    def body() -> None:
        plan = plan_build(recipe, BuildOptions(trust_code=trust_code))
        out.print(f"{recipe}: ok — {plan.seed_count} seed records, {len(plan.graph.order)} steps")
        for line in plan.graph.describe():
            out.print(f"  {line}", markup=False, highlight=False)

    guard(body)


def build(
    recipe: Path = typer.Argument(..., help="recipe YAML file"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the graph, calls, tokens and "
                                 "cache hits; call nothing"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="use only the first N seeds"),
    output: Optional[Path] = typer.Option(None, "--output", help="dataset folder (default: "
                                          "datasets/<recipe name>)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="global seed (default: the recipe's)"),
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
    trust_code: bool = typer.Option(False, "--trust-code", help="allow steps that import code the "
                                    "recipe names (a module:function verifier)"),
    budget_usd: Optional[float] = typer.Option(None, "--budget-usd", min=0, help="stop (exit 4) "
                                               "before a paid call could take spend past this; "
                                               "rerun resumes from the cache"),
    executor: str = typer.Option("local", "--executor", help="local | ray: run the generation steps "
                                 "on a Ray cluster's workers (pip install 'factory\\[ray]')"),
    address: Optional[str] = typer.Option(None, "--address", help="with --executor ray: the cluster "
                                          "(host:port of `ray start --head`); default: a local Ray"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="with --executor ray: worker "
                                          "count (default: one per GPU for GPU backends, else per CPU)"),
) -> None:
    """Run a recipe and write its dataset."""
    options = BuildOptions(limit, output, seed, cache, not no_cache, trust_code, budget_usd,
                           executor, address, workers)

    def body() -> None:
        if executor not in ("local", "ray"):
            raise FactoryError(f"--executor {executor}: one of local, ray")
        if executor == "local" and (address or workers):
            raise FactoryError("--address and --workers need --executor ray")
        plan = plan_build(recipe, options)
        out.print(f"{plan.recipe.name}: {plan.seed_count} seed records", style="bold", markup=False,
                  highlight=False)
        for line in plan.graph.describe():
            out.print(f"  {line}", markup=False, highlight=False)
        if dry_run:
            _print_estimate(plan, options)
            return
        result = asyncio.run(_run_with_progress(plan, options))
        _print_summary(result)
        totals = result.stats["totals"]
        if totals["failed"]:  # the dataset is written, but a script must not mistake this for done
            why = "; ".join(f"{step}: {reasons(r)}" for step, s in result.stats["steps"].items()
                            if (r := s["failed"]))
            raise RecordsFailed(f"{totals['failed']} record(s) failed ({why or 'qc'}); the dataset in "
                                f"{result.output} holds the rest; finished calls are cached: rerun to "
                                "retry the failed ones")
        if plan.recipe.train is not None:  # the self-teaching loop: train, eval, maybe go round again
            from factory.teach.loop import run_teach

            summary = run_teach(plan, options, result, lambda line: out.print(line, markup=False,
                                                                             highlight=False))
            out.print(f"report: {summary['report']}", markup=False, highlight=False)

    guard(body)


async def _run_with_progress(plan: Plan, options: BuildOptions) -> BuildResult:
    columns = (TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, disable=not err.is_terminal) as progress:
        tasks = {s.name: progress.add_task(s.name, total=plan.seed_count) for s in plan.graph.order}
        return await run_build(plan, options, on_step_done=lambda name: progress.advance(tasks[name]))


def _print_estimate(plan: Plan, options: BuildOptions) -> None:
    from factory.engine.dry_run import estimate

    per_step = asyncio.run(estimate(plan, options))
    table = Table(title="dry run: nothing was called")
    paid = any(e["usd"] for e in per_step.values())
    for col in ("step", "LLM calls", "cached", "to make", "prompt tokens") + (("≤ USD",) if paid else ()):
        table.add_column(col, justify="left" if col == "step" else "right")
    for name, e in per_step.items():
        if e["not_estimated"]:  # multi-turn / fan-out / set step: calls depend on earlier answers
            table.add_row(name, "?", "?", "?", "?", *(["?"] if paid else []))
            continue
        tokens = f"≥{e['prompt_tokens']}" if e["tokens_are_lower_bound"] else str(e["prompt_tokens"])
        table.add_row(name, str(e["calls"]), str(e["cached"]), str(e["calls"] - e["cached"]), tokens,
                      *([f"{e['usd']:.4f}"] if paid else []))
    total = sum(e["calls"] for e in per_step.values())
    cached = sum(e["cached"] for e in per_step.values())
    table.add_row("total", str(total), str(cached), str(total - cached),
                  str(sum(e["prompt_tokens"] for e in per_step.values())),
                  *([f"{sum(e['usd'] for e in per_step.values()):.4f}"] if paid else []), style="bold")
    out.print(table)
    if any(e["not_estimated"] for e in per_step.values()):
        out.print("?: a multi-turn, fan-out or set step decides its calls from earlier answers; it and "
                  "the steps after it are counted only when the build runs.", markup=False, highlight=False)
    if any(e["tokens_are_lower_bound"] for e in per_step.values()):
        out.print("≥: prompt includes text generated upstream; counted without it.", markup=False,
                  highlight=False)
    if paid:
        out.print("≤ USD: prompt tokens + max_tokens of output for each call to make, at the backend's "
                  "price (the same worst case --budget-usd reserves).", markup=False, highlight=False)
    for step in plan.recipe.steps:
        gate = getattr(step, "judge_gate", None)
        if gate is not None:
            per_pair = 2 * (step.votes if step.mode == "votes" else 1)
            out.print(f"{step.name}: its judge_gate adds up to {gate.pairs * per_pair} calls (sanity pairs, "
                      "both orders) before it judges any pair; not counted above.", markup=False,
                      highlight=False)


def _print_summary(result: BuildResult) -> None:
    stats = result.stats
    table = Table(title=f"{stats['recipe']} -> {result.output}")
    for col in ("step", "in", "ok", "rejected", "failed", "skipped"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for name, s in stats["steps"].items():
        table.add_row(name, str(s["in"]), str(s["ok"]), reasons(s["rejected"]),
                      reasons(s["failed"]), str(s["skipped"]))
    out.print(table)
    t = stats["totals"]
    made = f" + {t['created']} created" if "created" in t else ""
    used = f" + {t['consumed']} consumed" if "consumed" in t else ""
    out.print(f"records: {t['input']} in{made} = {t['kept']} kept + {t['rejected']} rejected + "
              f"{t['failed']} failed{used}", markup=False, highlight=False)
    for name, s in stats["steps"].items():
        if s.get("figures"):
            out.print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in s["figures"].items()),
                      markup=False, highlight=False)
        if s.get("rates"):
            out.print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in s["rates"].items()),
                      markup=False, highlight=False)
    for name, j in stats.get("judges", {}).items():
        if j.get("measured"):
            from factory.steps.judge_measure import headline

            out.print(f"{name}: mode {j['mode']}; on {j['agreement']['n']} sanity pairs: "
                      f"{headline(j)}", markup=False, highlight=False)
        else:
            out.print(f"{name}: mode {j['mode']}; judge not measured ({j.get('why')})", markup=False,
                      highlight=False)
        if j.get("warning"):
            err.print(f"warning: judge gate: {j['warning']}", style="yellow", markup=False,
                      highlight=False)
    out.print("splits: " + ", ".join(f"{n} {c['rows']} rows" for n, c in stats["splits"].items()),
              markup=False, highlight=False)
    for key, c in result.calls.items():  # recipe backend keys, then QC judges (qc.reward, ...)
        out.print(f"calls [{key}]: {c['made']} made, {c['cached']} from cache, {c['failed']} failed; "
                  f"{c['prompt_tokens']} prompt + {c['completion_tokens']} completion tokens"
                  + (f"; {c['retries']} retries ({c['throttled']} throttled)" if "retries" in c else "")
                  + (f"; ${c['cost_usd']:.4f}" if c.get("cost_usd") else ""),
                  markup=False, highlight=False)
    out.print(f"done in {result.elapsed_s:.1f}s", markup=False, highlight=False)
