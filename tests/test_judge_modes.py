"""Judges in probability modes: P(A)/P(B) where the verdict was written, balanced position
calibration, votes, G-Eval scores and constitutional soft labels — each checked by hand arithmetic
on the fake backend's scripted top-k log-probabilities."""

from __future__ import annotations

import json
import math

import pytest

from factory.core.record import Rejected
from factory.llm.request import Completion, Request, SamplingParams, request_key
from factory.llm.verdicts import (
    balanced_preference,
    expected_score,
    letter_share,
    probabilities,
    verdict_position,
)
from factory.steps.constitutional_preference import ConstitutionalPreference, ConstitutionalPreferenceStep
from factory.steps.judge import JudgePairwiseStep, PairwiseJudge
from factory.steps.judge_score import JudgeScore, JudgeScoreStep
from scripted import Scripted

FIELDS = {"q": "What is 2+2?", "x": "It is four.", "y": "It is five."}
FORWARD = r"\[Answer A\]\nIt is four\."  # x shown as A
SWAPPED = r"\[Answer A\]\nIt is five\."  # y shown as A


def judge(**kw) -> PairwiseJudge:
    spec = JudgePairwiseStep(name="j", kind="judge_pairwise", reads=["q", "x", "y"],
                             writes=["chosen", "rejected", "judgement"], **kw)
    return PairwiseJudge(spec, SamplingParams(temperature=0))


def test_a_request_for_top_k_is_another_request_and_old_keys_stay():
    params = SamplingParams()
    chat = [{"role": "user", "content": "hi"}]
    plain = Request.chat(chat, params, json_schema={"type": "object"})
    # The key this request had before top-k existed: caches made then still answer it.
    before = "4a6b809247c36238e955e3698c9aaa5cb1309d7dcac45cdd9dfffbede7ae661a"
    assert request_key("fake", "m", plain) == before
    top = Request.chat(chat, params, json_schema={"type": "object"}, top_logprobs=5)
    assert request_key("fake", "m", top) != request_key("fake", "m", plain)
    done = Completion("A", tokens=["A"], top_logprobs=[{"Z": -0.1, "A": -0.5}])
    back = Completion.from_json(done.to_json())  # the cache's round trip keeps most-likely-first
    assert back == done and list(back.top_logprobs[0]) == ["Z", "A"]
    assert "top_logprobs" not in Completion("x").to_json()  # rows without them are written as before


def test_logprob_mode_calibrates_both_orders_by_hand_arithmetic():
    fake = Scripted([{"match": FORWARD, "reply": "A", "top_logprobs": {"A": -0.2, "B": -1.8}},
                     {"match": SWAPPED, "reply": "A", "top_logprobs": {"A": -0.5, "B": -1.2}}])
    out, ctx = fake.run(judge(mode="logprob", min_confidence=0.55), FIELDS)
    # Forward (x is A): P(A) = e^-0.2 / (e^-0.2 + e^-1.8) = 1 / (1 + e^-1.6) = 0.83202.
    # Swapped (y is A): P(A) = 1 / (1 + e^-0.7) = 0.66819, so x (shown as B) gets 0.33181.
    # Balanced: P(x better) = (0.83202 + 0.33181) / 2 = 0.58191.
    assert out["chosen"] == "It is four." and out["rejected"] == "It is five."
    judgement = out["judgement"]
    assert judgement["preference"] == {"x": 0.5819, "y": 0.4181}
    assert judgement["confidence"] == 0.5819
    assert judgement["orders"] == [{"A": 0.832, "B": 0.168}, {"A": 0.6682, "B": 0.3318}]
    assert ctx.counters["orders_inconsistent"] == 1  # both orders lean to A: position bias
    sent = [r for _, r in fake.sent]
    assert all(r.top_logprobs == 20 and r.params.max_tokens == 8 for r in sent)
    assert "Reply with one letter only" in fake.last_user(0)
    # Under the step's bar: no pair, a reason of its own.
    low, _ = fake.run(judge(mode="logprob", min_confidence=0.6), FIELDS)
    assert isinstance(low, Rejected) and low.reason == "judge_low_confidence"


