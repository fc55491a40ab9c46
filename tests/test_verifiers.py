"""Verifiable rewards shared by GRPO and rejection sampling."""

from __future__ import annotations

import pytest

from factory.errors import FactoryError
from factory.verifiers import (
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
    reward = as_reward_fn(numeric_match)
    completions = [[{"role": "assistant", "content": "It is 4."}], "It is 5."]
    assert reward(completions, answer=["4", "4"], prompt=["p", "p"]) == [1.0, 0.0]
    assert reward.__name__ == "numeric_match_reward"


def test_unknown_verifier_suggests():
    with pytest.raises(FactoryError, match="did you mean 'numeric'"):
        get_verifier("numerc")
