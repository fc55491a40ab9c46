"""Fake-backend judges with known behaviour, and answers they can be checked on.

Answers come in two well-formed shapes that quote their own question: ``Full answer to: Q It ends
here, complete and careful.`` (the better one) and ``Short reply to: Q Done and dusted for now.``
Every degradation in ``factory.core.degrade`` breaks the shape (a loop, a cut, shuffled words, an
empty answer) or the quote (another question's answer), so a regex with a back-reference to the
``[Request]`` text is a perfect judge: it names the well-formed answer to this question, preferring
the full one. The always-"A" judge and the coin are what weak models do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FULL = "Full answer to: {last} It ends here, complete and careful."
SHORT = "Short reply to: {last} Done and dusted for now."
_FORMS = (r"Full answer to: \1 It ends here, complete and careful\.",
          r"Short reply to: \1 Done and dusted for now\.")
_HEAD = r"\[Request\]\n(.*?)\n\n\[Answer A\]\n"
_TAIL = r"\n\n(?:Rate each|Which answer)"  # the rubric prompt, or the verdict-letter prompt

# Questions written for these tests.
QUESTIONS = [
    "How do ocean tides rise and fall each day?", "Why does the sky look blue at noon?",
    "What makes iron turn into rust over time?", "How does a bicycle stay upright while moving?",
    "Why do onions make people cry when they are cut?", "How do bees find their way back home?",
    "What causes thunder during a summer storm?", "Why does bread go stale after a few days?",
    "How do plants pull water up from the soil?", "Why is sea water salty but river water not?",
    "How does a kettle know when to switch off?", "Why do cats purr when they are calm?",
]

SURE_A = {"A": -0.05, "B": -3.0}
SURE_B = {"A": -3.0, "B": -0.05}


def full(question: str) -> str:
    return FULL.replace("{last}", question)


def generation_rules() -> list[dict[str, Any]]:
    """Two generate steps whose system message says which shape to answer in."""
    return [{"match": "STYLE-FULL", "reply": FULL}, {"match": "STYLE-SHORT", "reply": SHORT}]


def perfect_rules(mode: str = "text") -> list[dict[str, Any]]:
    """Names the well-formed answer to the question asked (the full one over the short one)."""
    rules = []
    for form in _FORMS:
        for letter, pattern, probs in (("A", _HEAD + form + r"\n\n\[Answer B\]", SURE_A),
                                       ("B", _HEAD + r".*?\n\n\[Answer B\]\n" + form + _TAIL, SURE_B)):
            rules.append({"match": pattern, **_verdict(letter, mode, probs)})
    return rules


def always_a_rules(mode: str = "text") -> list[dict[str, Any]]:
    return [{"match": "Compare two answers", **_verdict("A", mode, {"A": -0.1, "B": -2.5})}]


def coin_rules(mode: str = "text") -> list[dict[str, Any]]:
    if mode == "logprob":  # sure of A or of B, by request hash
        return [{"match": "Compare two answers", "replies": [
            {"reply": "A", "top_logprobs": SURE_A}, {"reply": "B", "top_logprobs": SURE_B}]}]
    return [{"match": "Compare two answers", "replies": [_text("A"), _text("B")]}]


def _text(letter: str) -> str:
    return f"Answer {letter} is better.\nVerdict: [[{letter}]]"


def _verdict(letter: str, mode: str, probs: dict[str, float]) -> dict[str, Any]:
    if mode == "logprob":
        return {"reply": letter, "top_logprobs": probs}
    return {"reply": letter if mode == "votes" else _text(letter)}


def judge_recipe(folder: Path, judge_rules: list[dict[str, Any]], mode: str = "text",
                 gate: dict[str, Any] | None = None, recipe_gate: dict[str, Any] | None = None,
                 name: str = "gated", questions: list[str] = QUESTIONS,
                 judge_extra: dict[str, Any] | None = None) -> Path:
    """A recipe: two answers per question (full, short) on the fake backend, then the judge.
    JSON is YAML: the rules' regexes need no YAML escaping."""
    seeds = folder / "questions.jsonl"
    seeds.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in questions))
    judge: dict[str, Any] = {"name": "judge", "kind": "judge_pairwise", "mode": mode,
                             "reads": ["prompt", "answer_a", "answer_b"],
                             "writes": ["chosen", "rejected", "judgement"], **(judge_extra or {})}
    if mode == "votes":
        judge.setdefault("params", {"temperature": 1.0})
    if gate is not None:
        judge["judge_gate"] = gate
    recipe: dict[str, Any] = {
        "name": name, "seeds": {"path": str(seeds)},
        "backend": {"name": "fake", "options": {"rules": generation_rules() + judge_rules,
                                                "default": "No verdict here."}},
        "steps": [{"name": "answer_a", "kind": "generate", "reads": ["prompt"], "writes": "answer_a",
                   "system": "STYLE-FULL", "prompt": "{prompt}"},
                  {"name": "answer_b", "kind": "generate", "reads": ["prompt"], "writes": "answer_b",
                   "system": "STYLE-SHORT", "prompt": "{prompt}"}, judge],
        "outputs": {"splits": {"dpo": {"format": "dpo"}, "sft": {"format": "sft", "completion": "chosen"}}}}
    if recipe_gate is not None:
        recipe["judge_gate"] = recipe_gate
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(recipe, indent=1))
    return path
