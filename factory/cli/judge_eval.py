"""``factory judge-eval``: measure a pairwise judge on labelled pairs before anyone trusts it.

PAIRS is any preference dataset (prompt/chosen/rejected, or HH-style transcripts) read by
``factory.core.dataset_files``; with ``--sanity`` it is any dataset of prompts with answers, or a
recipe whose first step answers its seeds, and the pairs are each answer against a degraded copy
(``factory.core.degrade``). The judge is a
``judge_pairwise`` step runner — taken from a recipe (``--recipe R --step NAME``) or built from the
flags — run through an LLM session, so a judge-eval and a build share cached verdicts.
"""

from __future__ import annotations

import asyncio
import json
import random
from functools import partial
from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import ValidationError

from factory.cli.common import CacheOption, NoCacheOption, SplitOption, err, fail, guard, out
from factory.core.errors import FactoryError, UsageError

EXIT_BELOW = 3  # --min-agreement given and missed
SANITY_BAR = 0.8  # what "fit" means on sanity pairs when no --min-agreement is given


def judge_eval(
    pairs: Path = typer.Argument(..., help="preference pairs (jsonl/json/parquet/csv, an HF folder, a "
                                 "factory build folder); with --sanity: prompts with answers, or a "
                                 "recipe (its first step answers its seeds; its judge is measured)"),
    sanity: bool = typer.Option(False, "--sanity", help="make labelled pairs from PAIRS' answers: each "
                                "against a degraded copy (loop, cut, other answer, shuffled, empty)"),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="take the judge from this recipe's "
                                          "judge_pairwise step (backend, criteria, params, mode, seed)"),
    step: Optional[str] = typer.Option(None, "--step", help="with --recipe: the step (default: the "
                                       "first judge_pairwise step)"),
    backend: str = typer.Option("llama_cpp", "--backend", help="judge backend (without --recipe)"),
    model: Optional[str] = typer.Option(None, "--model", help="judge model ('embedded' for llama_cpp)"),
    options: list[str] = typer.Option([], "--option", help="backend option key=value (repeat)"),
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="judge requests in flight"),
    mode: str = typer.Option("text", "--mode", help="text | logprob | votes"),
    criteria: str = typer.Option("correctness,helpfulness,clarity", "--criteria", help="comma-separated"),
    votes: int = typer.Option(5, "--votes", min=2, help="votes mode: samples per order"),
    min_confidence: float = typer.Option(0.6, "--min-confidence", help="logprob/votes: minimum "
                                         "calibrated confidence for a decided pair"),
    params: list[str] = typer.Option([], "--param", help="sampling param key=value (temperature=0, "
                                     "max_tokens=256, ...)"),
    kinds: Optional[str] = typer.Option(None, "--kinds", help="--sanity: comma-separated degradations "
                                        "(default: repetition_loop,truncated,other_answer,"
                                        "shuffled_words,empty)"),
    per_kind: Optional[int] = typer.Option(None, "--per-kind", min=1, help="--sanity: pairs per kind "
                                           "(default: one per usable answer)"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="the first N pairs; with --sanity the "
                                        "first N answers (a recipe: its first N seeds)"),
    split: SplitOption = None,
    seed: int = typer.Option(0, "--seed", help="order of answers in each pair, degradations; the "
                             "judge's sampling seed (without --recipe)"),
    output: Optional[Path] = typer.Option(None, "--output", help="folder for judge_eval.json, "
                                          "judge_eval.html, decisions.jsonl (default: judge_eval/<name>)"),
    as_json: bool = typer.Option(False, "--json", help="print the JSON report only"),
    min_agreement: Optional[float] = typer.Option(None, "--min-agreement", min=0, max=1, help="exit 3 "
                                                  "when agreement over all pairs is below this"),
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
) -> None:
    """Measure a pairwise judge on labelled pairs: agreement, coverage, position consistency, ties
    by cause, Cohen's kappa, 95% intervals; calibration and ECE in logprob/votes mode."""

    def body() -> None:
        from factory.output.judge_report import write_report
        from factory.steps.judge_measure import headline

        own = sanity and pairs.suffix in (".yaml", ".yml")  # the build's own first step's answers
        judge_recipe = recipe or (pairs if own else None)
        if judge_recipe is not None:
            spec, block, judge_seed = _from_recipe(judge_recipe, step)
        else:
            spec, block = _from_flags(backend, model, options, concurrency, mode, criteria, votes,
                                      min_confidence, params)
            judge_seed = seed
        names = _kinds(kinds)
        if own:
            source = f"sanity pairs from the first step's answers to the seeds of {pairs}"
            labelled_pairs: Any = partial(_first_step_pairs, recipe=pairs, limit=limit, names=names,
                                          per_kind=per_kind, seed=seed)
        else:
            labelled_pairs, source = _load_pairs(pairs, sanity, names, per_kind, limit, split, seed)
        figures, decisions, calls, model_id = asyncio.run(
            _measure(spec, block, judge_seed, labelled_pairs, cache, not no_cache))
        bar = min_agreement if min_agreement is not None else SANITY_BAR if sanity else None
        report = {"source": source, "sanity": sanity, "judge": {
            "backend": block.name, "model": model_id, "mode": spec.mode, "criteria": spec.criteria,
            "params": spec.params.over(block.sampling(judge_seed)).as_dict(),
            **({"votes": spec.votes} if spec.mode == "votes" else {}),
            **({"min_confidence": spec.min_confidence} if spec.mode != "text" else {}),
            **({"recipe": str(judge_recipe), "step": spec.name} if judge_recipe else {})},
            "verdict": verdict(figures, sanity, bar), "figures": figures, "calls": calls}
        folder = output or Path("judge_eval") / _name(pairs, sanity, spec.mode)
        paths = write_report(folder, report, decisions)
        if as_json:
            print(json.dumps(report, indent=2, ensure_ascii=False))
        else:
            _print(report, paths, headline)
        if min_agreement is not None and (figures["agreement"]["rate"] or 0.0) < min_agreement:
            fail(f"agreement {figures['agreement']['rate'] or 0:.1%} over {figures['agreement']['n']} "
                 f"pairs is below --min-agreement {min_agreement:.0%}", EXIT_BELOW, "judge-eval")

    guard(body)


