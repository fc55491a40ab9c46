"""Verifiable rewards: does a completion contain the right answer, or follow its constraints?
Pure functions on text, so GRPO (``trainers/grpo.py``), rejection sampling
(``factory/steps/rejection_sampling.py``) and ``factory eval`` share them.

The contract, one for every verifier: ``verifier(text, reference) -> Verdict``. ``reference`` is
the row's reference column as it is (a number, text, regex, JSON schema, or a constraint list);
``Verdict.score`` is in [0, 1], or None when the completion holds no answer the verifier can read;
``Verdict.checks`` holds per-check results where a verifier checks several things (``constraints``:
one ``{"id", "ok"}`` per constraint). ``as_reward_fn`` adapts a verifier to TRL's reward-function
signature. A user verifier is named ``module:function`` (``(text, answer) -> float | None``, or a
Verdict) and runs only when the build was given ``--trust-code``.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.core.constraints import ConstraintError, check_constraints
from factory.core.errors import FactoryError
from factory.core.structured import extract_json

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


_INTEGER = re.compile(r"-?\d+(?:\.\d+)?")


def extract_number_list(text: str) -> list[float] | None:
    """Every number in the text, in order (thousands separators are not read: '1,2' is two)."""
    found = _INTEGER.findall(text)
    return [float(n) for n in found] if found else None


def number_list_match(text: str, answer: str) -> float:
    """1.0 when the completion's numbers, in order, are exactly the answer's numbers: nothing
    missing, nothing extra (a strict check for sorting and for 'answer with just the number')."""
    got, want = extract_number_list(text), extract_number_list(str(answer))
    return 1.0 if got is not None and got == want else 0.0


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


def json_schema_valid(text: str, schema: Any) -> float:
    """1.0 when the completion holds JSON that validates against ``schema`` (a dict or JSON text)."""
    try:
        import jsonschema
    except ImportError:  # a declared dependency; the hint is for a partial install
        raise FactoryError("the json_schema verifier needs the 'jsonschema' package: "
                           "pip install jsonschema") from None
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise FactoryError(f"json_schema answer is not JSON: {exc.msg}") from None
    value = extract_json(text)
    if value is None:
        return 0.0
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return 0.0
    except jsonschema.SchemaError as exc:
        raise FactoryError(f"json_schema answer is not a valid schema: {exc.message}") from None
    return 1.0


@dataclass(frozen=True)
class Verdict:
    """What a verifier says about one completion."""

    score: float | None  # in [0, 1]; None: no answer this verifier can read in the completion
    checks: list[dict[str, Any]] | None = None  # per-check results (constraints: one per constraint)

    @property
    def passed(self) -> bool:
        return self.score is not None and self.score >= 1.0


class ScoreVerifier:
    """A built-in verifier from a score function on (text, reference text) and, where the answer
    has a shape, a reader that finds it (no answer found: score None, "unreadable")."""

    def __init__(self, name: str, score: Callable[[str, Any], float],
                 reader: Callable[[str], Any] | None = None) -> None:
        self.name, self.score, self.reader = name, score, reader
        self.reward_name = score.__name__  # TRL's metric name: rewards/<numeric_match>_reward/...

    def __call__(self, text: str, reference: Any) -> Verdict:
        if not text.strip() or (self.reader is not None and self.reader(text) is None):
            return Verdict(None)
        return Verdict(float(self.score(text, answer_text(reference))))


class ConstraintsVerifier:
    """Share of the record's constraints the completion meets; the reference is the constraint
    list (``[{id, kwargs}]`` or its JSON). Checks: lm-eval's IFEval classes or hand-written ones."""

    name = reward_name = "constraints"

    def __call__(self, text: str, reference: Any) -> Verdict:
        if not text.strip():
            return Verdict(None)
        results = check_constraints(text, reference)
        if not results:
            raise ConstraintError("constraints: the list is empty: nothing to verify")
        return Verdict(sum(r["ok"] for r in results) / len(results), results)


class UserVerifier:
    def __init__(self, name: str, func: Callable[..., Any]) -> None:
        self.name, self.func = name, func
        self.reward_name = getattr(func, "__name__", "verifier")

    def __call__(self, text: str, reference: Any) -> Verdict:
        value = self.func(text, answer_text(reference))
        if isinstance(value, Verdict):
            return value
        return Verdict(None if value is None else float(value))


Verifier = Callable[[str, Any], Verdict]

VERIFIERS: dict[str, Verifier] = {
    "numeric": ScoreVerifier("numeric", numeric_match, extract_number),
    "exact": ScoreVerifier("exact", exact_match),
    "regex": ScoreVerifier("regex", regex_match),
    "json_schema": ScoreVerifier("json_schema", json_schema_valid, extract_json),
    "number_list": ScoreVerifier("number_list", number_list_match, extract_number_list),
    "constraints": ConstraintsVerifier(),
}


def is_user_verifier(name: str) -> bool:
    """``module:function`` names code outside factory (needs --trust-code)."""
    return ":" in name


def get_verifier(name: str, trust_code: bool = False, search_dir: Path | None = None) -> Verifier:
    """A built-in verifier by name, or a user ``module:function`` when ``trust_code`` is set.

    ``search_dir`` (the recipe's folder) is tried first when importing a user module.
    """
    if is_user_verifier(name):
        if not trust_code:
            raise FactoryError(f"verifier {name}: user code runs only with --trust-code")
        return load_user_verifier(name, search_dir)
    if name not in VERIFIERS:
        from factory.core.errors import did_you_mean

        raise FactoryError(f"verifier {name}: unknown{did_you_mean(name, VERIFIERS)}; "
                           f"one of {', '.join(VERIFIERS)}, or module:function")
    return VERIFIERS[name]


def load_user_verifier(ref: str, search_dir: Path | None = None) -> Verifier:
    """Import ``module:function``; the function takes ``(text, answer)`` and returns a float
    (or None when the completion holds no answer it can read, or a Verdict)."""
    module_name, _, func_name = ref.partition(":")
    if not module_name or not func_name:
        raise FactoryError(f"verifier {ref}: write it as module:function")
    added = search_dir is not None and str(search_dir) not in sys.path
    if added:
        sys.path.insert(0, str(search_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FactoryError(f"verifier {ref}: cannot import {module_name}: {exc}") from None
    finally:
        if added:
            sys.path.remove(str(search_dir))
    func = getattr(module, func_name, None)
    if not callable(func):
        raise FactoryError(f"verifier {ref}: {module_name} has no function {func_name}")
    return UserVerifier(ref, func)


def completion_text(completion: Any) -> str:
    """TRL passes strings (standard data) or message lists (conversational data)."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion)


def answer_text(answer: Any) -> str:
    """A column value as the text a verifier compares with (a schema dict becomes JSON)."""
    if isinstance(answer, str):
        return answer
    return json.dumps(answer) if isinstance(answer, (dict, list)) else str(answer)


def as_reward_fn(verifier: Verifier, answer_column: str = "answer") -> Callable[..., list[float]]:
    """TRL's reward function: the verdict's score per completion (unreadable: 0.0)."""

    def reward(completions: list[Any], **columns: Any) -> list[float]:
        answers = columns[answer_column]
        return [verifier(completion_text(c), a).score or 0.0 for c, a in zip(completions, answers)]

    reward.__name__ = f"{getattr(verifier, 'reward_name', 'verifier')}_reward"  # TRL logs it by name
    return reward
