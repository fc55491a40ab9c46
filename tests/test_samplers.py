"""Samplers: seed columns from declared axes, deterministic per (seed, row); drafted pools cached;
bad specs are one-line recipe errors at their line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import read_jsonl, run_cli
from factory.engine.plan import BuildOptions, plan_build

AXES = """samplers:
  count: {count}
  columns:
    - {{name: domain, type: category, values: {{cooking: 3, travel: 1, never: 0}}}}
    - name: task
      type: subcategory
      of: domain
      values:
        cooking: [recipe, substitution, timing]
        travel: {{itinerary: 2, packing: 1}}
        never: [unused]
    - {{name: level, type: numeric, distribution: integer, low: 1, high: 5}}
    - {{name: budget, type: numeric, distribution: normal, mean: 50, std: 30, low: 0, high: 100, decimals: 1}}
    - {{name: style, type: grid, axes: {{tone: [formal, casual, terse], length: [short, long]}}}}
"""

STEPS = """backend:
  name: fake
  options:
    rules:
      - match: "subtopics"
        reply: '{{{{"subtopics": ["sub a {{hash}}", "sub b {{hash}}", "sub c {{hash}}"]}}}}'
      - match: "Describe one person"
        reply: '{{{{"persona": "A home cook, number {{hash}}, who needs quick dinners."}}}}'
steps:
  - name: ask
    kind: generate
    reads: [{reads}]
    writes: prompt
    prompt: "{prompt}"
  - name: answer
    kind: generate
    reads: [prompt]
    writes: response
    prompt: "{{prompt}}"
outputs:
  splits:
    sft: {{format: sft, columns: [{reads}]}}
"""


def axes_recipe(count: int = 40, extra: str = "") -> str:
    return ("name: sampled\nseed: 0\n" + AXES.format(count=count) + extra
            + STEPS.format(reads="domain, task, level, tone", prompt="A {tone} {task} question about "
                           "{domain} at level {level}."))


def rows(recipe: Path, **options) -> list[dict]:
    return [r.fields for r in plan_build(recipe, BuildOptions(**options)).seed_records()]


def test_same_seed_same_rows_other_seed_other_rows(write_recipe):
    recipe = write_recipe(axes_recipe(count=200))
    first = rows(recipe)
    assert len(first) == 200 and first == rows(recipe)
    other = rows(recipe, seed=1)
    assert len(other) == 200 and other != first
    assert sum(a == b for a, b in zip(first, other)) < 20  # not just one column moved
    assert rows(recipe, limit=17) == first[:17]  # a row does not depend on how many are drawn


def test_rows_follow_their_axes(write_recipe):
    drawn = rows(write_recipe(axes_recipe(count=2000)))
    allowed = {"cooking": {"recipe", "substitution", "timing"}, "travel": {"itinerary", "packing"}}
    assert all(r["task"] in allowed[r["domain"]] for r in drawn)  # subcategories never cross categories
    domains = [r["domain"] for r in drawn]
    assert "never" not in domains  # weight 0: never drawn
    assert 0.68 < domains.count("cooking") / len(drawn) < 0.82  # weight 3 of 4
    assert {r["level"] for r in drawn} == {1, 2, 3, 4, 5}
    assert all(0 <= r["budget"] <= 100 and round(r["budget"], 1) == r["budget"] for r in drawn)
    # mode all: the first 6 rows are the 6 combinations of the grid, in order
    assert [(r["tone"], r["length"]) for r in drawn[:6]] == [
        ("formal", "short"), ("formal", "long"), ("casual", "short"), ("casual", "long"),
        ("terse", "short"), ("terse", "long")]
    assert list(drawn[0]) == ["domain", "task", "level", "budget", "tone", "length"]


def test_samplers_beside_a_seed_file(tmp_path, write_recipe):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"question": f"q{i}"}) + "\n" for i in range(5)))
    personas = tmp_path / "personas.txt"
    personas.write_text("a nurse\n\na farmer\na nurse\n")  # blank lines and repeats go
    text = (f"name: mixed\nseeds:\n  path: {seeds}\nsamplers:\n  columns:\n"
            f"    - {{name: who, type: persona, path: {personas}}}\n"
            + STEPS.format(reads="question, who", prompt="{who} asks {question}"))
    drawn = rows(write_recipe(text))
    assert [r["question"] for r in drawn] == [f"q{i}" for i in range(5)]
    assert {r["who"] for r in drawn} <= {"a nurse", "a farmer"} and all(set(r) == {"question", "who"}
                                                                        for r in drawn)


TREE = """    - {name: topic, type: topic_tree, root: cooking, depth: 2, branching: 3,
       path_column: topic_path}
    - {name: persona, type: persona, draft: 4, describe: home cooks}
