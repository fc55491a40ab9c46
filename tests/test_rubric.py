from factory.core.record import Rejected
from factory.llm.request import Completion, SamplingParams
from factory.llm.rubric import parse_rubric, rubric_request


def test_json_reply_is_read_and_averaged():
    out = parse_rubric('{"reasoning": "fine", "correctness": 4, "helpfulness": 5, "clarity": 3}')
    assert out == {"scores": {"correctness": 4.0, "helpfulness": 5.0, "clarity": 3.0}, "score": 4.0,
                   "reasoning": "fine"}


def test_prose_reply_falls_back_to_score_lines():
    out = parse_rubric("Good.\nCorrectness: 4/5\nHelpfulness = 3\nClarity: 5")
    assert out["scores"] == {"correctness": 4.0, "helpfulness": 3.0, "clarity": 5.0}


def test_missing_criterion_is_a_reject_not_a_guess():
    out = parse_rubric('{"reasoning": "x", "correctness": 4, "clarity": 3}')
    assert isinstance(out, Rejected) and out.reason == "judge_unparseable"
    assert "helpfulness" in out.detail


def test_out_of_range_and_truncated_are_rejects():
    # Values the readers do parse, so it is the range check that rejects them (a 9 in prose would
    # never match the score pattern and fail as "no score" instead).
    for reply in ('{"reasoning": "r", "correctness": 4, "helpfulness": 3, "clarity": 9}',
                  "correctness: 4\nhelpfulness: 3\nclarity: 5.5"):
        out = parse_rubric(reply)
        assert out.reason == "judge_unparseable" and "score outside 0-5" in out.detail, out
    cut = parse_rubric(Completion('{"reasoning": "long', finish_reason="length"))
    assert cut.reason == "judge_truncated"


def test_request_asks_for_reasoning_before_scores():
    req = rubric_request("q?", "a.", SamplingParams(), ["correctness"])
    assert req.json_schema.index("reasoning") < req.json_schema.index("correctness")
    assert "[Answer]\na." in req.messages[-1][1]
