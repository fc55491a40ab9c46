"""Verifiable rewards: does a completion contain the right answer? Pure functions on text, so
GRPO (``trainers/grpo.py``) and rejection sampling can share them.

Each verifier is ``(text, answer) -> float`` in [0, 1]. ``as_reward_fn`` adapts one to TRL's
reward-function signature (completions plus dataset columns as keyword lists).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from factory.errors import FactoryError

Verifier = Callable[[str, str], float]

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_FINAL = re.compile(r"(?:answer|####)\s*(?:is|:)?\s*(-?[\d.,]+)", re.IGNORECASE)


def extract_number(text: str) -> float | None:
    """The answer a model meant: \\boxed{..}, then 'answer: N' / '#### N', else the last number."""
    for pattern in (_BOXED, _FINAL):
        found = pattern.findall(text)
        if found:
            value = _to_float(found[-1])
            if value is not None:
                return value
    numbers = _NUMBER.findall(text)
    return _to_float(numbers[-1]) if numbers else None


def _to_float(raw: str) -> float | None:
    try:
        return float(raw.replace(",", "").strip().rstrip("."))
    except ValueError:
        return None


def numeric_match(text: str, answer: str, rel_tol: float = 1e-6) -> float:
    """1.0 when the completion's final number equals ``answer`` (commas, trailing .0 ignored)."""
    got, want = extract_number(text), _to_float(str(answer))
    if got is None or want is None:
        return 0.0
    return 1.0 if math.isclose(got, want, rel_tol=rel_tol, abs_tol=1e-9) else 0.0


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())


def exact_match(text: str, answer: str) -> float:
    """1.0 when the texts agree after lowercasing and dropping punctuation and extra spaces."""
    return 1.0 if _normalize(text) == _normalize(str(answer)) else 0.0


def regex_match(text: str, pattern: str) -> float:
    """1.0 when ``pattern`` (the row's answer column holds a regex) matches anywhere."""
    try:
        return 1.0 if re.search(pattern, text) else 0.0
    except re.error as exc:
        raise FactoryError(f"regex answer {pattern!r}: {exc}") from None


VERIFIERS: dict[str, Verifier] = {"numeric": numeric_match, "exact": exact_match,
                                  "regex": regex_match}


def get_verifier(name: str) -> Verifier:
    if name not in VERIFIERS:
        from factory.errors import did_you_mean

        raise FactoryError(f"verifier {name}: unknown{did_you_mean(name, VERIFIERS)}; "
                           f"one of {', '.join(VERIFIERS)}")
    return VERIFIERS[name]


def completion_text(completion: Any) -> str:
    """TRL passes strings (standard data) or message lists (conversational data)."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion)


def as_reward_fn(verifier: Verifier, answer_column: str = "answer") -> Callable[..., list[float]]:
    def reward(completions: list[Any], **columns: Any) -> list[float]:
        answers = columns[answer_column]
        return [verifier(completion_text(c), str(a)) for c, a in zip(completions, answers)]

    reward.__name__ = f"{getattr(verifier, '__name__', 'verifier')}_reward"  # TRL logs it by name
    return reward
