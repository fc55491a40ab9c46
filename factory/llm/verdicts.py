"""A judge's verdict as probabilities: P("A") vs P("B") where it wrote its verdict letter, the
expected value of a 0-5 score (G-Eval), and balanced position calibration over both orders.

Everything here reads a ``Completion`` asked with ``Request.top_logprobs``: per generated token its
text (``tokens``) and its k most likely alternatives (``top_logprobs``). Tokens are compared after
stripping spaces, quotes, brackets and markup, so ``" A"``, ``"A"`` and ``'"A'`` all read as A.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from factory.llm.request import Completion

LETTERS = ("A", "B")
SCORES = ("0", "1", "2", "3", "4", "5")
_STRIP = " \t\r\n\"'`*()[]{}<>:;.,!?"
# The first capital A or B standing alone: "A", "[[B]]", "Answer B" (not the A of "Answer").
_LETTER = re.compile(r"(?<![A-Za-z])([AB])(?![A-Za-z])")


def clean(token: str) -> str:
    """A token's text without spaces, quotes, brackets and punctuation around it."""
    return token.strip(_STRIP)


def verdict_position(completion: Completion, letters: Sequence[str] = LETTERS) -> int | None:
    """Where the verdict was written: the first generated token that reads as one of ``letters``.

    A judge that wrote neither letter (a weak model that starts "Both answers ...") is read at its
    first token when that token's alternatives include a letter (the prompt asked for the letter
    first); else None."""
    tokens, top = completion.tokens or [], completion.top_logprobs or []
    for i, token in enumerate(tokens):
        if clean(token) in letters:
            return i
    if top and any(clean(t) in letters for t in top[0]):
        return 0
    return None


def probabilities(alternatives: dict[str, float], labels: Sequence[str],
                  floor: bool = True) -> dict[str, float] | None:
    """Probability of each label among one position's top-k (tokens that read the same add up).

    ``floor``: a label missing from the top-k is given the smallest listed probability, an upper
    bound, so a judge is never credited with more confidence than its top-k shows (else 0).
    None: no label listed."""
    probs = dict.fromkeys(labels, 0.0)
    listed = False
    for token, logprob in alternatives.items():
        label = clean(token)
        if label in probs:
            probs[label] += math.exp(logprob)
            listed = True
    if not listed:
        return None
    least = math.exp(min(alternatives.values())) if floor else 0.0
    return {label: p if p > 0 else least for label, p in probs.items()}


def letter_share(completion: Completion, letters: Sequence[str] = LETTERS) -> float | None:
    """P(first letter) / (P(first) + P(second)) at the verdict position; None when unreadable."""
    position = verdict_position(completion, letters)
    top = completion.top_logprobs or []
    if position is None or position >= len(top):
        return None
    probs = probabilities(top[position], letters)
    if probs is None:
        return None
    return probs[letters[0]] / (probs[letters[0]] + probs[letters[1]])


def voted_letter(text: str) -> str | None:
    """The first standalone A or B a sampled verdict wrote; None when it wrote neither."""
    match = _LETTER.search(text)
    return match.group(1) if match else None


def vote_share(texts: Sequence[str]) -> float | None:
    """Share of A among the samples that voted A or B; None when none did."""
    votes = [v for v in map(voted_letter, texts) if v is not None]
    return votes.count("A") / len(votes) if votes else None


def balanced_preference(forward_share_a: float, swapped_share_a: float) -> float:
    """P(the first answer is better), balanced position calibration (Wang et al. 2023, *Large
    Language Models are not Fair Evaluators*): the mean of the first answer's probability in the
    order that shows it as A and in the order that shows it as B."""
    return (forward_share_a + (1.0 - swapped_share_a)) / 2.0


def expected_score(completion: Completion, key: str, scale: Sequence[str] = SCORES) -> float | None:
    """G-Eval: the probability-weighted score written after ``"key":`` (sum of s * P(s) over the
    scale, normalized over the scale's tokens in the top-k); None when the position or the
    probabilities cannot be found."""
    tokens, top = completion.tokens or [], completion.top_logprobs or []
    text = "".join(tokens)
    match = re.search(rf'"{re.escape(key)}"\s*:\s*(\d)', text)
    if match is None:
        return None
    offset, end = match.start(1), 0
    for i, token in enumerate(tokens):
        end += len(token)
        if end > offset:
            if i >= len(top):
                return None
            probs = probabilities(top[i], scale, floor=False)
            if probs is None:
                return None
            total = sum(probs.values())
            return sum(float(s) * p for s, p in probs.items()) / total
    return None
