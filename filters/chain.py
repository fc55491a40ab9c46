"""Filter objects for validated chain blocks (``filters.config``). Each filter module is imported
only when a chain uses it, so a chain without perplexity never imports torch."""

from __future__ import annotations

from typing import Any

from filters.base import Chain
from filters.config import (
    DecontaminateBlock,
    DedupBlock,
    DriftBlock,
    FitBlock,
    LanguageBlock,
    MarkupBlock,
    PairsBlock,
    PerplexityBlock,
    RepetitionBlock,
    RewardBlock,
)


def build_chain(blocks: list[Any]) -> Chain:
    """Filter objects for validated blocks; heavy modules are imported only for filters used."""
    out = []
    scorers: dict[tuple, Any] = {}  # perplexity and fit on one model share a scorer: one forward pass
    for block in blocks:
        if isinstance(block, RepetitionBlock):
            from filters.repetition import RepetitionFilter
            out.append(RepetitionFilter(block))
        elif isinstance(block, PerplexityBlock):
            from filters.perplexity import PerplexityFilter
            out.append(PerplexityFilter(block, _scorer(scorers, block)))
        elif isinstance(block, DedupBlock):
            from filters.dedup import DedupFilter
            out.append(DedupFilter(block))
        elif isinstance(block, RewardBlock):
            from filters.reward import RewardFilter
            out.append(RewardFilter(block))
        elif isinstance(block, PairsBlock):
            from filters.pairs import PairsFilter
            out.append(PairsFilter(block))
        elif isinstance(block, DriftBlock):
            from filters.drift import DriftFilter
            out.append(DriftFilter(block))
        elif isinstance(block, DecontaminateBlock):
            from filters.decontaminate import DecontaminateFilter
            out.append(DecontaminateFilter(block))
        elif isinstance(block, FitBlock):
            from filters.fit import FitFilter
            out.append(FitFilter(block, _scorer(scorers, block)))
        elif isinstance(block, MarkupBlock):
            from filters.markup import MarkupFilter
            out.append(MarkupFilter(block))
        elif isinstance(block, LanguageBlock):
            from filters.language import LanguageFilter
            out.append(LanguageFilter(block))
    return Chain(out)


def _scorer(scorers: dict[tuple, Any], block: PerplexityBlock | FitBlock) -> Any:
    from filters.perplexity import PerplexityScorer

    key = (block.model, block.batch_size, block.max_tokens)
    if key not in scorers:
        scorers[key] = PerplexityScorer(*key)
    return scorers[key]
