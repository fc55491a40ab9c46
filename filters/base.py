"""The filter contract and the chain that runs filters (datatrove style).

A filter answers, per record, ``Keep(score)`` or ``Drop(reason, score)``. Per-record filters
implement ``filter(record)``; set-level filters (dedup, percentile cuts, drift) override
``filter_batch(records)``. The chain counts per filter and reason, keeps every dropped record with
filter, reason and score, and checks ``input = kept + dropped + failed``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from factory.core.errors import FactoryError
from factory.core.record import Record, Reject

if TYPE_CHECKING:
    from factory.llm.session import LLMSession


@dataclass(frozen=True)
class Keep:
    score: float | None = None  # the filter's figure for this record (histograms, tie-breaks)


@dataclass(frozen=True)
class Drop:
    reason: str  # a short countable code, e.g. "perplexity_above_p95"
    score: float | None = None
    detail: str = ""


Verdict = Keep | Drop


class QCGateFailed(FactoryError):
    """A gate (drift) failed: the build stops with the figures; what was generated is kept."""


class Filter:
    """Base class. ``name`` is the filter kind; ``label`` names it in stats (kind, or kind#i)."""

    name = "filter"

    def __init__(self) -> None:
        self.label = self.name
        self.info: dict[str, Any] = {}  # thresholds, groups, figures: goes to stats and the report

    def filter(self, record: Record) -> Verdict:
        raise NotImplementedError

    def filter_batch(self, records: list[Record], context: "QCContext") -> list[Verdict]:
        """Default: the per-record form on each record; an exception fails only that record."""
        return [self._one(r) for r in records]

    def _one(self, record: Record) -> Verdict:
        try:
            return self.filter(record)
        except Exception as exc:  # a bad record must not sink the set: it is counted as failed
            return Failed(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class Failed:
    """The filter could not judge this record (bad value, scorer error). Counted as failed."""

    detail: str
    reason: str = "filter_error"
    score: float | None = None


@dataclass
class QCContext:
    """What set-level filters may need besides the records."""

    seeds: list[dict[str, Any]] = field(default_factory=list)
    report_only: bool = False  # audit: every filter sees every record and nothing is removed
    # The run's LLM session: a filter that calls a model (a judge scorer) asks it for a dispatcher,
    # so its calls use the run's cache and budget and count in run.json. None: no model calls.
    llm: LLMSession | None = None


@dataclass
class FilterStats:
    entered: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    scores: list[float | None] = field(default_factory=list)  # per entered record, in order

    def as_dict(self) -> dict[str, Any]:
        return {"in": self.entered, "kept": self.kept, "dropped": dict(sorted(self.dropped.items())),
                "failed": dict(sorted(self.failed.items()))}


@dataclass
class QCResult:
    kept: list[Record]
    rejects: list[Reject]
    stats: dict[str, FilterStats]
    info: dict[str, dict[str, Any]]
    verdicts: dict[str, list[Verdict]]  # per filter, aligned with the records it saw
    report_only: bool = False  # rejects then lists would-be drops; kept is the whole input
    gate_failed: str | None = None  # a gate's message: the chain stopped there (later filters not run)

    def summary(self, total: int) -> dict[str, Any]:
        dropped = sum(not r.failed for r in self.rejects)
        failed = sum(r.failed for r in self.rejects)
        if not self.report_only and len(self.kept) + dropped + failed != total:
            raise AssertionError(f"QC accounting broken: {total} != {len(self.kept)}+{dropped}+{failed}")
        return {"input": total, "kept": len(self.kept), "dropped": dropped, "failed": failed,
                "gate_failed": self.gate_failed,
                "filters": {k: {**s.as_dict(), **_jsonable(self.info.get(k, {}))}
                            for k, s in self.stats.items()}}


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if not k.startswith("_")}  # "_x": report-only payloads


class Chain:
    def __init__(self, filters: list[Filter]) -> None:
        seen: Counter = Counter()
        for f in filters:  # two filters of one kind get distinct labels: perplexity, perplexity#2
            seen[f.name] += 1
            f.label = f.name if seen[f.name] == 1 else f"{f.name}#{seen[f.name]}"
        self.filters = filters

    def run(self, records: list[Record], context: QCContext | None = None) -> QCResult:
        context = context or QCContext()
        alive = list(records)
        rejects: list[Reject] = []
        stats: dict[str, FilterStats] = {}
        verdicts: dict[str, list[Verdict]] = {}
        for f in self.filters:
            st = stats[f.label] = FilterStats(entered=len(alive))
            out = f.filter_batch(alive, context) if alive else []
            if len(out) != len(alive):
                raise AssertionError(f"filter {f.label} returned {len(out)} verdicts for {len(alive)}")
            verdicts[f.label] = out
            survivors = []
            for record, v in zip(alive, out):
                st.scores.append(v.score)
                if isinstance(v, Keep):
                    st.kept += 1
                    survivors.append(record)
                    continue
                (st.failed if isinstance(v, Failed) else st.dropped)[v.reason] += 1
                rejects.append(qc_reject(record, f.label, v))
                if context.report_only:
                    survivors.append(record)
            alive = survivors
            if f.info.get("gate") == "fail" and not context.report_only:
                message = f"qc.{f.label}: {f.info.get('message', 'gate failed')}"
                return QCResult(alive, rejects, stats, {g.label: g.info for g in self.filters}, verdicts,
                                False, message)
        return QCResult(alive, rejects, stats, {f.label: f.info for f in self.filters}, verdicts,
                        context.report_only)


def figures_note(stats: dict[str, Any]) -> str:
    """One line for a filter's stats: its rule or message, the cut and where the cut came from,
    and which rules fired (the repetition filter) -- for the console, the audit and the card."""
    parts = [str(stats.get("message") or stats.get("rule") or "")]
    if stats.get("cut_source"):
        parts.append(f"cut {stats.get('cut')} from {stats['cut_source']}")
    if stats.get("fired"):
        parts.append("fired: " + ", ".join(f"{k} {v}" for k, v in stats["fired"].items()))
    return "; ".join(p for p in parts if p)


def qc_reject(record: Record, label: str, verdict: Drop | Failed) -> Reject:
    detail = verdict.detail
    score = verdict.score
    return Reject(record, f"qc.{label}", verdict.reason, detail,
                  raw={"filter": label, "score": score}, failed=isinstance(verdict, Failed))


def percentile_cut(values: list[float], percentile: float) -> float:
    """The value at ``percentile`` (0-100) by linear interpolation, as numpy does it."""
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), percentile))
