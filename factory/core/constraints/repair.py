"""Constraint repair: make a failing answer meet all of its constraints by program edits, then
re-check it (the idea of AutoIF / verify-and-edit, for instruction-following data).

``repair_answer`` runs ``fixes.finish`` (loops and a cut-off tail), then the ``repair`` of each
constraint type not met yet, in a fixed order: content edits, length cuts, layout, inline marks,
added phrases, commas, case, and last the wrappers (JSON, quotes), so that no later edit undoes an
earlier one.
Added phrases can push an answer over a word or sentence cap, so with a cap the repairs are rerun
from the start with the cap lowered by a growing slack. The result is always re-checked with the
record's checkers (lm-eval's for IFEval ids); ``ok`` is that verdict, never the repairs' own.
"""

from __future__ import annotations

from dataclasses import dataclass

from factory.core.constraints import CATALOG, Constraint, check_constraints, check_one
from factory.core.constraints.fixes import finish

ORDER = (
    "keywords:forbidden_words", "change_case:capital_word_frequency",
    "length_constraints:number_words", "length_constraints:number_sentences",
    "length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word",
    "detectable_format:multiple_sections", "detectable_format:number_bullet_lists",
    "detectable_format:numbered_list", "combination:two_responses",
    "detectable_format:number_highlighted_sections", "keywords:existence", "keywords:frequency",
    "detectable_content:number_placeholders", "detectable_format:constrained_response",
    "detectable_format:title", "startend:start_phrase", "combination:repeat_prompt",
    "detectable_content:postscript", "startend:end_checker", "punctuation:no_comma",
    "change_case:lowercase", "change_case:uppercase", "change_case:english_lowercase",
    "change_case:english_capital", "detectable_format:json_format", "startend:quotation",
)
_RANK = {type_id: i for i, type_id in enumerate(ORDER)}
# Caps lowered by this much on each retry (words, sentences), so added phrases still fit.
SLACK = ((0, 0), (5, 1), (10, 2), (20, 3), (40, 4))
_CAPS = {"length_constraints:number_words": ("num_words", 0),
         "length_constraints:number_sentences": ("num_sentences", 1)}


class _NoRepair(Exception):
    pass


@dataclass(frozen=True)
class Repair:
    text: str
    ok: bool                 # the checkers accept ``text`` for every constraint
    applied: tuple[str, ...]  # "finish" and the type ids whose repair changed the text
    failing: tuple[str, ...]  # ids the checkers still reject (empty when ok)
    reason: str = ""          # why not ok, in a few words


def repairable(constraints: list[Constraint]) -> list[str]:
    """Ids in ``constraints`` whose type has no repair."""
    return [c.id for c in constraints if CATALOG[c.id].repair is None]


def _apply(text: str, constraints: list[Constraint], prompt: str, slack: tuple[int, int],
           applied: list[str]) -> str:
    """The repairs in ``ORDER``; raises _NoRepair naming the type whose repair does not apply."""
    for c in sorted(constraints, key=lambda c: _RANK.get(c.id, len(ORDER))):
        fix = CATALOG[c.id].repair
        if fix is None:
            continue
        kwargs = dict(c.kwargs)
        if c.id in _CAPS:
            name, which = _CAPS[c.id]
            kwargs[name] = max(1, kwargs[name] - slack[which])
        if check_one(Constraint(c.id, kwargs), text):
            continue  # already met: the smallest edit is none
        new = fix(text, kwargs, prompt)
        if new is None or not new.strip():
            raise _NoRepair(c.id)
        if new != text:
            applied.append(c.id)
        text = new
    return text


def repair_answer(answer: str, constraints: list[Constraint], prompt: str,
                  truncated: bool = False) -> Repair:
    """``answer`` edited to meet ``constraints`` (parsed), and the checkers' verdict on the edit."""
    base = finish(answer, truncated)
    lead = ["finish"] if base != answer.strip() else []
    if not base:
        return Repair("", False, tuple(lead), tuple(c.id for c in constraints), "nothing left after finish")
    has_cap = any(c.id in _CAPS for c in constraints)
    text, failing, applied = base, [c.id for c in constraints], list(lead)
    for slack in SLACK if has_cap else SLACK[:1]:
        applied = list(lead)
        try:
            text = _apply(base, constraints, prompt, slack, applied)
        except _NoRepair as exc:
            if slack == SLACK[0]:
                return Repair(base, False, tuple(applied), tuple(failing), f"no repair applies for {exc}")
            break  # a lower cap left too little text: the last re-check's verdict stands
        failing = [r["id"] for r in check_constraints(text, constraints) if not r["ok"]]
        if not failing:
            return Repair(text, True, tuple(applied), ())
    return Repair(text, False, tuple(applied), tuple(failing), "re-check failed: " + ", ".join(failing))
