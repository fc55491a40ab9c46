"""Single-answer rubric scoring (MT-Bench style): one request per answer, reasoning before scores.

Shared by the ``judge_score`` step and the QC chain's judge reward scorer, so both read the same
prompt and the same parser. A reply that cannot be read is a ``Rejected``, never a guessed score.
"""

from __future__ import annotations

import re
from typing import Any

from factory.core.record import Rejected
from factory.core.structured import json_object
from factory.llm.request import Completion, Request, SamplingParams

DEFAULT_CRITERIA = ("correctness", "helpfulness", "clarity")

SYSTEM = "You are a careful, impartial judge of answers to user requests."

TEMPLATE = """Rate the answer to the request below.

[Request]
{question}

[Answer]
{answer}

Rate the answer from 0 (worst) to 5 (best) on each of: {criteria_list}. Reason first (two or three
sentences), then give the scores. Reply with JSON only, in this shape:
{{"reasoning": "...", {score_shape}}}"""

# Recipes may override the judge's templates (``templates: {system: ..., prompt: ...}``).
JUDGE_TEMPLATES = {"system": SYSTEM, "prompt": TEMPLATE}
JUDGE_TEMPLATE_FIELDS = {"system": [], "prompt": ["question", "answer", "criteria_list", "score_shape"]}
JUDGE_OPTIONAL_FIELDS = ("criteria_list", "score_shape")  # a custom prompt may spell the scores out

SCORE_LINE = re.compile(r"\b(\w+)\b\W{0,3}[:=]\W{0,3}([0-5](?:\.\d+)?)\s*(?:/\s*5)?\b")


def rubric_schema(criteria: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Reasoning first, then one 0-5 integer per criterion (the order a constrained decoder writes)."""
    props: dict[str, Any] = {"reasoning": {"type": "string", "maxLength": 400}}
    props.update({c: {"enum": [0, 1, 2, 3, 4, 5]} for c in criteria})
    return {"type": "object", "properties": props, "required": ["reasoning", *criteria],
            "additionalProperties": False}


def rubric_messages(question: str, answer: str, criteria: list[str] | tuple[str, ...],
                    template: str = TEMPLATE, system: str = SYSTEM) -> list[dict[str, str]]:
    shape = ", ".join(f'"{c}": 0-5' for c in criteria)
    text = template.format(question=question, answer=answer, criteria_list=", ".join(criteria),
                           score_shape=shape)
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def rubric_request(question: str, answer: str, params: SamplingParams,
                   criteria: list[str] | tuple[str, ...] = DEFAULT_CRITERIA,
                   template: str = TEMPLATE, system: str = SYSTEM, sample_index: int = 0) -> Request:
    return Request.chat(rubric_messages(question, answer, criteria, template, system), params,
                        sample_index=sample_index, json_schema=rubric_schema(criteria))


def parse_rubric(completion: Completion | str,
                 criteria: list[str] | tuple[str, ...] = DEFAULT_CRITERIA) -> dict[str, Any] | Rejected:
    """``{"scores": {criterion: 0-5}, "score": mean, "reasoning": str}`` or ``Rejected``.

    Reads the JSON the judge was asked for; falls back to ``correctness: 4`` lines for judges that
    answered in prose. Every criterion must be present and within 0-5, else the reply is rejected.
    """
    text = completion if isinstance(completion, str) else completion.text
    if not isinstance(completion, str) and completion.finish_reason == "length":
        return Rejected("judge_truncated", "the judge hit max_tokens before finishing", text)
    scores, reasoning = _from_json(text, criteria)
    if scores is None:
        named = {k.lower(): float(v) for k, v in SCORE_LINE.findall(text)}
        scores = {c: named[c.lower()] for c in criteria if c.lower() in named}
        reasoning = text.strip()
    missing = [c for c in criteria if c not in scores]
    if missing:
        return Rejected("judge_unparseable", f"no score for {', '.join(missing)}", text)
    if any(not 0 <= s <= 5 for s in scores.values()):
        return Rejected("judge_unparseable", f"score outside 0-5: {scores}", text)
    return {"scores": scores, "score": round(sum(scores.values()) / len(scores), 4),
            "reasoning": reasoning}


def _from_json(text: str, criteria: list[str] | tuple[str, ...]) -> tuple[dict[str, float] | None, str]:
    data = json_object(text)
    if data is None:
        return None, ""
    scores = {c: float(data[c]) for c in criteria
              if isinstance(data.get(c), (int, float)) and not isinstance(data.get(c), bool)}
    return scores, str(data.get("reasoning", ""))