def test_logprob_orders_that_cancel_are_a_tie_and_unreadable_is_unparseable():
    same = {"A": -0.3, "B": -1.5}  # the same P(A) whichever answer is A: pure position bias
    fake = Scripted([{"match": "Compare two answers", "reply": "A", "top_logprobs": same}])
    out, ctx = fake.run(judge(mode="logprob"), FIELDS)
    assert isinstance(out, Rejected) and out.reason == "judge_tie" and "cancel" in out.detail
    assert ctx.counters["orders_inconsistent"] == 1
    silent = Scripted([{"match": "Compare two answers", "reply": "Both are fine.",
                        "top_logprobs": {"Both": -0.1, "The": -2.0}}])
    out, ctx = silent.run(judge(mode="logprob"), FIELDS)
    assert isinstance(out, Rejected) and out.reason == "judge_unparseable"
    assert ctx.counters["orders_unparseable"] == 1


def test_verdict_is_read_where_the_letter_was_written():
    # "Answer B" : the letter is the second token; the alternatives there are read.
    c = Completion("Answer B", tokens=["Answer", " B"],
                   top_logprobs=[{"Answer": -0.1, "The": -2.0}, {" B": -0.4, " A": -1.1, "B": -3.0}])
    assert verdict_position(c) == 1
    # " B" and "B" both read as B: P(B) = e^-0.4 + e^-3.0 = 0.67032 + 0.04979 = 0.72011;
    # P(A) = e^-1.1 = 0.33287; share of A = 0.33287 / 1.05298 = 0.31612.
    assert letter_share(c) == pytest.approx(0.31612, abs=1e-4)
    # A letter missing from the top-k gets the smallest listed probability (an upper bound).
    assert probabilities({"A": -0.1, "The": -4.0}, ("A", "B")) == pytest.approx(
        {"A": math.exp(-0.1), "B": math.exp(-4.0)})
    assert balanced_preference(0.9, 0.2) == pytest.approx(0.85)


def test_votes_mode_counts_sampled_letters_per_order():
    # Forward always votes A (for x); swapped votes by request hash, so count what it said.
    fake = Scripted([{"match": FORWARD, "reply": "A"},
                     {"match": SWAPPED, "replies": ["A", "B", "Answer B"]}])
    runner = judge(mode="votes", votes=6, min_confidence=0.5, params={"temperature": 1.0})
    out, _ = fake.run(runner, FIELDS)
    swapped = [fake.fake._reply(r).text for _, r in fake.sent[6:]]
    b_votes = sum("B" in t for t in swapped)
    assert [r.sample_index for _, r in fake.sent] == [0, 1, 2, 3, 4, 5] * 2
    assert out["judgement"]["orders"][0] == {"A": 6}
    # P(x better) = (1 + B share of the swapped order) / 2: x is B there.
    assert out["judgement"]["preference"]["x"] == round((1 + b_votes / 6) / 2, 4)
    with pytest.raises(ValueError, match="temperature 0"):
        judge(mode="votes", params={"temperature": 0})


def test_g_eval_weights_each_score_by_its_probabilities():
    reply = '{"reasoning": "fine", "correctness": 4, "clarity": 2}'
    # Tokens: '{"reasoning":' ' "fine",' ' "correctness":' ' 4,' ' "clarity":' ' 2}'
    top = [None, None, None, {" 4": -0.5, " 3": -1.2, " 5": -2.0, " the": -3.0}, None,
           {" 2": -0.1, " 1": -2.5}]
    fake = Scripted([{"match": "Rate the answer", "reply": reply.replace("{", "{{").replace("}", "}}"),
                      "top_logprobs": top}])
    spec = JudgeScoreStep(name="s", kind="judge_score", reads=["q", "x"], writes=["score", "judgement"],
                          criteria=["correctness", "clarity"], mode="logprob")
    out, _ = fake.run(JudgeScore(spec, SamplingParams(temperature=0)), FIELDS)
    # correctness: (4 e^-0.5 + 3 e^-1.2 + 5 e^-2.0) / (e^-0.5 + e^-1.2 + e^-2.0)
    #            = (2.42612 + 0.90358 + 0.67668) / (0.60653 + 0.30119 + 0.13534) = 4.00638 / 1.04306 = 3.84099
    # clarity: (2 e^-0.1 + 1 e^-2.5) / (e^-0.1 + e^-2.5) = (1.80967 + 0.08208) / (0.90484 + 0.08208) = 1.91684
    assert out["judgement"]["scores"] == {"correctness": 3.841, "clarity": 1.9168}
    assert out["judgement"]["written"] == {"correctness": 4.0, "clarity": 2.0}
    assert out["score"] == round((3.841 + 1.9168) / 2, 4)
    assert fake.sent[0][1].top_logprobs == 20


