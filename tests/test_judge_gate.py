"""``judge_gate``: a build measures its judge on sanity pairs made from its own answers before the
judge decides any pair; under the bar it stops (or warns), and the card and stats.json say what
was measured."""

from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import run_cli
from datasets import load_dataset
from judge_scripts import QUESTIONS, always_a_rules, coin_rules, judge_recipe, perfect_rules

GATE = {"pairs": 20, "min_agreement": 0.8, "on_fail": "stop"}


def build(recipe, out, env, *args):
    return run_cli("build", str(recipe), "--output", str(out), *args, env=env)


def cached_calls(env) -> int:
    from pathlib import Path

    with sqlite3.connect(Path(env["FACTORY_CACHE_DIR"]) / "requests.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]


@pytest.mark.parametrize("mode", ["text", "logprob"])
def test_a_perfect_judge_passes_and_the_card_says_so(tmp_path, cache_env, mode):
    recipe = judge_recipe(tmp_path, perfect_rules(mode), mode=mode, gate=GATE)
    result = build(recipe, tmp_path / "out", cache_env)
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    judge = stats["judges"]["judge"]
    assert judge["measured"] and judge["passed"] and judge["mode"] == mode
    assert judge["agreement"] == {"k": 20, "n": 20, "rate": 1.0, "ci95": [0.8389, 1.0]}
    assert set(judge["by_kind"]) == {"repetition_loop", "truncated", "other_answer", "shuffled_words",
                                     "empty"} and judge["answers"] == 12
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"| judge | {mode} | 20 sanity pairs from this build's answers | 20/20 = 100.0% [83.9%, 100.0%]" \
        in card and "passed the gate (80.0%)" in card
    # Then it judged the real pairs: the full answer over the short one, every time.
    dpo = load_dataset("parquet", data_files=str(tmp_path / "out" / "dpo.parquet"))["train"]
    assert len(dpo) == 12 and all(r["chosen"][0]["content"].startswith("Full answer") for r in dpo)
    assert f"judge: mode {mode}; on 20 sanity pairs: agreement 20/20" in result.stdout
    # A rebuild asks nothing (the gate's calls are cached too) and writes the same stats.
    again = build(recipe, tmp_path / "again", cache_env)
    assert again.returncode == 0 and "calls [default]: 0 made" in again.stdout
    assert (tmp_path / "again" / "stats.json").read_bytes() == (tmp_path / "out" / "stats.json").read_bytes()


@pytest.mark.parametrize("rules", [always_a_rules, coin_rules], ids=["always_a", "coin"])
def test_a_judge_at_chance_stops_the_build_before_any_pair(tmp_path, cache_env, rules):
    recipe = judge_recipe(tmp_path, rules(), gate=GATE)
    result = build(recipe, tmp_path / "out", cache_env)
    assert result.returncode == 8, result.stdout + result.stderr
    line = result.stderr.strip()
    assert line.startswith("judge gate: step 'judge' on 20 sanity pairs: agreement ") and "\n" not in line
    assert "below min_agreement 80%; the build stopped before the judge decided any pair" in line
    assert not (tmp_path / "out").exists()
    # 12 questions x 2 answers, then 20 sanity pairs x 2 orders; no real pair was judged.
    assert cached_calls(cache_env) == 24 + 40


def test_warn_builds_and_records_the_failed_measurement(tmp_path, cache_env):
    recipe = judge_recipe(tmp_path, always_a_rules(), gate={**GATE, "on_fail": "warn"})
    result = build(recipe, tmp_path / "out", cache_env)
    assert result.returncode == 0, result.stderr
    assert "warning: judge gate: step 'judge' on 20 sanity pairs: agreement 0/20" in result.stderr
    judge = json.loads((tmp_path / "out" / "stats.json").read_text())["judges"]["judge"]
    assert judge["passed"] is False and judge["position_consistency"]["rate"] == 0.0
    assert judge["ties"] == {"position": 20} and judge["warning"].startswith("step 'judge'")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| judge | text | 20 sanity pairs from this build's answers | 0/20 = 0.0%" in card
    assert "**below the gate's 80.0%: not fit to decide pairs**" in card


def test_a_recipe_level_gate_gates_every_pairwise_judge(tmp_path, cache_env):
    recipe = judge_recipe(tmp_path, coin_rules(), recipe_gate=GATE)
    result = build(recipe, tmp_path / "out", cache_env)
    assert result.returncode == 8 and result.stderr.startswith("judge gate: step 'judge'")
    text = json.loads(recipe.read_text())
    text["steps"] = text["steps"][:2]  # no judge left to measure
    text["outputs"] = {"splits": {"sft": {"format": "sft", "completion": "answer_a"}}}
    recipe.write_text(json.dumps(text, indent=1))
    bad = run_cli("validate", str(recipe), env=cache_env)
    assert bad.returncode == 2 and "judge_gate: no judge_pairwise step to measure" in bad.stderr


def test_an_ungated_judge_is_marked_unmeasured(tmp_path, cache_env):
    recipe = judge_recipe(tmp_path, perfect_rules(), questions=QUESTIONS[:4])
    result = build(recipe, tmp_path / "out", cache_env)
    assert result.returncode == 0, result.stderr
    judge = json.loads((tmp_path / "out" / "stats.json").read_text())["judges"]["judge"]
    assert judge == {"kind": "judge_pairwise", "mode": "text", "backend": "default", "measured": False,
                     "why": "no judge_gate"}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| judge | text | not measured (no judge_gate) |" in card and "**unmeasured**" in card


def test_too_little_data_to_measure_stops_with_why(tmp_path, cache_env):
    recipe = judge_recipe(tmp_path, perfect_rules(), gate=GATE, questions=QUESTIONS[:1])
    result = build(recipe, tmp_path / "out", cache_env)
    assert result.returncode == 8
    assert "no sanity pairs could be made: 1 question(s) with an answer of 8+ words" in result.stderr


def test_dry_run_names_the_gates_calls(tmp_path, cache_env):
    recipe = judge_recipe(tmp_path, perfect_rules(), gate=GATE)
    result = run_cli("build", str(recipe), "--dry-run", env=cache_env)
    assert result.returncode == 0, result.stderr
    assert "judge: its judge_gate adds up to 40 calls (sanity pairs, both orders)" in result.stdout