def verdict(figures: dict[str, Any], sanity: bool, bar: float | None) -> str:
    """One sentence: is this judge fit to decide pairs? Never "fit" at chance."""
    a, d, c = figures["agreement"], figures["decided_agreement"], figures["coverage"]
    if not a["n"]:
        return "NOT MEASURED: every pair failed (backend errors)"
    if not c["k"]:
        return f"NOT FIT: it decided none of {a['n']} pairs (ties: {_ties(figures)})"
    if d["ci95"] and d["ci95"][0] <= 0.5:
        return (f"NOT FIT: at chance: on the {d['n']} pairs it decided it chose the labelled answer "
                f"{d['rate']:.0%} of the time (95% CI {d['ci95'][0]:.0%}-{d['ci95'][1]:.0%} includes 50%)")
    if bar is not None and a["rate"] < bar:
        return (f"NOT FIT: agreement {a['rate']:.0%} over all {a['n']} pairs (a tie is a miss) is "
                f"below {bar:.0%}")
    what = "fit" if bar is not None else "better than chance"
    return f"{what}: agreement {a['rate']:.0%} over all {a['n']} pairs, {d['rate']:.0%} on decided pairs"


def _ties(figures: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in figures["ties"].items()) or "none"


def _name(path: Path, sanity: bool, mode: str) -> str:
    stem = path.name.split(".")[0] or "pairs"
    return f"{stem}{'-sanity' if sanity else ''}-{mode}"


def _key_values(items: list[str], flag: str) -> dict[str, Any]:
    from ruamel.yaml import YAML

    parsed = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} {item}: expected key=value")
        parsed[key.strip()] = YAML(typ="safe").load(raw) if raw else None
    return parsed


def _from_flags(backend: str, model: str | None, options: list[str], concurrency: int, mode: str,
                criteria: str, votes: int, min_confidence: float, params: list[str]) -> tuple[Any, Any]:
    from factory.llm.spec import BackendBlock, Params
    from factory.steps.judge import JudgePairwiseStep

    try:
        block = BackendBlock(name=backend, model=model or ("embedded" if backend == "llama_cpp" else None),
                             concurrency=concurrency, options=_key_values(options, "--option"))
        spec = JudgePairwiseStep(
            name="judge", kind="judge_pairwise", reads=["question", "answer_1", "answer_2"],
            writes=["chosen", "rejected", "judgement"], mode=mode,
            criteria=[c.strip() for c in criteria.split(",") if c.strip()], votes=votes,
            min_confidence=min_confidence, params=Params(**_key_values(params, "--param")))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"judge settings: {where + ': ' if where else ''}{first['msg']}") from None
    return spec, block


