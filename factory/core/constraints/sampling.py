"""Draw 1-3 constraints for a prompt that can all be met at once, from a seeded RNG.

Two kinds of contradiction are ruled out. By type: pairs that cannot (or can only absurdly) hold
together, e.g. lowercase with capitals, *** paragraphs with blank-line paragraphs, a quoted answer
that must start with a phrase (the table below, plus the ``alone`` types). By parameters: a
forbidden word that another constraint requires, a rare letter capped below what required phrases
already contain, a word or sentence cap too small for the structure the others ask for.
"""

from __future__ import annotations

import random
import re
from itertools import combinations
from typing import Any

from factory.core.constraints.catalog import CATALOG
from factory.core.constraints.spec import Constraint

CASES = ("change_case:lowercase", "change_case:uppercase", "change_case:english_lowercase",
         "change_case:english_capital", "change_case:capital_word_frequency")
_PAIRS = [
    ("length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word"),
    ("length_constraints:number_paragraphs", "length_constraints:number_sentences"),
    ("detectable_format:number_bullet_lists", "detectable_format:numbered_list"),
    ("detectable_format:multiple_sections", "detectable_format:number_highlighted_sections"),
    ("startend:quotation", "detectable_format:title"),
    ("startend:quotation", "startend:start_phrase"),
    ("startend:start_phrase", "length_constraints:nth_paragraph_first_word"),
] + list(combinations(CASES, 2)) + [
    # 'Section'/'PART' markers and 'P.S.' have a fixed case; a case rule would contradict them.
    (case, other) for case in CASES
    for other in ("detectable_format:multiple_sections", "detectable_content:postscript")]
TYPE_CONFLICTS: frozenset[frozenset[str]] = frozenset(frozenset(p) for p in _PAIRS)


def types_conflict(a: str, b: str) -> bool:
    return a == b or CATALOG[a].alone or CATALOG[b].alone or frozenset((a, b)) in TYPE_CONFLICTS


def required_text(c: Constraint) -> str:
    """Text a constraint forces into every compliant answer (for parameter conflicts)."""
    k = c.kwargs
    if c.id == "keywords:existence":
        return " ".join(k["keywords"])
    if c.id == "keywords:frequency" and k["relation"] == "at least":
        return " ".join([k["keyword"]] * k["frequency"])
    if c.id == "detectable_format:multiple_sections":
        return " ".join(f"{k['section_spliter']} {i}" for i in range(1, k["num_sections"] + 1))
    field = {"startend:end_checker": "end_phrase", "startend:start_phrase": "start_phrase",
             "length_constraints:nth_paragraph_first_word": "first_word",
             "detectable_content:postscript": "postscript_marker"}.get(c.id)
    return k[field] if field else ""


def min_words(c: Constraint) -> int:
    """Fewest words a compliant answer can have (for a 'fewer than n words' cap)."""
    k = c.kwargs
    per_count = {"length_constraints:number_paragraphs": ("num_paragraphs", 5),
                 "length_constraints:nth_paragraph_first_word": ("num_paragraphs", 5),
                 "detectable_content:number_placeholders": ("num_placeholders", 1),
                 "detectable_format:number_bullet_lists": ("num_bullets", 2),
                 "detectable_format:numbered_list": ("num_items", 2),
                 "detectable_format:number_highlighted_sections": ("num_highlights", 1),
                 "detectable_format:multiple_sections": ("num_sections", 4)}
    if c.id in per_count:
        name, each = per_count[c.id]
        return k[name] * each
    if c.id == "length_constraints:number_sentences" and k["relation"] == "at least":
        return 3 * k["num_sentences"]
    if c.id == "change_case:capital_word_frequency" and k["capital_relation"] == "at least":
        return k["capital_frequency"]
    if c.id == "detectable_format:title":
        return 2
    return len(required_text(c).split())


def min_sentences(c: Constraint) -> int:
    k = c.kwargs
    if c.id == "length_constraints:nth_paragraph_first_word":
        return k["num_paragraphs"]
    if c.id == "detectable_format:multiple_sections":
        return k["num_sections"]
    return 1 if c.id in ("detectable_content:postscript", "startend:end_checker") else 0


