"""Pair QC for preference data: identical or near-identical answers, too small a margin, length bias.

The margin comes from a column (the pairwise judge's ``judgement`` holds ``margin``) or from a
reward scorer run on both answers. Length bias is reported, not filtered: the share of pairs whose
chosen answer is longer (a reward model trained on a set far from 50% learns "longer is better").
"""

from __future__ import annotations

import difflib
from typing import Any

from factory.core.record import Record
from factory.core.text import texts_or_failures
from filters.base import Drop, Failed, Filter, Keep, QCContext, Verdict
from filters.config import PairsBlock
from filters.reward import make_scorer, unscored_reason


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def similarity(a: str, b: str) -> float:
    """Character-level similarity (difflib ratio) of whitespace/case-normalized texts, 0-1."""
    return difflib.SequenceMatcher(None, _norm(a), _norm(b), autojunk=False).ratio()


class PairsFilter(Filter):
    name = "pairs"

    def __init__(self, block: PairsBlock, scorer: Any = None) -> None:
        super().__init__()
        self.block = block
        self.scorer = scorer
        if scorer is None and block.scorer is not None:
            self.scorer = make_scorer(block.scorer)

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        chosen, cd = texts_or_failures(records, b.chosen)
        rejected, rd = texts_or_failures(records, b.rejected)
        margins = self._margins(records, chosen, rejected, context)
        out: list[Verdict] = []
        longer = counted = 0
        for i, record in enumerate(records):
            c, r = chosen[i], rejected[i]
            if c is None or r is None:
                out.append(Failed(cd[i] or rd[i]))
                continue
            counted += 1
            longer += len(c) > len(r)
            if _norm(c) == _norm(r):
                out.append(Drop("identical_pair", 1.0, "chosen and rejected are the same text"))
                continue
            sim = similarity(c, r)
            if sim >= b.similarity:
                out.append(Drop("near_identical_pair", round(sim, 4),
                                f"similarity {sim:.3f} >= {b.similarity}"))
                continue
            margin, why = margins[i]
            if margin is None and why:
                out.append(Failed(why, unscored_reason(why, "margin_unscored")))
            elif margin is not None and margin <= b.margin:
                out.append(Drop("low_margin", round(margin, 4),
                                f"chosen - rejected = {margin:.3g} <= {b.margin}"))
            else:
                out.append(Keep(margin))
        self.info = {"pairs": counted, "chosen_longer": round(longer / counted, 4) if counted else None,
                     "margin_source": (self.scorer.label if self.scorer is not None
                                       else b.margin_column or "none (margin not checked)"),
                     "margin": b.margin, "similarity": b.similarity}
        return out

    def _margins(self, records: list[Record], chosen: list[str | None], rejected: list[str | None],
                 context: QCContext) -> list[tuple[float | None, str]]:
        b = self.block
        if self.scorer is not None:
            prompts, _ = texts_or_failures(records, b.prompt_column)
            ok = [i for i in range(len(records)) if None not in (prompts[i], chosen[i], rejected[i])]
            ps = [prompts[i] or "" for i in ok]
            user = f"qc.{self.label}"  # a judge scorer's calls count under this name in run.json
            sc = self.scorer.score(ps, [chosen[i] or "" for i in ok], context.llm, user)
            sr = self.scorer.score(ps, [rejected[i] or "" for i in ok], context.llm, user)
            out: list[tuple[float | None, str]] = [(None, "no prompt")] * len(records)
            for i, (c, cw), (r, rw) in zip(ok, sc, sr):
                out[i] = (c - r, "") if c is not None and r is not None else (None, cw or rw)
            return out
        if b.margin_column is None:
            return [(None, "")] * len(records)
        # A record without the column (a dataset read from disk) is not margin-checked; one with a
        # value that holds no number is a failure.
        return [_margin_value(r.fields[b.margin_column], b.margin_column) if b.margin_column in r.fields
                else (None, "") for r in records]


def _margin_value(value: Any, column: str) -> tuple[float | None, str]:
    if isinstance(value, dict):
        value = value.get("margin")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), ""
    return None, f"no numeric margin in column {column!r}"
