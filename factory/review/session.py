"""What ``factory review`` serves: the dataset's review queue and where its verdicts go.

A folder built with a ``review:`` gate already holds ``review_queue.json`` (the build wrote it, with
the QC and judge figures). Any other dataset gets a queue made here, once, and written beside it so
that a restart shows the same rows: a stratified random sample of all rows plus the borderline
ones (with ``--chain``, the QC chain runs report-only to give cut lines and verdicts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from filters.review_sample import Candidate, JudgeColumn, judge_figure, pick_queue, qc_figures, stratum_of
from filters.review_store import read_queue, review_paths, write_queue

# by the formats of factory.core.dataset_files (the text columns filters.dataset_io gives each record)
ROLES = {"preference": ("prompt", "chosen", "rejected"), "conversation": ("prompt", "response"),
         "prompt_completion": ("prompt", "response"), "prompt_answer": ("prompt", "response")}


@dataclass
class SampleOptions:
    fraction: float = 0.05
    min_rows: int = 20
    borderline: int = 10
    stratify: list[str] = field(default_factory=list)
    seed: int = 0
    chain: Path | None = None
    seeds: Path | None = None
    format: str | None = None
    prompt_column: str | None = None
    response_column: str | None = None


@dataclass
class ReviewSession:
    dataset: Path
    queue: dict[str, Any]
    queue_path: Path
    reviews_path: Path
    made_queue: bool  # False: an existing queue (a build's, or one made by an earlier start)

    @property
    def ids(self) -> set[str]:
        return {row["id"] for row in self.queue["rows"]}


def read_dataset(path: Path, opts: SampleOptions) -> Any:
    """The one way this package reads a dataset (a thin wrapper, so the reader can change in one place)."""
    from filters.dataset_io import load_dataset_records

    return load_dataset_records(path, opts.format, opts.prompt_column, opts.response_column)


def open_session(dataset: Path, opts: SampleOptions) -> ReviewSession:
    if not dataset.exists():
        raise FactoryError(f"{dataset}: not found")
    queue_path, reviews_path = review_paths(dataset)
    try:
        queue = read_queue(queue_path)
    except ValueError as exc:
        raise FactoryError(f"{queue_path}: {exc}") from exc
    made = queue is None
    if queue is None:
        queue = queue_for_dataset(dataset, opts)
        write_queue(queue_path, queue)
    if not queue["rows"]:
        raise FactoryError(f"{queue_path}: the review queue is empty")
    return ReviewSession(dataset, queue, queue_path, reviews_path, made)


def queue_for_dataset(dataset: Path, opts: SampleOptions) -> dict[str, Any]:
    data = read_dataset(dataset, opts)
    roles = ROLES[data.format]
    figures: dict[int, list[Any]] = {}
    if opts.chain is not None:
        from filters.audit import run_dataset_chain

        result, _ = run_dataset_chain(data, opts.chain, opts.seeds, report_only=True)
        figures = qc_figures(data.records, result)
    judge = JudgeColumn("judge", "judgement", "margin", 0.0)
    stratify = opts.stratify or (["category"] if any("category" in r.fields for r in data.records) else [])
    candidates = []
    for r in data.records:
        figs = list(figures.get(id(r), []))
        if (f := judge_figure(r, judge)) is not None:
            figs.append(f)
        qc = None
        if opts.chain is not None:
            qc = "drop" if any(f.verdict == "drop" for f in figs if f.name.startswith("qc.")) else "keep"
        candidates.append(Candidate(r.id, {k: str(r.fields.get(k) or "") for k in roles},
                                    stratum_of(r.fields, stratify), figs, True, qc))
    ids = [c.id for c in candidates]
    if len(set(ids)) != len(ids):
        raise FactoryError(f"{dataset}: row ids are not unique; give every row a distinct 'id'")
    rows = pick_queue(candidates, opts.fraction, opts.min_rows, opts.borderline, opts.seed)
    return {"version": 1, "dataset": dataset.name, "made_by": "factory review", "format": data.format,
            "roles": {k: k for k in roles},
            "editable": [k for k in ("prompt", "chosen", "response") if k in roles],
            "settings": {"fraction": opts.fraction, "min_rows": opts.min_rows, "borderline": opts.borderline,
                         "stratify": stratify, "seed": opts.seed,
                         "chain": str(opts.chain) if opts.chain else None},
            "rows": rows}
