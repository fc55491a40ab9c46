"""One way to read a dataset: its split files, one format rule set, rows in the shapes callers need.

What a user points at: a folder written by ``factory build`` or ``factory qc`` (``<split>.parquet``
+ ``<split>.jsonl``), a Hugging Face dataset folder (``save_to_disk``, or data files ``datasets``
reads), or one .jsonl/.jsonl.gz/.json/.parquet/.csv file. Every split's columns get one rule set,
checked in this order (a split can be read in each format its columns allow):

- ``preference``: ``chosen`` + ``rejected``; ``prompt`` is optional: without it, two whole
  conversations (chat messages, or Anthropic HH ``\\n\\nHuman: ... \\n\\nAssistant: ...``
  transcripts) that share everything up to a user turn are a pair whose shared part is the prompt
  (TRL's implicit-prompt preference format).
- ``conversation``: ``messages`` or ``conversations`` (role/content, or ShareGPT from/value).
- ``prompt_completion``: a prompt-like column (prompt, instruction, question, query, input) and a
  completion-like one (completion, response, output).
- ``prompt_answer``: a prompt (prompt-like column or messages) and a verifiable ``answer`` (GRPO).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.text import as_text

Row = dict[str, Any]
FORMATS = ("preference", "conversation", "prompt_completion", "prompt_answer")
PROMPT_NAMES = ("prompt", "instruction", "question", "query", "input")
COMPLETION_NAMES = ("completion", "response", "output")
MESSAGE_NAMES = ("messages", "conversations")
ANSWER = "answer"
NOT_SPLITS = ("rejects",)  # written beside the splits by factory build and factory qc
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant"}
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")  # train-00000-of-00002.parquet: one split, many files
_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant): ?")


# ------------------------------------------------------------------------------------ finding


@dataclass
class Split:
    """One split as read: its rows, and its columns from the schema where there is one (0 rows)."""

    name: str
    source: str  # the file, or "folder[split]" for a Hugging Face folder: what errors name
    rows: list[Row]
    columns: list[str]
    schema: Any = None  # pyarrow schema (parquet, HF): kept rows are written back in these types

    def where(self, index: int) -> str:
        return f"{self.source}: row {index + 1}"

    def arrow_schema(self) -> Any:
        """The schema read, else the one arrow infers from every row (None when it cannot)."""
        if self.schema is not None:
            return self.schema
        import pyarrow as pa

        try:
            return pa.Table.from_pylist(self.rows).schema if self.rows else None
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None


def read_splits(path: Path) -> list[Split]:
    """Every split of a file or folder, sorted by name."""
    path = Path(path)
    if not path.exists():
        raise FactoryError(f"dataset {path}: no such file or folder")
    if path.is_file():
        return [_file_split(path)]
    files = _split_files(path)
    if files and not _is_hf_folder(path, files):
        return [_file_split(f) for f in files]
    if not files and unwritten(path):
        raise FactoryError(f"dataset {path}: no split has rows ({_absent(unwritten(path))})")
    return _hf_splits(path)


def unwritten(folder: Path) -> dict[str, str]:
    """Splits ``factory build`` / ``factory qc`` left out for having 0 rows (``datasets`` cannot
    load an empty split), with the reason their stats.json / qc_stats.json give."""
    out = {}
    for name in ("stats.json", "qc_stats.json"):
        try:
            splits = json.loads((folder / name).read_text()).get("splits", {})
        except (OSError, ValueError, AttributeError):
            continue
        out.update({k: v["not_written"] for k, v in splits.items()
                    if isinstance(v, dict) and isinstance(v.get("not_written"), str)})
    return out


def _absent(notes: dict[str, str]) -> str:
    return "; ".join(f"{name} not written: {why}" for name, why in notes.items())


def _split_files(folder: Path) -> list[Path]:
    """Top-level ``<name>.parquet`` / ``<name>.jsonl`` files, one per name (parquet first)."""
    chosen: dict[str, Path] = {}
    for suffix in (".jsonl", ".parquet"):  # parquet last: it replaces the jsonl of the same name
        for file in sorted(folder.glob(f"*{suffix}")):
            if file.stem not in NOT_SPLITS:
                chosen[file.stem] = file
    return [chosen[name] for name in sorted(chosen)]


def _is_hf_folder(folder: Path, files: list[Path]) -> bool:
    saved = any((folder / n).exists() for n in ("dataset_info.json", "dataset_dict.json", "state.json"))
    return saved or any(_SHARD.search(f.stem) for f in files)


def _file_split(file: Path) -> Split:
    from factory.core.rows import read_rows

    rows = read_rows(file)
    name = file.name.split(".")[0]
    if file.suffix.lower() == ".parquet":  # the schema holds even for a zero-row split
        import pyarrow.parquet as pq

        schema = pq.read_schema(file)
        return Split(name, str(file), rows, list(schema.names), schema)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return Split(name, str(file), rows, columns)


def _hf_splits(folder: Path) -> list[Split]:
    from factory.core.rows import load_hf_folder

    try:
        loaded = load_hf_folder(folder)
    except FactoryError:
        raise
    except Exception as exc:  # datasets' own message says what it could not read
        raise FactoryError(f"dataset {folder}: no <split>.parquet or <split>.jsonl here, and not a "
                           f"Hugging Face dataset folder ({type(exc).__name__}: {exc}); "
                           "make one with `factory build RECIPE`") from None
    parts = loaded.items() if hasattr(loaded, "keys") else [("train", loaded)]
    return [Split(name, f"{folder}[{name}]", ds.to_list(), list(ds.column_names),
                  ds.features.arrow_schema) for name, ds in sorted(parts)]


# ------------------------------------------------------------------------------------ format


@dataclass(frozen=True)
class Layout:
    """Which column holds what, and every format the columns allow (best first)."""

    formats: tuple[str, ...]
    prompt: str | None = None
    completion: str | None = None
    messages: str | None = None
    answer: str | None = None

    @property
    def format(self) -> str | None:
        return self.formats[0] if self.formats else None


def detect(columns: Iterable[str], prompt_column: str | None = None,
           response_column: str | None = None, answer_column: str | None = None) -> Layout:
    """The one format rule set; explicit column names replace the guessed ones."""
    cols = set(columns)
    for flag, name in (("--prompt-column", prompt_column), ("--response-column", response_column)):
        if name is not None and name not in cols:
            raise FactoryError(f"{flag} {name}: no such column; it has {', '.join(sorted(cols))}")
    prompt = prompt_column or next((c for c in PROMPT_NAMES if c in cols), None)
    completion = response_column or next((c for c in COMPLETION_NAMES if c in cols), None)
    messages = next((c for c in MESSAGE_NAMES if c in cols), None)
    answer = (answer_column or ANSWER) if (answer_column or ANSWER) in cols else None
    formats = [f for f, ok in (("preference", {"chosen", "rejected"} <= cols),
                               ("conversation", messages is not None),
                               ("prompt_completion", bool(prompt and completion)),
                               ("prompt_answer", bool((prompt or messages) and answer))) if ok]
    return Layout(tuple(formats), prompt, completion, messages, answer)


def describe(layout: Layout, fmt: str) -> str:
    """What a split holds, in words: 'preference pairs: prompt/chosen/rejected'."""
    if fmt == "preference":
        return "preference pairs: " + (f"{layout.prompt}/chosen/rejected" if layout.prompt else
                                       "chosen/rejected (the shared conversation is the prompt)")
    if fmt == "conversation":
        return f"conversations: {layout.messages}"
    if fmt == "prompt_completion":
        return f"prompt/completion: {layout.prompt}/{layout.completion}"
    return f"prompts with an answer: {layout.prompt or layout.messages}/{layout.answer}"


def choose_split(splits: Sequence[Split], formats: Collection[str], need: str,
                 prefer: Sequence[str] = (), absent: dict[str, str] | None = None,
                 **hints: str | None) -> tuple[Split, Layout, str]:
    """The first split (``prefer``-named first, then by name) readable in one of ``formats``;
    returns it, its layout and the format to read it in. ``need`` words the error, ``absent``
    (``unwritten``) says which splits are missing and why."""
    ordered = sorted(splits, key=lambda s: (prefer.index(s.name) if s.name in prefer else len(prefer),
                                            s.name))
    for split in ordered:
        layout = detect(split.columns, **hints)
        fmt = next((f for f in layout.formats if f in formats), None)
        if fmt is not None:
            return split, layout, fmt
    missing = f" ({_absent(absent)})" if absent else ""
    if len(ordered) == 1:
        raise FactoryError(f"{ordered[0].source}: {need}; it has "
                           f"{', '.join(ordered[0].columns) or 'no columns (no rows)'}{missing}")
    has = "; ".join(f"{s.source}: {', '.join(s.columns) or 'no columns (no rows)'}" for s in ordered)
    raise FactoryError(f"no split has what is needed: {need} ({has}){missing}")


# ------------------------------------------------------------------------------------ shapes


def _messages(value: Any, role: str, where: str, column: str) -> list[dict[str, str]]:
    """Text (one ``role`` turn), one message, or a list of messages -> role/content messages."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    items = [value] if isinstance(value, dict) else value
    if isinstance(items, list) and items and all(isinstance(m, dict) for m in items):
        out = []
        for m in items:
            who, content = m.get("role", m.get("from")), m.get("content", m.get("value"))
            if isinstance(who, str) and isinstance(content, str):
                out.append({"role": SHAREGPT_ROLES.get(who, who), "content": content})
            else:
                break
        else:
            return out
    raise FactoryError(f"{where}: '{column}' must be text or chat messages (role + content)")


