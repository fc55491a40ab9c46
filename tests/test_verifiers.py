"""Verifiable rewards shared by GRPO and rejection sampling."""

from __future__ import annotations

import json

import pytest

from factory.core.errors import FactoryError
from factory.core.verifiers import (
    as_reward_fn,
    exact_match,
    extract_number,
    get_verifier,
    numeric_match,
    regex_match,
)


@pytest.mark.parametrize("text,value", [
    ("So the total is 42.", 42.0), ("3 apples and 4 pears: 7", 7.0), ("\\boxed{1,250}", 1250.0),
    ("The answer is 12, not 13", 12.0), ("#### -3.5", -3.5), ("no digits", None),
    ("answer: 80 (from 8 x 10)", 80.0)])
def test_extract_number(text, value):
    assert extract_number(text) == value


def test_numeric_match():
    assert numeric_match("It costs $1,000.", "1000") == 1.0
    assert numeric_match("x = 10.0", "10") == 1.0
    assert numeric_match("x = 10.5", "10") == 0.0
    assert numeric_match("I don't know", "10") == 0.0
    assert numeric_match("10", "ten") == 0.0


def test_exact_and_regex():
    assert exact_match("  Paris. ", "paris") == 1.0
    assert exact_match("Paris, France", "Paris") == 0.0
    assert regex_match("Verdict: [[A]]", r"\[\[A\]\]") == 1.0
    assert regex_match("Verdict: B", r"\[\[A\]\]") == 0.0
    with pytest.raises(FactoryError, match="regex answer"):
        regex_match("x", "(")


def test_reward_fn_reads_conversational_completions_and_answer_column():
    reward = as_reward_fn(get_verifier("numeric"))
    completions = [[{"role": "assistant", "content": "It is 4."}], "It is 5.", "no number"]
    assert reward(completions, answer=["4", "4", "4"], prompt=["p", "p", "p"]) == [1.0, 0.0, 0.0]
    assert reward.__name__ == "numeric_match_reward"  # TRL's metric names stay what they were


def test_every_verifier_gives_a_verdict_with_none_for_unreadable():
    numeric = get_verifier("numeric")
    assert numeric("It is 4.", 4).score == 1.0 and numeric("It is 4.", "4").passed
    assert numeric("no digits", "4").score is None and not numeric("no digits", "4").passed
    assert get_verifier("exact")("Paris", "paris").checks is None


def test_unknown_verifier_suggests():
    with pytest.raises(FactoryError, match="did you mean 'numeric'"):
        get_verifier("numerc")


def test_json_schema_verifier_and_extraction():
    from factory.core.verifiers import extract_json, json_schema_valid

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert json_schema_valid('Sure: {"n": 3} done', schema) == 1.0
    assert json_schema_valid('```json\n{"n": 3}\n```', json.dumps(schema)) == 1.0
    assert json_schema_valid('{"n": "three"}', schema) == 0.0
    assert json_schema_valid("no json here", schema) == 0.0
    assert extract_json("[1, 2]") == [1, 2] and extract_json("{broken") is None
    assert get_verifier("json_schema")("no json", schema).score is None
    assert get_verifier("exact")("anything", "x").score == 0.0
    with pytest.raises(FactoryError, match="not a valid schema"):
        json_schema_valid('{"n": 1}', {"type": "no-such-type"})
    reward = as_reward_fn(get_verifier("json_schema"))
    assert reward(['{"n": 1}', "{}"], answer=[schema, schema]) == [1.0, 0.0]


def test_user_verifier_only_with_trust_code(tmp_path):
    (tmp_path / "checks_mod.py").write_text("def yes(text, answer):\n    return float('yes' in text)\n")
    with pytest.raises(FactoryError, match="--trust-code"):
        get_verifier("checks_mod:yes")
    verify = get_verifier("checks_mod:yes", trust_code=True, search_dir=tmp_path)
    assert verify("yes!", "").score == 1.0 and verify("no", "").score == 0.0
    with pytest.raises(FactoryError, match="has no function"):
        get_verifier("checks_mod:nope", trust_code=True, search_dir=tmp_path)
    with pytest.raises(FactoryError, match="cannot import"):
        get_verifier("no_such_module_x:f", trust_code=True, search_dir=tmp_path)
