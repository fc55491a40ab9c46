"""The recipe's review gate: the build stops after QC, people's verdicts are applied by the next
build from the cache (0 LLM calls), counts add up, and the card carries the agreement figures."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import fake_recipe_text, read_jsonl, run_cli
from filters.agreement import cohen_kappa
from filters.review_store import HumanVerdict, append_verdict, read_verdicts
from test_qc_build import QC

GATE = "review: {fraction: 0.05, min_rows: 6, borderline: 4, min_keep_rate: 0.5}\n"


# The build QC test's chain without dedup (its embedding model would add seconds to every build).
GATE_QC = QC.replace("  - {filter: dedup, column: prompt, against_seeds: false}\n", "")


def gate_recipe(review: str = GATE) -> str:
    return fake_recipe_text().replace("qc: []\n", GATE_QC + review)


def cache_rows(env: dict[str, str]) -> int:
    db = sqlite3.connect(Path(env["FACTORY_CACHE_DIR"]) / "requests.sqlite")
    try:
        return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    finally:
        db.close()


def give(out: Path, rid: str, reviewer: str, verdict: str, reason: str = "",
         edits: dict | None = None) -> None:
    append_verdict(out / "reviews.jsonl", HumanVerdict(rid, reviewer, verdict, reason, edits or {}, "t"))


@pytest.fixture
def stopped(write_recipe, tmp_path, cache_env) -> tuple[Path, Path, dict]:
    """A build stopped at its review gate: (recipe, dataset folder, queue)."""
    recipe = write_recipe(gate_recipe())
    out = tmp_path / "out"
    result = run_cli("build", str(recipe), "--output", str(out), env=cache_env)
    assert result.returncode == 6, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0] == (f"review: 0 of 10 rows reviewed; run: factory review {out} "
                        "(then build again: every LLM call is cached)"), lines[0]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["review"]["status"] == "pending" and "this dataset has not been reviewed yet" in \
        (out / "README.md").read_text()
    queue = json.loads((out / "review_queue.json").read_text())
    return recipe, out, queue


def test_gate_stops_then_the_next_build_applies_verdicts_from_the_cache(stopped, cache_env, tmp_path):
    recipe, out, queue = stopped
    rows = queue["rows"]
    sample = [r for r in rows if r["group"] == "sample"]
    border = [r for r in rows if r["group"] == "borderline"]
    assert len(sample) == 6 and len(border) == 4
    assert len({r["stratum"] for r in sample}) == 6  # 6 categories among the kept rows: one each
    qc_dropped = [r for r in rows if not r["shipped"]]
    assert qc_dropped and all(r["qc"] == "drop" for r in qc_dropped)  # near a cut, on the dropped side
    assert {f["name"] for f in rows[0]["figures"]} >= {"qc.reward", "qc.pairs", "judge.judge"}

    alice = ["keep", "drop", "edit", "keep", "keep", "keep"]
    for row, verdict in zip(sample, alice):
        edits = {"chosen": "A better answer, written by a person."} if verdict == "edit" else None
        give(out, row["id"], "alice", verdict, "wrong" if verdict == "drop" else "", edits)
    for row in border:
        give(out, row["id"], "alice", "keep" if row["shipped"] else "drop", "" if row["shipped"] else "bad")
    for row, verdict in zip(sample, ["keep", "drop", "keep", "drop"]):  # bob drops sample[3]: alice kept it
        give(out, row["id"], "bob", verdict, "off-topic" if verdict == "drop" else "")
    calls_before = cache_rows(cache_env)

    result = run_cli("build", str(recipe), "--output", str(out), env=cache_env)
    assert result.returncode == 0, result.stderr
    run = json.loads((out / "run.json").read_text())
    assert all(c["made"] == 0 for c in run["calls"].values()), run["calls"]
    assert cache_rows(cache_env) == calls_before  # the QC judge made no call either

    stats = json.loads((out / "stats.json").read_text())
    t, review = stats["totals"], stats["review"]
    assert t["input"] == 48 == t["kept"] + t["rejected"] + t["failed"]
    assert t["dropped_by_step"]["review"] == {"human_review": 2}
    assert review["status"] == "passed" and review["applied"] == {"dropped": 2, "edited": 1}
    assert review["keep_rate"] == round(4 / 6, 4) and review["reviewers"] == ["alice", "bob"]
    rejects = [r for r in read_jsonl(out / "rejects.jsonl") if r["reason"] == "human_review"]
    assert {r["id"] for r in rejects} == {sample[1]["id"], sample[3]["id"]}
    assert all(r["step"] == "review" and r["kind"] == "rejected" for r in rejects)
    assert next(r for r in rejects if r["id"] == sample[1]["id"])["detail"] == "alice: wrong; bob: off-topic"
    assert stats["splits"]["dpo"]["rows"] == t["kept"] == stats["qc"]["kept"] - 2

    dpo = {r["id"]: r for r in read_jsonl(out / "dpo.jsonl")}
    sft = {r["id"]: r for r in read_jsonl(out / "sft.jsonl")}
    edited = sample[2]["id"]
    better = "A better answer, written by a person."
    assert dpo[edited]["chosen"] == [{"role": "assistant", "content": better}]
    assert sft[edited]["messages"][-1]["content"] == better
    assert dpo[edited]["lineage"]["steps"][-1] == {"step": "review", "backend": "human",
                                                   "model": "reviewer:alice", "prompt_hashes": []}
    assert sample[1]["id"] not in dpo and sample[0]["id"] in dpo

    # agreement: alice vs the chain over the 10 rows, alice vs bob over 4; kappa as sklearn has it
    from sklearn.metrics import cohen_kappa_score

    human = {"keep": "keep", "edit": "keep", "drop": "drop"}
    a_labels = [human[v] for v in alice] + ["keep" if r["shipped"] else "drop" for r in border]
    qc_labels = ["keep" if r["shipped"] else "drop" for r in sample + border]
    vs_qc = next(x for x in review["agreement"]["machine"] if x["reviewer"] == "alice" and x["rater"] == "qc")
    assert vs_qc["rows"] == 10 and vs_qc["kappa"] == round(cohen_kappa_score(a_labels, qc_labels), 4)
    pair = review["agreement"]["reviewers"] == [{"reviewer": "alice", "rater": "bob", "rows": 4,
                                                 "agreement": 0.75, "kappa": 0.5}]
    assert pair, review["agreement"]["reviewers"]
    card = (out / "README.md").read_text()
    assert "## Human review" in card and "| alice | bob | 4 | 75% | 0.50 |" in card
    assert "2 rows people dropped are in `rejects.jsonl`" in card

    # a third build changes nothing, and keeps every verdict
    first = {n: (out / n).read_bytes() for n in ("dpo.parquet", "stats.json", "README.md", "reviews.jsonl",
                                                  "review_queue.json")}
    assert run_cli("build", str(recipe), "--output", str(out), env=cache_env).returncode == 0
    assert {n: (out / n).read_bytes() for n in first} == first


def test_too_few_rows_kept_stops_with_one_line(stopped, cache_env):
    recipe, out, queue = stopped
    for i, row in enumerate(queue["rows"]):
        dropped = row["group"] == "sample" and i < 4
        give(out, row["id"], "carol", "drop" if dropped else "keep", "unhelpful" if dropped else "")
    result = run_cli("build", str(recipe), "--output", str(out), env=cache_env)
    assert result.returncode == 7, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("review failed: people kept 33% of 6 sampled rows, "
                                                   "under review.min_keep_rate 50%"), lines
    stats = json.loads((out / "stats.json").read_text())
    assert stats["review"]["status"] == "failed" and len(read_verdicts(out / "reviews.jsonl")) == 10


def test_a_partial_review_stops_again_and_says_how_far_it_got(stopped, cache_env):
    recipe, out, queue = stopped
    for row in queue["rows"][:3]:
        give(out, row["id"], "alice", "keep")
    result = run_cli("build", str(recipe), "--output", str(out), env=cache_env)
    assert result.returncode == 6 and result.stderr.startswith("review: 3 of 10 rows reviewed"), result.stderr
    assert len(read_verdicts(out / "reviews.jsonl")) == 3  # the rewrite of the folder kept them


def test_review_block_errors_name_file_line_and_field(write_recipe):
    recipe = write_recipe(gate_recipe("review: {fraction: 0.05, min_keep_rte: 0.8}\n"))
    result = run_cli("validate", str(recipe))
    assert result.returncode == 2
    assert "review.min_keep_rte: unknown key 'min_keep_rte' (did you mean 'min_keep_rate'?)" in result.stderr


def test_kappa_matches_sklearn_and_is_undefined_for_one_label():
    import random

    from sklearn.metrics import cohen_kappa_score

    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(2, 40)
        a = [rng.choice("kd") for _ in range(n)]
        b = [x if rng.random() < 0.7 else rng.choice("kd") for x in a]
        if len(set(a) | set(b)) > 1:
            assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(["keep"] * 5, ["keep"] * 5) is None and cohen_kappa([], []) is None
