"""The constraint catalogue: every type's parameters, prompt phrasings, sampler and checker.

Ids and keyword names are IFEval's (Zhou et al. 2023) where the type is one of IFEval's, so a
record's constraints can also be scored by lm-eval, and IFEval-style data can be scored here. The
samplers and word lists are factory's own; the phrasings, ours too, are in ``phrasings.py``.
Checkers: lm-eval's classes, except the four hand-written ones in ``checks.py``. ``weight`` is
the share in the sampler's default mix; types with weight 0 (language, IFEval's langdetect case
checks) are checked but only sampled on request.
"""

from __future__ import annotations

import random
from typing import Any

import factory.core.constraints.checks as checks
import factory.core.constraints.fixes as fixes
import factory.core.constraints.words as words
from factory.core.constraints.phrasings import PHRASINGS as P
from factory.core.constraints.spec import ConstraintType, Param

RELATION = Param("choice", choices=("less than", "at least"))
NONE: dict[str, Param] = {}


def _keyword(rng: random.Random, prompt: str) -> str:
    """A word from the prompt half the time (likely in the answer), else one from the list."""
    own = words.content_words(prompt)
    return rng.choice(own) if own and rng.random() < 0.5 else rng.choice(words.KEYWORDS)


def _existence(rng: random.Random, prompt: str) -> dict[str, Any]:
    first = _keyword(rng, prompt)
    rest = [w for w in words.KEYWORDS if w != first]
    return {"keywords": [first] if rng.random() < 0.6 else [first, rng.choice(rest)]}


def _frequency(rng: random.Random, prompt: str) -> dict[str, Any]:
    own = words.content_words(prompt)
    if own and rng.random() < 0.5:  # a cap bites only on a word the answer is likely to repeat
        return {"keyword": rng.choice(own), "frequency": rng.randint(2, 3), "relation": "less than"}
    return {"keyword": _keyword(rng, prompt), "frequency": rng.randint(2, 3), "relation": "at least"}


def _forbidden(rng: random.Random, prompt: str) -> dict[str, Any] | None:
    own = words.content_words(prompt)  # words the answer is likely to reach for
    if not own:
        return None
    return {"forbidden_words": sorted(rng.sample(own, min(len(own), rng.randint(1, 2))))}


def _letter(rng: random.Random, prompt: str) -> dict[str, Any]:
    if rng.random() < 0.5:
        return {"letter": rng.choice(words.COMMON_LETTERS), "let_frequency": rng.randint(8, 20),
                "let_relation": "at least"}
    return {"letter": rng.choice(words.RARE_LETTERS), "let_frequency": rng.randint(1, 3),
            "let_relation": "less than"}


def _words(rng: random.Random, prompt: str) -> dict[str, Any]:
    if rng.random() < 0.6:
        return {"num_words": rng.choice((30, 40, 50, 60, 80, 100)), "relation": "less than"}
    return {"num_words": rng.choice((20, 30, 40, 50)), "relation": "at least"}


def _sentences(rng: random.Random, prompt: str) -> dict[str, Any]:
    if rng.random() < 0.5:
        return {"num_sentences": rng.randint(3, 6), "relation": "less than"}
    return {"num_sentences": rng.randint(2, 4), "relation": "at least"}


def _nth_paragraph(rng: random.Random, prompt: str) -> dict[str, Any]:
    n = rng.randint(2, 3)
    return {"num_paragraphs": n, "nth_paragraph": rng.randint(1, n),
            "first_word": rng.choice(words.OPENERS)}


def _capitals(rng: random.Random, prompt: str) -> dict[str, Any]:
    if rng.random() < 0.5:
        return {"capital_frequency": rng.randint(2, 4), "capital_relation": "at least"}
    return {"capital_frequency": rng.randint(2, 4), "capital_relation": "less than"}


