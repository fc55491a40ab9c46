"""The engine on the fake backend: bookkeeping, determinism, caching, concurrency, failures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml

from conftest import JUDGE_RULE, SEEDS, fake_recipe_text, read_jsonl, run_cli
from factory.build import run_build
from factory.engine.plan import BuildOptions, plan_build
from factory.llm.backends.base import BackendSettings
from factory.llm.backends.fake import FakeBackend
from factory.llm.request import request_key


def build(recipe: Path, tmp_path: Path, name: str = "out", **kw):
    options = BuildOptions(output=tmp_path / name, cache_path=tmp_path / "cache.sqlite", **kw)
    return asyncio.run(run_build(plan_build(recipe, options), options))


def test_every_record_is_accounted_for(write_recipe, tmp_path):
    result = build(write_recipe(fake_recipe_text()), tmp_path)
    totals = result.stats["totals"]
    seeds = len(SEEDS.read_text().splitlines())
    assert totals["input"] == seeds == totals["kept"] + totals["rejected"] + totals["failed"]
    out = tmp_path / "out"
    dpo, sft, rejects = (read_jsonl(out / f) for f in ("dpo.jsonl", "sft.jsonl", "rejects.jsonl"))
    assert len(dpo) == len(sft) == totals["kept"] > 0
    assert len(rejects) == totals["rejected"] + totals["failed"] > 0
    assert {r["reason"] for r in rejects} == {"judge_tie"}
    assert len({r["id"] for r in dpo} | {r["id"] for r in rejects}) == seeds  # no loss, no dupes
    judge = result.stats["steps"]["judge"]
    assert judge["in"] == seeds and judge["ok"] + sum(judge["rejected"].values()) == seeds
    assert result.calls["default"]["made"] == 2 * seeds + 2 * seeds  # two answers + two judge orders


def test_output_format_and_lineage(write_recipe, tmp_path):
    build(write_recipe(fake_recipe_text()), tmp_path)
    row = read_jsonl(tmp_path / "out" / "dpo.jsonl")[0]
    assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    assert row["chosen"][0]["content"] != row["rejected"][0]["content"]
    assert "category" in row
    lineage = row["lineage"]
    assert lineage["recipe"] == "pairs"
    assert [s["step"] for s in lineage["steps"]] == ["answer_a", "answer_b", "judge"]
    assert all(s["backend"] == "fake" and s["model"] == "fake-1" for s in lineage["steps"])
    assert len(lineage["steps"][2]["prompt_hashes"]) == 2  # both judge orders
    sft = read_jsonl(tmp_path / "out" / "sft.jsonl")[0]
    assert [m["role"] for m in sft["messages"]] == ["user", "assistant"]
    assert sft["messages"][1]["content"] == row["chosen"][0]["content"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n- config_name: dpo") and "| dpo |" in card


def test_second_build_makes_zero_calls_and_same_bytes(write_recipe, tmp_path):
    recipe = write_recipe(fake_recipe_text())
    first = build(recipe, tmp_path, "first")
    second = build(recipe, tmp_path, "second")
    assert first.calls["default"]["made"] > 0
    assert second.calls["default"] == {**second.calls["default"], "made": 0,
                                       "cached": first.calls["default"]["made"]}
    for name in ("dpo.jsonl", "sft.jsonl", "dpo.parquet", "rejects.jsonl", "stats.json", "README.md"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()


def test_cache_key_ignores_concurrency(write_recipe, tmp_path):
    build(write_recipe(fake_recipe_text(concurrency=2), "a.yaml"), tmp_path, "a")
    again = build(write_recipe(fake_recipe_text(concurrency=32), "b.yaml"), tmp_path, "b")
    assert again.calls["default"]["made"] == 0


def test_seed_changes_samples(write_recipe, tmp_path):
    recipe = write_recipe(fake_recipe_text())
    build(recipe, tmp_path, "s0")
    other = build(recipe, tmp_path, "s1", seed=1)
    assert other.calls["default"]["cached"] == 0  # the seed is part of every request
    assert (tmp_path / "s0" / "dpo.jsonl").read_text() != (tmp_path / "s1" / "dpo.jsonl").read_text()


def test_backend_failures_go_to_rejects_and_are_retried(write_recipe, tmp_path):
    text = fake_recipe_text().replace("    latency: 0.0", "    latency: 0.0\n    fail_match: 'prime'")
    recipe = write_recipe(text)
    result = build(recipe, tmp_path)
    rejects = read_jsonl(tmp_path / "out" / "rejects.jsonl")
    failed = [r for r in rejects if r["kind"] == "failed"]
    assert result.stats["totals"]["failed"] == len(failed) == 1
    assert failed[0]["reason"] == "backend_error" and "prime" in failed[0]["fields"]["prompt"]
    assert result.stats["steps"]["judge"]["skipped"] == 1
    # Failures are not cached: the rerun asks again (and only those calls).
    again = build(recipe, tmp_path, "again")
    assert again.calls["default"]["made"] == 2


def test_missing_input_column_is_a_reject_not_a_crash(tmp_path, write_recipe):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"prompt": "one"}\n{"category": "no prompt here"}\n{"prompt": "three"}\n')
    result = build(write_recipe(fake_recipe_text(seeds=seeds)), tmp_path)
    rejects = read_jsonl(tmp_path / "out" / "rejects.jsonl")
    missing = [r for r in rejects if r["reason"] == "missing_column"]
    assert len(missing) == 1 and missing[0]["fields"] == {"category": "no prompt here"}
    assert result.stats["totals"]["input"] == 3


def test_slow_branch_does_not_stall_independent_branch(tmp_path, write_recipe):
    """answer_a runs on a slow backend, answer_b on an instant one: all answer_b finish first."""
    text = fake_recipe_text().replace("    params: {temperature: 1.0}",
                                      "    params: {temperature: 1.0}\n    backend: quick")
    text = text.replace("steps:", "backends:\n  quick: {name: fake, concurrency: 64}\nsteps:")
    text = text.replace("    latency: 0.0", "    latency: 0.05")
    recipe = write_recipe(text)
    options = BuildOptions(output=tmp_path / "out", cache_path=tmp_path / "c.sqlite", limit=16)
    plan = plan_build(recipe, options)
    order: list[str] = []
    asyncio.run(run_build(plan, options, on_step_done=order.append))
    last_b = max(i for i, s in enumerate(order) if s == "answer_b")
    first_judge = order.index("judge")
    assert last_b < first_judge
    assert order[:16] == ["answer_b"] * 16  # the fast branch is not held back by the slow one


def test_injected_backend_counts_calls(write_recipe, tmp_path):
    recipe = write_recipe(fake_recipe_text())
    options = BuildOptions(output=tmp_path / "out", cache_path=tmp_path / "c.sqlite", limit=5)
    fake = FakeBackend(BackendSettings(options={"rules": []}))
    asyncio.run(run_build(plan_build(recipe, options), options, backends={"default": fake}))
    assert fake.calls == 5 * 4
    fake2 = FakeBackend(BackendSettings(options={"rules": []}))
    asyncio.run(run_build(plan_build(recipe, options), options, backends={"default": fake2}))
    assert fake2.calls == 0


class JitterBackend(FakeBackend):
    """The fake backend with 0-20 ms per call, by request hash: calls finish out of input order."""

    async def generate(self, requests):
        await asyncio.sleep(int(request_key("j", "j", requests[0])[:8], 16) % 21 / 1000)
        return await super().generate(requests)


def test_outcomes_keep_input_order(write_recipe, tmp_path):
    recipe = write_recipe(fake_recipe_text())
    options = BuildOptions(output=tmp_path / "out", cache_path=tmp_path / "c.sqlite")
    plan = plan_build(recipe, options)
    rules = yaml.safe_load("rules:" + JUDGE_RULE)["rules"]
    jitter = JitterBackend(BackendSettings(concurrency=8, options={"rules": rules}))
    asyncio.run(run_build(plan, options, backends={"default": jitter}))
    seeds = [r.id for r in plan.seed_records()]
    kept = [r["id"] for r in read_jsonl(tmp_path / "out" / "dpo.jsonl")]
    rejected = [r["id"] for r in read_jsonl(tmp_path / "out" / "rejects.jsonl")]
    assert sorted(kept + rejected) == sorted(seeds) and kept and rejected
    for ids in (kept, rejected):  # each file in seed order, whatever order the calls finished in
        assert ids == [i for i in seeds if i in set(ids)]


def test_cli_build_summary_and_dry_run(write_recipe, cache_env, tmp_path):
    recipe = write_recipe(fake_recipe_text())
    dry = run_cli("build", str(recipe), "--dry-run", "--limit", "4", env=cache_env)
    assert dry.returncode == 0, dry.stderr
    assert "answer_a" in dry.stdout and "total" in dry.stdout
    totals = [line for line in dry.stdout.splitlines() if "total" in line][0].split("│")
    assert [c.strip() for c in totals[2:5]] == ["16", "0", "16"]  # calls, cached, to make
    out = tmp_path / "ds"
    first = run_cli("build", str(recipe), "--limit", "4", "--output", str(out), env=cache_env)
    assert first.returncode == 0, first.stderr
    assert "records: 4 in =" in first.stdout
    assert json.loads((out / "run.json").read_text())["calls"]["default"]["made"] == 16
    dry2 = run_cli("build", str(recipe), "--dry-run", "--limit", "4", env=cache_env)
    totals = [line for line in dry2.stdout.splitlines() if "total" in line][0].split("│")
    assert [c.strip() for c in totals[2:5]] == ["16", "16", "0"]
