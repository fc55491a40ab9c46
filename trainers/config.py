"""One config dataclass per training method (TRL style: ``help`` on every field), YAML presets
(``trainers/<method>_lora.yaml``) and ``--set key=value`` overrides.

``None`` means "the doctrine picks it" (rank, learning rate, epochs, eval steps): the run prints the
value and where it came from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from factory.core.errors import FactoryError, did_you_mean

PRESETS = Path(__file__).resolve().parent


def _f(default: Any, help: str) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class LoraRunConfig:
    """Fields every LoRA method shares."""

    model: str = _f("", "HF folder, config.json folder, .gguf file, or 'smollm2' (embedded model).")
    output_dir: str | None = _f(None, "Where the adapter and metrics.jsonl go "
                                "(default runs/<dataset>-<method>).")
    rank: int | None = _f(None, "LoRA rank r; None: the model-size table in trainers/doctrine.py.")
    alpha: int = _f(32, "LoRA alpha. 32 with 1/r scaling keeps the best LR nearly rank-independent.")
    dropout: float = _f(0.0, "LoRA dropout.")
    targets: list[str] | None = _f(None, "Module names to adapt; None: every Linear layer "
                                   "(attention + MLP), never lm_head.")
    train_lm_head: bool = _f(False, "Also train lm_head fully (PEFT modules_to_save). Off: lm_head "
                             "stays frozen; TRL refuses LoRA on it.")
    learning_rate: float | None = _f(None, "Peak LR; None: calibrated table, else the "
                                     "5e-5×10×(2000/hidden)^P rule.")
    epochs: float | None = _f(None, "Passes over the train split; None: 2 under 10K rows, else 1.")
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1: run the epochs).")
    batch_size: int = _f(4, "Examples per device step.")
    grad_accum: int = _f(1, "Gradient accumulation steps.")
    max_length: int = _f(1024, "Truncate tokenized examples to this many tokens.")
    warmup_steps: int = _f(0, "Linear warmup steps.")
    eval_fraction: float = _f(0.1, "Share of rows held out for eval loss (0: no eval).")
    eval_steps: int | None = _f(None, "Evaluate every N steps; None: ~10 evaluations per run.")
    logging_steps: int = _f(1, "Log train loss every N steps.")
    seed: int = _f(0, "Seed for the split, LoRA init and data order.")
    threads: int | None = _f(None, "torch CPU threads (None: torch's default). On a busy 2-core "
                             "machine 1 is often faster.")
    merge: bool = _f(False, "Also write the base model with the adapter merged in (merged/).")
    base_adapters: list[str] = _f([], "LoRA adapters merged into the model before training, in "
                                  "order (DPO after SFT starts from the SFT model: its reference).")


@dataclass
class SFTLoraConfig(LoraRunConfig):
    completion_only_loss: bool = _f(True, "Loss on the answer only. Rows become prompt/completion "
                                    "(SmolLM2's template has no generation markers).")


@dataclass
class DPOLoraConfig(LoraRunConfig):
    beta: float = _f(0.1, "DPO beta: how far the policy may move from the reference (the model "
                     "with the adapter disabled).")


@dataclass
class RewardLoraConfig(LoraRunConfig):
    center_rewards_coefficient: float | None = _f(0.01, "Pulls mean reward toward zero so scores "
                                                  "stay comparable across runs (None: off).")


@dataclass
class GRPOLoraConfig(LoraRunConfig):
    verifier: str = _f("numeric", "Reward: numeric (final number equals the answer), exact "
                       "(normalized text equality) or regex (answer column holds a pattern).")
    answer_column: str = _f("answer", "Dataset column with the verifiable answer.")
    num_generations: int = _f(4, "Completions sampled per prompt (the group GRPO normalizes over); "
                              "must divide batch_size.")
    max_completion_length: int = _f(256, "Longest sampled completion, in tokens.")
    temperature: float = _f(1.0, "Sampling temperature for the rollouts.")
    top_k: int = _f(40, "Top-k for rollouts: SmolLM2 at plain temperature sampling rarely answers "
                    "correctly; top-k/top-p lift it.")
    top_p: float = _f(0.95, "Top-p for rollouts.")
    beta: float = _f(0.0, "KL penalty to the reference (adapter disabled); 0 as in TRL: no "
                     "reference pass.")
    eval_fraction: float = _f(0.0, "Share of rows held out; GRPO's signal is the reward, so 0 by "
                              "default.")


C = TypeVar("C", bound=LoraRunConfig)


def _coerce(cls: type, name: str, value: Any, where: str) -> Any:
    default = next(f for f in dataclasses.fields(cls) if f.name == name)
    kind = str(default.type)
    if value is None or kind.startswith("str") and isinstance(value, str):
        return value
    if "list" in kind:
        return value if isinstance(value, list) else [s.strip() for s in str(value).split(",")]
    for typ in (bool, int, float):
        if kind.startswith(typ.__name__):
            if typ is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, typ) and (typ is bool) == isinstance(value, bool):
                return value
            raise FactoryError(f"{where}: {name}: expected {typ.__name__}, got {value!r}")
    return value


def load_config(cls: type[C], preset: Path | None, overrides: list[str], **given: Any) -> C:
    """Preset YAML, then ``--set`` overrides, then explicit arguments (``model``)."""
    from ruamel.yaml import YAML

    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    if preset is not None:
        if not preset.exists():
            raise FactoryError(f"{preset}: no such config file")
        loaded = YAML(typ="safe").load(preset.read_text()) or {}
        if not isinstance(loaded, dict):
            raise FactoryError(f"{preset}: expected a mapping of config fields")
        values.update({k: (str(preset), v) for k, v in loaded.items()})
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise FactoryError(f"--set {item}: expected key=value")
        values[key.strip()] = (f"--set {item}", YAML(typ="safe").load(raw) if raw else None)
    values.update({k: ("argument", v) for k, v in given.items() if v is not None})
    kwargs = {}
    for key, (where, value) in values.items():
        if key not in names:
            raise FactoryError(f"{where}: {key}: not a {cls.__name__} field{did_you_mean(key, names)}")
        kwargs[key] = _coerce(cls, key, value, where)
    return cls(**kwargs)


def default_preset(method: str) -> Path:
    return PRESETS / f"{method}_lora.yaml"
