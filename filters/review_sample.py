"""Which rows people review: a stratified random sample plus the borderline rows.

The sample is ``fraction`` of the pool (at least ``min_rows``), allocated to strata (a category
column) in proportion to their size, every stratum getting at least one row when there is room.
The borderline rows are those nearest a cut line: a QC filter's cut (perplexity, reward, dedup
threshold, pair margin) on either side of it, and the lowest judge margins or scores. They are
taken round-robin over the cut lines, nearest first, so every line is represented.

The queue is a plain dict (``review_queue.json``): each row has its texts (by role: prompt,
chosen, rejected or response), the figures a reviewer sees, and the machine verdicts (the QC
chain's and each filter's keep/drop) that the agreement figures compare people with.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from factory.core.record import Record
from filters.base import Failed, Keep, QCResult

# Per filter kind: the info key holding its cut, and the side of the cut that is dropped.
CUTS = {"perplexity": ("cut", "above"), "repetition": ("cut", "above"), "reward": ("cut", "below"),
        "dedup": ("threshold", "above"), "fit": ("gain_cut", "below"),
        "pairs": ("margin", "below")}
# a filter with several cuts: the one this drop crossed, and its dropped side
CUT_BY_REASON = {"fit_ending": ("ending_cut", "below"), "fit_other_prompt": ("other_prompt_cut", "above")}
NOT_ON_THE_CUT = {"identical_pair", "near_identical_pair"}


@dataclass
class Figure:
    name: str  # qc.reward, judge.judge
    score: float | None
    cut: float | None = None
    drops: str = ""  # "above" or "below": which side of the cut is dropped
    verdict: str | None = None  # keep | drop | failed; None: the figure decides nothing
    reason: str = ""

    def distance(self) -> float | None:
        if isinstance(self.score, (int, float)) and isinstance(self.cut, (int, float)):
            return abs(float(self.score) - float(self.cut))
        return None


@dataclass
class Candidate:
    id: str
    texts: dict[str, str]  # role -> text
    stratum: str = ""
    figures: list[Figure] = field(default_factory=list)
    shipped: bool = True  # in the dataset being reviewed (a QC-dropped row is there for agreement only)
    qc: str | None = None  # the chain's verdict: keep | drop; None: no chain ran


@dataclass(frozen=True)
class JudgeColumn:
    """A judge's figure on each record: ``fields[column][key]`` (or ``fields[column]``)."""

    name: str
    column: str
    key: str | None = None
    cut: float | None = None  # below it the judge would have rejected the row


def qc_figures(entered: list[Record], result: QCResult) -> dict[int, list[Figure]]:
    """Per record (by ``id()``), one figure per filter it reached. The chain runs each filter on
    the previous one's survivors (all records when report-only), so that walk is replayed here."""
    out: dict[int, list[Figure]] = {id(r): [] for r in entered}
    alive = list(entered)
    for label, verdicts in result.verdicts.items():
        kind_of_filter = label.split("#")[0]
        key, side = CUTS.get(kind_of_filter, (None, ""))
        info = result.info.get(label, {})
        cut = info.get(key) if key else None
        if kind_of_filter == "pairs" and str(info.get("margin_source", "none")).startswith("none"):
            cut = None  # no margin was checked: no cut line
        cut = float(cut) if isinstance(cut, (int, float)) else None
        survivors = []
        for record, v in zip(alive, verdicts):
            kind = "keep" if isinstance(v, Keep) else "failed" if isinstance(v, Failed) else "drop"
            score = v.score if isinstance(v.score, (int, float)) else None
            reason = "" if kind == "keep" else v.reason
            # a pair dropped as (near-)identical is scored by similarity, not margin: no cut for it
            row_cut = None if reason in NOT_ON_THE_CUT else cut
            row_side = side
            if reason in CUT_BY_REASON:
                reason_key, row_side = CUT_BY_REASON[reason]
                row_cut = info.get(reason_key)
            out[id(record)].append(Figure(f"qc.{label}", score, row_cut,
                                          row_side if row_cut is not None else "", kind, reason))
            if kind == "keep" or result.report_only:
                survivors.append(record)
        alive = survivors
    return out


