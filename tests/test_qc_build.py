"""The recipe's qc: chain inside factory build, a failing drift gate, and chain-file errors."""

from __future__ import annotations

import json

from conftest import fake_recipe_text, read_jsonl, run_cli
from test_resume import same_dataset

RUBRIC_RULE = """
      - match: "Rate the answer"
        replies:
          - '{{"reasoning": "good", "correctness": 5, "helpfulness": 5, "clarity": 4}}'
          - '{{"reasoning": "meh", "correctness": 3, "helpfulness": 2, "clarity": 3}}'
          - '{{"reasoning": "bad", "correctness": 0, "helpfulness": 1, "clarity": 1}}'"""

QC = """qc:
  - {filter: pairs, margin_column: judgement, margin: 0.0}
  - {filter: dedup, column: prompt, against_seeds: false}
  - filter: reward
    column: chosen
    percentile: 25
    gate: null          # the scripted judge replies in turn, at chance: only an ungated cut deletes
    scorer:
      kind: judge
      backend:
        name: fake
        options:
          rules:""" + RUBRIC_RULE.replace("\n      ", "\n            ") + "\n"


def qc_recipe(qc: str) -> str:
    text = fake_recipe_text()
    # duplicate prompts in the seeds would need a seed file; the fake backend's judge rules suffice
    return text.replace("qc: []\n", qc)


def test_build_runs_the_chain_and_accounts_for_every_record(write_recipe, tmp_path, cache_env):
    recipe = write_recipe(qc_recipe(QC))
    out = tmp_path / "out"
    result = run_cli("build", str(recipe), "--output", str(out), env=cache_env)
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    t, qc = stats["totals"], stats["qc"]
    assert t["input"] == 48 == t["kept"] + t["rejected"] + t["failed"]
    assert qc["input"] == qc["kept"] + qc["dropped"] + qc["failed"]
    assert t["kept"] == qc["kept"] == stats["splits"]["dpo"]["rows"]
    assert set(qc["filters"]) == {"pairs", "dedup", "reward"}
    assert qc["filters"]["reward"]["dropped"], qc
    assert "backend fake" in qc["filters"]["reward"]["scorer"]
    rejects = read_jsonl(out / "rejects.jsonl")
    qc_rows = [r for r in rejects if r["step"].startswith("qc.")]
    assert len(qc_rows) == qc["dropped"] + qc["failed"]
    assert all(r["raw"]["filter"] in qc["filters"] and "score" in r["raw"] for r in qc_rows)
    assert {r["reason"] for r in qc_rows if r["step"] == "qc.reward"} == {"reward_below_p25"}
    card = (out / "README.md").read_text()
    assert "## Quality control" in card and "reward_below_p25" in card and "gate: null" in card
    # A rebuild from the cache writes the same bytes: no run-specific figure (timings) in the files.
    again = run_cli("build", str(recipe), "--output", str(tmp_path / "again"), env=cache_env)
    assert again.returncode == 0, again.stderr
    same_dataset(out, tmp_path / "again")


def test_failed_drift_gate_stops_the_build_and_keeps_what_was_made(write_recipe, tmp_path, cache_env):
    qc = "qc:\n  - {filter: drift, column: answer_a, seed_column: prompt, warn_auc: 0.55, fail_auc: 0.6, permutations: 20}\n"
    recipe = write_recipe(qc_recipe(qc))
    out = tmp_path / "out"
    result = run_cli("build", str(recipe), "--output", str(out), env=cache_env)
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()
    assert len(line) == 1 and "Traceback" not in result.stderr
    assert "qc.drift: drift fail: classifier AUC" in line[0] and "MMD" in line[0], line[0]
    assert not out.exists()
    kept = tmp_path / "out.qc-failed"
    stats = json.loads((kept / "stats.json").read_text())
    assert stats["qc"]["gate_failed"] and stats["qc"]["filters"]["drift"]["auc"] >= 0.6
    assert (kept / "dpo.parquet").exists()


def test_chain_file_errors_name_file_line_and_field(tmp_path):
    chain = tmp_path / "chain.yaml"
    chain.write_text("filters:\n  - filter: perplexity\n    percentile: 95\n  - filter: dedup\n    treshold: 0.9\n")
    result = run_cli("qc", "nothing.jsonl", "--chain", str(chain))
    assert result.returncode != 0
    # the dataset is read first; give it one
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    result = run_cli("qc", str(data), "--chain", str(chain))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"error: {chain}:5: filters[1].treshold: unknown key 'treshold' "
                                     "(did you mean 'threshold'?)")
    chain.write_text("filters:\n  - filter: dedupe\n")
    result = run_cli("qc", str(data), "--chain", str(chain))
    assert "filters[0].filter: unknown QC filter 'dedupe' (did you mean 'dedup'?)" in result.stderr


