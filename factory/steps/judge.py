"""``kind: judge_pairwise`` — a judge asked in both orders; only a verdict that survives the swap is
a pair.

Asking twice with the answers swapped cancels position bias: a judge that always says "A" agrees
with itself in neither order, so the record becomes a tie (rejected), never a fake preference.
Figures: ``orders_consistent`` / ``orders_inconsistent`` / ``orders_unparseable`` per judged pair;
rate ``position_consistency`` = consistent / (consistent + inconsistent) (Zheng et al. 2023).

Modes (``mode:``):

- ``text``: the rubric prompt (reasoning, 0-5 scores, then a verdict A / B / TIE) in each order.
- ``logprob``: the verdict-letter prompt (``pairwise.LETTER_TEMPLATE``); P("A") and P("B") are read
  from the top-k log-probabilities where the judge wrote its letter, in each order, and combined
  by balanced position calibration (Wang et al. 2023): P(first better) = (P_forward(A) +
  P_swapped(B)) / 2 with each order's P normalized over A and B. The pair goes to the answer above
  0.5 when that confidence reaches ``min_confidence``.
- ``votes``: the same prompt sampled ``votes`` times per order (backends without log-probs, such as
  anthropic); each order's P(A) is its share of A votes, then the same calibration.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field, model_validator

from factory.core.record import Rejected
from factory.llm.pairwise import judge_messages, judge_schema, letter_messages, read_verdict
from factory.llm.request import Completion, Request
from factory.llm.verdicts import balanced_preference, letter_share, vote_share, voted_letter
from factory.steps.base import StepBase, StepContext, StepRunner
from factory.steps.judge_gate import JudgeGate, run_gate
from factory.steps.judge_measure import PairDecision

LETTER_TOKENS = 8  # probability modes: the letter comes first; a few tokens find it after "Answer"


class JudgePairwiseStep(StepBase):
    """LLM-as-judge on two answers, asked in both orders; disagreement is a tie, not a pair.

    ``reads: [question, answer_1, answer_2]``; ``writes: [chosen, rejected, judgement]``.
    """

    kind: Literal["judge_pairwise"]
    criteria: list[str] = Field(default_factory=lambda: ["correctness", "helpfulness", "clarity"],
                                min_length=1)
    system: str | None = Field(None, description="judge system message")
    min_margin: float = Field(0.0, ge=0, description="text mode: minimum rubric-score margin")
    mode: Literal["text", "logprob", "votes"] = Field("text", description="text: rubric and verdict; "
                                                      "logprob: P(A)/P(B) of the verdict letter; "
                                                      "votes: sampled verdict letters")
    votes: int = Field(5, ge=2, le=64, description="votes mode: samples per order")
    top_logprobs: int = Field(20, ge=2, le=100, description="logprob mode: alternatives read per token")
    min_confidence: float = Field(0.6, ge=0.5, le=1, description="logprob/votes: minimum calibrated "
                                  "P(chosen is better) for a pair")
    judge_gate: JudgeGate | None = Field(None, description="measure the judge on sanity pairs from "
                                         "the build's answers before it decides any pair")

    @model_validator(mode="after")
    def positional_columns(self) -> "JudgePairwiseStep":
        self.require_columns("[question, answer_1, answer_2]", "[chosen, rejected, judgement]")
        if self.mode == "votes" and self.params.temperature == 0:
            raise ValueError("votes mode samples its verdicts: temperature 0 gives the same vote "
                             "every time (use mode: logprob, or temperature > 0)")
        return self

    def needs_all_inputs(self) -> bool:
        return self.judge_gate is not None

    def logprob_refs(self) -> dict[str, str]:
        return {"mode": self.backend} if self.mode == "logprob" else {}


class PairwiseJudge(StepRunner):
    spec: JudgePairwiseStep

    def __init__(self, spec: JudgePairwiseStep, params: Any) -> None:
        super().__init__(spec, params)
        self.gate_report: dict[str, Any] | None = None

    def prompt(self, question: str, a: str, b: str) -> list[dict[str, str]]:
        return judge_messages(question, a, b, self.spec.criteria, self.spec.system)

    def requests(self, fields: dict[str, Any]) -> list[Request] | Rejected:
        question, first, second = (str(fields[c]) for c in self.spec.reads)
        if first.strip() == second.strip():
            return Rejected("identical_answers", "both answers are the same text")
        if self.spec.mode == "text":
            schema = judge_schema(self.spec.criteria)
            return [Request.chat(self.prompt(question, first, second), self.params, json_schema=schema),
                    Request.chat(self.prompt(question, second, first), self.params, json_schema=schema)]
        params = replace(self.params, max_tokens=min(self.params.max_tokens, LETTER_TOKENS))
        orders = [letter_messages(question, first, second, self.spec.criteria, self.spec.system),
                  letter_messages(question, second, first, self.spec.criteria, self.spec.system)]
        if self.spec.mode == "logprob":
            return [Request.chat(m, params, top_logprobs=self.spec.top_logprobs) for m in orders]
        return [Request.chat(m, params, sample_index=k) for m in orders for k in range(self.spec.votes)]

    def needs_all_inputs(self) -> bool:
        return self.spec.needs_all_inputs()

    async def prepare(self, records: list[Any], ctx: StepContext) -> None:
        """The judge gate, once, with every record that reaches this step."""
        if self.spec.judge_gate is not None:
            self.gate_report = await run_gate(self, self.spec.judge_gate, records, ctx)

    def measurement(self) -> dict[str, Any]:
        """The mode and, when gated, what the gate measured (stats.json ``judges``, the card)."""
        out: dict[str, Any] = {"kind": self.spec.kind, "mode": self.spec.mode,
                               "backend": self.spec.backend}
        if self.gate_report is None:
            return {**out, "measured": False, "why": "no judge_gate"}
        return {**out, **self.gate_report}

    async def run(self, fields: dict[str, Any], ctx: StepContext) -> dict[str, Any] | Rejected:
        requests = self.requests(fields)
        if isinstance(requests, Rejected):
            return requests
        completions = await ctx.ask(requests)
        decision = self.decide(fields, completions)
        if decision.consistency:
            ctx.count(f"orders_{decision.consistency}")
        return self.output(fields, decision)

    def rates(self, figures: Counter) -> dict[str, float]:
        judged = figures["orders_consistent"] + figures["orders_inconsistent"]
        return {"position_consistency": figures["orders_consistent"] / judged} if judged else {}

    def parse(self, fields: dict[str, Any], completions: list[Completion]) -> dict[str, Any] | Rejected:
        return self.output(fields, self.decide(fields, completions))

    def output(self, fields: dict[str, Any], decision: PairDecision) -> dict[str, Any] | Rejected:
        if decision.winner is None:
            return Rejected(decision.reason or "judge_tie", decision.detail, decision.raw or None)
        _, first_col, second_col = self.spec.reads
        winner, loser = (first_col, second_col) if decision.winner == 1 else (second_col, first_col)
        chosen_col, rejected_col, judgement_col = self.spec.writes
        judgement: dict[str, Any] = {"winner": winner, "margin": decision.margin}
        if decision.preference is not None:
            p = round(decision.preference, 4)
            judgement.update(mode=self.spec.mode, preference={first_col: p, second_col: round(1 - p, 4)},
                             confidence=round(max(p, 1 - p), 4), orders=decision.orders)
        judgement["reasoning"] = decision.raw
        return {chosen_col: fields[winner], rejected_col: fields[loser], judgement_col: judgement}

    # ---- the decision, shared by the build and the judge tools (judge-eval, the gate) ------------

    def decide(self, fields: dict[str, Any], completions: list[Completion] | None) -> PairDecision:
        """The pair's outcome from both orders' completions (None: no call was needed)."""
        requests = self.requests(fields) if completions is None else None
        if isinstance(requests, Rejected):
            return PairDecision(None, "identical", detail=requests.detail)
        assert completions is not None
        if self.spec.mode == "text":
            return self._decide_text(completions)
        k = len(completions) // 2
        raw = [c.text for c in completions]
        if self.spec.mode == "logprob":
            shares = [letter_share(c) for c in completions]
            orders: list[Any] = [None if s is None else {"A": round(s, 4), "B": round(1 - s, 4)}
                                 for s in shares]
            why = "no P(A)/P(B) where the verdict letter was written"
        else:
            shares = [vote_share([c.text for c in completions[:k]]),
                      vote_share([c.text for c in completions[k:]])]
            orders = [dict(Counter(voted_letter(c.text) or "none" for c in part)) for part in
                      (completions[:k], completions[k:])]
            why = "no A or B vote"
        forward, swapped = shares
        if forward is None or swapped is None:
            return PairDecision(None, "unparseable", "unparseable", f"{why} in one order", raw=raw,
                                orders=orders)
        p = balanced_preference(forward, swapped)
        pick_forward = 1 if forward > 0.5 else 2 if forward < 0.5 else 0
        pick_swapped = 2 if swapped > 0.5 else 1 if swapped < 0.5 else 0
        consistency = "consistent" if pick_forward == pick_swapped else "inconsistent"
        base = dict(consistency=consistency, preference=p, orders=orders, raw=raw)
        if abs(p - 0.5) < 1e-9:  # float rounding of exactly cancelling orders
            return PairDecision(None, "balanced", detail="the two orders cancel: P = 0.5", **base)
        confidence = max(p, 1 - p)
        if confidence < self.spec.min_confidence:
            return PairDecision(None, "low_confidence", detail=f"confidence {confidence:.3f} < "
                                f"{self.spec.min_confidence}", **base)
        return PairDecision(1 if p > 0.5 else 2, "decided", **base)

    def _decide_text(self, completions: list[Completion]) -> PairDecision:
        raw = [c.text for c in completions]
        forward, backward = (read_verdict(c.text, self.spec.criteria) for c in completions)
        if forward is None or backward is None:
            return PairDecision(None, "unparseable", "unparseable",
                                "no verdict found in one of the two orders", raw=raw)
        # Map each order's verdict back to the original answers: 1 = first answer, 2 = second.
        win_forward = {"A": 1, "B": 2}.get(forward[0])
        win_backward = {"A": 2, "B": 1}.get(backward[0])
        consistency = "consistent" if (win_forward or 0) == (win_backward or 0) else "inconsistent"
        detail = f"forward={forward[0]} swapped={backward[0]}"
        if win_forward is None or win_forward != win_backward:
            cause = "position" if consistency == "inconsistent" and None not in (win_forward, win_backward) \
                else "tie_verdict"
            return PairDecision(None, cause, consistency, detail, raw=raw)
        margin = _margin(forward[1], backward[1], win_forward)
        if margin is not None and margin < self.spec.min_margin:
            return PairDecision(None, "low_margin", consistency, f"margin {margin:.2f} < "
                                f"{self.spec.min_margin}", margin, raw=raw)
        return PairDecision(win_forward, "decided", consistency, margin=margin, raw=raw)


def _margin(forward: dict[str, float] | None, backward: dict[str, float] | None,
            winner: int) -> float | None:
    """Mean rubric-score lead of the winner over the loser across both orders, when scored."""
    if forward is None or backward is None:
        return None
    lead_first = (forward["A"] - forward["B"] + backward["B"] - backward["A"]) / 2
    return lead_first if winner == 1 else -lead_first