def test_expected_score_is_none_where_no_digit_was_written():
    c = Completion('{"clarity": "high"}', tokens=['{"clarity":', ' "high"}'],
                   top_logprobs=[{'{"clarity":': 0.0}, {' "high"}': 0.0}])
    assert expected_score(c, "clarity") is None


def test_constitutional_soft_labels_average_calibrated_principles():
    principles = [{"name": "harm", "critique": "c", "revision": "r", "choice": "Which is less harmful?"},
                  {"name": "honest", "critique": "c", "revision": "r", "choice": "Which is more honest?"}]
    answer = '{{"answer": "A"}}'
    fake = Scripted([
        {"match": r"less harmful\?\nOptions:\n\(A\) safe", "reply": answer,
         "top_logprobs": [None, {' "A"}': -0.2, ' "B"}': -1.8}]},
        {"match": r"less harmful\?\nOptions:\n\(A\) risky", "reply": answer,
         "top_logprobs": [None, {' "A"}': -1.0, ' "B"}': -0.4}]},
        {"match": r"more honest\?\nOptions:\n\(A\) safe", "reply": answer,
         "top_logprobs": [None, {' "A"}': -0.7, ' "B"}': -0.7}]},
        {"match": r"more honest\?\nOptions:\n\(A\) risky", "reply": answer,
         "top_logprobs": [None, {' "A"}': -0.9, ' "B"}': -0.5}]}])
    spec = ConstitutionalPreferenceStep(name="p", kind="constitutional_preference",
                                        reads=["prompt", "r1", "r2"], writes=["chosen", "rejected", "pref"],
                                        principles=principles, principles_per_pair=2, mode="logprob")
    out, _ = fake.run(ConstitutionalPreference(spec, SamplingParams(temperature=0)),
                      {"prompt": "Help me.", "r1": "safe", "r2": "risky"})
    # harm: forward P(A = safe) = 1/(1+e^-1.6) = 0.83202; swapped P(A = risky) = 1/(1+e^0.6) = 0.35434,
    #       so P(safe) = (0.83202 + 0.64566) / 2 = 0.73884.
    # honest: forward 0.5; swapped P(A = risky) = 1/(1+e^0.4) = 0.40131 -> (0.5 + 0.59869) / 2 = 0.54934.
    # Soft label: (0.73884 + 0.54934) / 2 = 0.64409.
    pref = out["pref"]
    assert out["chosen"] == "safe" and pref["soft_label"] == {"r1": 0.6441, "r2": 0.3559}
    assert pref["per_principle"] == {"harm": 0.7388, "honest": 0.5493}


def test_logprob_mode_is_refused_on_a_backend_without_log_probs(tmp_path, write_recipe, cache_env):
    from conftest import run_cli

    seeds = tmp_path / "s.jsonl"
    seeds.write_text(json.dumps({"prompt": "hi"}) + "\n")
    recipe = write_recipe(f"""name: refused
seeds: {{path: {seeds}}}
backend: {{name: fake}}
backends:
  claude: {{name: anthropic, model: claude-sonnet-4-5, options: {{base_url: "http://127.0.0.1:9"}}}}
steps:
  - {{name: a, kind: generate, reads: [prompt], writes: a, prompt: "{{prompt}}"}}
  - {{name: b, kind: generate, reads: [prompt], writes: b, prompt: "again {{prompt}}"}}
  - name: judge
    kind: judge_pairwise
    backend: claude
    mode: logprob
    reads: [prompt, a, b]
    writes: [chosen, rejected, judgement]
outputs: {{splits: {{dpo: {{format: dpo}}}}}}
""")
    result = run_cli("build", str(recipe), env={**cache_env, "ANTHROPIC_API_KEY": "test-key"})
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "recipe.yaml:12: steps[2].mode: logprob mode reads top-k log-probabilities" in line
    assert "anthropic" in line and "votes" in line and "\n" not in line
