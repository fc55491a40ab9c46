"""Column values -> text. Records from a build hold strings; datasets on disk may hold chat lists."""

from __future__ import annotations

from typing import Any

from factory.core.record import Record


class NoText(ValueError):
    """The record has no usable text in the column (the chain counts it as failed, with this)."""


def as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        # A chat: the last assistant turn is the response; with none, every turn's content joined.
        answers = [m.get("content") for m in value if m.get("role") == "assistant"]
        if answers and isinstance(answers[-1], str):
            return answers[-1]
        parts = [m.get("content") for m in value if isinstance(m.get("content"), str)]
        return "\n".join(parts) if parts else None
    return None


def text_of(record: Record, column: str) -> str:
    if column not in record.fields or record.fields[column] is None:
        raise NoText(f"record {record.id}: no column {column!r}")
    text = as_text(record.fields[column])
    if text is None:
        raise NoText(f"record {record.id}: column {column!r} is not text "
                     f"({type(record.fields[column]).__name__})")
    return text


def texts_or_failures(records: list[Record], column: str) -> tuple[list[str | None], list[str]]:
    """Texts aligned with records (None where missing) and the failure detail for each None."""
    texts: list[str | None] = []
    details: list[str] = []
    for r in records:
        try:
            texts.append(text_of(r, column))
            details.append("")
        except NoText as exc:
            texts.append(None)
            details.append(str(exc))
    return texts, details


def texts_with_prompts(records: list[Record], column: str, prompt_column: str | None
                       ) -> tuple[list[str | None], list[str | None], list[str]]:
    """Texts and their prompts aligned with records ("" for every prompt without a prompt column),
    None where either is missing, and the failure detail for each record with a None."""
    texts, details = texts_or_failures(records, column)
    if not prompt_column:
        return texts, [""] * len(records), details
    prompts, pdetails = texts_or_failures(records, prompt_column)
    return texts, prompts, [d or p for d, p in zip(details, pdetails)]