def _from_recipe(path: Path, step_name: str | None) -> tuple[Any, Any, int]:
    from factory.recipe.loader import load_recipe

    recipe = load_recipe(path).recipe
    judges = [s for s in recipe.steps if s.kind == "judge_pairwise"]
    chosen = next((s for s in judges if step_name in (None, s.name)), None)
    if chosen is None:
        names = ", ".join(s.name for s in judges) or "none"
        raise UsageError(f"{path}: no judge_pairwise step {step_name or ''} (judge_pairwise steps: {names})")
    return chosen, recipe.backend_block(chosen.backend), recipe.seed


def _kinds(kinds: str | None) -> list[str]:
    from factory.core.degrade import KINDS, SANITY_KINDS

    names = [k.strip() for k in kinds.split(",")] if kinds else list(SANITY_KINDS)
    for name in names:
        if name not in KINDS:
            raise UsageError(f"--kinds {name}: unknown degradation; known: {', '.join(KINDS)}")
    return names


def _sanity(rows: list[tuple[str, str]], names: list[str], per_kind: int | None, seed: int,
            where: str) -> list[Any]:
    """Each usable answer against its degraded copies, the real answer first or second at random."""
    from factory.core.degrade import sanity_pairs
    from factory.steps.judge_measure import labelled

    made = sanity_pairs(rows, names, per_kind, seed)
    if not made:
        raise FactoryError(f"{where}: no answer of 8+ words with a sentence end to degrade "
                           f"({len(rows)} rows)")
    rng = random.Random(f"{seed}/judge-eval")
    return [labelled(p.prompt, p.chosen, p.rejected, p.kind, rng) for p in made]


async def _first_step_pairs(llm: Any, recipe: Path, limit: int | None, names: list[str],
                            per_kind: int | None, seed: int) -> list[Any]:
    """Sanity pairs from the answers the recipe's first step gives its seeds, made through the
    build's own wiring (same requests, same cache as ``factory build``)."""
    from factory.engine.plan import BuildOptions, plan_build
    from factory.engine.wiring import bind_steps, open_backends
    from factory.steps.base import BackendFailure, SetRunner, StepContext

    plan = plan_build(recipe, BuildOptions(limit=limit))
    first = plan.graph.order[0]
    bound = bind_steps(plan, open_backends(plan, llm), llm)[first.name]
    if isinstance(bound.runner, SetRunner) or bound.runner.fans_out or not first.reads:
        raise UsageError(f"{recipe}: its first step {first.name!r} ({first.kind}) does not answer one "
                         "prompt per record; give a dataset of prompts with answers")

    async def ask(requests: list[Any], key: str | None) -> list[Any]:
        return list(await asyncio.gather(*(bound.dispatcher_for(key).complete(r) for r in requests)))

    async def answer(record: Any) -> tuple[str, str] | None:
        try:
            ctx = StepContext(record.id, first.name, plan.seed, ask)
            out = await bound.runner.run(dict(record.fields), ctx)
        except BackendFailure:
            return None
        text = out.get(first.writes[0]) if isinstance(out, dict) else None
        return (str(record.fields.get(first.reads[0], "")), text) if isinstance(text, str) else None

    rows = [r for r in await asyncio.gather(*(answer(r) for r in plan.seed_records())) if r is not None]
    return _sanity(rows, names, per_kind, seed, f"{recipe}: step {first.name!r}")


