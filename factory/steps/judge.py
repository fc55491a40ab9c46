"""``kind: judge_pairwise`` — rubric judge asked in both orders; only a consistent verdict is a pair.

Asking twice with the answers swapped cancels position bias: a judge that always says "A" agrees
with itself in neither order, so the record becomes a tie (rejected), never a fake preference.
Figures: ``orders_consistent`` / ``orders_inconsistent`` / ``orders_unparseable`` per judged pair;
rate ``position_consistency`` = consistent / (consistent + inconsistent) (Zheng et al. 2023).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Literal

from pydantic import Field, model_validator

from factory.backends.base import Completion, Request
from factory.record import Rejected
from factory.schema import StepBase
from factory.steps.base import StepContext, StepRunner

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


class JudgePairwiseStep(StepBase):
    """LLM-as-judge on two answers, asked in both orders; disagreement is a tie, not a pair.

    ``reads: [question, answer_1, answer_2]``; ``writes: [chosen, rejected, judgement]``.
    """

    kind: Literal["judge_pairwise"]
    criteria: list[str] = Field(default_factory=lambda: ["correctness", "helpfulness", "clarity"],
                                min_length=1)
    system: str | None = Field(None, description="judge system message")
    min_margin: float = Field(0.0, ge=0, description="minimum rubric-score margin for a pair")

    @model_validator(mode="after")
    def positional_columns(self) -> "JudgePairwiseStep":
        self.require_columns("[question, answer_1, answer_2]", "[chosen, rejected, judgement]")
        return self


class PairwiseJudge(StepRunner):
    def prompt(self, question: str, a: str, b: str) -> list[dict[str, str]]:
        return judge_messages(question, a, b, self.spec.criteria, self.spec.system)

    def requests(self, fields: dict[str, Any]) -> list[Request] | Rejected:
        question, first, second = (str(fields[c]) for c in self.spec.reads)
        if first.strip() == second.strip():
            return Rejected("identical_answers", "both answers are the same text")
        schema = judge_schema(self.spec.criteria)
        return [Request.chat(self.prompt(question, first, second), self.params, json_schema=schema),
                Request.chat(self.prompt(question, second, first), self.params, json_schema=schema)]

    async def run(self, fields: dict[str, Any], ctx: StepContext) -> dict[str, Any] | Rejected:
        requests = self.requests(fields)
        if isinstance(requests, Rejected):
            return requests
        completions = await ctx.ask(requests)
        ctx.count(f"orders_{consistency(completions, self.spec.criteria)}")
        return self.parse(fields, completions)

    def rates(self, figures: Counter) -> dict[str, float]:
        judged = figures["orders_consistent"] + figures["orders_inconsistent"]
        return {"position_consistency": figures["orders_consistent"] / judged} if judged else {}

    def parse(self, fields: dict[str, Any], completions: list[Completion]) -> dict[str, Any] | Rejected:
        raw = [c.text for c in completions]
        forward, backward = (read_verdict(c.text, self.spec.criteria) for c in completions)
        if forward is None or backward is None:
            return Rejected("judge_unparseable", "no verdict found in one of the two orders", raw)
        # Map each order's verdict back to the original answers: 1 = first answer, 2 = second.
        win_forward = {"A": 1, "B": 2}.get(forward[0])
        win_backward = {"A": 2, "B": 1}.get(backward[0])
        if win_forward is None or win_forward != win_backward:
            return Rejected("judge_tie", f"forward={forward[0]} swapped={backward[0]}", raw)
        margin = _margin(forward[1], backward[1], win_forward)
        if margin is not None and margin < self.spec.min_margin:
            return Rejected("judge_low_margin", f"margin {margin:.2f} < {self.spec.min_margin}", raw)
        _, first_col, second_col = self.spec.reads
        winner, loser = (first_col, second_col) if win_forward == 1 else (second_col, first_col)
        chosen_col, rejected_col, judgement_col = self.spec.writes
        return {chosen_col: fields[winner], rejected_col: fields[loser],
                judgement_col: {"winner": winner, "margin": margin, "reasoning": raw}}


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
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    verdict = str(data.get("verdict", "")).strip().upper() if isinstance(data, dict) else ""
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


def _margin(forward: dict[str, float] | None, backward: dict[str, float] | None,
            winner: int) -> float | None:
    """Mean rubric-score lead of the winner over the loser across both orders, when scored."""
    if forward is None or backward is None:
        return None
    lead_first = (forward["A"] - forward["B"] + backward["B"] - backward["A"]) / 2
    return lead_first if winner == 1 else -lead_first