def _yes_no(rng: random.Random, prompt: str) -> dict[str, Any] | None:
    """Only for a question that asks yes or no (IFEval's fixed options are yes / no / maybe)."""
    first = prompt.strip().split(maxsplit=1)[0].lower() if prompt.strip() else ""
    return {} if first in {"is", "are", "does", "do", "can", "should", "will", "was"} else None


def _fixed(**kwargs: Any):
    return lambda rng, prompt: dict(kwargs)


def _pick(name: str, options: tuple[Any, ...]):
    return lambda rng, prompt: {name: rng.choice(options)}


def _count(name: str, low: int, high: int):
    return lambda rng, prompt: {name: rng.randint(low, high)}


T = ConstraintType
TYPES: list[ConstraintType] = [
    # keywords
    T("keywords:existence", "include every listed word", {"keywords": Param("words")},
      P["keywords:existence"], _existence, weight=1.5,
      repair=fixes.existence),
    T("keywords:frequency", "a word at least / fewer than n times",
      {"keyword": Param("text"), "frequency": Param("int", 1, 50), "relation": RELATION},
      P["keywords:frequency"],
      _frequency, variant_by="relation", count="frequency",
      repair=fixes.frequency),
    T("keywords:forbidden_words", "none of the listed words", {"forbidden_words": Param("words")},
      P["keywords:forbidden_words"], _forbidden, weight=2.0,
      repair=fixes.forbidden),
    T("keywords:letter_frequency", "a letter at least / fewer than n times",
      {"letter": Param("letter"), "let_frequency": Param("int", 1, 1000), "let_relation": RELATION},
      P["keywords:letter_frequency"],
      _letter, variant_by="let_relation", count="let_frequency"),
    # length
    T("length_constraints:number_words", "fewer than / at least n words",
      {"num_words": Param("int", 1, 100_000), "relation": RELATION},
      P["length_constraints:number_words"],
      _words, weight=2.5, variant_by="relation", count="num_words",
      repair=fixes.cut_words),
    T("length_constraints:number_sentences", "fewer than / at least n sentences",
      {"num_sentences": Param("int", 1, 1000), "relation": RELATION},
      P["length_constraints:number_sentences"],
      _sentences, weight=2.0, variant_by="relation", count="num_sentences",
      repair=fixes.cut_sentences),
    T("length_constraints:number_paragraphs", "exactly n paragraphs split by ***",
      {"num_paragraphs": Param("int", 1, 100)},
      P["length_constraints:number_paragraphs"],
      _count("num_paragraphs", 2, 4),
      repair=fixes.paragraphs),
    T("length_constraints:nth_paragraph_first_word",
      "n paragraphs split by blank lines; paragraph i starts with a word",
      {"num_paragraphs": Param("int", 1, 100), "nth_paragraph": Param("int", 1, 100),
       "first_word": Param("text")},
      P["length_constraints:nth_paragraph_first_word"], _nth_paragraph, weight=0.5,
      repair=fixes.nth_paragraph),
    # detectable content
    T("detectable_content:number_placeholders", "at least n [placeholders]",
      {"num_placeholders": Param("int", 1, 100)},
      P["detectable_content:number_placeholders"], _count("num_placeholders", 1, 3),
      repair=fixes.placeholders),
    T("detectable_content:postscript", "a postscript starting with the marker",
      {"postscript_marker": Param("text")},
      P["detectable_content:postscript"],
      _pick("postscript_marker", words.POSTSCRIPT_MARKERS),
      repair=fixes.postscript),
    # detectable format
    T("detectable_format:number_bullet_lists", "exactly n * or - bullet points",
      {"num_bullets": Param("int", 1, 100)},
      P["detectable_format:number_bullet_lists"], _count("num_bullets", 2, 5), weight=2.0,
      repair=fixes.bullets),
    T("detectable_format:constrained_response", "contains 'My answer is yes./no./maybe.'", NONE,
      P["detectable_format:constrained_response"], _yes_no, alone=True,
      repair=fixes.constrained_response),
    T("detectable_format:number_highlighted_sections", "at least n *highlighted* spans",
      {"num_highlights": Param("int", 1, 100)},
      P["detectable_format:number_highlighted_sections"],
      _count("num_highlights", 1, 3), weight=1.5,
      repair=fixes.highlights),
    T("detectable_format:multiple_sections", "at least n sections marked 'Section 1', ...",
      {"section_spliter": Param("text"), "num_sections": Param("int", 1, 100)},
      P["detectable_format:multiple_sections"],
      lambda rng, p: {"section_spliter": rng.choice(words.SECTION_WORDS), "num_sections": rng.randint(2, 3)},
      repair=fixes.sections),
    T("detectable_format:json_format", "the whole answer is JSON", NONE,
      P["detectable_format:json_format"], _fixed(), alone=True,
      repair=fixes.json_wrap),
    T("detectable_format:title", "a title in <<double angle brackets>>", NONE,
      P["detectable_format:title"], _fixed(), weight=1.5,
      repair=fixes.title),
    T("detectable_format:numbered_list", "exactly n numbered lines (1. 2. ...)",
      {"num_items": Param("int", 1, 100)},
      P["detectable_format:numbered_list"],
      _count("num_items", 2, 5), check=checks.numbered_list, weight=2.0,
      repair=fixes.numbered),
    # combination
    T("combination:two_responses", "two different answers split by ******", NONE,
      P["combination:two_responses"],
      _fixed(), alone=True, weight=0.5,
      repair=fixes.two_responses),
    T("combination:repeat_prompt", "repeat the request word for word, then answer",
      {"prompt_to_repeat": Param("text")},
      P["combination:repeat_prompt"],
      lambda rng, prompt: {"prompt_to_repeat": prompt}, alone=True, weight=0.5,
      repair=fixes.repeat_prompt),
    # start / end
    T("startend:end_checker", "ends with an exact phrase", {"end_phrase": Param("text")},
      P["startend:end_checker"],
      _pick("end_phrase", words.END_PHRASES), weight=1.5,
      repair=fixes.end_phrase),
    T("startend:quotation", "the whole answer in double quotes", NONE,
      P["startend:quotation"], _fixed(), weight=1.5,
      repair=fixes.quotation),
    T("startend:start_phrase", "starts with an exact phrase", {"start_phrase": Param("text")},
      P["startend:start_phrase"],
      _pick("start_phrase", words.START_PHRASES), check=checks.start_phrase, weight=1.5,
      repair=fixes.start_phrase),
    # case
    T("change_case:capital_word_frequency", "at least / fewer than n ALL-CAPS words",
      {"capital_frequency": Param("int", 1, 1000), "capital_relation": RELATION},
      P["change_case:capital_word_frequency"],
      _capitals, variant_by="capital_relation", count="capital_frequency",
      repair=fixes.capital_words),
    T("change_case:lowercase", "no capital letters", NONE,
      P["change_case:lowercase"], _fixed(), check=checks.lowercase,
      repair=fixes.lowercase),
    T("change_case:uppercase", "capital letters only", NONE,
      P["change_case:uppercase"],
      _fixed(), check=checks.uppercase,
      repair=fixes.uppercase),
    T("change_case:english_lowercase", "IFEval's: lowercase and langdetect says English", NONE,
      P["change_case:english_lowercase"], _fixed(), weight=0,
      repair=fixes.lowercase),
    T("change_case:english_capital", "IFEval's: capitals and langdetect says English", NONE,
      P["change_case:english_capital"], _fixed(), weight=0,
      repair=fixes.uppercase),
    # punctuation
    T("punctuation:no_comma", "no commas", NONE,
      P["punctuation:no_comma"], _fixed(), weight=2.5,
      repair=fixes.no_comma),
    # language
    T("language:response_language", "the whole answer in a given language (langdetect)",
      {"language": Param("text")},
      P["language:response_language"],
      _pick("language", words.LANGUAGES), alone=True, weight=0),
]

CATALOG: dict[str, ConstraintType] = {t.id: t for t in TYPES}
assert len(CATALOG) == len(TYPES), "duplicate constraint id"
