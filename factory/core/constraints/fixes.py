"""Repairs: a program edits an answer so that it meets one constraint (AutoIF / verify-and-edit).

Each repair is ``(answer, kwargs, prompt) -> answer | None``; None means this answer cannot be
made to comply soundly (too few sentences to split, a length floor, a letter count). A repair
edits form only (case, commas, quotes, markers, layout, cuts at sentence boundaries) and never
writes content beyond fixed short phrases. Nothing here is trusted: ``repair.repair_answer``
re-checks every repaired answer with the constraint's checker (lm-eval's for IFEval ids).

``finish`` comes before any type repair: it drops repeated sentences and lines (a small model's
loops) and, for an answer cut off at the token cap, the unfinished tail after its last complete
sentence, so a repaired answer also teaches stopping.
"""

from __future__ import annotations

import json
import re
from typing import Any

from factory.core.constraints.words import content_words

_SENTENCE = re.compile(r"[^.!?\n]*[.!?]+[\"')\]]*|[^.!?\n]+$")
_END = re.compile(r"[.!?][\"')\]*]*(?=\s|$)")
_BULLET = re.compile(r"^\s*(?:[*\-]|\d+[.)])\s+")
PLACEHOLDERS = ("name", "date", "place", "time", "address", "amount")


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def sentences(text: str) -> list[str]:
    """The text's sentences in order (a line without end punctuation is one sentence)."""
    out = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        out += [s.strip() for s in _SENTENCE.findall(line) if s.strip()]
    return out


def finish(answer: str, truncated: bool) -> str:
    """Repeated sentences and lines dropped, and an unfinished tail: the last line's words after
    its last sentence end, or, if ``truncated`` (cut off at the cap), a last line with none."""
    seen: set[str] = set()
    lines: list[str] = []
    for line in answer.strip().splitlines():
        kept = []
        for part in _SENTENCE.findall(line) or [line]:
            key = _key(part)
            if key and key in seen and len(key) > 3:
                continue
            seen.add(key)
            kept.append(part.strip() if kept else part.rstrip())
        text = " ".join(kept).rstrip()
        if text or (lines and lines[-1]):  # keep one blank line between paragraphs
            lines.append(text)
    if lines:  # an unfinished tail: always after a sentence end, the whole line when cut off
        last = lines[-1]
        ends = list(_END.finditer(last))
        if ends:
            lines[-1] = last[:ends[-1].end()]
        elif truncated:
            lines[-1] = ""
    return "\n".join(lines).strip()


def _join_groups(parts: list[str], n: int, sep: str, heads: list[str] | None = None) -> str | None:
    """``parts`` in ``n`` contiguous non-empty groups joined by ``sep`` (each under its head)."""
    if len(parts) < n:
        return None
    size, extra = divmod(len(parts), n)
    groups, at = [], 0
    for i in range(n):
        take = size + (1 if i < extra else 0)
        body = " ".join(parts[at:at + take])
        groups.append(f"{heads[i]}\n{body}" if heads else body)
        at += take
    return sep.join(groups)


