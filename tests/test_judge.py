"""The pairwise judge: both orders, ties, margins, JSON and prose verdicts."""

from __future__ import annotations

import json

import jsonschema
import pytest

from factory.core.record import Rejected
from factory.llm.pairwise import read_verdict
from factory.llm.request import Completion, SamplingParams
from factory.steps.judge import JudgePairwiseStep, PairwiseJudge

CRITERIA = ["correctness", "helpfulness", "clarity"]
FIELDS = {"q": "What is 2+2?", "x": "4", "y": "5"}


def judge(**kw) -> PairwiseJudge:
    spec = JudgePairwiseStep(name="j", kind="judge_pairwise", reads=["q", "x", "y"],
                             writes=["chosen", "rejected", "judgement"], **kw)
    return PairwiseJudge(spec, SamplingParams(temperature=0))


def answer(verdict: str, a: int, b: int) -> Completion:
    scores = lambda n: {c: n for c in CRITERIA}  # noqa: E731
    return Completion(json.dumps({"reasoning": "r", "A": scores(a), "B": scores(b), "verdict": verdict}))


def test_consistent_verdict_makes_a_pair():
    # Forward order shows x as A; the swapped order shows x as B. Both prefer x.
    out = judge().parse(FIELDS, [answer("A", 5, 1), answer("B", 1, 5)])
    assert out["chosen"] == "4" and out["rejected"] == "5"
    assert out["judgement"]["winner"] == "x" and out["judgement"]["margin"] == 4.0


def test_position_bias_is_a_tie():
    out = judge().parse(FIELDS, [answer("A", 5, 1), answer("A", 5, 1)])
    assert isinstance(out, Rejected) and out.reason == "judge_tie"
    assert out.raw and len(out.raw) == 2  # the judge's text is kept


def test_tie_verdict_and_unparseable():
    assert judge().parse(FIELDS, [answer("TIE", 3, 3), answer("TIE", 3, 3)]).reason == "judge_tie"
    out = judge().parse(FIELDS, [Completion("I like both."), answer("B", 1, 5)])
    assert isinstance(out, Rejected) and out.reason == "judge_unparseable"


def test_scores_that_contradict_the_verdict_fail_the_margin():
    out = judge(min_margin=0.5).parse(FIELDS, [answer("B", 5, 1), answer("A", 1, 5)])
    assert isinstance(out, Rejected) and out.reason == "judge_low_margin"


def test_identical_answers_need_no_call():
    out = judge().requests({"q": "?", "x": "same ", "y": "same"})
    assert isinstance(out, Rejected) and out.reason == "identical_answers"


def test_requests_are_both_orders_with_schema():
    forward, swapped = judge().requests(FIELDS)
    f_text, s_text = forward.messages[-1][1], swapped.messages[-1][1]
    assert f_text.index("[Answer A]\n4") < f_text.index("[Answer B]\n5")
    assert s_text.index("[Answer A]\n5") < s_text.index("[Answer B]\n4")
    schema = json.loads(forward.json_schema)
    assert swapped.json_schema == forward.json_schema
    # Reasoning first: a constrained decoder writes the keys in this order.
    assert list(schema["properties"]) == ["reasoning", "A", "B", "verdict"]
    good = {"reasoning": "B is wrong.", "A": dict.fromkeys(CRITERIA, 5), "B": dict.fromkeys(CRITERIA, 1),
            "verdict": "A"}
    jsonschema.validate(good, schema)
    assert read_verdict(json.dumps(good), CRITERIA) == ("A", {"A": 5.0, "B": 1.0})  # parser reads it
    bad = [{**good, "verdict": "C"}, {**good, "A": {**good["A"], "clarity": 7}},
           {k: v for k, v in good.items() if k != "reasoning"}, {**good, "extra": 1},
           {**good, "B": {"correctness": 1}}]
    for reply in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(reply, schema)


def test_prose_verdicts():
    text = ("A is right.\nA: correctness=5 helpfulness=4 clarity=4\n"
            "B: correctness=1 helpfulness=2 clarity=3\nVerdict: [[A]]")
    verdict, totals = read_verdict(text, CRITERIA)
    assert verdict == "A" and totals == {"A": 13 / 3, "B": 2.0}
    assert read_verdict("**Verdict:** B", CRITERIA) == ("B", None)
    assert read_verdict("no decision here", CRITERIA) is None
