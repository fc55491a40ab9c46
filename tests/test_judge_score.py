"""LLM-as-judge steps: judge_score (single answer, rubric) and judge_pairwise's position consistency."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import ValidationError

from factory.core.record import Record, Reject
from factory.engine.executor import BoundStep, Engine
from factory.llm.backends.base import BackendSettings
from factory.llm.backends.fake import FakeBackend
from factory.llm.dispatch import Dispatcher
from factory.llm.request import SamplingParams
from factory.llm.rubric import rubric_schema
from factory.recipe.graph import Graph
from factory.steps.judge import JudgePairwiseStep, PairwiseJudge
from factory.steps.judge_score import JudgeScore, JudgeScoreStep

P = SamplingParams(temperature=0.0, max_tokens=80)


class Recording(FakeBackend):
    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.seen = []

    async def generate(self, requests):
        self.seen.extend(requests)
        return await super().generate(requests)


def template(data: dict) -> str:
    return json.dumps(data).replace("{", "{{").replace("}", "}}")


def run(runner, backend, rows):
    step = runner.spec
    engine = Engine(Graph([step], {step.name: set()}, {}),
                    {step.name: BoundStep(runner, Dispatcher(backend, None, 4))})
    outs = asyncio.run(engine.run([Record(f"r{i}", dict(r), "t") for i, r in enumerate(rows)]))
    return outs, engine.stats[step.name].as_dict()


def scorer(params: SamplingParams = P, **kw) -> JudgeScore:
    spec = JudgeScoreStep.model_validate({"name": "score", "kind": "judge_score", "reads": ["q", "a"],
                                          "writes": ["score", "judgement"], **kw})
    return JudgeScore(spec, params)


GOOD = template({"reasoning": "Correct and clear.", "correctness": 5, "helpfulness": 4, "clarity": 3})
ROWS = [{"q": "What is 2+2?", "a": "4"}]


def test_judge_score_sends_the_rubric_and_reads_scores():
    backend = Recording(BackendSettings(options={"default": GOOD}))
    (out,), _ = run(scorer(), backend, ROWS)
    (request,) = backend.seen
    system, user = request.messages
    assert system[0] == "system" and "impartial judge" in system[1]
    assert "[Request]\nWhat is 2+2?\n\n[Answer]\n4" in user[1]
    assert "correctness, helpfulness, clarity" in user[1]
    assert json.loads(request.json_schema) == rubric_schema(["correctness", "helpfulness", "clarity"])
    assert out.fields["score"] == 4.0
    assert out.fields["judgement"] == {"scores": {"correctness": 5.0, "helpfulness": 4.0, "clarity": 3.0},
                                       "reasoning": "Correct and clear."}


def test_templates_and_criteria_are_overridable():
    backend = Recording(BackendSettings(options={"default": template({"reasoning": "r", "accuracy": 2})}))
    prompt = "Q: {question}\nA: {answer}\nScore {criteria_list}: {score_shape}"
    runner = scorer(criteria=["accuracy"], templates={"system": "Grade strictly.", "prompt": prompt})
    (out,), _ = run(runner, backend, ROWS)
    assert backend.seen[0].messages == (("system", "Grade strictly."),
                                        ("user", 'Q: What is 2+2?\nA: 4\nScore accuracy: "accuracy": 0-5'))
    assert out.fields["score"] == 2.0


@pytest.mark.parametrize("templates,message", [
    ({"promt": "x"}, "did you mean 'prompt'"), ({"prompt": "{question} {reference}"}, "{reference}")])
def test_bad_templates_are_recipe_errors(templates, message):
    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")):
        scorer(templates=templates)


def test_unparseable_reply_is_a_reject_not_a_guess():
    (out,), stats = run(scorer(), FakeBackend(BackendSettings(options={"default": "Pretty good!"})), ROWS)
    assert isinstance(out, Reject) and out.reason == "judge_unparseable" and out.raw == "Pretty good!"
    assert stats["rejected"] == {"judge_unparseable": 1}


def test_truncated_judge_is_a_reject():
    backend = FakeBackend(BackendSettings(options={"default": "word " * 20}))
    (out,), _ = run(scorer(SamplingParams(max_tokens=5)), backend, ROWS)
    assert isinstance(out, Reject) and out.reason == "judge_truncated"


def test_low_score_and_empty_answer():
    low = template({"reasoning": "wrong", "correctness": 1, "helpfulness": 1, "clarity": 1})
    (out,), _ = run(scorer(min_score=3), FakeBackend(BackendSettings(options={"default": low})), ROWS)
    assert isinstance(out, Reject) and out.reason == "low_score"
    backend = Recording(BackendSettings(options={"default": GOOD}))
    (out,), _ = run(scorer(), backend, [{"q": "?", "a": "  "}])
    assert isinstance(out, Reject) and out.reason == "empty_answer" and backend.seen == []


def verdict(v: str, a: int, b: int) -> str:
    crit = lambda n: {"correctness": n, "helpfulness": n, "clarity": n}  # noqa: E731
    return template({"reasoning": "r", "A": crit(a), "B": crit(b), "verdict": v})


def test_pairwise_judge_reports_position_consistency():
    # x1 is preferred in both orders (consistent); the judge always says "A" for x2 (position bias);
    # both orders say TIE for x3 (consistent, still a tie); x4 gets prose (unparseable).
    rules = [
        {"match": r"\[Answer A\]\nright1", "reply": verdict("A", 5, 1)},
        {"match": r"\[Answer B\]\nright1", "reply": verdict("B", 1, 5)},
        {"match": "left2|right2", "reply": verdict("A", 4, 2)},
        {"match": "left3|right3", "reply": verdict("TIE", 3, 3)},
        {"match": "left4", "reply": "no idea"}]
    spec = JudgePairwiseStep(name="judge", kind="judge_pairwise", reads=["q", "x", "y"],
                             writes=["chosen", "rejected", "judgement"])
    rows = [{"q": "q", "x": f"left{i}", "y": f"right{i}"} for i in (1, 2, 3, 4)]
    outs, stats = run(PairwiseJudge(spec, P), FakeBackend(BackendSettings(options={"rules": rules})), rows)
    assert outs[0].fields["chosen"] == "right1"
    assert [o.reason for o in outs[1:]] == ["judge_tie", "judge_tie", "judge_unparseable"]
    assert stats["figures"] == {"orders_consistent": 2, "orders_inconsistent": 1, "orders_unparseable": 1}
    assert stats["rates"] == {"position_consistency": round(2 / 3, 4)}
