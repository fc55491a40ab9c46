"""Pairwise judging: the prompt that shows two answers, its JSON schema, and the verdict reader.

Shared by the ``judge_pairwise`` step, ``factory eval``'s win rate and the judge tools, so they ask
the same question and read answers the same way.
"""

from __future__ import annotations

import re
from typing import Any

from factory.core.structured import json_object
from factory.llm.request import Completion

SYSTEM = "You are a careful, impartial judge of answers to user requests."

TEMPLATE = """Compare two answers to the same request.

[Request]
{question}

[Answer A]
{a}

[Answer B]
{b}

Rate each answer from 0 to 5 on {criteria_list}. Reason first (two or three sentences), then
score, then decide. Reply with JSON only, in this shape:
{{"reasoning": "...", "A": {score_shape}, "B": {score_shape}, "verdict": "A" or "B" or "TIE"}}"""

VERDICT = re.compile(r"\[\[\s*(A|B|TIE)\s*\]\]|verdict\W*[:\-]\s*\W*(A|B|TIE)\b", re.I)


def judge_schema(criteria: list[str]) -> dict[str, Any]:
    """Reasoning before scores before verdict: a constrained decoder writes them in this order."""
    scores = {"type": "object", "properties": {c: {"enum": [0, 1, 2, 3, 4, 5]} for c in criteria},
              "required": list(criteria), "additionalProperties": False}
    return {"type": "object",
            "properties": {"reasoning": {"type": "string", "maxLength": 400}, "A": scores,
                           "B": scores, "verdict": {"enum": ["A", "B", "TIE"]}},
            "required": ["reasoning", "A", "B", "verdict"], "additionalProperties": False}


def judge_messages(question: str, a: str, b: str, criteria: list[str],
                   system: str | None = None) -> list[dict[str, str]]:
    """The pairwise prompt with answer ``a`` in position A (``factory eval`` asks it too)."""
    text = TEMPLATE.format(
        question=question, a=a, b=b, criteria_list=", ".join(criteria),
        score_shape="{" + ", ".join(f'"{c}": 0-5' for c in criteria) + "}")
    return [{"role": "system", "content": system or SYSTEM}, {"role": "user", "content": text}]


def consistency(completions: list[Completion], criteria: list[str]) -> str:
    """'consistent' when both orders name the same answer (or both say TIE), 'inconsistent' when
    the verdict follows the position, 'unparseable' when either order has no verdict."""
    forward, backward = (read_verdict(c.text, criteria) for c in completions)
    if forward is None or backward is None:
        return "unparseable"
    first = {"A": 1, "B": 2}.get(forward[0], 0)  # 1/2: the step's first/second answer, 0: tie
    second = {"A": 2, "B": 1}.get(backward[0], 0)
    return "consistent" if first == second else "inconsistent"


def read_verdict(text: str, criteria: list[str]) -> tuple[str, dict[str, float] | None] | None:
    """(verdict A/B/TIE, {"A": mean score, "B": mean score} or None) from a judge's answer.

    Reads the JSON the judge was asked for; falls back to a ``Verdict: [[A]]`` line with
    ``A: correctness=4 ...`` score lines for judges that answered in prose. None: no verdict.
    """
    parsed = _json_verdict(text, criteria)
    if parsed is not None:
        return parsed
    matches = VERDICT.findall(text)
    if not matches:
        return None
    bracket, plain = matches[-1]  # the last verdict wins: reasoning may quote the format first
    verdict = (bracket or plain).upper()
    totals = {}
    for label in ("A", "B"):
        line = re.search(rf"^\W*{label}\W*:(.*)$", text, re.M)
        named = {k.lower(): float(v) for k, v in
                 re.findall(r"(\w+)\s*=\s*([0-5](?:\.\d+)?)", line.group(1) if line else "")}
        if not all(c.lower() in named for c in criteria):
            return verdict, None
        totals[label] = sum(named[c.lower()] for c in criteria) / len(criteria)
    return verdict, totals


def _json_verdict(text: str, criteria: list[str]) -> tuple[str, dict[str, float] | None] | None:
    data = json_object(text)
    verdict = str(data.get("verdict", "")).strip().upper() if data is not None else ""
    if verdict not in ("A", "B", "TIE"):
        return None
    totals = {}
    for label in ("A", "B"):
        scores = data.get(label)
        if not isinstance(scores, dict) or not all(
                isinstance(scores.get(c), (int, float)) for c in criteria):
            return verdict, None
        totals[label] = sum(float(scores[c]) for c in criteria) / len(criteria)
    return verdict, totals


# The verdict-letter prompt of the probability modes (``logprob``, ``votes``): the reply's first
# token is the verdict, so P("A") vs P("B") is read where the judge decides, with no reasoning in
# between whose sampled words would move it.
LETTER_TEMPLATE = """Compare two answers to the same request.

[Request]
{question}

[Answer A]
{a}

[Answer B]
{b}

Which answer is better on {criteria_list}? Reply with one letter only: A or B."""


def letter_messages(question: str, a: str, b: str, criteria: list[str],
                    system: str | None = None) -> list[dict[str, str]]:
    """The verdict-letter prompt with answer ``a`` in position A."""
    text = LETTER_TEMPLATE.format(question=question, a=a, b=b, criteria_list=", ".join(criteria))
    return [{"role": "system", "content": system or SYSTEM}, {"role": "user", "content": text}]
