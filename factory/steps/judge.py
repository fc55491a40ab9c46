"""``kind: judge_pairwise`` — rubric judge asked in both orders; only a consistent verdict is a pair.

Asking twice with the answers swapped cancels position bias: a judge that always says "A" agrees
with itself in neither order, so the record becomes a tie (rejected), never a fake preference.
Figures: ``orders_consistent`` / ``orders_inconsistent`` / ``orders_unparseable`` per judged pair;
rate ``position_consistency`` = consistent / (consistent + inconsistent) (Zheng et al. 2023).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import Field, model_validator

from factory.core.record import Rejected
from factory.llm.pairwise import consistency, judge_messages, judge_schema, read_verdict
from factory.llm.request import Completion, Request
from factory.steps.base import StepBase, StepContext, StepRunner


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


def _margin(forward: dict[str, float] | None, backward: dict[str, float] | None,
            winner: int) -> float | None:
    """Mean rubric-score lead of the winner over the loser across both orders, when scored."""
    if forward is None or backward is None:
        return None
    lead_first = (forward["A"] - forward["B"] + backward["B"] - backward["A"]) / 2
    return lead_first if winner == 1 else -lead_first
