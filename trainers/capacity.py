"""LoRA capacity: exact adapter parameter count from the model's own shapes, against the data.

A rank-r adapter on a Linear weight of shape (d_out, d_in) adds A (r × d_in) and B (d_out × r):
r·(d_in + d_out) parameters. "LoRA Without Regret" (Schulman et al., 2025) measures that LoRA
stores roughly 2 bits per parameter, and that supervised learning needs on the order of one bit per
target token, while RL (policy gradient, preference signals) carries ~1000× less per token.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

BITS_PER_PARAM = 2.0
RL_METHODS = {"dpo", "reward", "grpo"}
RL_DISCOUNT = 1000.0
EXIT_UNDERCAPACITY = 3  # `factory capacity` when the data does not fit
# Output layers: TRL 1.16 refuses LoRA on the unembedding; a reward model's one-logit head is
# trained fully (PEFT modules_to_save) rather than adapted.
EXCLUDED = ("lm_head", "score", "classifier")


@dataclass
class Capacity:
    rank: int
    per_module: "OrderedDict[str, dict[str, int]]" = field(default_factory=OrderedDict)

    @property
    def params(self) -> int:
        return sum(m["params"] for m in self.per_module.values())

    @property
    def params_per_rank(self) -> int:
        return self.params // self.rank

    @property
    def bits(self) -> float:
        return BITS_PER_PARAM * self.params


def lora_targets(model: Any, targets: list[str] | None) -> list[tuple[str, Any]]:
    """(name, Linear) pairs LoRA would wrap: ``None`` means every Linear except the unembedding."""
    import torch.nn as nn

    chosen = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf in EXCLUDED or name in EXCLUDED:
            continue
        if targets is None or leaf in targets:
            chosen.append((name, module))
    return chosen


def count_lora(model: Any, rank: int, targets: list[str] | None = None) -> Capacity:
    """Exact count, grouped by module type (``q_proj``, ``down_proj``, ...)."""
    cap = Capacity(rank)
    for name, module in lora_targets(model, targets):
        leaf = name.rsplit(".", 1)[-1]
        entry = cap.per_module.setdefault(
            leaf, {"count": 0, "d_in": module.in_features, "d_out": module.out_features, "params": 0})
        entry["count"] += 1
        entry["params"] += rank * (module.in_features + module.out_features)
    if targets is not None:
        missing = [t for t in targets if t not in cap.per_module]
        if missing:
            from factory.core.errors import FactoryError, did_you_mean

            names = sorted({n.rsplit(".", 1)[-1] for n, _ in lora_targets(model, None)})
            raise FactoryError(f"--targets {missing[0]}: no Linear layer of that name in the model"
                               f"{did_you_mean(missing[0], names)}; it has {', '.join(names)}")
    return cap


def count_tokens(texts: list[str], tokenizer: Any) -> int:
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


def required_bits(tokens: int, method: str) -> float:
    return tokens / RL_DISCOUNT if method in RL_METHODS else float(tokens)


def smallest_rank(required: float, params_per_rank: int) -> int:
    """Parameters grow linearly in r, so the smallest fitting rank is one division away."""
    return max(1, math.ceil(required / (BITS_PER_PARAM * params_per_rank)))


@dataclass
class Verdict:
    capacity: Capacity
    tokens: int
    method: str
    episodes: int | None = None  # GRPO: ~1 bit per sampled episode, no target text to count

    @property
    def required(self) -> float:
        if self.episodes is not None:
            return float(self.episodes)
        return required_bits(self.tokens, self.method)

    @property
    def fits(self) -> bool:
        return self.capacity.bits >= self.required

    @property
    def min_rank(self) -> int:
        return smallest_rank(self.required, self.capacity.params_per_rank)

    def message(self) -> str:
        cap, req = self.capacity, self.required
        need = f"{req:,.0f}" if req >= 10 else f"{req:.2g}"  # RL-scale needs are often < 1 bit
        basis = f"{self.episodes:,} episodes × ~1 bit" if self.episodes is not None else \
            f"{self.tokens:,} target tokens" + (
            f" / {RL_DISCOUNT:.0f} ({self.method}: RL-like signal)" if self.method in RL_METHODS else "")
        if self.fits:
            return (f"ok: rank {cap.rank} holds ~{cap.bits:,.0f} bits; the data needs ~{need} "
                    f"({basis}); {cap.bits / max(req, 1):,.1f}× headroom")
        return (f"UNDERCAPACITY: rank {cap.rank} holds ~{cap.bits:,.0f} bits but the data needs "
                f"~{req:,.0f} ({basis}): short by {req - cap.bits:,.0f} bits; smallest rank that "
                f"fits: {self.min_rank}")
