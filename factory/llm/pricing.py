"""Dollars: a price table per model (overridable per recipe) and the build's budget.

Prices are USD per million tokens, from the vendors' public price pages when written; a recipe
overrides them with ``backend.options.price: {input: 3.0, output: 15.0}``. Model names match by
longest prefix, so dated snapshots (``claude-sonnet-4-5-20250929``) find their family's price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BATCH_DISCOUNT = 0.5  # Message Batches bill half of the interactive price


@dataclass(frozen=True)
class Price:
    input: float  # USD per million prompt tokens
    output: float  # USD per million completion tokens

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


ANTHROPIC_PRICES: dict[str, Price] = {
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-3-5-sonnet": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    "claude-3-haiku": Price(0.25, 1.25),
}

OPENAI_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.6),
    "gpt-4o": Price(2.5, 10.0),
    "gpt-4.1-nano": Price(0.1, 0.4),
    "gpt-4.1-mini": Price(0.4, 1.6),
    "gpt-4.1": Price(2.0, 8.0),
}


def find_price(model: str, table: dict[str, Price], override: Any = None) -> Price | None:
    """The recipe's override, else the longest table prefix of ``model``, else None (unknown)."""
    if override is not None:
        if not isinstance(override, dict) or set(override) != {"input", "output"}:
            raise ValueError("options.price must be {input: USD per Mtok, output: USD per Mtok}")
        return Price(float(override["input"]), float(override["output"]))
    matches = [k for k in table if model.startswith(k)]
    return table[max(matches, key=len)] if matches else None


class Budget:
    """A USD cap shared by every backend of a build.

    A call reserves its worst case (prompt + ``max_tokens`` of output) before it starts and settles
    to its real cost when it returns, so calls in flight together can never overshoot the cap.
    """

    def __init__(self, cap_usd: float) -> None:
        self.cap = cap_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.refused = 0  # calls not made because they could exceed the cap

    @property
    def exhausted(self) -> bool:
        return self.refused > 0

    def reserve(self, estimate: float) -> bool:
        if self.spent + self.reserved + estimate > self.cap + 1e-12:
            self.refused += 1
            return False
        self.reserved += estimate
        return True

    def settle(self, estimate: float, actual: float) -> None:
        self.reserved = max(0.0, self.reserved - estimate)
        self.spent += actual
