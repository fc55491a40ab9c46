"""The self-teaching loop a recipe with ``train:`` runs after its build.

Round 1 is the recipe's build as written: k samples per train problem on its backend, verified,
QC'd, written as SFT (best correct answer) and DPO (correct vs incorrect of the same problem).
Then LoRA SFT from the base model, DPO from the SFT model (its reference), and a greedy eval of
base, SFT and SFT+DPO on the held-out set (the task's problems or an IFEval file), all three
through the recipe's one eval decoder (transformers, or llama.cpp with GGUF LoRA adapters).
Round r > 1 samples again from the best model so far (``train.resample_backend``) and trains from
the base model again on the new data (ReST-EM: a fresh start each round avoids drift); the loop
stops when a round lifts held-out accuracy on non-copyable problems by less than ``min_gain``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from factory.build import run_build
from factory.engine.plan import BuildOptions, Plan
from factory.llm.session import LLMSession
from factory.llm.spec import BackendBlock
from factory.recipe.loader import LoadedRecipe
from factory.teach.evaluate import decoder, save_result, summary_line
from factory.teach.held_out import HeldOut, check_disjoint, held_out_set, train_prompts

Log = Callable[[str], None]


def evaluate_model(model: str, adapters: list[Path], held_out: HeldOut, plan: Plan,
                   options: BuildOptions) -> dict[str, Any]:
    """``model`` (+ adapters in order) on the held-out set, greedy, on the recipe's eval decoder,
    through an LLM session on the build's request cache (``--cache`` / ``--no-cache``)."""
    block = plan.recipe.eval
    assert block is not None

    async def run() -> dict[str, Any]:
        async with LLMSession.open(options.cache_path, options.use_cache) as llm:
            dispatcher = llm.dispatcher_for(decoder(model, adapters, block.batch_size, block.threads,
                                                    block.backend, block.options), "eval")
            return await held_out.run(dispatcher, block.max_tokens, block.system)

    return asyncio.run(run())


def resample_plan(plan: Plan, model: str, adapters: list[Path], round_no: int) -> Plan:
    """The same recipe with its default backend replaced by the trained model (sampling params,
    steps and QC unchanged); the round's dataset goes to ``<output>/round_<r>``."""
    train = plan.recipe.train
    assert train is not None
    block = dict(train.resample_backend)
    block["model"] = model
    block["params"] = {**plan.recipe.backend.params.model_dump(exclude_none=True), **block.get("params", {})}
    block["options"] = {**block.get("options", {}), "adapters": [str(a) for a in adapters]}
    recipe = plan.recipe.model_copy(update={"backend": BackendBlock(**block)})
    loaded = LoadedRecipe(recipe, plan.loaded.path, plan.loaded.doc)
    return replace(plan, loaded=loaded, output=plan.output / f"round_{round_no}")


def train_stage(method: str, dataset: Path, base_adapters: list[Path], out: Path, plan: Plan,
                log: Log) -> Path:
    """One LoRA run (capacity-checked by the trainer); returns the adapter folder."""
    from trainers.config import DPOLoraConfig, SFTLoraConfig, default_preset, load_config
    from trainers.dpo import train_dpo
    from trainers.sft import train_sft

    train = plan.recipe.train
    assert train is not None
    cls, fn, fields = (SFTLoraConfig, train_sft, train.sft) if method == "sft" else \
        (DPOLoraConfig, train_dpo, train.dpo or {})
    split = train.sft_split if method == "sft" else train.dpo_split
    config = load_config(cls, default_preset(method), [], **{
        **fields, "model": train.model, "output_dir": str(out),
        "base_adapters": [str(a) for a in base_adapters]})
    result = fn(config, dataset / f"{split}.parquet", train.force, lambda line: log(f"  {method}: {line}"))
    return result.adapter_dir


