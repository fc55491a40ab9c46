"""Reading Self-Instruct answers: the numbered task continuation, yes/no, and task instances.

Plain functions on text, so each rule is tested without a model. The filters mirror the paper's
``post_process_gpt3_response`` (length, keywords a text model cannot serve, "Write a program",
leading punctuation or non-English characters); each returns a reason code, never a silent drop.
"""

from __future__ import annotations

import re
import string

# A list item: "Task 12:" anywhere, or at the start of a line "12.", "12)", "**Task 12:**", "- 3.".
_TASK_MARKER = re.compile(r"(?:^[ \t]*[-*#]*[ \t]*\d+[ \t]*[.):]"
                          r"|(?:^[ \t]*[-*#]*[ \t]*)?\bTask[ \t]*\d+[ \t]*[:.)])[ \t]*\**[ \t]*", re.M | re.I)
_EXAMPLE = re.compile(r"^[ \t]*\**Example[ \t]*\d+\**[ \t]*:?", re.M | re.I)
_INPUT = re.compile(r"Input\s*\d*\s*:", re.I)
_OUTPUT = re.compile(r"Output\s*\d*\s*:", re.I)
_LABEL = re.compile(r"Class\s*label\s*:", re.I)
_PAIR_START = re.compile(r"(?=^[ \t]*Input\s*\d*\s*:)", re.M | re.I)
_NEXT_TASK = re.compile(r"^[ \t]*Task\s*:", re.M | re.I)
_YES_NO = re.compile(r"^\W*(yes|no)\b", re.I)


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def parse_tasks(text: str) -> tuple[list[str], str | None]:
    """(instructions, chat preamble) from the model's continuation of "Task 9:".

    The text before the first marker is the task the prompt left open — unless it is a chat
    model's lead-in ("Here are more tasks:") followed by a list, which is returned separately.
    """
    head, *rest = _TASK_MARKER.split(text)
    head = collapse(head)
    preamble = None
    if head and rest and head.endswith(":"):
        preamble, head = head, ""
    tasks = [collapse(t) for t in [head, *rest]]
    return [t for t in tasks if t], preamble


def word_filter(instruction: str, min_words: int, max_words: int,
                blocked_words: list[str]) -> tuple[str, str] | None:
    """(reason, detail) when an instruction fails the paper's rule-based filters, else None."""
    words = instruction.split()
    if len(words) < min_words:
        return "too_short", f"{len(words)} words < {min_words}"
    if len(words) > max_words:
        return "too_long", f"{len(words)} words > {max_words}"
    for word in blocked_words:
        if re.search(rf"\b{re.escape(word)}\b", instruction, re.I):
            return "unsuitable_for_text_model", f"mentions {word!r}"
    if instruction.lower().startswith("write a program"):
        # The paper: the model appended "write a program" to many tasks, blurring whether the
        # output is the program or its result.
        return "write_a_program", "starts with 'Write a program'"
    if instruction[0] in string.punctuation:
        return "starts_with_punctuation", f"starts with {instruction[0]!r}"
    if not instruction[0].isascii():
        return "non_english_start", f"starts with {instruction[0]!r}"
    return None


def read_yes_no(text: str) -> bool | None:
    match = _YES_NO.match(text)
    return None if match is None else match.group(1).lower() == "yes"


def _cut_next_task(text: str) -> str:
    """The model may go on to invent the next "Task:"; only the answer to ours counts."""
    match = _NEXT_TASK.search(text)
    return text[:match.start()] if match else text


def parse_input_first(text: str) -> list[tuple[str, str] | str]:
    """One item per example: (input, output), or the raw chunk when it has no "Output:".

    Format: optional "Example N" headers, each with an optional "Input: ..." and an "Output: ...".
    """
    items: list[tuple[str, str] | str] = []
    # "Example N" headers are optional: a line starting with "Input:" also opens a new example.
    chunks = [c for block in _EXAMPLE.split(_cut_next_task(text)) for c in _PAIR_START.split(block)]
    for chunk in chunks:
        if not chunk.strip():
            continue
        parts = _OUTPUT.split(chunk, maxsplit=1)
        if len(parts) < 2:
            items.append(chunk.strip())
            continue
        given = _INPUT.sub("", parts[0], count=1).strip() if _INPUT.match(parts[0].strip()) \
            else parts[0].strip()
        answer = _INPUT.split(parts[1], maxsplit=1)[0].strip()  # a second pair without a header
        items.append((given, answer))
    return items


def parse_output_first(text: str) -> list[tuple[str, str] | str]:
    """One item per class label: (input, label), or the raw text when there is no "Class label:"."""
    head, *labelled = _LABEL.split(_cut_next_task(text))
    first, _, rest = head.strip().partition("\n")
    if first and len(first.split()) <= 8 and _INPUT.match(rest.strip()):
        # A chat reply starts right at the first label ("Positive\nInput: ..."): the prompt's
        # "Task: ...\n" ends where a completion model would have written "Class label:".
        labelled = [head.strip(), *labelled]
    elif not labelled:
        return [head.strip()] if head.strip() else []
    items: list[tuple[str, str] | str] = []
    for chunk in labelled:
        label, _, rest = chunk.lstrip(" \t").partition("\n")
        rest = _OUTPUT.split(rest, maxsplit=1)[0].strip()  # output-first has no "Output:" field
        given = _INPUT.sub("", rest, count=1).strip() if _INPUT.match(rest) else rest
        items.append((given, label.strip()))
    return items
