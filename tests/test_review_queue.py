"""The review queue for any dataset, the verdict file's guarantees, and agreement in factory audit."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import run_cli
from factory.review.session import SampleOptions, open_session
from filters.review_store import HumanVerdict, append_verdict, decide, load_verdicts, read_verdicts

CATEGORIES = ["math", "code", "writing", "facts"]


def pairs_file(tmp_path: Path) -> Path:
    """60 pairs in 4 categories (one of them small); 3 pairs are identical (the pairs filter drops them)."""
    rows = []
    for i in range(60):
        category = CATEGORIES[i % 3] if i < 57 else "facts"
        chosen = f"A careful answer number {i} that explains the idea step by step."
        rows.append({"id": f"r{i:02d}", "category": category, "prompt": f"Question {i}?", "chosen": chosen,
                     "rejected": chosen if i in (5, 17, 40) else f"No idea ({i})."})
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "chain.yaml").write_text("filters:\n  - {filter: pairs}\n")
    return path


def test_a_dataset_gets_a_stratified_queue_once(tmp_path):
    data = pairs_file(tmp_path)
    opts = SampleOptions(fraction=0.1, min_rows=8, borderline=0, chain=tmp_path / "chain.yaml")
    session = open_session(data, opts)
    assert session.made_queue and session.queue_path == tmp_path / "pairs.review_queue.json"
    assert session.reviews_path == tmp_path / "pairs.reviews.jsonl"
    rows = session.queue["rows"]
    assert len(rows) == 8  # max(min_rows 8, 10% of 60 = 6)
    per = {c: sum(r["stratum"] == f"category={c}" for r in rows) for c in CATEGORIES}
    # 19/19/19/3 of 60 -> 2.53/2.53/2.53/0.4: floors 2/2/2/0, the two largest remainders (ties by name:
    # code, math) +1, then the empty stratum takes one from the largest quota (ties: the later name, math)
    assert per == {"math": 2, "code": 3, "writing": 2, "facts": 1}
    assert all(set(r["texts"]) == {"prompt", "chosen", "rejected"} for r in rows)
    again = open_session(data, SampleOptions(fraction=0.5, seed=7))  # a restart: the same rows
    assert not again.made_queue and again.queue == session.queue


def test_the_verdict_file_survives_a_torn_line_and_people_combine(tmp_path):
    path = tmp_path / "reviews.jsonl"
    append_verdict(path, HumanVerdict("a", "alice", "keep"))
    with path.open("ab") as fh:
        fh.write(b'{"id": "b", "reviewer": "alice", "verd')  # a crash mid-write
    append_verdict(path, HumanVerdict("b", "alice", "edit", "typo", {"chosen": "fixed"}))
    append_verdict(path, HumanVerdict("a", "bob", "drop", "wrong"))
    append_verdict(path, HumanVerdict("c", "bob", "edit", "", {"chosen": "one"}))
    append_verdict(path, HumanVerdict("c", "alice", "edit", "", {"chosen": "two"}))
    assert [v.id for v in read_verdicts(path)] == ["a", "b", "a", "c", "c"]  # the torn line is skipped
    assert load_verdicts(path)[1] == 1  # ...and counted (the build's stats say so)
    decisions = decide(read_verdicts(path))
    assert decisions["a"].verdict == "drop" and decisions["a"].reason == "bob: wrong"  # any drop drops
    assert decisions["b"].edits == {"chosen": "fixed"}
    assert decisions["c"].edits == {"chosen": "two"} and decisions["c"].editor == "alice"  # latest edit


def test_audit_shows_agreement_with_the_chain_and_between_people(tmp_path):
    from sklearn.metrics import cohen_kappa_score

    data = pairs_file(tmp_path)
    reviews = tmp_path / "pairs.reviews.jsonl"
    alice = {"r05": "drop", "r17": "drop", "r40": "keep", "r01": "keep", "r02": "drop", "r03": "keep"}
    bob = {"r05": "drop", "r17": "keep", "r01": "keep", "r02": "keep"}
    for who, verdicts in (("alice", alice), ("bob", bob)):
        for rid, v in verdicts.items():
            append_verdict(reviews, HumanVerdict(rid, who, v, "bad" if v == "drop" else ""))
    env = {**os.environ, "FACTORY_CACHE_DIR": str(tmp_path / "cache")}
    result = run_cli("audit", str(data), "--chain", str(tmp_path / "chain.yaml"), env=env)
    assert result.returncode == 0, result.stderr
    qc = {rid: "drop" if rid in ("r05", "r17", "r40") else "keep" for rid in alice}
    kappa = cohen_kappa_score(list(alice.values()), [qc[k] for k in alice])
    assert f"agreement: alice vs qc: 6 rows, 67% agree, kappa {kappa:.2f}" in result.stdout, result.stdout
    shared = sorted(bob)
    kappa = cohen_kappa_score([alice[k] for k in shared], [bob[k] for k in shared])
    assert f"agreement: alice vs bob: 4 rows, 50% agree, kappa {kappa:.2f}" in result.stdout
    page = (tmp_path / "pairs.audit.html").read_text()
    assert "Agreement with people" in page and "<td>alice</td><td>qc.pairs</td><td>6</td>" in page


def test_a_rebuild_never_loses_reviews_even_after_a_kill_mid_swap(tmp_path):
    from factory.core.record import Record
    from factory.output.writer import write_dataset
    from factory.recipe.spec import SplitSpec

    out = tmp_path / "out"
    splits = {"sft": SplitSpec(format="sft", completion="answer")}
    rows = [Record("a", {"prompt": "p", "answer": "x"}, "r")]
    stats = {"totals": {"input": 1, "kept": 1, "rejected": 0, "failed": 0}}
    write_dataset(out, splits, rows, [], stats, "card {split_table}")
    append_verdict(out / "reviews.jsonl", HumanVerdict("a", "alice", "keep"))
    write_dataset(out, splits, rows, [], stats, "card {split_table}")  # a build without a review gate
    assert len(read_verdicts(out / "reviews.jsonl")) == 1
    out.rename(tmp_path / f".out.old-{os.getpid() + 1}")  # killed between the two renames of a swap
    (tmp_path / f".out.tmp-{os.getpid() + 1}").mkdir()
    write_dataset(out, splits, rows, [], stats, "card {split_table}")
    assert len(read_verdicts(out / "reviews.jsonl")) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_fit_figures_carry_the_cut_each_record_was_judged_by():
    """fit has three cuts: a drop for its ending or for another prompt shows that cut (and its side),
    every other record the gain cut."""
    from factory.core.record import Record
    from filters.base import Drop, Keep, QCResult
    from filters.review_sample import qc_figures

    records = [Record(f"r{i}", {"response": "text"}, "test") for i in range(4)]
    verdicts = [Keep(0.8), Drop("fit_ending", -9.5), Drop("fit_conditioning_gain", -0.2),
                Drop("fit_other_prompt", 0.4)]
    result = QCResult(kept=[], rejects=[], stats={}, verdicts={"fit": verdicts}, report_only=True,
                      info={"fit": {"ending_cut": -6.0, "gain_cut": 0.0, "other_prompt_cut": 0.1}})
    figures = [qc_figures(records, result)[id(r)][0] for r in records]
    assert [(f.score, f.cut, f.drops, f.verdict) for f in figures] == [
        (0.8, 0.0, "below", "keep"), (-9.5, -6.0, "below", "drop"), (-0.2, 0.0, "below", "drop"),
        (0.4, 0.1, "above", "drop")]
