"""The recipe's ``qc:`` chain inside ``factory build``: kept records in, survivors + rejects out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from factory.core.record import Record, Reject
from factory.llm.session import LLMSession
from factory.llm.spec import BackendBlock
from filters.base import QCContext, QCResult
from filters.chain import build_chain


def run_recipe_qc(blocks: list[Any], kept: list[Record], seeds: list[dict[str, Any]],
                  encode: Callable[[str, list[str]], Any] | None = None,
                  llm: LLMSession | None = None) -> QCResult:
    """Run the chain on the engine's kept records; the seeds feed dedup-against-seeds and drift.
    ``encode(model, texts)`` replaces the in-process embedding model (the Ray executor's tasks);
    ``llm``: the build's session, through which judge scorers call their models."""
    chain = build_chain(blocks)
    if encode is not None:
        from filters.embed import Embedder

        for f in chain.filters:
            if hasattr(f, "embedder") and f.embedder is None:  # dedup, drift
                f.embedder = Embedder(f.block.model, encode=encode)
    return chain.run(kept, QCContext(seeds=seeds, llm=llm))


def judge_blocks(blocks: list[Any]) -> list[BackendBlock]:
    """The backend blocks the chain's judge scorers will call: a build keeps those backends open
    after its steps (a judge on a step's block reuses the loaded model)."""
    from filters.config import PairsBlock, RewardBlock
    from filters.reward import JudgeRewardScorer, make_scorer

    out = []
    for block in blocks:
        if isinstance(block, RewardBlock) or (isinstance(block, PairsBlock) and block.scorer is not None):
            scorer = make_scorer(block.scorer)
            if isinstance(scorer, JudgeRewardScorer):
                out.append(scorer.block)
    return out


def merge_outcomes(outcomes: list[Record | Reject], result: QCResult) -> list[Record | Reject]:
    """Engine outcomes with each record the chain dropped replaced by its QC reject (same order)."""
    dropped = {id(r.record): r for r in result.rejects}
    return [dropped.get(id(o), o) if isinstance(o, Record) else o for o in outcomes]


def failed_gate_dir(output: Path) -> Path:
    """Where a build whose drift gate failed writes what it made: beside, never over, a good one."""
    return output.parent / f"{output.name}.qc-failed"


def qc_card(qc: dict[str, Any]) -> str:
    """The dataset card's QC section: the chain, what each filter dropped, and scorer labels."""
    lines = ["", "## Quality control", "",
             f"{qc['input']} records entered the QC chain: {qc['kept']} kept, {qc['dropped']} dropped, "
             f"{qc['failed']} failed (dropped records are in `rejects.jsonl` with step `qc.<filter>`).",
             "", "| filter | in | kept | dropped | rule | notes |", "|---|---|---|---|---|---|"]
    for name, f in qc["filters"].items():
        dropped = ", ".join(f"{k} {v}" for k, v in {**f["dropped"], **f["failed"]}.items()) or "0"
        note = f.get("scorer") or f.get("message") or f.get("method") or f.get("model") or ""
        if f.get("default_scorer"):
            note = f"**default scorer:** {note}"
        if f.get("scorer") and f.get("message"):  # the reward gate: why the cut did or did not delete
            note = f"{note}; {'' if f.get('deletes', True) else '**'}{f['message']}" \
                   f"{'' if f.get('deletes', True) else '**'}"
        if f.get("cut_source"):
            cut = f"cut {f.get('cut')}: {f['cut_source']}"
            note = f"{note}; {cut}" if note else cut
        if "chosen_longer" in f and f["chosen_longer"] is not None:
            note = f"chosen longer in {f['chosen_longer']:.0%} of pairs; margin: {f['margin_source']}"
        lines.append(f"| {name} | {f['in']} | {f['kept']} | {dropped} | {f.get('rule', '')} | {note} |")
    if qc.get("gate_failed"):
        lines += ["", f"**The QC gate failed:** {qc['gate_failed']}"]
    return "\n".join(lines) + "\n"