def _transcript(text: str) -> list[dict[str, str]] | None:
    """An Anthropic HH transcript as messages; None when the text is not one."""
    parts = _TURN.split(text.lstrip("\n"))
    if len(parts) < 3 or parts[0].strip():
        return None
    return [{"role": "user" if who == "Human" else "assistant", "content": content.strip()}
            for who, content in zip(parts[1::2], parts[2::2])]


def _conversation(value: Any, where: str, column: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return _transcript(value) or [{"role": "assistant", "content": value}]
    return _messages(value, "assistant", where, column)


def _pair(row: Row, layout: Layout, where: str) -> tuple[list | None, list, list]:
    """(prompt, chosen, rejected) as messages; prompt None when there is none to find."""
    for column in ("chosen", "rejected"):
        if not isinstance(row.get(column), (str, list, dict)):
            raise FactoryError(f"{where}: 'chosen' and 'rejected' must be text or chat messages")
    if layout.prompt and row.get(layout.prompt) is not None:
        return (_messages(row[layout.prompt], "user", where, layout.prompt),
                _messages(row["chosen"], "assistant", where, "chosen"),
                _messages(row["rejected"], "assistant", where, "rejected"))
    chosen = _conversation(row["chosen"], where, "chosen")
    rejected = _conversation(row["rejected"], where, "rejected")
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    while shared and chosen[shared - 1]["role"] != "user":  # the prompt ends with the user's turn
        shared -= 1
    if not shared or shared >= min(len(chosen), len(rejected)):
        return None, chosen, rejected
    return chosen[:shared], chosen[shared:], rejected[shared:]


NO_PROMPT = ("no prompt: add a 'prompt' column, or give chosen and rejected as whole conversations "
             "that share everything up to the last user turn")


def preference_rows(split: Split, layout: Layout) -> list[Row]:
    """TRL conversational preference rows: prompt, chosen and rejected as chat messages."""
    out = []
    for i, row in enumerate(split.rows):
        prompt, chosen, rejected = _pair(row, layout, split.where(i))
        if prompt is None:
            raise FactoryError(f"{split.where(i)}: {NO_PROMPT}")
        out.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return out


def prompt_completion_rows(split: Split, layout: Layout) -> list[Row]:
    """TRL conversational prompt/completion rows; from a conversation, the last assistant turn is
    the completion (SmolLM2's template has no generation markers: the split is made here)."""
    out = []
    for i, row in enumerate(split.rows):
        where = split.where(i)
        if layout.messages and row.get(layout.messages) is not None:
            messages = _messages(row[layout.messages], "user", where, layout.messages)
            last = max((k for k, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
            if last <= 0:
                raise FactoryError(f"{where}: messages need a user turn then an assistant turn")
            out.append({"prompt": messages[:last], "completion": messages[last:last + 1]})
        elif layout.prompt and layout.completion:
            out.append({"prompt": _messages(row.get(layout.prompt), "user", where, layout.prompt),
                        "completion": _messages(row.get(layout.completion), "assistant", where,
                                                layout.completion)})
        else:
            raise FactoryError(f"{where}: no {layout.messages or 'messages'} in this row")
    return out


def prompt_answer_rows(split: Split, layout: Layout) -> list[Row]:
    """GRPO rows: conversational prompt (the turns before the first answer) plus the answer text."""
    out = []
    for i, row in enumerate(split.rows):
        where = split.where(i)
        if layout.prompt and row.get(layout.prompt) is not None:
            prompt = _messages(row[layout.prompt], "user", where, layout.prompt)
        elif layout.messages and row.get(layout.messages) is not None:
            messages = _messages(row[layout.messages], "user", where, layout.messages)
            first = next((k for k, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
            prompt = messages[:first]
        else:
            prompt = []
        if not prompt or layout.answer is None or row.get(layout.answer) is None:
            raise FactoryError(f"{where}: empty prompt or missing '{layout.answer or ANSWER}'")
        answer = row[layout.answer]  # a list or mapping (a constraint list) as JSON, read back as data
        out.append({"prompt": prompt, "answer": json.dumps(answer) if isinstance(answer, (list, dict))
                    else str(answer)})
    return out


def _last_user(messages: list[dict[str, str]] | None) -> str:
    users = [m["content"] for m in messages or [] if m["role"] == "user"]
    return users[-1] if users else ""


def text_rows(split: Split, layout: Layout, fmt: str) -> list[dict[str, str]]:
    """Plain text per row for QC: ``prompt`` and ``response`` (preference: also ``chosen`` and
    ``rejected``; response = chosen). The prompt is the last user turn."""
    out = []
    for i, row in enumerate(split.rows):
        where = split.where(i)
        if fmt == "preference":
            prompt, chosen, rejected = _pair(row, layout, where)
            good, bad = as_text(chosen) or "", as_text(rejected) or ""
            out.append({"prompt": _last_user(prompt), "chosen": good, "rejected": bad, "response": good})
        elif fmt == "conversation":
            messages = _messages(row.get(layout.messages), "user", where, str(layout.messages))
            last = max((k for k, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
            out.append({"prompt": _last_user(messages[:last]), "response": as_text(messages) or ""})
        else:
            column = layout.completion if fmt == "prompt_completion" else layout.answer
            source = layout.prompt if layout.prompt and row.get(layout.prompt) is not None else \
                layout.messages
            prompt, response = row.get(source or ""), _scalar_text(row.get(column))
            if not isinstance(prompt, (str, list, dict)) or response is None:
                raise FactoryError(f"{where}: columns {source!r} and {column!r} must hold text")
            messages = _messages(prompt, "user", where, str(source))
            out.append({"prompt": _last_user(messages), "response": response})
    return out


def judge_pair_texts(split: Split, layout: Layout) -> list[dict[str, Any]]:
    """Labelled pairs as a judge reads them: ``question`` (the user turn; for a multi-turn prompt,
    the conversation so far as ``User:`` / ``Assistant:`` lines), ``chosen`` and ``rejected``
    (the last answer's text) and ``turns`` (user turns in the prompt)."""
    out = []
    for i, row in enumerate(split.rows):
        where = split.where(i)
        prompt, chosen, rejected = _pair(row, layout, where)
        if not prompt:
            raise FactoryError(f"{where}: {NO_PROMPT}")
        users = sum(m["role"] == "user" for m in prompt)
        single = users == 1 and not any(m["role"] == "assistant" for m in prompt)
        question = _last_user(prompt) if single else "\n\n".join(
            f"{m['role'].capitalize()}: {m['content']}" for m in prompt if m["role"] != "system")
        out.append({"question": question, "chosen": as_text(chosen) or "", "rejected": as_text(rejected)
                    or "", "turns": users})
    return out


def _scalar_text(value: Any) -> str | None:
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else as_text(value)
