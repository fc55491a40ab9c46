"""``factory init``: draft seeds on the fake backend, write a recipe that validates and builds."""

import json

from tests.conftest import read_jsonl, run_cli

# Natural, varied gardening tasks: the drafted seeds and the tasks Self-Instruct grows share a domain
# and a style, so the drift gate passes (a stylistic giveaway would fail it, as it should).
SEED_TASKS = ["Explain how a compost pile turns kitchen scraps into soil.",
              "Describe when drip irrigation saves more water than a sprinkler.",
              "Give a three-year crop rotation for a family vegetable plot.",
              "Tell a beginner how to test whether their soil is too acidic.",
              "Name cover crops that protect empty beds over the winter.",
              "Show how to save tomato seeds for next year's planting.",
              "Compare raised beds and in-ground rows for a small backyard.",
              "Suggest gentle ways to get rid of aphids on roses.",
              "Explain why mulching paths keeps weeds down.",
              "Plan a rain barrel setup for a small garden shed.",
              "Describe how to vent a greenhouse on hot spring days.",
              "Teach a new gardener how to prune a young apple tree.",
              "List what a worm bin needs to stay healthy indoors.",
              "Explain how frost cloth protects lettuce on cold nights.",
              "Describe the first signs of blight on tomato leaves."]
DRAFTS = [json.dumps({"tasks": [{"instruction": SEED_TASKS[(i + k) % 15], "input": "",
                                 "output": "A short, practical answer."} for k in (0, 1, 3)]})
          .replace("{", "{{").replace("}", "}}") for i in range(15)]


def verdict(winner: str) -> str:
    good, bad = {"correctness": 4, "helpfulness": 4, "clarity": 4}, {"correctness": 2, "helpfulness": 2,
                                                                      "clarity": 2}
    scores = {"A": good, "B": bad} if winner == "A" else {"A": bad, "B": good}
    reply = json.dumps({"reasoning": "One answer is steadier.", **scores, "verdict": winner})
    return reply.replace("{", "{{").replace("}", "}}")


INSTRUCTIONS = ["Plan a weekly watering schedule for a balcony herb garden.",
                "Compare clay and sandy soil for growing carrots in a small yard.",
                "List five warning signs that a lemon tree lacks nitrogen.",
                "Write a checklist for closing a vegetable garden before winter.",
                "Suggest companion plants that keep pests away from cabbages.",
                "Describe how to harden off seedlings before planting them out.",
                "Explain when to harvest garlic and how to cure it.",
                "Recommend a rotation for four raised beds over four years."]
REWRITES = ["Plan it for a dry summer week and give amounts in litres.",
            "Do it for a north-facing plot that gets three hours of sun.",
            "Answer in a table and justify each row with one reason.",
            "Assume the gardener has only a watering can and a trowel.",
            "Keep the budget under twenty euros and name each purchase.",
            "Take a clay soil with standing water after rain into account.",
            "Write it for a child of ten who helps in the school garden.",
            "Include a week-by-week calendar from March to June.",
            "Compare two organic options and say which you would choose.",
            "Explain the chemistry behind each step in one sentence.",
            "Adapt it to a windy rooftop terrace in a coastal city.",
            "List the three mistakes beginners make most and how to avoid them.",
            "Give the answer as numbered steps with the time each step takes.",
            "Assume heavy slug pressure and no chemical pellets allowed.",
            "Make it work for a wheelchair user gardening from a seat.",
            "Cover what changes if the summer turns out unusually wet."]

SUBTOPICS = ["composting", "watering", "pest control", "soil testing", "seed saving", "pruning"]
TOPIC_REPLY = json.dumps({"subtopics": SUBTOPICS}).replace("{", "{{").replace("}", "}}")

RULES = [
    {"match": "specific parts of the subject", "reply": TOPIC_REPLY},
    {"match": "design training tasks", "replies": DRAFTS},
    # Self-Instruct: the numbered continuation, the classification question, instances.
    {"match": "Come up with a series of tasks", "replies": [
        f"{INSTRUCTIONS[i]}\nTask 10: {INSTRUCTIONS[i + 1]}" for i in range(0, len(INSTRUCTIONS), 2)]},
    {"match": "regarded as a classification task", "reply": "No"},
    {"match": "Come up with examples for the following tasks", "reply": "Output: Water every two days."},
    # Evol-Instruct: a rewrite within the word budget, judged different from its parent.
    {"match": "You rewrite prompts|You create prompts",
     "replies": [f"#Rewritten Prompt#: {r} (case {{hash}})" for r in REWRITES]},
    {"match": "Are they equal", "reply": "Not Equal"},
    # The pairwise judge prefers whichever answer was sampled cold, in both orders.
    {"match": r"\[Answer A\]\nAnswer at T=1.0", "reply": verdict("B")},
    {"match": r"\[Answer A\]\n", "reply": verdict("A")},
]
DEFAULT = "Answer at T={temperature} [{hash}]: {last:.40}"


def fake_options() -> str:
    return json.dumps({"rules": RULES, "default": DEFAULT})