def _load_pairs(path: Path, sanity: bool, names: list[str], per_kind: int | None, limit: int | None,
                split: str | None, seed: int) -> tuple[list[Any], str]:
    """Labelled pairs (the better answer first or second at random) and a description of them."""
    from factory.core.dataset_files import choose_split, judge_pair_texts, read_splits, text_rows, unwritten
    from factory.steps.judge_measure import labelled

    splits = [s for s in read_splits(path) if split in (None, s.name)]
    if not splits:
        raise UsageError(f"{path}: no split {split!r}")
    if all(not s.rows for s in splits):
        raise FactoryError(f"{splits[0].source if len(splits) == 1 else path}: no rows")
    absent = unwritten(path) if path.is_dir() else None
    rng = random.Random(f"{seed}/judge-eval")
    if not sanity:
        chosen, layout, _ = choose_split(splits, ("preference",), "judge-eval needs labelled pairs: "
                                         "columns chosen and rejected (prompt optional)",
                                         prefer=("dpo",), absent=absent)
        rows = judge_pair_texts(chosen, layout)[:limit]
        return [labelled(r["question"], r["chosen"], r["rejected"], "pairs", rng) for r in rows], \
            f"{chosen.source} ({len(rows)} pairs)"
    chosen, layout, fmt = choose_split(splits, ("prompt_completion", "conversation", "preference"),
                                       "--sanity needs prompts with answers: prompt + completion/response/"
                                       "output columns, messages, or chosen", prefer=("sft",), absent=absent)
    rows = [(r["prompt"], r["response"]) for r in text_rows(chosen, layout, fmt)][:limit]
    pairs = _sanity(rows, names, per_kind, seed, chosen.source)
    return pairs, f"sanity pairs from {chosen.source} ({len(pairs)} pairs, {len(names)} kinds)"


async def _measure(spec: Any, block: Any, seed: int, pairs: Any, cache: Path | None,
                   use_cache: bool) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], str]:
    """``pairs``: labelled pairs, or ``async (session) -> pairs`` to make them in the same session."""
    from factory.llm.session import LLMSession
    from factory.steps.judge import PairwiseJudge
    from factory.steps.judge_measure import judge_pairs, summarize

    async with LLMSession.open(cache, use_cache) as llm:
        try:
            backend = llm.backend(block)
        except (ValueError, RuntimeError, OSError) as exc:
            raise FactoryError(f"judge backend {block.name}: {exc}") from None
        if spec.mode == "logprob" and not backend.gives_top_logprobs:
            raise UsageError(f"--mode logprob: the {block.name} backend gives no log-probabilities; "
                             "use --mode votes")
        if callable(pairs):  # the answers come from a model too: same session, same cache
            pairs = await pairs(llm)
        dispatcher = llm.dispatcher(backend, block.concurrency, "judge_eval")
        runner = PairwiseJudge(spec, spec.params.over(block.sampling(seed)))

        async def ask(requests: list[Any], key: str | None) -> list[Any]:
            return list(await asyncio.gather(*(dispatcher.complete(r) for r in requests)))

        decisions = await judge_pairs(runner, pairs, ask, seed)
        figures = summarize(pairs, decisions, seed)
        rows = [{"kind": p.kind, "label": p.label, "winner": d.winner, "cause": d.cause,
                 "consistency": d.consistency, "preference": None if d.preference is None else
                 round(d.preference, 4), "orders": d.orders, "question": p.question[:200]}
                for p, d in zip(pairs, decisions)]
        return figures, rows, llm.stats().as_dict(), backend.model_id


def _print(report: dict[str, Any], paths: dict[str, Path], headline: Any) -> None:
    from factory.output.judge_report import rows_by_kind

    judge, figures = report["judge"], report["figures"]
    out.print(f"judge: {judge['backend']} {judge['model']}, mode {judge['mode']}; {report['source']}",
              markup=False, highlight=False)
    for kind, f in rows_by_kind(figures):
        ties = ", ".join(f"{c} {n}" for c, n in f["ties"].items()) or "none"
        out.print(f"  {kind:<16} {headline(f)}; ties: {ties}", markup=False, highlight=False)
    calib = figures.get("calibration")
    if calib:
        out.print(f"  calibration: ECE {calib['ece']}, mean confidence {calib['mean_confidence']} over "
                  f"{calib['points']} pairs", markup=False, highlight=False)
    if figures["failed"]:
        err.print(f"  {figures['failed']} pair(s) failed (backend errors; not cached: rerun to retry)",
                  markup=False, highlight=False)
    style = "bold red" if report["verdict"].startswith("NOT") else "bold green"
    out.print(report["verdict"], style=style, markup=False, highlight=False)
    calls = report["calls"]
    out.print(f"calls: {calls['made']} made, {calls['cached']} from cache, {calls['failed']} failed -> "
              f"{paths['json']}, {paths['html']}", markup=False, highlight=False)
