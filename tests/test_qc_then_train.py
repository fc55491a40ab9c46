"""build -> qc -> train, advise, capacity: the folder `factory qc` writes is a dataset like its input.

Real subprocess CLI runs; the fake backend writes the data and is the QC judge, so every count is
fixed by the seed prompts (the 2 of 13 about Python score low), not by a model's sampling.
"""

from __future__ import annotations

import json

import pytest

from conftest import fake_recipe_text, read_jsonl, run_cli
from tiny_model import build_tiny_llama

pytest.importorskip("trl")

CHAIN = """filters:
  - filter: reward
    min: {min}
    gate: null    # a scripted judge (by keyword, not quality): only an ungated cut deletes
    scorer:
      kind: judge
      backend:
        name: fake
        options:
          rules:
            - match: "Rate the answer.*Python"
              reply: '{{{{"reasoning": "r", "correctness": 1, "helpfulness": 2, "clarity": 1}}}}'
            - match: "Rate the answer"
              reply: '{{{{"reasoning": "r", "correctness": 4, "helpfulness": 4, "clarity": 4}}}}'
"""
FAST = [a for kv in ("max_steps=1", "rank=4", "batch_size=2", "threads=1") for a in ("--set", kv)]


@pytest.mark.slow  # six CLI processes, two of them training (torch + TRL imports): ~1 min here
def test_factory_train_runs_on_the_folder_factory_qc_wrote(write_recipe, cache_env, tmp_path):
    import pyarrow.parquet as pq

    from datasets import load_dataset

    built, qc = tmp_path / "built", tmp_path / "built-qc"
    result = run_cli("build", str(write_recipe(fake_recipe_text())), "--output", str(built), env=cache_env)
    assert result.returncode == 0, result.stderr
    chain = write_recipe(CHAIN.format(min=3), "chain.yaml")
    result = run_cli("qc", str(built), "--chain", str(chain), env=cache_env)  # default output: built-qc
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("13 in = 11 kept + 2 dropped + 0 failed") == 2  # dpo and sft

    rejects = read_jsonl(qc / "rejects.jsonl")
    for split in ("dpo", "sft"):
        rows, kept = read_jsonl(built / f"{split}.jsonl"), read_jsonl(qc / f"{split}.jsonl")
        dropped = {r["id"] for r in rejects if r["split"] == split}
        assert len(dropped) == 2 and [r for r in rows if r["id"] not in dropped] == kept  # as read
        assert "lineage" in kept[0] and pq.read_schema(qc / f"{split}.parquet").equals(
            pq.read_schema(built / f"{split}.parquet"))  # the input's columns and types
        loaded = load_dataset(str(qc), split, split="train")  # by config name, as a build folder loads
        assert len(loaded) == 11 and loaded[0]["id"] == kept[0]["id"]
    stats = json.loads((qc / "qc_stats.json").read_text())
    assert stats["splits"]["dpo"]["format"] == "preference" and stats["splits"]["sft"]["kept"] == 11

    tiny = build_tiny_llama(tmp_path / "tiny")
    for method in ("sft", "dpo"):
        result = run_cli("train", method, str(qc), "--model", str(tiny), "--output",
                         str(tmp_path / method), *FAST, env=cache_env)
        assert result.returncode == 0, result.stderr
        assert f"data: {qc / method}.parquet -> 10 train / 1 eval rows" in result.stdout
        assert (tmp_path / method / "adapter" / "adapter_model.safetensors").exists()
    result = run_cli("advise", str(qc), "--model", str(tiny), env=cache_env)
    assert result.returncode == 0, result.stderr
    assert "method: DPO (dpo.parquet has preference pairs: prompt/chosen/rejected, 11 rows)" in result.stdout
    result = run_cli("capacity", "--model", str(tiny), "--rank", "4", "--dataset", str(qc), env=cache_env)
    assert result.returncode == 0 and "target tokens" in result.stdout, result.stderr


def test_a_split_qc_empties_is_left_out_and_says_why(write_recipe, cache_env, tmp_path):
    """Every row dropped: no file (as `factory build` leaves out an empty split: `datasets` cannot
    load one), and qc_stats.json, the card and `factory train` say why."""
    built, qc = tmp_path / "built", tmp_path / "qc"
    assert run_cli("build", str(write_recipe(fake_recipe_text())), "--output", str(built),
                   env=cache_env).returncode == 0
    chain = write_recipe(CHAIN.format(min=5), "chain.yaml")  # 4 is the best score: nothing passes
    result = run_cli("qc", str(built), "--split", "dpo", "--chain", str(chain), "--output", str(qc),
                     env=cache_env)
    assert result.returncode == 0, result.stderr
    why = "0 rows: QC dropped every row (reward: reward_below_5 13)"
    assert "13 in = 0 kept + 13 dropped" in result.stdout and f"dpo: {why}" in result.stdout
    assert sorted(p.name for p in qc.iterdir()) == ["README.md", "qc_stats.json", "rejects.jsonl"]
    assert json.loads((qc / "qc_stats.json").read_text())["splits"]["dpo"]["not_written"] == why
    assert "configs" not in (qc / "README.md").read_text() and why in (qc / "README.md").read_text()
    assert len(read_jsonl(qc / "rejects.jsonl")) == 13
    result = run_cli("train", "dpo", str(qc), "--model", "unused", env=cache_env)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: dataset {qc}: no split has rows (dpo not written: {why})"

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    result = run_cli("qc", str(built), "--chain", str(chain), "--output", str(foreign), env=cache_env)
    assert result.returncode == 1 and "exists and was not written by factory qc" in result.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"
