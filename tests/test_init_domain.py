"""``factory init``: draft seeds on the fake backend, write a recipe that validates and builds."""

import json

from tests.conftest import read_jsonl, run_cli

TOPICS = ["compost piles", "drip irrigation", "crop rotation", "soil acidity", "cover crops",
          "seed saving", "raised beds", "aphid control", "mulching paths", "rainwater barrels",
          "greenhouse venting", "pruning fruit trees", "worm bins", "frost cloth", "tomato blight"]

# Three distinct tasks per draft reply (the fake picks a reply by request hash).
VERBS = ["Explain to a new gardener how", "Plan a first season around", "List common mistakes with"]
DRAFTS = [json.dumps({"tasks": [{"instruction": f"{verb} {topic}, in plain words.", "input": "",
                                 "output": f"A short guide to {topic}."} for verb in VERBS]})
          .replace("{", "{{").replace("}", "}}") for topic in TOPICS]

def verdict(winner: str) -> str:
    good, bad = {"correctness": 4, "helpfulness": 4, "clarity": 4}, {"correctness": 2, "helpfulness": 2,
                                                                      "clarity": 2}
    scores = {"A": good, "B": bad} if winner == "A" else {"A": bad, "B": good}
    reply = json.dumps({"reasoning": "One answer is steadier.", **scores, "verdict": winner})
    return reply.replace("{", "{{").replace("}", "}}")


INSTRUCTIONS = ["Plan a weekly watering schedule for a balcony herb garden.",
                "Compare clay and sandy soil for growing carrots in a small yard.",
                "List five warning signs that a lemon tree lacks nitrogen.",
                "Write a checklist for closing a vegetable garden before winter."]

RULES = [
    {"match": "design training tasks", "replies": DRAFTS},
    # Self-Instruct: the numbered continuation, the classification question, instances.
    {"match": "Come up with a series of tasks", "replies": [
        f"{INSTRUCTIONS[0]}\nTask 10: {INSTRUCTIONS[1]}", f"{INSTRUCTIONS[2]}\nTask 10: {INSTRUCTIONS[3]}"]},
    {"match": "regarded as a classification task", "reply": "No"},
    {"match": "Come up with examples for the following tasks", "reply": "Output: Water every two days."},
    # Evol-Instruct: a rewrite within the word budget, judged different from its parent.
    {"match": "You rewrite prompts|You create prompts",
     "reply": "#Rewritten Prompt#: Plan it for a dry summer week and give amounts in litres {hash}."},
    {"match": "Are they equal", "reply": "Not Equal"},
    # The pairwise judge prefers whichever answer was sampled cold, in both orders.
    {"match": r"\[Answer A\]\nAnswer at T=1.0", "reply": verdict("B")},
    {"match": r"\[Answer A\]\n", "reply": verdict("A")},
]
DEFAULT = "Answer at T={temperature} ({hash}): start with the soil, then water at dawn. {last:.40}"


def fake_options() -> str:
    return json.dumps({"rules": RULES, "default": DEFAULT})


def test_init_drafts_seeds_and_writes_a_recipe_that_builds(tmp_path, cache_env):
    domain = tmp_path / "gardening"
    result = run_cli("init", str(domain), "--describe", "Home vegetable gardening advice for beginners "
                     "with small yards and balconies.", "--backend", "fake", "--options", fake_options(),
                     "--count", "12", env=cache_env)
    assert result.returncode == 0, (result.stdout + result.stderr)
    seeds = read_jsonl(domain / "seeds.jsonl")
    assert len(seeds) == 12 and len({s["instruction"] for s in seeds}) == 12
    assert all(set(s) == {"instruction", "input", "output"} for s in seeds)
    recipe = (domain / "recipe.yaml").read_text()
    assert "kind: self_instruct" in recipe and "kind: evol_instruct" in recipe and "filter: drift" in recipe
    assert run_cli("validate", str(domain / "recipe.yaml"), env=cache_env).returncode == 0


def test_init_keeps_user_examples_first(tmp_path, cache_env):
    mine = tmp_path / "mine.jsonl"
    task = "Suggest three shade-tolerant vegetables for a north balcony."
    mine.write_text(json.dumps({"instruction": task}) + "\n")
    result = run_cli("init", str(tmp_path / "d"), "--describe", "Home vegetable gardening advice for "
                     "beginners.", "--seeds", str(mine), "--backend", "fake", "--options", fake_options(),
                     env=cache_env)
    assert result.returncode == 0, (result.stdout + result.stderr)
    seeds = read_jsonl(tmp_path / "d" / "seeds.jsonl")
    assert seeds[0]["instruction"].startswith("Suggest three shade-tolerant") and len(seeds) == 15


def test_init_refuses_when_the_backend_drafts_too_little(tmp_path, cache_env):
    options = json.dumps({"rules": [], "default": "I cannot help with that."})
    result = run_cli("init", str(tmp_path / "d"), "--describe", "Home vegetable gardening advice for "
                     "beginners.", "--backend", "fake", "--options", options, env=cache_env)
    assert result.returncode == 1
    said = result.stdout + result.stderr
    assert "drafted only 0 usable tasks" in said and "unparseable_reply" in said
    assert not (tmp_path / "d").exists()


def test_init_bad_examples_file_names_the_line(tmp_path, cache_env):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "ok task here"}\n{"input": "no instruction"}\n')
    result = run_cli("init", str(tmp_path / "d"), "--describe", "Home vegetable gardening advice for "
                     "beginners.", "--seeds", str(bad), "--backend", "fake", env=cache_env)
    assert result.returncode == 1
    assert f"{bad}:2: each example needs a non-empty 'instruction'" in result.stdout + result.stderr