def judge_figure(record: Record, judge: JudgeColumn) -> Figure | None:
    value = record.fields.get(judge.column)
    if judge.key is not None:
        value = value.get(judge.key) if isinstance(value, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    verdict = None if judge.cut is None else ("keep" if value >= judge.cut else "drop")
    return Figure(judge.name, float(value), judge.cut, "below" if judge.cut is not None else "", verdict)


def stratum_of(fields: dict[str, Any], columns: list[str]) -> str:
    return " / ".join(f"{c}={fields.get(c)}" for c in columns) if columns else ""


def stratified(pool: list[Candidate], n: int, rng: random.Random) -> list[Candidate]:
    """``n`` candidates, allocated to strata by size (largest remainder), each stratum >= 1 if room."""
    groups: dict[str, list[Candidate]] = {}
    for c in pool:
        groups.setdefault(c.stratum, []).append(c)
    keys = sorted(groups)
    total = len(pool)
    exact = {k: len(groups[k]) * n / total for k in keys}
    quota = {k: int(exact[k]) for k in keys}
    for k in sorted(keys, key=lambda k: (-(exact[k] - quota[k]), k))[:n - sum(quota.values())]:
        quota[k] += 1
    if n >= len(keys):  # every stratum seen at least once: take from the largest quota
        for k in keys:
            if quota[k] == 0:
                donor = max(keys, key=lambda d: (quota[d], d))
                quota[donor] -= 1
                quota[k] = 1
    picked: list[Candidate] = []
    for k in keys:
        picked += rng.sample(groups[k], min(quota[k], len(groups[k])))
    return picked


def borderline(candidates: list[Candidate], count: int, taken: set[str]) -> list[tuple[Candidate, str]]:
    """Up to ``count`` rows nearest a cut line, round-robin over the lines, with why each was taken."""
    lines: dict[str, list[tuple[float, int, Candidate, Figure]]] = {}
    for pos, c in enumerate(candidates):
        for f in c.figures:
            d = f.distance()
            if d is not None:
                lines.setdefault(f.name, []).append((d, pos, c, f))
    for near in lines.values():
        near.sort(key=lambda t: (t[0], t[1]))
    out: list[tuple[Candidate, str]] = []
    cursors = {name: 0 for name in lines}
    while len(out) < count and any(cursors[n] < len(lines[n]) for n in lines):
        for name in sorted(lines):
            near = lines[name]
            while cursors[name] < len(near) and near[cursors[name]][2].id in taken:
                cursors[name] += 1
            if cursors[name] >= len(near) or len(out) >= count:
                continue
            _, _, c, f = near[cursors[name]]
            taken.add(c.id)
            out.append((c, f"borderline: near the {name} cut ({f.score:.4g} vs {f.cut:.4g})"))
    return out


def pick_queue(candidates: list[Candidate], fraction: float, min_rows: int, borderline_rows: int,
               seed: int) -> list[dict[str, Any]]:
    """The queue rows: the stratified sample of the shipped rows, then the borderline rows."""
    pool = [c for c in candidates if c.shipped]
    n = min(len(pool), max(min_rows, round(fraction * len(pool))))
    order = {c.id: i for i, c in enumerate(candidates)}
    sample = sorted(stratified(pool, n, random.Random(f"review:{seed}")), key=lambda c: order[c.id])
    rows = [_row(c, "sample", "random sample" + (f" ({c.stratum})" if c.stratum else "")) for c in sample]
    taken = {c.id for c in sample}
    rows += [_row(c, "borderline", why) for c, why in borderline(candidates, borderline_rows, taken)]
    return rows


def _row(c: Candidate, group: str, why: str) -> dict[str, Any]:
    return {"id": c.id, "group": group, "why": why, "stratum": c.stratum, "shipped": c.shipped, "qc": c.qc,
            "texts": c.texts, "figures": [asdict(f) for f in c.figures]}


def qc_labels(records: list[Record], result: QCResult) -> dict[str, dict[str, str]]:
    """Row id -> rater -> keep|drop from a chain run (``factory audit``'s report-only run)."""
    figures = qc_figures(records, result)
    out = {}
    for r in records:
        labels = {f.name: f.verdict for f in figures[id(r)] if f.verdict in ("keep", "drop")}
        if labels:
            labels["qc"] = "drop" if "drop" in labels.values() else "keep"
        out[r.id] = labels
    return out


def machine_verdicts(rows: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Row id -> rater -> keep|drop: the chain as a whole (``qc``) and each figure that decides."""
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        labels = {"qc": row["qc"]} if row.get("qc") in ("keep", "drop") else {}
        for f in row.get("figures", []):
            if f.get("verdict") in ("keep", "drop"):
                labels[f["name"]] = f["verdict"]
        out[row["id"]] = labels
    return out