def run_teach(plan: Plan, options: BuildOptions, first_build: Any, log: Log) -> dict[str, Any]:
    """Train, evaluate and (optionally) go round again after ``factory build`` made round 1's data."""
    recipe, train = plan.recipe, plan.recipe.train
    assert train is not None
    _quiet_libraries()
    runs = Path(train.output_dir or f"runs/{recipe.name}")
    evals_dir = plan.output / "eval"
    held_out = held_out_set(plan.loaded)
    summary: dict[str, Any] = {"recipe": recipe.name, "model": train.model, "rounds": [],
                               "test": held_out.facts() if held_out else {"n": 0}}
    if held_out is not None and recipe.eval is not None:
        summary["decoder"] = {"backend": recipe.eval.backend, "max_tokens": recipe.eval.max_tokens,
                              "options": recipe.eval.options}
    full: dict[str, dict[str, Any]] = {}  # results with rows, for the paired comparisons
    summary["seconds"] = {"round 1 build": round(float(getattr(first_build, "elapsed_s", 0.0)), 1)}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = fn()
        summary["seconds"][name] = round(time.perf_counter() - started, 1)
        log(f"{name}: {summary['seconds'][name]:.0f} s")
        return value

    def evaluate(name: str, adapters: list[Path]) -> dict[str, Any] | None:
        if held_out is None:
            return None
        started = time.perf_counter()
        result = evaluate_model(train.model, adapters, held_out, plan, options)
        card_dir = adapters[-1] if adapters else None
        if "base" in full:
            result["vs_base"] = held_out.versus(full["base"], result)
        save_result(result, evals_dir / f"{name}.json", card_dir)
        full[name] = result
        seconds = round(time.perf_counter() - started, 1)
        summary["seconds"][f"eval {name}"] = seconds
        log(f"eval {name} ({seconds:.0f} s): {summary_line(result)}")
        return {k: v for k, v in result.items() if k != "rows"}

    def score(result: dict[str, Any] | None) -> float:
        return held_out.score(result) if held_out else 0.0

    summary["base"] = evaluate("base", [])
    best = score(summary["base"])
    model_adapters: list[Path] = []
    build = first_build
    for round_no in range(1, train.rounds + 1):
        if round_no > 1:
            log(f"round {round_no}: sampling from {train.model} + {len(model_adapters)} adapter(s)")
            round_plan = resample_plan(plan, train.model, model_adapters, round_no)
            build = timed(f"round {round_no} build", lambda: asyncio.run(run_build(round_plan, options)))
        dataset = build.output
        entry: dict[str, Any] = {"round": round_no, "dataset": str(dataset),
                                 "rates": {k: s.get("rates", {}) for k, s in build.stats["steps"].items()},
                                 "splits": {k: v["rows"] for k, v in build.stats["splits"].items()},
                                 "sources": answer_sources(build.stats)}
        log(f"round {round_no}: data {entry['splits']}; {entry['rates']}")
        if held_out is not None:  # never train on an eval prompt, whatever QC the recipe runs
            splits = {train.sft_split, train.dpo_split}
            entry["checked_disjoint"] = sum(
                check_disjoint(train_prompts(dataset / f"{split}.parquet"), held_out) for split in splits)
        if not entry["splits"].get(train.sft_split):
            summary["rounds"].append(entry)
            log(f"round {round_no}: no correct answer to train on; the loop stops")
            break
        sft = timed(f"round {round_no} sft", lambda: train_stage(
            "sft", dataset, [], runs / f"round_{round_no}" / "sft", plan, log))
        stages = {"sft": [sft]}
        if train.dpo is not None and entry["splits"].get(train.dpo_split, 0) > 0:
            dpo = timed(f"round {round_no} dpo", lambda: train_stage(
                "dpo", dataset, [sft], runs / f"round_{round_no}" / "dpo", plan, log))
            stages["sft_dpo"] = [sft, dpo]
        elif train.dpo is not None:
            log(f"round {round_no}: no DPO pairs, DPO stage skipped")
        entry["adapters"] = {k: [str(a) for a in v] for k, v in stages.items()}
        entry["eval"] = {k: evaluate(f"round_{round_no}_{k}", v) for k, v in stages.items()}
        entry["metrics"] = {k: str(Path(v[-1]).parent / "metrics.jsonl") for k, v in stages.items()}
        summary["rounds"].append(entry)
        if held_out is None:
            model_adapters = stages.get("sft_dpo", stages["sft"])
            continue
        top = max(stages, key=lambda k: score(entry["eval"][k]))
        gain = score(entry["eval"][top]) - best
        entry["best_stage"], entry["gain"] = top, round(gain, 4)
        if round_no > 1 and gain < train.min_gain:
            log(f"round {round_no}: gain {gain:+.3f} < min_gain {train.min_gain}: stop")
            break
        best, model_adapters = max(best, score(entry["eval"][top])), stages[top]
    (plan.output / "teach.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    from factory.teach.report import write_report

    summary["report"] = str(write_report(summary, plan.output))
    return summary


def answer_sources(stats: dict[str, Any]) -> dict[str, int]:
    """Where the round's answers came from (rejection sampling with repair): sampled and passing,
    repaired by program edits, or left unrepairable; empty for a recipe without repair."""
    keys = ("sampled_pass", "repaired", "unrepairable")
    out: dict[str, int] = {}
    for step in stats["steps"].values():
        figures = step.get("figures", {})
        if "repaired" in figures:
            for key in keys:
                out[key] = out.get(key, 0) + int(figures.get(key, 0))
    return out


def _quiet_libraries() -> None:
    """Our log lines say what each stage did; the libraries' progress bars and notices would bury them."""
    import os
    import warnings

    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF loader's own tqdm bar
    import transformers

    import datasets

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="peft|trl|transformers")


