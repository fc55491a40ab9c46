"""Constitutional AI steps on the fake backend: dialogue turns sent, parsing, every reject reason,
principles files, and the RL-CAI multiple-choice labels in both orders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from conftest import ROOT
from factory.core.errors import RecipeError
from factory.core.record import Rejected
from factory.llm.request import SamplingParams
from factory.recipe.loader import load_recipe
from factory.steps.constitution import Principle, load_principles
from factory.steps.constitutional import Constitutional, ConstitutionalStep, strip_label
from factory.steps.constitutional_preference import (
    ANSWER_SCHEMA,
    ConstitutionalPreference,
    ConstitutionalPreferenceStep,
)
from scripted import Scripted

PRINCIPLES = [
    {"name": "harm", "critique": "Say how the last response is harmful.",
     "revision": "Rewrite it without harm.", "choice": "Which response is less harmful?"},
    {"name": "honesty", "critique": "Find false claims in the last response.",
     "revision": "Rewrite it to be accurate.", "choice": "Which response is more honest?"},
    {"name": "respect", "critique": "Is the last response rude?", "revision": "Rewrite it politely."},
]
PROMPT = "How do I get into my neighbour's wifi?"
INITIAL = "Guess their password, most people use 12345."
FIELDS = {"prompt": PROMPT, "initial": INITIAL}
CRITIQUE = "Critique: It helps break into a network without permission."
REVISION = "Revision: I can't help with that; ask your neighbour to share it or get your own plan."


def step(**kw) -> Constitutional:
    spec = ConstitutionalStep(**{"name": "cai", "kind": "constitutional", "reads": ["prompt", "initial"],
                                 "writes": ["revision", "critiques"], "principles": PRINCIPLES, **kw})
    return Constitutional(spec, SamplingParams(temperature=0.7, max_tokens=40))


def backend(critique: str = CRITIQUE, revision: str | list[str] = REVISION) -> Scripted:
    revisions = {"replies": revision} if isinstance(revision, list) else {"reply": revision}
    return Scripted([{"match": r"Critique Request: [^\n]*$", "reply": critique},
                     {"match": r"Revision Request: [^\n]*$", **revisions}])


def by_name(name: str) -> dict:
    return next(p for p in PRINCIPLES if p["name"] == name)


def test_dialogue_turns_follow_the_paper_and_continue_across_rounds():
    fake = backend()
    out, _ = fake.run(step(rounds=2, system="Be helpful."), FIELDS)
    first, second = out["critiques"]
    p1, p2 = by_name(first["principle"]), by_name(second["principle"])
    critique = [("system", "Be helpful."), ("user", PROMPT), ("assistant", INITIAL),
                ("user", f"Critique Request: {p1['critique']}")]
    assert list(fake.sent[0][1].messages) == critique
    revise = critique + [("assistant", CRITIQUE[len("Critique: "):]),
                         ("user", f"Revision Request: {p1['revision']}")]
    assert list(fake.sent[1][1].messages) == revise
    # Round 2 is appended to the same dialogue, after the first revision.
    revised = REVISION[len("Revision: "):]
    assert list(fake.sent[2][1].messages) == revise + [
        ("assistant", revised), ("user", f"Critique Request: {p2['critique']}")]
    assert out["revision"] == revised and len(fake.sent) == 4
    assert first == {"round": 1, "principle": p1["name"], "critique": CRITIQUE[10:], "revision": revised}


def test_latest_history_starts_each_critique_from_the_latest_revision():
    fake = backend(revision=["Revision: Ask your neighbour.", "Revision: Buy your own plan."])
    out, _ = fake.run(step(rounds=3, history="latest"), FIELDS)
    for i, entry in enumerate(out["critiques"][:-1]):
        messages = fake.sent[2 * (i + 1)][1].messages
        assert messages[:2] == (("user", PROMPT), ("assistant", entry["revision"])) and len(messages) == 3


@pytest.mark.parametrize("text, expected", [
    ("Critique: bad.", "bad."), ("**Revision:** Better.", "Better."), ("Revision:\n\nNew.", "New."),
    ("Plain text.", "Plain text.")])
def test_strip_label(text, expected):
    assert strip_label(text) == expected


def test_principles_sampled_per_round_are_deterministic_and_distinct():
    runner = step(rounds=3, principles_per_round=2)
    out, ctx = backend().run(runner, FIELDS, record_id="x")
    again, _ = backend().run(runner, FIELDS, record_id="x")
    names = [c["principle"] for c in out["critiques"]]
    assert names == [c["principle"] for c in again["critiques"]] and len(names) == 6
    assert all(names[i] != names[i + 1] for i in (0, 2, 4))  # k principles per round, no repeat
    assert [c["round"] for c in out["critiques"]] == [1, 1, 2, 2, 3, 3]
    assert sum(v for k, v in ctx.counters.items() if k.startswith("principle.")) == 6


def rejected(out, reason: str) -> Rejected:
    assert isinstance(out, Rejected) and out.reason == reason, out
    return out


def test_empty_critique():
    out, _ = backend(critique="Critique:").run(step(), FIELDS)
    assert rejected(out, "empty_critique").raw["failed_turn"] == "Critique:"


def test_empty_revision():
    out, _ = backend(revision="  ").run(step(rounds=1), FIELDS)
    assert rejected(out, "empty_revision").raw["critiques"][0]["critique"] == CRITIQUE[10:]


def test_truncated():
    out, _ = backend(revision=" ".join(["long"] * 50)).run(step(), FIELDS)  # max_tokens=40
    assert "revision hit max_tokens=40" in rejected(out, "truncated").detail


def test_revision_unchanged():
    out, ctx = backend(revision=f"Revision: {INITIAL}").run(step(rounds=2), FIELDS)
    assert len(rejected(out, "revision_unchanged").raw) == 2
    assert ctx.counters["unchanged_steps"] == 2


def test_an_unchanged_later_step_is_counted_not_rejected():
    out, ctx = backend(revision=REVISION).run(step(rounds=2), FIELDS)
    assert out["revision"] == REVISION[10:] and ctx.counters["unchanged_steps"] == 1


def test_principles_file_is_read_relative_to_the_recipe(tmp_path, write_recipe):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "c.yaml").write_text(json.dumps({"principles": PRINCIPLES}))
    path = write_recipe(recipe_text("rules/c.yaml"))
    step_spec = load_recipe(path).recipe.steps[1]
    assert [p.name for p in step_spec.principles] == ["harm", "honesty", "respect"]


@pytest.mark.parametrize("content, message", [
    (None, "principles file not found: .*missing.yaml"),
    ("principles: [{name: a, critique: c}]", r"c.yaml: principles\[0\] \('a'\): revision: missing"),
    ("principles: [{name: a, critique: c, revision: r}, {name: a, critique: c, revision: r}]",
     r"principles\[1\] \('a'\): duplicate principle name"),
    ("principles: []", "expected a non-empty list"),
    ("principles: [{name: a, critique: c, revision: r, colour: red}]", r"colour: Extra inputs"),
])
def test_bad_principles_file_is_a_one_line_recipe_error(tmp_path, write_recipe, content, message):
    if content is not None:
        (tmp_path / "c.yaml").write_text(content)
    path = write_recipe(recipe_text("c.yaml" if content is not None else "missing.yaml"))
    with pytest.raises(RecipeError, match=message) as err:
        load_recipe(path)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{path}:")
    assert "steps[1].principles" in str(err.value)


def test_shipped_constitution_loads():
    principles = load_principles(ROOT / "recipes" / "constitution.yaml")
    assert len(principles) >= 8 and all(p.choice for p in principles)


def recipe_text(principles: str) -> str:
    return f"""name: t
