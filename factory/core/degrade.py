"""Degrade a good answer the ways small models fail, so that anyone can check a judge or a filter.

A degraded copy of a real answer is worse in a way any competent judge or quality filter should
catch: the sanity pairs ``factory judge-eval`` measures judges on (original preferred over its
degraded copy) and the corrupted rows the QC benchmark plants are both made here, from the same
kinds, deterministically from a seeded ``random.Random``.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# In-house filler sentences for the language switch (written for this project).
FOREIGN = (
    "Der Bericht wurde gestern Abend fertig, aber niemand hat ihn gelesen.",
    "Nous avons marché jusqu'à la gare avant que la pluie ne commence.",
    "El mercado abre temprano y cierra cuando se vende el último pan.",
    "Il treno per Milano parte dal binario tre tra dieci minuti.",
    "De kat sliep de hele middag in de zon op de vensterbank.",
    "A reunião foi adiada porque metade da equipe estava doente.",
)
# Debris a generation pipeline leaves behind: markup, half-closed JSON, template tokens.
DEBRIS = (
    '</div><div class="answer">', '{"id": 17, "text": "', "<|im_end|>\n<|im_start|>assistant\n",
    "]]></content>", "```json\n{\"response\": ", "&lt;br/&gt;&nbsp;", "<</SYS>> [/INST]",
)


def _words(text: str) -> list[str]:
    return text.split()


def repetition_loop(text: str, rng: random.Random, pool: Sequence[str] = ()) -> str:
    """The answer's start, then a 2-4 word phrase of it repeated 12-25 times (a degenerate loop)."""
    words = _words(text) or ["the", "answer", "is"]
    size = min(len(words), rng.randint(2, 4))
    start = rng.randrange(0, max(1, len(words) - size + 1))
    phrase = " ".join(words[start:start + size])
    lead = " ".join(words[:rng.randint(0, min(12, len(words)))])
    return (lead + " " if lead else "") + " ".join([phrase] * rng.randint(12, 25))


def truncated(text: str, rng: random.Random, pool: Sequence[str] = ()) -> str:
    """Cut mid-sentence at 30-70% of the words, no closing punctuation."""
    words = _words(text)
    if len(words) < 4:
        return " ".join(words[:1]).rstrip(".!?;:,")
    cut = max(1, int(len(words) * rng.uniform(0.3, 0.7)))
    return " ".join(words[:cut]).rstrip(".!?;:,\"')")


def other_answer(text: str, rng: random.Random, pool: Sequence[str] = ()) -> str:
    """A fluent answer to a different request."""
    others = [p for p in pool if p.strip() and p.strip() != text.strip()]
    if not others:
        raise ValueError("other_answer needs a pool of other answers")
    return rng.choice(others)


def shuffled_words(text: str, rng: random.Random, pool: Sequence[str] = ()) -> str:
    """The answer's own words in a random order."""
    words = _words(text)
    for _ in range(10):  # a short answer may shuffle back into itself
        rng.shuffle(words)
        if " ".join(words) != " ".join(_words(text)) or len(set(words)) < 2:
            break
    return " ".join(words)


def word_salad(text: str, rng: random.Random, pool: Sequence[str] = ()) -> str:
    """As many words as the answer has, drawn at random from other answers."""
    vocabulary = [w for p in pool if p.strip() != text.strip() for w in _words(p)] or _words(text)
    return " ".join(rng.choice(vocabulary) for _ in range(max(8, len(_words(text)))))


def char_noise(text: str, rng: random.Random, pool: Sequence[str] = (), share: float = 0.35) -> str:
    """About ``share`` of the non-space characters replaced by random letters, digits, punctuation."""
    alphabet = string.ascii_letters + string.digits + string.punctuation
    chars = list(text or "noise")
    for i, c in enumerate(chars):
        if not c.isspace() and rng.random() < share:
            chars[i] = rng.choice(alphabet)
    return "".join(chars)


def empty(text: str, rng: random.Random, pool: Sequence[str] = ()) -> str:
    return ""


def one_word(text: str, rng: random.Random, pool: Sequence[str] = ()) -> str:
    words = [w.strip(string.punctuation) for w in _words(text) if len(w.strip(string.punctuation)) > 2]
    return rng.choice(words) if words else "Yes"


def language_switch(text: str, rng: random.Random, pool: Sequence[str] = ()) -> str:
    """The answer's first third, then it goes on in another language."""
    words = _words(text)
    keep = " ".join(words[:max(1, len(words) // 3)])
    return keep + " " + " ".join(rng.sample(FOREIGN, k=3))


def markup_debris(text: str, rng: random.Random, pool: Sequence[str] = ()) -> str:
    """Pipeline debris (tags, half-closed JSON, chat-template tokens) spliced through the answer."""
    words = _words(text)
    for _ in range(rng.randint(3, 5)):
        words.insert(rng.randint(0, len(words)), rng.choice(DEBRIS))
    return " ".join(words)


Degrader = Callable[..., str]
KINDS: dict[str, Degrader] = {
    "repetition_loop": repetition_loop, "truncated": truncated, "other_answer": other_answer,
    "shuffled_words": shuffled_words, "word_salad": word_salad, "char_noise": char_noise,
    "empty": empty, "one_word": one_word, "language_switch": language_switch,
    "markup_debris": markup_debris,
}
# What a judge must catch on any data: the kinds ``factory judge-eval --sanity`` uses by default.
SANITY_KINDS = ("repetition_loop", "truncated", "other_answer", "shuffled_words", "empty")


def degrade(kind: str, text: str, rng: random.Random, pool: Sequence[str] = ()) -> str:
    """``text`` degraded as ``kind`` (a key of ``KINDS``); ``pool``: other answers, for the kinds
    that borrow from them."""
    if kind not in KINDS:
        raise ValueError(f"unknown degradation {kind!r}; known: {', '.join(KINDS)}")
    return KINDS[kind](text, rng, pool)


@dataclass(frozen=True)
class SanityPair:
    """A labelled pair: ``chosen`` is the real answer, ``rejected`` its degraded copy."""

    prompt: str
    chosen: str
    rejected: str
    kind: str
    source: int  # index of the (prompt, answer) row it was made from


def usable(answer: str) -> bool:
    """An answer sanity pairs can be made from: at least 8 words and one sentence end."""
    return len(_words(answer)) >= 8 and re.search(r"[.!?]", answer) is not None


def sanity_pairs(rows: Sequence[tuple[str, str]], kinds: Sequence[str] = SANITY_KINDS,
                 per_kind: int | None = None, seed: int = 0) -> list[SanityPair]:
    """For each kind, ``per_kind`` pairs (default: one per row) from rows with a usable answer
    (at least 8 words and one sentence end), each degraded copy different from its original."""
    usable_rows = [(i, p, a) for i, (p, a) in enumerate(rows) if usable(a)]
    pool = [a for _, _, a in usable_rows]
    out: list[SanityPair] = []
    for kind in kinds:
        rng = random.Random(f"{seed}/{kind}")
        chosen_rows = list(usable_rows)
        rng.shuffle(chosen_rows)
        for i, prompt, answer in chosen_rows[:per_kind] if per_kind else chosen_rows:
            bad = degrade(kind, answer, rng, pool)
            if bad.strip() != answer.strip():
                out.append(SanityPair(prompt, answer, bad, kind, i))
    return out
