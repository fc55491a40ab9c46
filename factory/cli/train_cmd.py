"""``factory capacity``, ``factory advise`` and ``factory train``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from factory.cli.common import guard, out
from factory.core.errors import FactoryError


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
        from factory.core.models import resolve_model
        from trainers.capacity import EXIT_UNDERCAPACITY
        from trainers.check import check_capacity
        from trainers.methods import METHODS

        counted = [name for name, m in METHODS.items() if m.learns_from]  # GRPO counts episodes
        if method not in counted:
            raise FactoryError(f"--method {method}: one of {', '.join(counted)}")
        report = check_capacity(resolve_model(model), rank, METHODS[method], targets or None, dataset)
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

    guard(body)


def advise(
    dataset: Path = typer.Argument(..., help="dataset folder or split file"),
    model: str = typer.Option("smollm2", "--model", help="the model you will train (sets rank, LR)"),
) -> None:
    """Recommend a training method, rank, learning rate, epochs and eval frequency."""

    def body() -> None:
        from trainers.advise import advise as make_advice

        for line in make_advice(dataset, model).lines():
            out.print(line, markup=False, highlight=False)

    guard(body)


class TrainMethod(str, Enum):
    sft = "sft"  # supervised, loss on the answers only (sft.parquet)
    dpo = "dpo"  # preference pairs, beta 0.1, reference = adapter disabled (dpo.parquet)
    reward = "reward"  # reward model: LoRA + a trained score head (dpo.parquet)
    grpo = "grpo"  # verifiable reward (--set verifier=numeric|exact|regex, answer_column=...)


def train(
    method: TrainMethod = typer.Argument(..., help="sft | dpo | reward | grpo"),
    dataset: Path = typer.Argument(..., help="dataset folder (written by factory build or factory qc, "
                                   "or a Hugging Face one) or a split file"),
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

        chosen = METHODS[method.value]
        preset = config or (default_preset(chosen.name) if default_preset(chosen.name).exists() else None)
        cfg = load_config(chosen.config, preset, overrides, model=model, merge=merge or None,
                          output_dir=str(output) if output else None)
        log = lambda line: out.print(line, markup=False, highlight=False)  # noqa: E731
        result = chosen.train(cfg, dataset, force, log)
        losses, evals, rewards = (result.losses(k) for k in ("loss", "eval_loss", "reward"))
        out.print(f"done: train loss {losses[0]:.4f} -> {losses[-1]:.4f}"
                  + (f", eval loss {evals[-1]:.4f}" if evals else "")
                  + (f", reward {rewards[0]:.3f} -> {rewards[-1]:.3f}" if rewards else "")
                  + f"; metrics {result.output_dir / 'metrics.jsonl'}", markup=False, highlight=False)

    guard(body)