def test_init_drafts_seeds_and_writes_a_recipe_that_builds(tmp_path, cache_env):
    domain = tmp_path / "gardening"
    result = run_cli("init", str(domain), "--describe", "Home vegetable gardening advice for beginners "
                     "with small yards and balconies.", "--backend", "fake", "--options", fake_options(),
                     "--count", "12", env=cache_env)
    assert result.returncode == 0, (result.stdout + result.stderr)
    assert f"subtopics: {'; '.join(SUBTOPICS)} (1 made, 0 from cache)" in result.stdout
    assert "seed diversity (12 instructions): distinct-1 " in result.stdout
    seeds = read_jsonl(domain / "seeds.jsonl")
    assert len(seeds) == 12 and len({s["instruction"] for s in seeds}) == 12
    assert all(set(s) == {"instruction", "input", "output"} for s in seeds)
    recipe = (domain / "recipe.yaml").read_text()
    assert "kind: self_instruct" in recipe and "kind: evol_instruct" in recipe and "filter: drift" in recipe
    assert run_cli("validate", str(domain / "recipe.yaml"), env=cache_env).returncode == 0
    built = run_cli("build", str(domain / "recipe.yaml"), "--output", str(tmp_path / "out"), env=cache_env)
    assert built.returncode == 0, built.stdout + built.stderr
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    totals = stats["totals"]
    assert totals["input"] + totals["created"] == (totals["kept"] + totals["rejected"] + totals["failed"]
                                                   + totals["consumed"])
    assert stats["steps"]["grow"]["created"] > 0 and stats["steps"]["evolve"]["created"] > 0
    assert stats["qc"]["filters"]["drift"]["gate"] == "ok"  # same domain and style as the seeds
    assert read_jsonl(tmp_path / "out" / "sft.jsonl") and read_jsonl(tmp_path / "out" / "dpo.jsonl")


def test_draft_requests_are_spread_over_the_subtopics():
    import asyncio

    from factory.llm.backends.base import BackendSettings
    from factory.llm.backends.fake import FakeBackend
    from factory.llm.dispatch import Dispatcher
    from factory.llm.request import SamplingParams
    from factory.recipe.init_domain import domain_topics, draft_tasks

    fake = FakeBackend(BackendSettings("fake", 4, {"rules": RULES}))

    async def run():
        topics = await domain_topics(Dispatcher(fake, None, 4), "Home gardening. More words here.",
                                     SamplingParams())
        asked: list[str] = []
        real = fake.generate

        async def recording(requests):
            asked.extend(r.messages[-1][1] for r in requests)
            return await real(requests)

        fake.generate = recording
        draft = await draft_tasks(Dispatcher(fake, None, 4), "Home gardening.", [], 30, SamplingParams(),
                                  max_requests=8, topics=topics)
        return topics, asked, draft

    topics, asked, draft = asyncio.run(run())
    assert topics == SUBTOPICS and draft.topics == SUBTOPICS and len(asked) == 8
    focus = [next(t for t in SUBTOPICS if f"Focus on this part of the domain: {t}." in a) for a in asked]
    assert focus == [SUBTOPICS[k % 6] for k in range(8)]  # request k on subtopic k, round robin


def test_init_keeps_user_examples_first(tmp_path, cache_env):
    mine = tmp_path / "mine.jsonl"
    task = "Suggest three shade-tolerant vegetables for a north balcony."
    mine.write_text(json.dumps({"instruction": task}) + "\n")
    result = run_cli("init", str(tmp_path / "d"), "--describe", "Home vegetable gardening advice for "
                     "beginners.", "--seeds", str(mine), "--backend", "fake", "--options", fake_options(),
                     "--count", "12", env=cache_env)
    assert result.returncode == 0, (result.stdout + result.stderr)
    seeds = read_jsonl(tmp_path / "d" / "seeds.jsonl")
    assert seeds[0]["instruction"].startswith("Suggest three shade-tolerant") and len(seeds) == 12


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


def test_init_drafts_are_cached_and_no_cache_is_honoured(tmp_path, cache_env):
    import re
    import sqlite3

    cache = tmp_path / "init.sqlite"
    args = ["--describe", "Home vegetable gardening advice for beginners with small yards.", "--backend",
            "fake", "--options", fake_options(), "--count", "12"]

    def init(folder: str, *extra: str) -> tuple[int, int, int]:
        result = run_cli("init", str(tmp_path / folder), *args, *extra, env=cache_env)
        assert result.returncode == 0, result.stdout + result.stderr
        asked, made, cached = re.search(r"drafted in (\d+) requests \((\d+) made, (\d+) from cache",
                                        result.stdout).groups()
        split = re.search(r"subtopics: .* \((\d+) made, (\d+) from cache\)", result.stdout).groups()
        assert sum(map(int, split)) == 1  # the domain split into subtopics: one call, cached too
        return int(asked) + 1, int(made) + int(split[0]), int(cached) + int(split[1])

    def rows() -> int:
        with sqlite3.connect(cache) as db:
            return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    asked, made, cached = init("a", "--cache", str(cache))
    assert asked == made == rows() > 0 and cached == 0
    assert init("b", "--cache", str(cache)) == (asked, 0, asked)  # the rerun calls no model
    assert (tmp_path / "a" / "seeds.jsonl").read_bytes() == (tmp_path / "b" / "seeds.jsonl").read_bytes()
    assert init("c", "--no-cache") == (asked, asked, 0)
    assert rows() == asked and not (tmp_path / "cache" / "requests.sqlite").exists()
