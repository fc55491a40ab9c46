"""The recipe's ``review:`` gate inside ``factory build``: people review a sample after QC.

First build: the queue (a stratified sample of the rows QC kept, plus borderline rows near the cut
lines) is written as ``review_queue.json`` beside the dataset and the build stops (exit 6) with the
``factory review`` command. The next build (every LLM call from the cache) reads
``reviews.jsonl``: rows a person dropped become rejects (step ``review``, reason ``human_review``),
edited rows get the new text and a lineage step ``review`` (backend ``human``, model
``reviewer:<name>``). If the people kept fewer of the random sample than ``min_keep_rate``, the
build stops (exit 7). The keep rate counts only the random sample (an estimate for the whole
dataset); borderline rows are chosen for being doubtful and are reported apart.
"""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError, ReviewFailed, ReviewPending
from factory.core.record import Record, Reject, StepTrace
from filters.agreement import agreement
from filters.base import QCResult
from filters.review_sample import (
    Candidate,
    JudgeColumn,
    judge_figure,
    machine_verdicts,
    pick_queue,
    qc_figures,
    stratum_of,
)
from filters.review_store import QUEUE_FILE, Decision, decide, latest, load_verdicts, queue_text, review_paths

REVIEW_STEP = "review"


@dataclass
class ReviewStage:
    outcomes: list[Record | Reject]
    stats: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)  # written into the dataset folder
    stop: FactoryError | None = None  # raised once the dataset is written


def roles_of(splits: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """(format, role -> record column) from the recipe's first dpo split, else its first sft split."""
    for fmt in ("dpo", "sft"):
        for spec in splits.values():
            if spec.format == fmt:
                if fmt == "dpo":
                    return fmt, {"prompt": spec.prompt, "chosen": spec.chosen, "rejected": spec.rejected}
                return fmt, {"prompt": spec.prompt, "response": spec.completion}
    first = next(iter(splits.values()))
    return "columns", {c: c for c in first.columns}


def judge_columns(steps: list[Any]) -> list[JudgeColumn]:
    """The judge steps' figures: a pairwise judge's rubric margin, a single-answer judge's score."""
    out = []
    for step in steps:
        if step.kind == "judge_pairwise":
            out.append(JudgeColumn(f"judge.{step.name}", step.writes[2], "margin", step.min_margin))
        elif step.kind == "judge_score":
            out.append(JudgeColumn(f"judge.{step.name}", step.writes[0], None, step.min_score))
    return out


def run_review_stage(recipe: Any, folder: Path, entered: list[Record], outcomes: list[Record | Reject],
                     qc: QCResult | None, seed: int) -> ReviewStage:
    """``entered``: the records QC saw (the engine's kept); ``outcomes``: after QC."""
    block = recipe.review
    fmt, roles = roles_of(recipe.outputs.splits)
    shipped = {id(o) for o in outcomes if isinstance(o, Record)}
    figures = qc_figures(entered, qc) if qc is not None else {}
    judges = judge_columns(recipe.steps)
    stratify = list(block.stratify) if block.stratify is not None else \
        (["category"] if any("category" in r.fields for r in entered) else [])
    candidates = []
    for r in entered:
        figs = figures.get(id(r), []) + [f for j in judges if (f := judge_figure(r, j)) is not None]
        texts = {role: "" if r.fields.get(col) is None else str(r.fields[col]) for role, col in roles.items()}
        candidates.append(Candidate(r.id, texts, stratum_of(r.fields, stratify), figs, id(r) in shipped,
                                    None if qc is None else ("keep" if id(r) in shipped else "drop")))
    rows = pick_queue(candidates, block.fraction, block.min_rows, block.borderline, seed)
    queue = {"version": 1, "dataset": recipe.name, "made_by": "factory build", "format": fmt, "roles": roles,
             "editable": [r for r in ("prompt", "chosen", "response") if r in roles],
             "settings": {"fraction": block.fraction, "min_rows": block.min_rows,
                          "borderline": block.borderline, "stratify": stratify, "seed": seed},
             "rows": rows}
    verdicts, unreadable = load_verdicts(review_paths(folder)[1]) if folder.is_dir() else ([], 0)
    decisions = decide(verdicts)
    missing = [row["id"] for row in rows if row["id"] not in decisions]
    stats = _stats(rows, decisions, verdicts, block.min_keep_rate)
    if unreadable:  # a line torn by a crash, or edited by hand into something that is not a verdict
        stats["unreadable_lines"] = unreadable
    files = {QUEUE_FILE: queue_text(queue)}
    if missing:
        stats["status"] = "pending"
        where = shlex.quote(str(folder))
        return ReviewStage(outcomes, stats, files, ReviewPending(
            f"{len(rows) - len(missing)} of {len(rows)} rows reviewed; run: factory review {where} "
            "(then build again: every LLM call is cached)"))
    outcomes, applied = apply_decisions(outcomes, decisions, roles)
    stats["applied"] = applied
    rate, minimum = stats["keep_rate"], block.min_keep_rate
    if rate is not None and rate < minimum:
        stats["status"] = "failed"
        return ReviewStage(outcomes, stats, files, ReviewFailed(
            f"people kept {rate:.0%} of {stats['sample_rows']} sampled rows, under review.min_keep_rate "
            f"{minimum:.0%}; verdicts applied in {folder} (not for use), reasons in its rejects.jsonl"))
    stats["status"] = "passed"
    return ReviewStage(outcomes, stats, files)


def apply_decisions(outcomes: list[Record | Reject], decisions: dict[str, Decision],
                    roles: dict[str, str]) -> tuple[list[Record | Reject], dict[str, int]]:
    """Dropped rows become rejects; edits replace text and add a lineage step. Same order."""
    out: list[Record | Reject] = []
    applied = Counter({"dropped": 0, "edited": 0})
    for o in outcomes:
        d = decisions.get(o.id) if isinstance(o, Record) else None
        if d is None or isinstance(o, Reject):
            out.append(o)
        elif d.verdict == "drop":
            out.append(Reject(o, REVIEW_STEP, "human_review", d.reason, raw={"reviewers": d.by}))
            applied["dropped"] += 1
        elif d.verdict == "edit":
            for role, text in sorted(d.edits.items()):
                if role in roles:
                    o.fields[roles[role]] = text
            o.trace = o.trace + [StepTrace(REVIEW_STEP, "human", f"reviewer:{d.editor}", [])]
            applied["edited"] += 1
            out.append(o)
        else:
            out.append(o)
    return out, dict(applied)


def _stats(rows: list[dict[str, Any]], decisions: dict[str, Decision], verdicts: list[Any],
           min_keep_rate: float) -> dict[str, Any]:
    def kept_share(group: str) -> float | None:
        decided = [decisions[r["id"]] for r in rows if r["group"] == group and r["shipped"]
                   and r["id"] in decisions]
        return round(sum(d.verdict != "drop" for d in decided) / len(decided), 4) if decided else None

    queued = [decisions[r["id"]].verdict for r in rows if r["id"] in decisions]
    people = latest(verdicts)
    return {"status": "", "queue_rows": len(rows),
            "sample_rows": sum(r["group"] == "sample" for r in rows),
            "borderline_rows": sum(r["group"] == "borderline" for r in rows),
            "reviewed_rows": len(queued), "reviewers": sorted(people),
            "decisions": dict(sorted(Counter(queued).items())),
            "keep_rate": kept_share("sample"), "borderline_keep_rate": kept_share("borderline"),
            "min_keep_rate": min_keep_rate,
            "agreement": agreement(machine_verdicts(rows), people)}
