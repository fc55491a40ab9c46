"""Language filter: an answer that drifts into another language than its conversation's.

Small models switch language mid-answer. The expected language is the one langdetect finds in the
prompt and answer together (a short prompt alone is often misread: "Suggest a recipe for a vegan
dessert." comes out Catalan); each sentence of the answer with ``min_words`` words or more, and no
code or table characters, is detected on its own, and ``min_sentences`` sentences confidently
(``min_prob``) in another language drop the answer. A prompt whose request asks for a
translation, or that names the language (``in French``), allows it. langdetect is seeded
(``DetectorFactory.seed = 0``), so a text gets the same answer on every run; ~5 ms a sentence.
"""

from __future__ import annotations

import re
from collections import Counter

from factory.core.errors import FactoryError
from factory.core.record import Record
from factory.core.text import texts_with_prompts
from filters.base import Drop, Failed, Filter, Keep, QCContext, Verdict
from filters.config import LanguageBlock

SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
WORD = re.compile(r"[^\W\d_]{2,}")
CODE_OR_TABLE = re.compile(r"[|{}()\[\]<>=#/\\_`;:@$%*+]")
# langdetect's codes for the languages it knows -> English names a prompt would use.
NAMES = {
    "af": "afrikaans", "ar": "arabic", "bg": "bulgarian", "ca": "catalan", "cs": "czech", "cy": "welsh",
    "da": "danish", "de": "german", "el": "greek", "en": "english", "es": "spanish", "et": "estonian",
    "fa": "persian", "fi": "finnish", "fr": "french", "he": "hebrew", "hi": "hindi", "hr": "croatian",
    "hu": "hungarian", "id": "indonesian", "it": "italian", "ja": "japanese", "ko": "korean",
    "lt": "lithuanian", "lv": "latvian", "nl": "dutch", "no": "norwegian", "pl": "polish",
    "pt": "portuguese", "ro": "romanian", "ru": "russian", "sk": "slovak", "sl": "slovenian",
    "so": "somali", "sq": "albanian", "sv": "swedish", "sw": "swahili", "th": "thai", "tl": "tagalog",
    "tr": "turkish", "uk": "ukrainian", "vi": "vietnamese", "zh-cn": "chinese", "zh-tw": "chinese",
}


def _detector() -> object:
    try:
        from langdetect import DetectorFactory, detect_langs
    except ImportError as e:
        raise FactoryError("filter: language needs langdetect (pip install 'factory[qc]')") from e
    DetectorFactory.seed = 0  # langdetect samples n-grams at random: seeded, a text's answer is fixed
    return detect_langs


def top_language(text: str) -> tuple[str, float] | None:
    """(language code, probability) of the likeliest language, or None when nothing is detectable."""
    from langdetect.lang_detect_exception import LangDetectException

    try:
        best = _detector()(text)[0]  # type: ignore[operator]
    except LangDetectException:
        return None
    return best.lang, best.prob


def sentences(text: str, min_words: int) -> list[str]:
    """The sentences worth detecting: ``min_words`` words or more, no code or table characters."""
    return [s.strip() for s in SENTENCE.split(text)
            if len(WORD.findall(s)) >= min_words and not CODE_OR_TABLE.search(s)]


def allowed(prompt: str) -> set[str]:
    """Languages the prompt allows besides the expected one: those it names, and any when its
    request (the first paragraph: an input below it may merely be about translation) asks for a
    translation."""
    lower = prompt.lower()
    if re.search(r"translat|bilingual|multilingual", re.split(r"\n\s*\n", lower, maxsplit=1)[0]):
        return set(NAMES)
    return {code for code, name in NAMES.items() if re.search(rf"\b{name}\b", lower)}


def foreign_sentences(text: str, prompt: str,
                      block: LanguageBlock) -> tuple[str | None, list[tuple[str, str]]]:
    """(expected language, [(language, sentence)] for each sentence confidently in another one)."""
    expected = top_language(f"{prompt}\n{text}")
    if expected is None:
        return None, []
    ok = allowed(prompt) | {expected[0]}
    out = []
    for s in sentences(text, block.min_words):
        found = top_language(s)
        if found and found[0] not in ok and found[1] >= block.min_prob:
            out.append((found[0], s))
    return expected[0], out


class LanguageFilter(Filter):
    name = "language"

    def __init__(self, block: LanguageBlock) -> None:
        super().__init__()
        self.block = block
        _detector()  # a missing dependency fails before any record is read

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        texts, prompts, details = texts_with_prompts(records, b.column, b.prompt_column)
        fired: Counter = Counter()
        out: list[Verdict] = []
        for text, prompt, detail in zip(texts, prompts, details):
            if text is None or prompt is None:
                out.append(Failed(detail))
                continue
            expected, foreign = foreign_sentences(text, prompt, b)
            if len(foreign) < b.min_sentences:
                out.append(Keep(float(len(foreign))))
                continue
            fired[foreign[0][0]] += 1
            langs = ", ".join(sorted({lang for lang, _ in foreign}))
            out.append(Drop("language_switch", float(len(foreign)),
                            f"{len(foreign)} sentences in {langs}, not {expected}: {foreign[0][1][:60]!r}"))
        self.info = {"column": b.column, "rule": f"{b.min_sentences}+ sentences of {b.min_words}+ words "
                     f"in another language (langdetect p >= {b.min_prob:g}) than prompt + answer, unless "
                     "the prompt names it or asks for a translation", "fired": dict(sorted(fired.items()))}
        return out