def test_qc_command_writes_kept_and_rejects(tmp_path):
    data = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"Question {i}?", "chosen": f"A full answer number {i}.", "rejected": "No."} for i in range(6)]
    rows += [{"prompt": "Same?", "chosen": "Identical text.", "rejected": "identical text."}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    chain = tmp_path / "chain.yaml"
    chain.write_text("filters:\n  - {filter: pairs}\n")
    result = run_cli("qc", str(data), "--chain", str(chain), "--output", str(tmp_path / "qc"))
    assert result.returncode == 0, result.stderr
    kept = read_jsonl(tmp_path / "qc" / "pairs.jsonl")  # the input's split name, rows as read
    rejects = read_jsonl(tmp_path / "qc" / "rejects.jsonl")
    assert len(kept) == 6 and kept[0] == rows[0]
    assert [(r["step"], r["reason"], r["row"]) for r in rejects] == [("qc.pairs", "identical_pair", 7)]
    assert "7 in = 6 kept + 1 dropped + 0 failed" in result.stdout


JUDGE_QC = """qc:
  - {filter: pairs, margin_column: judgement, margin: 0.0}
  - filter: reward
    column: chosen
    percentile: 25
    scorer:
      kind: judge
      backend:
        name: fake
        options:
          rules:""" + RUBRIC_RULE.replace("\n      ", "\n            ") + "\n"


def _run_calls(out) -> dict:
    return json.loads((out / "run.json").read_text())["calls"]


def test_qc_judge_calls_go_through_the_build_cache_and_count_in_run_json(write_recipe, tmp_path, cache_env):
    recipe = write_recipe(qc_recipe(JUDGE_QC))
    out, cache = tmp_path / "out", tmp_path / "build.sqlite"  # not the default cache: a judge with
    first = run_cli("build", str(recipe), "--output", str(out), "--cache", str(cache), env=cache_env)
    assert first.returncode == 0, first.stderr  # a cache of its own would not use this file
    judged = json.loads((out / "stats.json").read_text())["qc"]["filters"]["reward"]["in"]
    calls = _run_calls(out)
    assert judged > 0 and calls["qc.reward"]["made"] == judged and calls["qc.reward"]["cached"] == 0
    assert "calls [qc.reward]: " + f"{judged} made, 0 from cache" in first.stdout
    total = json.loads((out / "run.json").read_text())["total_calls"]
    gate = calls.get("qc.reward.gate", {"made": 0})["made"]  # the reward gate's sanity pairs
    assert total["made"] == calls["default"]["made"] + judged + gate
    assert not (tmp_path / "cache" / "requests.sqlite").exists()  # the default cache is never opened
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "run.json"}

    again = run_cli("build", str(recipe), "--output", str(out), "--cache", str(cache), env=cache_env)
    assert again.returncode == 0, again.stderr
    calls = _run_calls(out)
    assert calls["qc.reward"]["made"] == 0 and calls["qc.reward"]["cached"] == judged
    assert calls["default"]["made"] == 0 and calls.get("qc.reward.gate", {"made": 0})["made"] == 0
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "run.json"} == files

    fresh = run_cli("build", str(recipe), "--output", str(out), "--no-cache", env=cache_env)
    assert fresh.returncode == 0, fresh.stderr
    calls = _run_calls(out)
    assert calls["qc.reward"]["made"] == judged and calls["qc.reward"]["cached"] == 0
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "run.json"} == files
    assert not (tmp_path / "cache" / "requests.sqlite").exists()


def test_a_qc_judge_on_a_step_backend_block_reuses_its_backend(write_recipe, tmp_path):
    import asyncio

    import yaml

    from factory.build import run_build
    from factory.engine.plan import BuildOptions, plan_build
    from factory.llm.backends.base import BackendSettings
    from factory.llm.backends.fake import FakeBackend

    recipe = yaml.safe_load(fake_recipe_text())
    recipe["backend"]["options"]["rules"].append(
        {"match": "Rate the answer", "reply": '{{"reasoning": "ok", "correctness": 4, "helpfulness": 3, '
                                              '"clarity": 4}}'})
    recipe["qc"] = [{"filter": "reward", "column": "chosen", "scorer": {"kind": "judge",
                                                                         "backend": recipe["backend"]}}]
    path = write_recipe(yaml.safe_dump(recipe))
    options = BuildOptions(output=tmp_path / "out", cache_path=tmp_path / "c.sqlite", limit=6)
    plan = plan_build(path, options)
    block = plan.recipe.backend
    fake = FakeBackend(BackendSettings(block.model, block.concurrency, dict(block.options)))
    result = asyncio.run(run_build(plan, options, backends={"default": fake}))
    judged = result.stats["qc"]["filters"]["reward"]["in"]
    assert judged > 0 and result.calls["qc.reward"]["made"] == judged
    gate = result.calls.get("qc.reward.gate", {"made": 0})["made"]  # the reward gate's sanity pairs
    assert fake.calls == result.calls["default"]["made"] + judged + gate  # one backend served all
    assert result.stats["qc"]["filters"]["reward"]["failed"] == {}