"""


def test_drafted_pools_are_cached_and_counted(tmp_path, write_recipe, cache_env):
    text = axes_recipe(count=30, extra=TREE).replace(
        "reads: [domain, task, level, tone]", "reads: [domain, task, level, tone, topic, persona]")
    recipe = write_recipe(text)

    def build(out: str) -> tuple[dict, dict]:
        done = run_cli("build", str(recipe), "--output", str(tmp_path / out), env=cache_env)
        assert done.returncode == 0, done.stdout + done.stderr
        return (json.loads((tmp_path / out / "run.json").read_text())["calls"]["samplers"],
                json.loads((tmp_path / out / "stats.json").read_text()))

    calls, stats = build("a")
    # root (1 call) + its 3 children (3 calls) + 4 personas
    assert calls["made"] == 8 and calls["cached"] == 0
    tree = stats["samplers"]["drafted"]["topic"]
    assert tree["leaves"] == 9 and tree["calls"] == 4 and tree["unexpanded"] == 0
    assert stats["samplers"]["drafted"]["persona"]["values"] == 4
    axes = stats["samplers"]["axes"]
    assert stats["samplers"]["rows"] == 30 and sum(axes["domain"]["counts"].values()) == 30
    assert axes["topic"]["possible"] == 9 and axes["persona"]["possible"] == 4
    sft = read_jsonl(tmp_path / "a" / "sft.jsonl")
    assert all(r["messages"][0]["content"].count("question about") == 1 for r in sft)

    again, stats_again = build("b")  # a rebuild asks the cache, never the model
    assert again["made"] == 0 and again["cached"] == 8
    assert stats_again == stats
    assert (tmp_path / "a" / "sft.parquet").read_bytes() == (tmp_path / "b" / "sft.parquet").read_bytes()
    card = (tmp_path / "a" / "README.md").read_text()
    assert "## Samplers" in card and "a topic tree of 9 leaves" in card and "| domain | 2 | 3 |" in card
    assert "## Diversity" in card and "| generated | prompt | 30 |" in card


def test_a_failed_drafting_call_stops_the_build_before_any_step(tmp_path, write_recipe, cache_env):
    text = axes_recipe(count=10, extra=TREE).replace(
        "  options:\n", "  options:\n    fail_match: home cooks\n")
    done = run_cli("build", str(write_recipe(text)), "--output", str(tmp_path / "o"), env=cache_env)
    assert done.returncode == 1
    said = (done.stdout + done.stderr).strip()
    assert "samplers: persona: 4 of 4 drafting call(s) failed" in said and "Traceback" not in said
    assert not (tmp_path / "o").exists()


def test_dry_run_counts_drafting_calls_from_the_cache(tmp_path, write_recipe, cache_env):
    recipe = write_recipe(axes_recipe(count=10, extra=TREE))
    before = run_cli("build", str(recipe), "--dry-run", env=cache_env)
    assert before.returncode == 0, before.stdout + before.stderr
    assert "│ samplers │         ? │" in before.stdout  # the tree's lower levels are unknown
    assert run_cli("build", str(recipe), "--output", str(tmp_path / "o"), env=cache_env).returncode == 0
    after = run_cli("build", str(recipe), "--dry-run", env=cache_env)
    assert "│ samplers │         8 │      8 │       0 │" in after.stdout


def line_of(text: str, marker: str) -> int:
    return [i for i, line in enumerate(text.splitlines(), 1) if marker in line][0]


BAD = [
    ("{name: domain, type: category, values: {cooking: 3, travel: 1, never: 0}}",
     "{name: domain, type: categorical, values: [a, b]}", "categorical",
     "samplers.columns[0].type", "unknown sampler type 'categorical' (did you mean 'category'?)"),
    ("{name: domain, type: category, values: {cooking: 3, travel: 1, never: 0}}",
     "{name: domain, type: category, values: {cooking: 0, travel: 0}}", "travel: 0",
     "samplers.columns[0].values", "weights must sum to more than 0"),
    ("{name: domain, type: category, values: {cooking: 3, travel: 1, never: 0}}",
     "{name: domain, type: category, values: {cooking: 3, travel: -1}}", "travel: -1",
     "samplers.columns[0].values", "negative weight"),
    ("        never: [unused]", "        never: [unused]\n        space: [orbit]", "space: [orbit]",
     "samplers.columns[1].values.space", "subcategories for unknown category 'space'"),
    ("      of: domain", "      of: domian", "of: domian", "samplers.columns[1].of",
     "'domian' is not an earlier category or subcategory column"),
    ("{name: level, type: numeric", "{name: domain, type: numeric", "name: domain, type: numeric",
     "samplers.columns[2].name", "column 'domain' clashes: sampler 'domain' writes it too"),
    ("axes: {tone: [formal", "axes: {prompt: [formal", "axes: {prompt:",
     "samplers.columns[4].axes.prompt", "column 'prompt' clashes: step 'ask' writes it"),
    ("distribution: integer, low: 1, high: 5", "distribution: integer, low: 5, high: 1", "low: 5, high: 1",
     "samplers.columns[2]", "low (5) is above high (1)"),
    ("    - {name: domain, type: category", "    - {name: domain, kind: category", "kind: category",
     "samplers.columns[0]", "a sampler needs 'type'"),
]


@pytest.mark.parametrize("old,new,marker,path,fragment", BAD, ids=[
    "unknown_sampler", "weights_sum_zero", "negative_weight", "unknown_parent_value", "unknown_parent",
    "clash_between_samplers", "clash_with_step", "numeric_bounds", "no_type"])
def test_bad_sampler_spec_is_one_line_at_its_line(write_recipe, cache_env, old, new, marker, path, fragment):
    text = axes_recipe()
    assert old in text, old
    text = text.replace(old, new, 1)
    recipe = write_recipe(text)
    done = run_cli("validate", str(recipe), env=cache_env)
    said = (done.stdout + done.stderr).strip()
    assert done.returncode == 2, said
    assert len(said.splitlines()) == 1 and "Traceback" not in said
    assert said.startswith(f"error: {recipe}:{line_of(text, marker)}: {path}: "), said
    assert fragment in said


def test_clash_with_a_seed_column(tmp_path, write_recipe, cache_env):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"domain": "x"}) + "\n")
    text = axes_recipe().replace("samplers:\n  count: 40\n", f"seeds:\n  path: {seeds}\nsamplers:\n")
    done = run_cli("validate", str(write_recipe(text)), env=cache_env)
    said = (done.stdout + done.stderr).strip()
    assert done.returncode == 2 and f":{line_of(text, '{name: domain')}: samplers.columns[0].name: " in said
    assert "column 'domain' clashes with a seed column" in said


def test_count_and_seeds_are_one_or_the_other(tmp_path, write_recipe, cache_env):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"q": "x"}) + "\n")
    both = axes_recipe().replace("samplers:\n", f"seeds:\n  path: {seeds}\nsamplers:\n")
    said = run_cli("validate", str(write_recipe(both)), env=cache_env)
    assert said.returncode == 2 and "with 'seeds' the seed rows set the count" in said.stdout + said.stderr
    neither = axes_recipe().replace("  count: 40\n", "")
    said = run_cli("validate", str(write_recipe(neither)), env=cache_env)
    assert said.returncode == 2 and "give 'seeds' or 'samplers' with a 'count'" in said.stdout + said.stderr


@pytest.mark.parametrize("name", ["samplers", "magpie"])
def test_example_recipes_build_on_the_fake_backend(tmp_path, cache_env, name):
    from conftest import ROOT

    text = (ROOT / "recipes" / f"{name}.yaml").read_text()
    assert "name: llama_cpp\n  model: embedded\n" in text
    text = text.replace("name: llama_cpp\n  model: embedded\n", "name: fake\n").replace(
        "../datasets/seeds/personas.txt", str(ROOT / "datasets" / "seeds" / "personas.txt"))
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(text)
    done = run_cli("build", str(recipe), "--limit", "6", "--output", str(tmp_path / "o"), env=cache_env)
    assert done.returncode == 0, done.stdout + done.stderr
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["totals"]["input"] == 6 and stats["samplers"]["rows"] == 6
    assert len(read_jsonl(tmp_path / "o" / "sft.jsonl")) == stats["totals"]["kept"]