def params_conflict(chosen: list[Constraint]) -> str | None:
    """Why these constraints (types already compatible) cannot all hold, or None."""
    required = " ".join(required_text(c) for c in chosen).lower()
    for c in chosen:
        k = c.kwargs
        if c.id == "keywords:forbidden_words":
            # IFEval's forbidden-word check: the whole word, any case.
            hit = [w for w in k["forbidden_words"] if re.search(rf"\b{re.escape(w.lower())}\b", required)]
            if hit:
                return f"forbidden word {hit[0]!r} is required by another constraint"
        elif c.id == "keywords:frequency" and k["relation"] == "less than" and \
                required.count(k["keyword"].lower()) >= k["frequency"]:
            return f"'{k['keyword']}' is required {k['frequency']}+ times by another constraint"
        elif c.id == "keywords:letter_frequency" and k["let_relation"] == "less than" and \
                required.count(k["letter"].lower()) >= k["let_frequency"]:
            return f"letter '{k['letter']}' is required {k['let_frequency']}+ times by other constraints"
        elif c.id == "punctuation:no_comma" and "," in required:
            return "a required phrase has a comma"
        elif c.id == "change_case:capital_word_frequency" and k["capital_relation"] == "less than":
            caps = sum(w.isupper() for w in re.findall(r"[A-Za-z]+", " ".join(
                required_text(o) for o in chosen)))
            if caps >= k["capital_frequency"]:
                return "required phrases hold too many all-caps words"
        elif c.id == "length_constraints:number_words" and k["relation"] == "less than":
            need = sum(min_words(o) for o in chosen if o is not c)
            if need + 5 > k["num_words"]:
                return f"the others need about {need} words; the cap is {k['num_words']}"
        elif c.id == "length_constraints:number_sentences" and k["relation"] == "less than":
            need = sum(min_sentences(o) for o in chosen if o is not c) + 1
            if need >= k["num_sentences"]:
                return f"the others need {need}+ sentences; the cap is {k['num_sentences']}"
    return None


def conflict(constraints: list[Constraint]) -> str | None:
    """Why a set cannot all be met at once (type or parameter conflict), or None."""
    for a, b in combinations(constraints, 2):
        if types_conflict(a.id, b.id):
            return f"{a.id} and {b.id} contradict each other"
    return params_conflict(constraints)


def default_weights() -> dict[str, float]:
    return {t.id: t.weight for t in CATALOG.values() if t.weight > 0}


def sample_constraints(rng: random.Random, prompt: str, weights: dict[str, float],
                       low: int = 1, high: int = 3, fixed: list[Constraint] | tuple = (),
                       attempts: int = 30) -> list[Constraint]:
    """Between ``low`` and ``high`` constraints for ``prompt``, none contradicting another or the
    ``fixed`` ones, each with its phrasing; fewer than ``low`` only when the weighted types leave
    no compatible choice."""
    target = rng.randint(low, high) + len(fixed)
    chosen: list[Constraint] = list(fixed)
    refused: set[str] = set()  # types whose sampler does not apply to this prompt
    for _ in range(attempts):
        if len(chosen) >= target:
            break
        pool = [t for t in weights if weights[t] > 0 and t not in refused
                and not any(types_conflict(t, c.id) for c in chosen)]
        if not pool:
            break
        type_id = rng.choices(pool, [weights[t] for t in pool])[0]
        ctype = CATALOG[type_id]
        kwargs = ctype.sample(rng, prompt)
        if kwargs is None:
            refused.add(type_id)
            continue
        candidate = Constraint(type_id, kwargs, sentence(ctype.phrase(kwargs, rng)))
        if params_conflict(chosen + [candidate]) is None:
            chosen.append(candidate)
    return chosen[len(fixed):]


def sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", '"')) else text + "."


# Where the constraints go after the request: on the same line, the next line or after a blank
# line, as people write them (a model taught one layout keys on the layout).
SEPARATORS = (" ", " ", "\n", "\n\n")


def with_constraints(prompt: str, constraints: list[Constraint], separator: str = " ") -> str:
    """The prompt a model sees: the base prompt, then the constraints' sentences."""
    texts = " ".join(c.text for c in constraints if c.text)
    return prompt.rstrip() + separator + texts if texts else prompt.rstrip()


def describe(constraints: list[dict[str, Any]]) -> str:
    return "; ".join(c["id"] for c in constraints)
