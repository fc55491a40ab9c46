"""The ``factory`` command."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from factory.build import BuildOptions, BuildResult, Plan, plan_build, run_build
from factory.errors import FactoryError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Recipes in, post-training datasets out.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


# How `factory qc` and `factory audit` read a dataset whose format is not detected.
FormatOption = Annotated[Optional[str], typer.Option("--format", help="dpo | sft | columns (default: "
                                                                     "detected)")]
PromptColumnOption = Annotated[Optional[str], typer.Option(
    "--prompt-column", help="columns format: the instruction column (default: detected)")]
ResponseColumnOption = Annotated[Optional[str], typer.Option(
    "--response-column", help="columns format: the response column (default: detected)")]


def _fail(message: str, code: int) -> None:
    err.print(f"error: {message}", style="red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _guard(fn: Callable[[], None]) -> None:
    """Known errors become one line and an exit code; a bug says how to see its traceback."""
    try:
        return fn()
    except FactoryError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted: finished calls are cached, rerun to resume")
        raise typer.Exit(130)
    except (typer.Exit, SystemExit):
        raise
    except Exception as exc:
        if os.environ.get("FACTORY_DEBUG"):
            raise
        _fail(f"{type(exc).__name__}: {exc} (set FACTORY_DEBUG=1 for the traceback)", 1)


@app.command()
def validate(recipe: Path = typer.Argument(..., help="recipe YAML file"),
             trust_code: bool = typer.Option(False, "--trust-code", help="allow steps that import "
                                             "code the recipe names")) -> None:
    """Check a recipe (schema, files, column wiring, cycles) without calling any model."""

    def body() -> None:
        plan = plan_build(recipe, BuildOptions(trust_code=trust_code))
        out.print(f"{recipe}: ok — {len(plan.records)} seed records, {len(plan.graph.order)} steps")
        for line in plan.graph.describe():
            out.print(f"  {line}", markup=False, highlight=False)

    _guard(body)


@app.command()
def build(
    recipe: Path = typer.Argument(..., help="recipe YAML file"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the graph, calls, tokens and "
                                 "cache hits; call nothing"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="use only the first N seeds"),
    output: Optional[Path] = typer.Option(None, "--output", help="dataset folder (default: "
                                          "datasets/<recipe name>)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="global seed (default: the recipe's)"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="request cache file (default: "
                                         "$FACTORY_CACHE_DIR or ~/.cache/factory)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="neither read nor write the cache"),
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
        out.print(f"{plan.recipe.name}: {len(plan.records)} seed records", style="bold", markup=False,
                  highlight=False)
        for line in plan.graph.describe():
            out.print(f"  {line}", markup=False, highlight=False)
        if dry_run:
            _print_estimate(plan, options)
            return
        result = asyncio.run(_run_with_progress(plan, options))
        _print_summary(result)
        if plan.recipe.train is not None:  # the self-teaching loop: train, eval, maybe go round again
            from factory.teach import run_teach

            summary = run_teach(plan, options, result, lambda line: out.print(line, markup=False,
                                                                             highlight=False))
            out.print(f"report: {summary['report']}", markup=False, highlight=False)

    _guard(body)


async def _run_with_progress(plan: Plan, options: BuildOptions) -> BuildResult:
    columns = (TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, disable=not err.is_terminal) as progress:
        tasks = {s.name: progress.add_task(s.name, total=len(plan.records)) for s in plan.graph.order}
        return await run_build(plan, options, on_step_done=lambda name: progress.advance(tasks[name]))


def _print_estimate(plan: Plan, options: BuildOptions) -> None:
    from factory.dry_run import estimate

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


def _print_summary(result: BuildResult) -> None:
    stats = result.stats
    table = Table(title=f"{stats['recipe']} -> {result.output}")
    for col in ("step", "in", "ok", "rejected", "failed", "skipped"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for name, s in stats["steps"].items():
        table.add_row(name, str(s["in"]), str(s["ok"]), _reasons(s["rejected"]),
                      _reasons(s["failed"]), str(s["skipped"]))
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
    out.print("splits: " + ", ".join(f"{n} {c['rows']} rows" for n, c in stats["splits"].items()),
              markup=False, highlight=False)
    for key, c in result.calls.items():
        out.print(f"calls [{key}]: {c['made']} made, {c['cached']} from cache, {c['failed']} failed; "
                  f"{c['prompt_tokens']} prompt + {c['completion_tokens']} completion tokens"
                  + (f"; {c['retries']} retries ({c['throttled']} throttled)" if "retries" in c else "")
                  + (f"; ${c['cost_usd']:.4f}" if c.get("cost_usd") else ""),
                  markup=False, highlight=False)
    out.print(f"done in {result.elapsed_s:.1f}s", markup=False, highlight=False)


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "0"


@app.command()
def init(
    domain_dir: Path = typer.Argument(..., help="new folder for seeds.jsonl and recipe.yaml"),
    describe: str = typer.Option(..., "--describe", help="one paragraph about the domain"),
    seeds: Optional[Path] = typer.Option(None, "--seeds", help="your example tasks (JSON lines with "
                                         "instruction, optional input/output); kept first"),
    count: int = typer.Option(15, "--count", min=10, max=20, help="seed tasks to end up with"),
    backend: str = typer.Option("llama_cpp", "--backend", help="backend that drafts the seeds and "
                                "that the recipe uses"),
    model: Optional[str] = typer.Option(None, "--model", help="backend model (llama_cpp: embedded)"),
    options: str = typer.Option("{}", "--options", help="backend options as JSON"),
) -> None:
    """Draft 10-20 seed tasks for a new domain and write a ready Self-Instruct → Evol-Instruct →
    QC → SFT + DPO recipe next to them (review the seeds before building)."""
    import json

    from factory.backends import BACKENDS
    from factory.init_domain import init_domain, load_examples

    def body() -> None:
        if backend not in BACKENDS:
            known = ", ".join(sorted(BACKENDS))
            raise FactoryError(f"--backend: unknown backend {backend!r}; known: {known}")
        try:
            opts = json.loads(options)
        except json.JSONDecodeError as exc:
            raise FactoryError(f"--options: not JSON: {exc.msg}") from None
        examples = load_examples(seeds) if seeds else []
        seeds_file, recipe_file, draft = init_domain(domain_dir, describe, examples, backend, model, opts,
                                                     want=count)
        out.print(f"{seeds_file}: {len(examples)} of yours + {len(draft.tasks)} drafted in {draft.asked} "
                  f"requests (not kept: {draft.dropped or 'none'}) — review and edit them", markup=False,
                  highlight=False)
        out.print(f"{recipe_file}: then run  factory build {recipe_file}", markup=False, highlight=False)

    _guard(body)


@app.command()
def capacity(
    model: str = typer.Option(..., "--model", help="HF folder, config.json, .gguf file, or smollm2"),
    rank: int = typer.Option(..., "--rank", min=1, help="LoRA rank r"),
    targets: Optional[list[str]] = typer.Option(None, "--targets", help="module names (repeat); "
                                                "default: every Linear except lm_head"),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="dataset folder or split file"),
    method: str = typer.Option("sft", "--method", help="sft | dpo | reward (preference methods "
                               "need ~1000x fewer bits; GRPO is checked in episodes by train grpo)"),
) -> None:
    """Exact LoRA parameter count per module type, and whether the dataset fits (exit 3 if not)."""

    def body() -> None:
        from trainers.capacity import EXIT_UNDERCAPACITY
        from trainers.check import check_capacity
        from trainers.models import resolve_model

        if method not in ("sft", "dpo", "reward"):
            raise FactoryError(f"--method {method}: one of sft, dpo, reward")
        report = check_capacity(resolve_model(model), rank, targets or None, dataset, method)
        cap = report.capacity
        table = Table(title=f"LoRA r={rank} on {report.facts.name} "
                            f"({report.facts.params / 1e6:,.1f}M params)")
        for col in ("module", "layers", "d_in", "d_out", "LoRA params"):
            table.add_column(col, justify="left" if col == "module" else "right")
        for name, m in cap.per_module.items():
            table.add_row(name, str(m["count"]), str(m["d_in"]), str(m["d_out"]), f"{m['params']:,}")
        table.add_row("total", str(sum(m["count"] for m in cap.per_module.values())), "", "",
                      f"{cap.params:,}", style="bold")
        out.print(table)
        out.print(f"capacity: {cap.params:,} params × 2 bits = {cap.bits:,.0f} bits "
                  "(lm_head excluded)", markup=False, highlight=False)
        if report.verdict is not None:
            out.print(report.verdict.message(), markup=False, highlight=False)
            if not report.verdict.fits:
                raise typer.Exit(EXIT_UNDERCAPACITY)

    _guard(body)


@app.command()
def advise(
    dataset: Path = typer.Argument(..., help="dataset folder or split file"),
    model: str = typer.Option("smollm2", "--model", help="the model you will train (sets rank, LR)"),
) -> None:
    """Recommend a training method, rank, learning rate, epochs and eval frequency."""

    def body() -> None:
        from trainers.advise import advise as make_advice

        for line in make_advice(dataset, model).lines():
            out.print(line, markup=False, highlight=False)

    _guard(body)


class TrainMethod(str, Enum):
    sft = "sft"  # supervised, loss on the answers only (sft.parquet)
    dpo = "dpo"  # preference pairs, beta 0.1, reference = adapter disabled (dpo.parquet)
    reward = "reward"  # reward model: LoRA + a trained score head (dpo.parquet)
    grpo = "grpo"  # verifiable reward (--set verifier=numeric|exact|regex, answer_column=...)


@app.command()
def train(
    method: TrainMethod = typer.Argument(..., help="sft | dpo | reward | grpo"),
    dataset: Path = typer.Argument(..., help="dataset folder written by factory build, or a split file"),
    model: Optional[str] = typer.Option(None, "--model", help="HF folder, config.json folder, .gguf "
                                        "file, or smollm2 (embedded)"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML preset (default: "
                                          "trainers/<method>_lora.yaml where it exists)"),
    overrides: list[str] = typer.Option([], "--set", help="override a config field: --set rank=32"),
    force: bool = typer.Option(False, "--force", help="train even when the capacity check fails"),
    merge: bool = typer.Option(False, "--merge", help="also write the merged model"),
    output: Optional[Path] = typer.Option(None, "--output", help="run folder (default runs/...)"),
) -> None:
    """LoRA training on a built dataset (TRL + PEFT), capacity-checked first."""

    def body() -> None:
        from trainers.config import default_preset, load_config
        from trainers.methods import METHODS

        name = method.value
        cls, train_fn = METHODS[name]()
        preset = config or (default_preset(name) if default_preset(name).exists() else None)
        cfg = load_config(cls, preset, overrides, model=model, merge=merge or None,
                          output_dir=str(output) if output else None)
        log = lambda line: out.print(line, markup=False, highlight=False)  # noqa: E731
        result = train_fn(cfg, dataset, force, log)
        losses, evals, rewards = (result.losses(k) for k in ("loss", "eval_loss", "reward"))
        out.print(f"done: train loss {losses[0]:.4f} -> {losses[-1]:.4f}"
                  + (f", eval loss {evals[-1]:.4f}" if evals else "")
                  + (f", reward {rewards[0]:.3f} -> {rewards[-1]:.3f}" if rewards else "")
                  + f"; metrics {result.output_dir / 'metrics.jsonl'}", markup=False, highlight=False)

    _guard(body)


@app.command()
def qc(
    dataset: Path = typer.Argument(..., help="jsonl/json/parquet/csv file, HF dataset folder, or a "
                                   "folder written by factory build"),
    chain: Optional[Path] = typer.Option(None, "--chain", help="chain YAML (default: "
                                         "filters/default.yaml, or filters/dpo.yaml for pairs)"),
    output: Optional[Path] = typer.Option(None, "--output", help="folder for kept.jsonl, "
                                          "rejects.jsonl, qc_stats.json (default: DATASET-qc)"),
    seeds: Optional[Path] = typer.Option(None, "--seeds", help="seed file for dedup-against-seeds "
                                         "and the drift check"),
    fmt: FormatOption = None,
    prompt_column: PromptColumnOption = None,
    response_column: ResponseColumnOption = None,
) -> None:
    """Run a QC chain on an existing dataset: keep, drop (with reasons) and count."""

    def body() -> None:
        from filters.audit import run_dataset_chain, write_qc_outputs
        from filters.dataset_io import load_dataset_records

        data = load_dataset_records(dataset, fmt, prompt_column, response_column)
        result, chain_path = run_dataset_chain(data, chain, seeds, report_only=False)
        folder = output or dataset.with_name(dataset.stem + "-qc")
        summary = write_qc_outputs(data, result, folder)
        _print_qc(summary, f"{dataset} ({data.format}) with {chain_path} -> {folder}")
        if summary["gate_failed"]:
            raise FactoryError(summary["gate_failed"])

    _guard(body)


@app.command()
def audit(
    dataset: Path = typer.Argument(..., help="dataset file or folder (as for factory qc)"),
    output: Optional[Path] = typer.Option(None, "--output", help="HTML file (default: "
                                          "DATASET/audit.html or DATASET.audit.html)"),
    chain: Optional[Path] = typer.Option(None, "--chain", help="chain YAML (default by format)"),
    seeds: Optional[Path] = typer.Option(None, "--seeds", help="seed file for the drift check"),
    fmt: FormatOption = None,
    prompt_column: PromptColumnOption = None,
    response_column: ResponseColumnOption = None,
) -> None:
    """Report-only QC with one self-contained HTML page (plots, groups, a sample to review)."""

    def body() -> None:
        from filters.audit import audit as run_audit

        page, summary = run_audit(dataset, output, chain, seeds, fmt, prompt_column, response_column)
        _print_qc(summary, f"audit of {dataset} (report only: nothing removed)", True)
        out.print(f"report: {page}", markup=False, highlight=False)

    _guard(body)


def _print_qc(summary: dict, title: str, report_only: bool = False) -> None:
    table = Table(title=title)
    for col in ("filter", "in", "kept", "dropped", "failed", "rule / figures"):
        table.add_column(col, justify="left" if col in ("filter", "dropped", "failed", "rule / figures")
                         else "right")
    for name, f in summary["filters"].items():
        note = f.get("message") or f.get("rule") or ""
        table.add_row(name, str(f["in"]), str(f["kept"]), _reasons(f["dropped"]), _reasons(f["failed"]),
                      str(note))
    out.print(table)
    if report_only:
        out.print(f"records: {summary['input']}; would drop {summary['dropped']} times, "
                  f"{summary['failed']} failed (a record can be flagged by several filters)",
                  markup=False, highlight=False)
        return
    out.print(f"records: {summary['input']} in = {summary['kept']} kept + {summary['dropped']} dropped + "
              f"{summary['failed']} failed", markup=False, highlight=False)


from factory.cli_eval import eval_command  # noqa: E402 (its module imports _guard and out from here)

app.command(name="eval")(eval_command)


def main() -> None:
    app(prog_name="factory")


if __name__ == "__main__":
    sys.exit(main())
