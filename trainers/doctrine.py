"""Default LoRA settings from "LoRA Without Regret" (Thinking Machines, 2025), each with its source.

- Target every Linear layer (attention and MLP): attention-only LoRA underperforms.
- ``lm_head`` is never a LoRA target (TRL 1.16 refuses it). By default it is NOT trained at all;
  ``train_lm_head`` trains it fully through PEFT's ``modules_to_save``.
- alpha = 32 with the 1/r scaling, so the best learning rate barely moves with rank.
- Rank by model size and method; a mixture of experts divides it by the active experts.
- Learning rate: a measured value when the model is a known one, else the paper's fit
  LR = 5e-5 × 10 × (2000 / hidden_size)^P (P = 0.781 Llama-like, 0.0775 Qwen-like).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ALPHA = 32
TARGETS = "all-linear"  # PEFT: every Linear except the output layer

# (upper bound on total params in billions, SFT rank range, RL rank range); first match wins.
# Under 3B is our own pick (the paper's table starts at 7B): capacity grows with layer width, so
# small models get the low end of the 7B ranks — the capacity check raises it when data needs more.
RANK_TABLE: list[tuple[float, tuple[int, int], tuple[int, int]]] = [
    (3.0, (16, 32), (4, 8)),
    (10.0, (32, 64), (8, 16)),
    (30.0, (64, 128), (16, 32)),
    (float("inf"), (128, 256), (32, 64)),
]

# Calibrated LoRA learning rates (LoRA Without Regret, Tinker's defaults).
KNOWN_LR = {"llama-3.1-8b": 3e-4, "llama-3.2-1b": 1e-3, "llama-3.2-3b": 1e-3, "qwen3-8b": 1e-3}
LLAMA_P, QWEN_P = 0.781, 0.0775


@dataclass(frozen=True)
class Choice:
    value: Any
    source: str

    def __str__(self) -> str:
        return f"{self.value} ({self.source})"


def is_rl(method: str) -> bool:
    return method in ("dpo", "reward", "grpo")


def active_experts(config: Any) -> int:
    for key in ("num_experts_per_tok", "moe_topk", "num_selected_experts"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 1:
            return value
    return 1


def recommend_rank(total_params: int, method: str, experts: int = 1) -> Choice:
    billions = total_params / 1e9
    for limit, sft, rl in RANK_TABLE:
        if billions < limit:
            low, high = rl if is_rl(method) else sft
            break
    kind = "RL" if is_rl(method) else "SFT"
    source = f"{kind} table, {billions:.2f}B params: {low}-{high}"
    if experts > 1:  # each token sees only the active experts' adapters
        low = max(1, low // experts)
        source += f", ÷ {experts} active experts"
    return Choice(low, source)


def normalize_name(name: str) -> str:
    name = name.lower().rsplit("/", 1)[-1]
    name = re.sub(r"^meta-", "", name)
    return re.sub(r"[-_](instruct|chat|base|it|hf)$", "", name)


def family_exponent(model_type: str) -> tuple[float, str]:
    if model_type.startswith("qwen"):
        return QWEN_P, "Qwen-like"
    if model_type in ("llama", "mistral", "gemma", "gemma2", "olmo", "olmo2", "granite", "phi3"):
        return LLAMA_P, "Llama-like"
    return LLAMA_P, f"'{model_type}' assumed Llama-like"


def recommend_lr(name: str, model_type: str, hidden_size: int) -> Choice:
    key = normalize_name(name)
    if key in KNOWN_LR:
        return Choice(KNOWN_LR[key], f"calibrated LoRA LR for {key}")
    p, family = family_exponent(model_type)
    lr = 5e-5 * 10 * (2000 / hidden_size) ** p
    return Choice(float(f"{lr:.3g}"),
                  f"rule 5e-5×10×(2000/{hidden_size})^{p} ({family})")


def recommend_epochs(rows: int) -> Choice:
    if rows < 10_000:
        return Choice(2, f"{rows:,} rows < 10K: 1-2 epochs")
    if rows <= 100_000:
        return Choice(1, f"{rows:,} rows in 10K-100K: 1 epoch")
    return Choice(1, f"{rows:,} rows > 100K: 0.5-1 epoch (stop early when eval loss flattens)")


def recommend_eval_steps(total_steps: int) -> Choice:
    steps = max(1, total_steps // 10)
    return Choice(steps, f"~10 evaluations over {total_steps} steps")
