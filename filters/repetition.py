"""Repetition (degeneration) filter: the Gopher repetition rules plus a compression-ratio check.

Small models degenerate into loops ("the answer is the answer is ..."), and a loop has a *low*
perplexity, so no perplexity cut can catch it. These rules measure the repetition itself, as Rae
et al. 2021 (Gopher, table A1) and datatrove's ``GopherRepetitionFilter`` do:

- duplicate paragraphs / lines: share of paragraphs (lines) that repeat an earlier one, and share
  of characters in them;
- top n-gram (n = 2, 3, 4): characters covered by the most frequent n-gram, over all characters;
- duplicated n-grams (n = 5 ... 10): characters in n-grams that repeat an earlier one (a repeat
  is skipped whole, so overlapping copies are not counted twice), over all characters;
- compression ratio: zlib-compressed bytes over raw bytes; a loop compresses far better than text.

Why not datatrove itself: its filter splits words with NLTK's tokenizer, which needs the
``punkt_tab`` data that cannot be downloaded here, and the package brings ``huggingface-hub>=1.6``,
``multiprocess``, ``dill`` and ``loguru`` for about sixty lines of counting.

Gopher's thresholds were set on web documents; on short answers its n-gram ones drop numbered
lists and URL lists, so the defaults (``filters.config.RepetitionBlock``) are looser n-gram
thresholds measured on real answers, and three guards keep lists, tables and code: line and
paragraph rules count only lines with at least ``min_line_chars`` word characters (``}``,
``|---|---|`` and blank separators repeat legitimately), n-gram rules apply from ``min_words``
words and compression from ``min_compression_chars`` characters (a nine-word answer that says
"of the" twice is not a loop; a short text never compresses well).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

from factory.core.record import Record
from factory.core.text import texts_or_failures
from filters.base import Drop, Failed, Filter, Keep, QCContext, Verdict
from filters.config import RepetitionBlock

WORD = re.compile(r"\w+(?:['’]\w+)*")
PARAGRAPH = re.compile(r"\n\s*\n")


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(how many items repeat an earlier one, their characters)."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _top_ngram_chars(words: list[str], n: int) -> int:
    """Characters covered by the most frequent n-gram, counted with its repeats (Gopher)."""
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0
    gram, count = grams.most_common(1)[0]
    return count * sum(len(w) for w in gram) if count > 1 else 0


def _duplicated_ngram_chars(words: list[str], n: int) -> int:
    """Characters of n-grams that repeat an earlier n-gram; a repeat is skipped whole (datatrove's
    ``find_all_duplicate``), so a loop of one phrase counts each character once."""
    seen: set[tuple[str, ...]] = set()
    chars = i = 0
    while i < len(words) - n + 1:
        gram = tuple(words[i:i + n])
        if gram in seen:
            chars += sum(len(w) for w in gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(zlib.compress(raw, 9)) / len(raw) if raw else 1.0


def repetition_figures(text: str, min_line_chars: int = 3) -> dict[str, float]:
    """Every rule's figure for ``text`` (fractions in [0, 1]; ``words``: the word count)."""
    size = max(len(text), 1)
    figures: dict[str, float] = {}
    for unit, parts in (("paragraph", PARAGRAPH.split(text.strip())), ("line", text.split("\n"))):
        parts = [p.strip() for p in parts]
        parts = [p for p in parts if len(re.sub(r"\W", "", p)) >= min_line_chars]
        count, chars = _duplicates(parts)
        figures[f"dup_{unit}_frac"] = count / len(parts) if parts else 0.0
        figures[f"dup_{unit}_char_frac"] = chars / size
    words = WORD.findall(text)
    letters = max(sum(len(w) for w in words), 1)  # n-gram characters are counted without spaces
    for n in (2, 3, 4):
        figures[f"top_{n}gram_char_frac"] = _top_ngram_chars(words, n) / letters
    for n in range(5, 11):
        figures[f"dup_{n}gram_char_frac"] = _duplicated_ngram_chars(words, n) / letters
    figures["compression_ratio"] = compression_ratio(text)
    figures["words"] = float(len(words))
    figures["chars"] = float(len(text))
    return figures


def thresholds(block: RepetitionBlock) -> dict[str, float]:
    """Rule -> the figure above which a text is a loop (compression: below)."""
    out = {"dup_paragraph_frac": block.dup_paragraph_frac,
           "dup_paragraph_char_frac": block.dup_paragraph_char_frac,
           "dup_line_frac": block.dup_line_frac, "dup_line_char_frac": block.dup_line_char_frac}
    out.update({f"top_{n}gram_char_frac": v for n, v in zip((2, 3, 4), block.top_ngram_char_frac)})
    out.update({f"dup_{n}gram_char_frac": v for n, v in zip(range(5, 11), block.dup_ngram_char_frac)})
    out["compression_ratio"] = block.min_compression_ratio
    return out


def applies(rule: str, figures: dict[str, float], block: RepetitionBlock) -> bool:
    """Short texts are exempt: n-gram rules need ``min_words`` words, compression
    ``min_compression_chars`` characters."""
    if rule == "compression_ratio":
        return figures["chars"] >= block.min_compression_chars
    return "gram" not in rule or figures["words"] >= block.min_words


def judge(figures: dict[str, float], limits: dict[str, float],
          block: RepetitionBlock) -> tuple[str, float, float] | None:
    """The first broken rule as (rule, figure, threshold), or None: the text is not a loop."""
    for rule, limit in limits.items():
        if not applies(rule, figures, block):
            continue
        value = figures[rule]
        if (value < limit) if rule == "compression_ratio" else (value > limit):
            return rule, value, limit
    return None


def severity(figures: dict[str, float], limits: dict[str, float], block: RepetitionBlock) -> float:
    """The worst figure as a multiple of its threshold (1.0 = at the cut): the audit's histogram."""
    worst = 0.0
    for rule, limit in limits.items():
        if not applies(rule, figures, block):
            continue
        value = figures[rule]
        ratio = (limit / value if value > 0 else 10.0) if rule == "compression_ratio" else value / limit
        worst = max(worst, ratio)
    return round(worst, 4)


class RepetitionFilter(Filter):
    name = "repetition"

    def __init__(self, block: RepetitionBlock) -> None:
        super().__init__()
        self.block = block
        self.limits = thresholds(block)

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        texts, details = texts_or_failures(records, b.column)
        fired: Counter = Counter()
        out: list[Verdict] = []
        for text, detail in zip(texts, details):
            if text is None:
                out.append(Failed(detail))
                continue
            figures = repetition_figures(text, b.min_line_chars)
            score = severity(figures, self.limits, b)
            broken = judge(figures, self.limits, b)
            if broken is None:
                out.append(Keep(score))
                continue
            rule, value, limit = broken
            fired[rule] += 1
            side = "<" if rule == "compression_ratio" else ">"
            out.append(Drop(f"repetition_{rule}", score, f"{rule} {value:.3f} {side} {limit:g}"))
        self.info = {"column": b.column, "rule": "Gopher repetition rules + compression ratio "
                     f"(n-gram rules from {b.min_words} words, compression from "
                     f"{b.min_compression_chars} characters)",
                     "cut": 1.0, "cut_source": "absolute thresholds: Gopher's rules (Rae et al. 2021), "
                     "n-gram thresholds measured on real answers",
                     "thresholds": self.limits, "fired": dict(sorted(fired.items()))}
        return out