def lowercase(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    return answer.lower()


def uppercase(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    return answer.upper()


def no_comma(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    return re.sub(r" {2,}", " ", re.sub(r",\s*", " ", answer)).strip()


def quotation(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    return '"' + answer.strip().strip('"').strip() + '"'


def end_phrase(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    return answer.rstrip() + " " + kwargs["end_phrase"]


def start_phrase(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    body = answer.lstrip()
    # Above a list, heading or title the phrase takes its own line: joined, it would eat the first item.
    joiner = ":\n" if re.match(r"([*#-]|\d+[.)]|<<)", body) else ": "
    return f"{kwargs['start_phrase']}{joiner}{body}"


def postscript(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    return f"{answer.rstrip()}\n{kwargs['postscript_marker']} I hope this helps."


def title(answer: str, kwargs: dict[str, Any], prompt: str) -> str | None:
    words = content_words(prompt.split(".")[0])[:4] or content_words(answer)[:4]
    if not words:
        return None
    return f"<<{' '.join(w.capitalize() for w in words)}>>\n\n{answer.lstrip()}"


def repeat_prompt(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    return f"{kwargs['prompt_to_repeat'].strip()}\n\n{answer.lstrip()}"


def json_wrap(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    body = answer.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        json.loads(body)
        return body
    except ValueError:
        return json.dumps({"answer": answer.strip()}, ensure_ascii=False, indent=2)


def constrained_response(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    first = _key(answer).split(" ")[0] if _key(answer) else ""
    verdict = first if first in ("yes", "no") else "maybe"
    return f"My answer is {verdict}. {answer.strip()}"


def two_responses(answer: str, kwargs: dict[str, Any], prompt: str) -> str | None:
    return _join_groups(sentences(answer), 2, "\n******\n")


def paragraphs(answer: str, kwargs: dict[str, Any], prompt: str) -> str | None:
    return _join_groups(sentences(answer.replace("***", " ")), kwargs["num_paragraphs"], "\n\n***\n\n")


def nth_paragraph(answer: str, kwargs: dict[str, Any], prompt: str) -> str | None:
    n, nth, word = kwargs["num_paragraphs"], kwargs["nth_paragraph"], kwargs["first_word"]
    joined = _join_groups(sentences(answer), n, "\n\n")
    if joined is None:
        return None
    paras = joined.split("\n\n")
    body = paras[nth - 1]
    paras[nth - 1] = f"{word.capitalize()} {body[:1].lower()}{body[1:]}"
    return "\n\n".join(paras)


def sections(answer: str, kwargs: dict[str, Any], prompt: str) -> str | None:
    n, word = kwargs["num_sections"], kwargs["section_spliter"]
    return _join_groups(sentences(answer), n, "\n\n", [f"{word} {i}" for i in range(1, n + 1)])


def _items(answer: str, n: int) -> list[str] | None:
    lines = [_BULLET.sub("", ln).strip() for ln in answer.splitlines() if _BULLET.match(ln)]
    parts = lines if len(lines) >= n else sentences(answer)
    return parts[:n] if len(parts) >= n else None


def bullets(answer: str, kwargs: dict[str, Any], prompt: str) -> str | None:
    items = _items(answer, kwargs["num_bullets"])
    return None if items is None else "\n".join(f"* {item}" for item in items)


def numbered(answer: str, kwargs: dict[str, Any], prompt: str) -> str | None:
    items = _items(answer, kwargs["num_items"])
    return None if items is None else "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))


def highlights(answer: str, kwargs: dict[str, Any], prompt: str) -> str | None:
    """Wrap the first words of 5+ letters that do not open a line in *...*, until n are marked."""
    need = kwargs["num_highlights"] - len(re.findall(r"\*[^\n*]*[^\s*][^\n*]*\*", answer))
    if need <= 0:
        return answer
    out = []
    for line in answer.splitlines():
        def mark(m: re.Match) -> str:
            nonlocal need
            if need <= 0 or m.start() == 0 or line[:m.start()].strip() in ("", "*", "-"):
                return m.group(0)
            need -= 1
            return f"*{m.group(0)}*"
        out.append(re.sub(r"(?<![*\w])[A-Za-z]{5,}(?![*\w])", mark, line))
    return None if need > 0 else "\n".join(out)


def placeholders(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    need = kwargs["num_placeholders"] - len(re.findall(r"\[.*?\]", answer))
    if need <= 0:
        return answer
    names = " and ".join(f"[{p}]" for p in PLACEHOLDERS[:need])
    return f"{answer.rstrip()} Fill in {names}."


def existence(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    missing = [w for w in kwargs["keywords"] if not re.search(re.escape(w), answer, re.IGNORECASE)]
    if not missing:
        return answer
    return f"{answer.rstrip()} Key word{'s' if len(missing) > 1 else ''}: {' and '.join(missing)}."


def frequency(answer: str, kwargs: dict[str, Any], prompt: str) -> str | None:
    word, n = kwargs["keyword"], kwargs["frequency"]
    pattern = re.compile(re.escape(word), re.IGNORECASE)
    have = len(pattern.findall(answer))
    if kwargs["relation"] == "at least":
        if have >= n:
            return answer
        return answer.rstrip() + "".join(f" This is about {word}." for _ in range(n - have))
    seen = 0

    def drop(m: re.Match) -> str:
        nonlocal seen
        seen += 1
        return m.group(0) if seen < n else ""
    if not re.fullmatch(r"\w+", word):
        return None
    return re.sub(r" {2,}", " ", re.sub(rf"\b{re.escape(word)}\b", drop, answer, flags=re.IGNORECASE))


def forbidden(answer: str, kwargs: dict[str, Any], prompt: str) -> str:
    for word in kwargs["forbidden_words"]:
        answer = re.sub(rf" ?\b{re.escape(word)}\b", "", answer, flags=re.IGNORECASE)
    return answer.strip()


def capital_words(answer: str, kwargs: dict[str, Any], prompt: str) -> str | None:
    n = kwargs["capital_frequency"]
    if kwargs["capital_relation"] == "at least":
        done = 0

        def shout(m: re.Match) -> str:
            nonlocal done
            if done >= n or m.group(0).isupper():
                return m.group(0)
            done += 1
            return m.group(0).upper()
        already = len(re.findall(r"\b[A-Z]{2,}\b", answer))
        if already >= n:
            return answer
        n -= already
        return re.sub(r"\b[A-Za-z]{4,}\b", shout, answer)
    kept = 0

    def calm(m: re.Match) -> str:
        nonlocal kept
        kept += 1
        return m.group(0) if kept < n else m.group(0).capitalize()
    return re.sub(r"\b[A-Z]{2,}\b", calm, answer)


def cut_words(answer: str, kwargs: dict[str, Any], prompt: str) -> str | None:
    """Fewer than n words (lm-eval counts ``\\w+`` runs), cut after a whole sentence."""
    if kwargs["relation"] != "less than":
        return None
    limit = kwargs["num_words"] - 1
    return _cut(answer, lambda text: len(re.findall(r"\w+", text)) <= limit)


def cut_sentences(answer: str, kwargs: dict[str, Any], prompt: str) -> str | None:
    if kwargs["relation"] != "less than":
        return None
    limit = kwargs["num_sentences"] - 1
    return _cut(answer, lambda text: len(sentences(text)) <= limit)


def _cut(answer: str, fits: Any) -> str | None:
    """The longest prefix of whole sentences (line breaks kept) that ``fits``."""
    if fits(answer):
        return answer
    ends = [m.end() for m in _END.finditer(answer)] + [m.start() for m in re.finditer(r"\n", answer)]
    for end in sorted(set(ends), reverse=True):
        head = answer[:end].rstrip()
        if head and fits(head):
            return head
    return None