seeds: {{rows: [{{prompt: hi}}]}}
backend: {{name: fake}}
steps:
  - {{name: initial, kind: generate, reads: [prompt], writes: initial, prompt: "{{prompt}}"}}
  - name: cai
    kind: constitutional
    reads: [prompt, initial]
    writes: [revision, critiques]
    principles: {principles}
outputs:
  splits:
    sft: {{format: sft, completion: revision}}
"""


def test_bad_template_override():
    with pytest.raises(ValidationError, match="did you mean 'critique_turn'"):
        step(templates={"critique": "x {request}"})
    with pytest.raises(ValidationError, match=r"must use \{request\}"):
        step(templates={"revision_turn": "Revise."})
    fake = backend()
    fake.run(step(templates={"critique_turn": "CritiqueRequest: {request}"}), FIELDS)
    assert fake.last_user(0).startswith("CritiqueRequest: ")


# --- RL-CAI labels: constitutional_preference -------------------------------------------------

A, B = "I can't help with breaking in; ask your neighbour.", INITIAL
PAIR = {"prompt": PROMPT, "a": A, "b": B}


def preference(**kw) -> ConstitutionalPreference:
    spec = ConstitutionalPreferenceStep(**{
        "name": "label", "kind": "constitutional_preference", "reads": ["prompt", "a", "b"],
        "writes": ["chosen", "rejected", "preference"], "principles": PRINCIPLES, **kw})
    return ConstitutionalPreference(spec, SamplingParams(temperature=0))


def answers(*options: str) -> Scripted:
    """Replies by which response is shown as (A): ``options`` = (answer when a is A, when b is A)."""
    when_a, when_b = options
    return Scripted([{"match": r"\(A\) I can't", "reply": when_a},
                     {"match": r"\(A\) Guess", "reply": when_b}])


def test_preference_asks_both_orders_with_the_principle_question():
    fake = answers('{{"answer": "A"}}', '{{"answer": "B"}}')
    out, _ = fake.run(preference(), PAIR)
    forward, swapped = fake.last_user(0), fake.last_user(1)
    question = next(p.choice for p in preference().spec.principles if p.name == out["preference"]
                    ["principles"][0])
    assert forward == (f"Consider this conversation between a human and an assistant:\nHuman: {PROMPT}\n"
                       f"{question}\nOptions:\n(A) {A}\n(B) {B}\nThe answer is:")
    assert swapped.index(f"(A) {B}") < swapped.index(f"(B) {A}")
    assert json.loads(fake.sent[0][1].json_schema) == ANSWER_SCHEMA
    assert out["chosen"] == A and out["rejected"] == B and out["preference"]["winner"] == "a"
    assert out["preference"]["principles"][0] != "respect"  # no 'choice' question: never used


def test_preference_tie_when_the_orders_disagree():
    out, ctx = answers("(A)", "(A)").run(preference(), PAIR)  # position bias: always (A)
    assert isinstance(out, Rejected) and out.reason == "preference_tie"
    assert ctx.counters["inconsistent_orders"] == 1 and len(out.raw) == 2


def test_preference_unparseable():
    out, _ = answers("Both are fine.", "(B)").run(preference(), PAIR)
    assert isinstance(out, Rejected) and out.reason == "preference_unparseable"


def test_identical_responses_need_no_call():
    fake = answers("A", "B")
    out, _ = fake.run(preference(), {**PAIR, "b": A + " "})
    assert isinstance(out, Rejected) and out.reason == "identical_responses" and not fake.sent


def test_preference_votes_over_several_principles():
    out, _ = answers("(B) is better", "Answer: A").run(preference(principles_per_pair=2), PAIR)
    assert out["chosen"] == B and out["preference"]["votes"] == {"first": 0, "second": 2,
                                                                 "inconsistent": 0}
    assert len(out["preference"]["principles"]) == 2


def test_preference_needs_a_choice_question():
    no_choice = [{k: v for k, v in p.items() if k != "choice"} for p in PRINCIPLES]
    with pytest.raises(ValidationError, match="no principle has a 'choice' question"):
        preference(principles=no_choice)
    assert Principle(**PRINCIPLES[2]).choice is None


def test_preference_principles_from_file(tmp_path: Path):
    (tmp_path / "c.yaml").write_text(json.dumps(PRINCIPLES))  # a bare list is accepted too
    spec = ConstitutionalPreferenceStep.model_validate(
        {"name": "l", "kind": "constitutional_preference", "reads": ["p", "a", "b"],
         "writes": ["c", "r", "i"], "principles": "c.yaml"}, context={"recipe_dir": str(tmp_path)})
    assert len(spec.principles) == 3


def test_shipped_recipe_builds_on_the_fake_backend(tmp_path, cache_env):
    """recipes/constitutional.yaml end to end with scripted replies: sft and dpo splits, accounting."""
    import yaml

    from conftest import read_jsonl, run_cli

    source = ROOT / "recipes" / "constitutional.yaml"
    recipe = yaml.safe_load(source.read_text())
    recipe["seeds"]["path"] = str((source.parent / recipe["seeds"]["path"]).resolve())
    recipe["steps"][1]["principles"] = str(source.parent / recipe["steps"][1]["principles"])
    recipe["backend"] = {"name": "fake", "options": {"rules": [
        {"match": r"Critique Request: [^\n]*$", "reply": "Critique: this helps with harm {hash}."},
        {"match": r"Revision Request: [^\n]*$", "reply": "Revision: I won't help with that {hash}."}],
        "default": "Sure, here is how {hash}."}}
    path = tmp_path / "cai.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    result = run_cli("build", str(path), "--output", str(tmp_path / "out"), env=cache_env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["totals"]["input"] == stats["totals"]["kept"] == 26
    dpo = read_jsonl(tmp_path / "out" / "dpo.jsonl")
    sft = read_jsonl(tmp_path / "out" / "sft.jsonl")
    assert len(dpo) == len(sft) == 26
    assert dpo[0]["chosen"][0]["content"].startswith("I won't help")
    assert dpo[0]["rejected"][0]["content"].startswith("Sure, here is how")
    assert [c["round"] for c in sft[0]["critiques"]] == [1, 2]
