"""What a constraint type is (parameters, phrasings, sampler, checker) and what a record holds.

A record's constraints are a list of ``{"id": ..., "kwargs": {...}}`` (IFEval's layout: its ids and
keyword names where the type is one of IFEval's; ``kwargs`` may be left out for a type without
parameters), optionally with the ``text`` the prompt used.
``parse_constraints`` turns such a list (or its JSON text) into checked ``Constraint`` objects; a
bad entry is one ``ConstraintError`` line naming it: ``constraints[1].kwargs.num_words: ...``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from factory.core.errors import FactoryError, did_you_mean


class ConstraintError(FactoryError):
    """A constraint list that cannot be checked: unknown id, missing or bad parameter."""


@dataclass(frozen=True)
class Param:
    """One keyword argument: ``int`` in [low, high], ``text`` (non-empty), ``words`` (non-empty list
    of single words), ``letter`` (one ASCII letter) or ``choice`` (one of ``choices``)."""

    kind: str
    low: int = 1
    high: int = 100_000
    choices: tuple[str, ...] = ()

    def problem(self, value: Any) -> str | None:
        if self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high
            return None if ok else f"expected an integer from {self.low} to {self.high}, got {value!r}"
        if self.kind == "text":
            return None if isinstance(value, str) and value.strip() else f"expected text, got {value!r}"
        if self.kind == "words":
            ok = isinstance(value, list) and value and all(
                isinstance(w, str) and w.strip() and len(w.split()) == 1 for w in value)
            return None if ok else f"expected a non-empty list of single words, got {value!r}"
        if self.kind == "letter":
            ok = isinstance(value, str) and len(value) == 1 and value.isascii() and value.isalpha()
            return None if ok else f"expected one letter a-z, got {value!r}"
        if value in self.choices:
            return None
        return f"expected one of {', '.join(map(repr, self.choices))}, got {value!r}"


Sampler = Callable[[random.Random, str], "dict[str, Any] | None"]  # (rng, base prompt) -> kwargs
Checker = Callable[[str, dict[str, Any]], bool]  # (response, kwargs) -> follows?
# (answer, kwargs, prompt) -> the answer edited to follow, or None when it cannot be soundly
Repairer = Callable[[str, dict[str, Any], str], "str | None"]


@dataclass(frozen=True)
class ConstraintType:
    """One kind of instruction a program can check.

    ``phrasings`` maps a variant key (the value of the ``variant_by`` parameter, e.g. the relation,
    or "" when there is one group) to prompt sentences, ``str.format`` templates over the kwargs and
    the derived fields of ``view``. ``check`` is a hand-written checker; None means lm-eval's IFEval
    class of the same id is the checker. ``repair`` (optional, ``fixes.py``) edits a failing answer
    to comply; its output is always re-checked (``repair.repair_answer``).
    """

    id: str
    about: str
    params: dict[str, Param]
    phrasings: dict[str, tuple[str, ...]]
    sample: Sampler
    check: Checker | None = None
    weight: float = 1.0  # share in the sampler's default mix; 0: only when a recipe asks for it
    variant_by: str | None = None
    count: str | None = None  # the int parameter the phrasing calls {at_most} / {times} from
    excludes: frozenset[str] = field(default_factory=frozenset)
    alone: bool = False  # never combined with another constraint
    repair: Repairer | None = None

    @property
    def family(self) -> str:
        return self.id.split(":")[0]

    @property
    def checker_name(self) -> str:
        return "hand-written" if self.check is not None else "lm-eval"

    def phrase(self, kwargs: dict[str, Any], rng: random.Random) -> str:
        group = self.phrasings[str(kwargs.get(self.variant_by, "")) if self.variant_by else ""]
        return rng.choice(group).format(**view(kwargs, self.count))


def view(kwargs: dict[str, Any], count: str | None) -> dict[str, Any]:
    """Fields a phrasing may use: the kwargs, word lists as "'a' and 'b'", and for the counted
    parameter ``at_most`` (n - 1, for "less than n") and ``times`` (once, twice, n times)."""
    out = dict(kwargs)
    for key, value in kwargs.items():
        if isinstance(value, list):
            quoted = [f"'{w}'" for w in value]
            out[key] = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
            out[f"{key}_or"] = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
            out[f"{key}_s"] = "" if len(value) == 1 else "s"
    if count is not None:
        n = kwargs[count]
        out["at_most"] = n - 1
        out["times"] = {1: "once", 2: "twice"}.get(n, f"{n} times")
        out["at_most_times"] = {1: "once", 2: "twice"}.get(n - 1, f"{n - 1} times")
    return out


@dataclass(frozen=True)
class Constraint:
    id: str
    kwargs: dict[str, Any]
    text: str = ""  # the sentence the prompt used (kept for reading; the checker ignores it)

    def as_dict(self) -> dict[str, Any]:
        # No "kwargs" for a type without parameters: parquet cannot write a struct with no fields
        # (a split whose every constraint is parameterless would fail to write).
        out: dict[str, Any] = {"id": self.id, **({"kwargs": dict(self.kwargs)} if self.kwargs else {})}
        if self.text:
            out["text"] = self.text
        return out


def validate_kwargs(ctype: ConstraintType, kwargs: Any, where: str = "") -> dict[str, Any]:
    """The kwargs without None values (parquet fills absent struct fields with null), checked;
    errors name ``{where}.kwargs.{key}`` (just ``{key}`` when ``where`` is empty)."""
    at = f"{where}.kwargs." if where else ""
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise ConstraintError(f"{at.rstrip('.') or 'kwargs'}: expected a mapping, got {kwargs!r}")
    clean = {k: v for k, v in kwargs.items() if v is not None}
    for key in clean:
        if key not in ctype.params:
            known = ", ".join(ctype.params) or "none"
            raise ConstraintError(f"{at}{key}: unknown parameter for {ctype.id}"
                                  f"{did_you_mean(key, ctype.params)}; known: {known}")
    for key, param in ctype.params.items():
        if key not in clean:
            raise ConstraintError(f"{at}{key}: required by {ctype.id}")
        problem = param.problem(clean[key])
        if problem:
            raise ConstraintError(f"{at}{key}: {problem}")
    if ctype.id == "length_constraints:nth_paragraph_first_word" and \
            clean["nth_paragraph"] > clean["num_paragraphs"]:
        raise ConstraintError(f"{at}nth_paragraph: must be at most num_paragraphs "
                              f"({clean['num_paragraphs']})")
    return clean


def parse_constraints(value: Any, catalog: dict[str, ConstraintType],
                      name: str = "constraints") -> list[Constraint]:
    """Checked constraints from a record's column: a list of {id, kwargs[, text]} or its JSON."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConstraintError(f"{name}: not JSON: {exc.msg}") from None
    if not isinstance(value, list):
        raise ConstraintError(f"{name}: expected a list of {{id, kwargs}}, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ConstraintError(f"{where}: expected {{id: ..., kwargs: {{...}}}}, got {item!r}")
        ctype = catalog.get(item["id"])
        if ctype is None:
            raise ConstraintError(f"{where}.id: unknown constraint {item['id']!r}"
                                  f"{did_you_mean(item['id'], catalog)}")
        kwargs = validate_kwargs(ctype, item.get("kwargs"), where)
        out.append(Constraint(ctype.id, kwargs, item.get("text") or ""))
    return out
