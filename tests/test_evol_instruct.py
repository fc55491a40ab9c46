"""Evol-Instruct step on the fake backend: prompts sent, parsing, every elimination reason, chains."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from factory.core.record import Rejected
from factory.llm.request import SamplingParams
from factory.steps.evol_instruct import (
    EQUALITY_SCHEMA,
    METHODS,
    OPERATIONS,
    EvolInstruct,
    EvolInstructStep,
    read_equality,
    strip_marker,
)
from scripted import Scripted

SEED = "Explain what photosynthesis is."
FIELDS = {"instruction": SEED}
REWRITE = "Explain what photosynthesis is, and name the two stages with one example plant each."
ANSWER = "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in two stages."
NOT_EQUAL = '{{"judgement": "Not Equal"}}'  # the fake formats replies: braces doubled


def step(**kw) -> EvolInstruct:
    spec = EvolInstructStep(**{"name": "evolve", "kind": "evol_instruct", "reads": ["instruction"],
                               "writes": ["evolved", "response", "evolution"], "generations": 1,
                               "operations": {"add_constraints": 1}, **kw})
    return EvolInstruct(spec, SamplingParams(temperature=0.7, max_tokens=64))


def backend(rewrite: str | list[str] = REWRITE, judge: str = NOT_EQUAL, answer: str = ANSWER) -> Scripted:
    rewrites = {"replies": rewrite} if isinstance(rewrite, list) else {"reply": rewrite}
    return Scripted([{"match": "Your judgement", "reply": judge},
                     {"match": r"(Rewritten|Created) Prompt#:\s*$", **rewrites}], default=answer)


def test_prompts_sent_rewrite_then_equality_and_answer():
    fake = backend(rewrite="#Rewritten Prompt#: " + REWRITE)
    out, _ = fake.run(step(), FIELDS)
    assert [r.sample_index for _, r in fake.sent] == [1, 0, 0]
    rewrite_prompt = fake.last_user(0)
    assert METHODS["add_constraints"] in rewrite_prompt
    assert rewrite_prompt.rstrip().endswith(f"#The Given Prompt#:\n{SEED}\n#Rewritten Prompt#:")
    assert "10 to 20 words" in rewrite_prompt
    judge = fake.sent[1][1]
    assert json.loads(judge.json_schema) == EQUALITY_SCHEMA and judge.params.temperature == 0
    assert f"The First Prompt: {SEED}\nThe Second Prompt: {REWRITE}" in fake.last_user(1)
    assert fake.last_user(2) == REWRITE  # the evolved instruction is answered as it is
    # The marker the model echoed is stripped from the kept instruction.
    assert out["evolved"] == REWRITE and out["response"] == ANSWER
    assert out["evolution"] == [{"generation": 1, "operation": "add_constraints",
                                 "instruction": REWRITE, "response": ANSWER}]


def test_breadth_uses_the_created_prompt_template():
    fake = backend(rewrite="How do desert plants photosynthesize at night?")
    out, _ = fake.run(step(operations={"breadth": 1}), FIELDS)
    prompt = fake.last_user(0)
    assert "#Given Prompt#:\n" + SEED in prompt and prompt.rstrip().endswith("#Created Prompt#:")
    assert "#Rewritten Prompt#" not in prompt
    assert out["evolution"][0]["operation"] == "breadth"


@pytest.mark.parametrize("reply, expected", [
    ("#Rewritten Prompt#: Do X.", "Do X."), ("#Created Prompt#:\n\nDo Y.", "Do Y."), ("Do Z. ", "Do Z.")])
def test_strip_marker(reply, expected):
    assert strip_marker(reply) == expected


def test_read_equality_json_and_words():
    assert read_equality('{"judgement": "Equal"}') is True
    assert read_equality('{"judgement": "Not Equal"}') is False
    assert read_equality("They are not equal.") is False
    assert read_equality("Equal") is True
    assert read_equality("I cannot tell.") is None


def eliminated(out: Rejected, reason: str) -> dict:
    assert isinstance(out, Rejected) and out.reason == reason, out
    (entry,) = out.raw  # the chain travels with the reject
    assert entry["eliminated"] == reason
    return entry


def test_no_information_gain():
    out, ctx = backend(judge='{{"judgement": "Equal"}}').run(step(), FIELDS)
    entry = eliminated(out, "no_information_gain")
    assert entry["instruction"] == REWRITE and ctx.counters["eliminated.no_information_gain"] == 1


def test_response_failed_on_a_short_sorry_and_on_stop_words():
    out, _ = backend(answer="Sorry, I cannot answer that.").run(step(), FIELDS)
    assert "sorry" in eliminated(out, "response_failed")["detail"]
    out, _ = backend(answer="It is what it is ... !").run(step(), FIELDS)
    assert "stop words" in eliminated(out, "response_failed")["detail"]
    long_sorry = "Sorry for the wait. " + " ".join(["Photosynthesis uses light energy."] * 20)
    out, _ = backend(answer=long_sorry).run(step(response_params={"max_tokens": 200}), FIELDS)
    assert not isinstance(out, Rejected)  # the paper's rule: "sorry" AND under 80 words


def test_template_leak():
    out, _ = backend(rewrite="Rewrite the given prompt about photosynthesis with a constraint.").run(
        step(), FIELDS)
    assert "given prompt" in eliminated(out, "template_leak")["detail"]


def test_rewrite_too_long():
    long = SEED + " " + " ".join(["more"] * 31)
    out, _ = backend(rewrite=long).run(step(max_added_words=30), FIELDS)
    assert "31 words added" in eliminated(out, "rewrite_too_long")["detail"]


def test_empty_rewrite():
    out, _ = backend(rewrite="#Rewritten Prompt#:").run(step(), FIELDS)
    eliminated(out, "empty_rewrite")


def test_truncated_rewrite_and_truncated_response():
    fake = backend(rewrite=" ".join(["word"] * 80))  # the fake cuts at max_tokens=64 words
    out, _ = fake.run(step(), FIELDS)
    assert "rewrite" in eliminated(out, "truncated")["detail"]
    assert len(fake.sent) == 1  # no judge or answer for a cut-off rewrite
    out, _ = backend(answer=" ".join(["light"] * 80)).run(step(), FIELDS)
    assert "response" in eliminated(out, "truncated")["detail"]


def test_judge_unparseable():
    out, _ = backend(judge="Maybe.").run(step(), FIELDS)
    eliminated(out, "judge_unparseable")


def test_failed_generation_is_placed_back_and_evolved_again():
    # The fake picks a reply by request hash; sample_index = generation makes each try a new sample.
    fake = backend(rewrite=["Rewrite the given prompt now.", REWRITE, REWRITE + " Use a table."])
    out, _ = fake.run(step(generations=6), FIELDS)
    chain = out["evolution"]
    assert len(chain) == 6 and [e["generation"] for e in chain] == [1, 2, 3, 4, 5, 6]
    assert any(e.get("eliminated") == "template_leak" for e in chain)
    rewrite_prompts = [fake.last_user(i) for i, (_, r) in enumerate(fake.sent) if r.sample_index > 0]
    parent = SEED
    for entry, prompt in zip(chain, rewrite_prompts):
        # Each generation rewrites the last instruction that survived, never an eliminated one.
        assert f"#The Given Prompt#:\n{parent}\n" in prompt
        if "eliminated" not in entry:
            parent = entry["instruction"]
    assert out["evolved"] == parent != SEED  # a survivor after a failure was exercised


def test_emit_all_fans_out_every_surviving_generation():
    rewrites = ["Step one harder.", "Step two harder still.", "Rewrite the given prompt."]
    runner = step(generations=5, emit="all")
    assert runner.fans_out
    out, ctx = backend(rewrite=rewrites).run(runner, FIELDS)
    assert isinstance(out, list) and len(out) == ctx.counters["evolved"] >= 1
    for child in out:  # each child's chain ends at its own generation, failures before it kept
        assert child["evolution"][-1]["instruction"] == child["evolved"]
        assert "eliminated" not in child["evolution"][-1]
    assert not step(generations=2).fans_out


def test_all_generations_eliminated_rejects_with_the_last_reason():
    out, _ = backend(rewrite="Use the given prompt.").run(step(generations=3), FIELDS)
    assert isinstance(out, Rejected) and out.reason == "template_leak"
    assert len(out.raw) == 3 and "no generation survived" in out.detail


def test_operations_are_deterministic_and_weighted():
    runner = step(generations=6, operations={"deepen": 1, "breadth": 1, "concretize": 0})
    first, _ = backend().run(runner, FIELDS, record_id="a")
    again, _ = backend().run(runner, FIELDS, record_id="a")
    ops = [e["operation"] for e in first["evolution"]]
    assert ops == [e["operation"] for e in again["evolution"]]
    assert set(ops) <= {"deepen", "breadth"}
    other = [backend().run(runner, FIELDS, record_id=f"r{i}")[0] for i in range(6)]
    assert len({tuple(e["operation"] for e in o["evolution"]) for o in other}) > 1


def test_judge_backend_gets_the_equality_check():
    runner = step(judge_backend="judge")
    runner.backend_params = {"judge": SamplingParams(temperature=0.9, max_tokens=500)}
    fake = backend()
    fake.run(runner, FIELDS)
    assert [k for k, _ in fake.sent] == [None, "judge", None]
    assert fake.sent[1][1].params.max_tokens == 32  # judge_params over the judge's own params
    assert runner.spec.backend_refs() == {"backend": "default", "judge_backend": "judge"}


def test_template_override_is_used():
    fake = backend()
    fake.run(step(templates={"add_constraints": "Add exactly one deadline."}), FIELDS)
    assert "Add exactly one deadline." in fake.last_user(0)


@pytest.mark.parametrize("kw, message", [
    ({"operations": {"deepn": 1}}, "did you mean 'deepen'"),
    ({"operations": {"deepen": 0}}, "no operation has a positive weight"),
    ({"templates": {"bredth": "x {instruction}"}}, "did you mean 'breadth'"),
    ({"templates": {"breadth": "no placeholder"}}, "must use {instruction}"),
    ({"templates": {"equality": "{first} {third}"}}, "{third}"),
    ({"writes": ["a", "b"]}, "writes exactly"),
])
def test_bad_spec_is_a_one_line_error(kw, message):
    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")):
        step(**kw)


def test_shipped_recipe_builds_on_the_fake_backend(tmp_path, cache_env):
    """recipes/evol_instruct.yaml end to end with scripted replies: fan-out rows, chains, accounting."""
    import yaml

    from conftest import ROOT, read_jsonl, run_cli

    source = ROOT / "recipes" / "evol_instruct.yaml"
    recipe = yaml.safe_load(source.read_text())
    recipe["seeds"]["path"] = str((source.parent / recipe["seeds"]["path"]).resolve())
    recipe["backend"] = {"name": "fake", "options": {"rules": [
        {"match": "Your judgement", "replies": [NOT_EQUAL, NOT_EQUAL, '{{"judgement": "Equal"}}']},
        {"match": r"(Rewritten|Created) Prompt#:\s*$", "replies": [
            "#Rewritten Prompt#: A harder task {hash} with one more rule.", "Rewrite the given prompt."]}],
        "default": "A full answer {hash} with enough substance words."}}
    path = tmp_path / "evol.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    result = run_cli("build", str(path), "--output", str(tmp_path / "out"), env=cache_env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    t = stats["totals"]
    assert t["input"] == 22 and t["input"] + t["created"] == t["kept"] + t["rejected"] + t["consumed"]
    rows = read_jsonl(tmp_path / "out" / "sft.jsonl")
    assert len(rows) == t["kept"] > 0 and t["consumed"] == 22 - t["rejected"]
    assert {r["messages"][0]["content"] for r in rows} == {r["evolution"][-1]["instruction"] for r in rows}
    figures = stats["steps"]["evolve"]["figures"]
    assert figures["evolved"] == t["kept"] and figures["eliminated.template_leak"] > 0
    assert figures["eliminated.no_information_gain"] > 0


def test_recipe_error_points_at_the_line(write_recipe):
    from factory.core.errors import RecipeError
    from factory.recipe.loader import load_recipe

    path = write_recipe("""name: t
seeds: {rows: [{instruction: hi}]}
backend: {name: fake}
steps:
  - name: evolve
    kind: evol_instruct
    reads: [instruction]
    writes: [evolved, response, evolution]
    operations:
      deepn: 1
outputs:
  splits:
    sft: {format: sft, prompt: evolved}
""")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value) == (f"{path}:9: steps[0].operations: unknown operation 'deepn' (did you mean "
                              f"'deepen'?); known: {', '.join(OPERATIONS)}")
