"""Read a factory dataset split and shape it for TRL: prompt/completion (SFT) or preference (DPO).

A dataset is a folder written by ``factory build`` (``sft.parquet``, ``dpo.parquet``) or one
``.parquet`` / ``.jsonl`` file. Columns decide the method; ``id`` and ``lineage`` are dropped before
training because TRL would try to tokenize or collate them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.verifiers import answer_text

PAIR_COLUMNS = ("prompt", "chosen", "rejected")
Row = dict[str, Any]


def detect_method(columns: set[str]) -> str | None:
    """'dpo' for preference pairs, 'sft' for conversations or instruction/response, else None."""
    if set(PAIR_COLUMNS) <= columns:
        return "dpo"
    if "messages" in columns or {"prompt", "completion"} <= columns or \
            {"instruction", "response"} <= columns:
        return "sft"
    return None


def dataset_file(path: Path, method: str | None = None) -> Path:
    """The split file to read: ``<dir>/<method>.parquet`` for a folder, else the file itself."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise FactoryError(f"dataset {path}: no such file or folder")
    names = [method] if method else ["sft", "dpo"]
    for name in names:
        for ext in ("parquet", "jsonl"):
            if (path / f"{name}.{ext}").exists():
                return path / f"{name}.{ext}"
    wanted = " or ".join(f"{n}.parquet" for n in names)
    raise FactoryError(f"dataset {path}: no {wanted} (build it with `factory build RECIPE`)")


def read_rows(file: Path) -> list[Row]:
    if file.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(file).to_pylist()
    if file.suffix == ".jsonl":
        lines = file.read_text(encoding="utf-8").splitlines()
        try:
            return [json.loads(line) for line in lines if line.strip()]
        except json.JSONDecodeError as exc:
            raise FactoryError(f"{file}:{exc.lineno}: not JSON: {exc.msg}") from None
    raise FactoryError(f"dataset {file}: expected .parquet or .jsonl")


def columns_of(file: Path, rows: list[Row]) -> set[str]:
    if file.suffix == ".parquet":  # the schema holds even for a zero-row split
        import pyarrow.parquet as pq

        return set(pq.read_schema(file).names)
    return set(rows[0]) if rows else set()


def load_split(path: Path, method: str) -> tuple[Path, list[Row]]:
    """Rows of the split for ``method``, checked: a clear error names the file and the columns."""
    file = dataset_file(path, method)
    rows = read_rows(file)
    columns = columns_of(file, rows)
    found = detect_method(columns)
    if method == "dpo" and found != "dpo" or method == "sft" and found is None:
        need = "prompt, chosen, rejected" if method == "dpo" else \
            "messages, or prompt + completion, or instruction + response"
        raise FactoryError(f"{file}: {method} needs columns {need}; it has {', '.join(sorted(columns))}")
    if not rows:
        raise FactoryError(f"{file}: no rows to train on")
    return file, rows


def _as_messages(value: Any, role: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [{"role": m["role"], "content": m["content"]} for m in value]


def to_prompt_completion(file: Path, rows: list[Row]) -> list[Row]:
    """Conversational prompt/completion rows: the last assistant turn is the completion.

    SmolLM2's chat template has no generation markers, so completion-only loss needs the split made
    here rather than by ``assistant_only_loss``.
    """
    out = []
    for i, row in enumerate(rows):
        if "messages" in row and row["messages"] is not None:
            messages = _as_messages(row["messages"], "user")
            last = max((k for k, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
            if last <= 0:
                raise FactoryError(f"{file}: row {i}: messages need a user turn then an assistant turn")
            out.append({"prompt": messages[:last], "completion": messages[last:last + 1]})
        elif "completion" in row:
            out.append({"prompt": _as_messages(row["prompt"], "user"),
                        "completion": _as_messages(row["completion"], "assistant")})
        else:
            out.append({"prompt": _as_messages(row["instruction"], "user"),
                        "completion": _as_messages(row["response"], "assistant")})
    return out


def to_preference(rows: list[Row]) -> list[Row]:
    return [{"prompt": _as_messages(r["prompt"], "user"),
             "chosen": _as_messages(r["chosen"], "assistant"),
             "rejected": _as_messages(r["rejected"], "assistant")} for r in rows]


def train_eval_split(rows: list[Row], eval_fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """A seeded shuffle; at least one eval row whenever there are two or more rows."""
    if eval_fraction <= 0 or len(rows) < 2:
        return rows, []
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    n_eval = min(len(rows) - 1, max(1, round(len(rows) * eval_fraction)))
    return shuffled[n_eval:], shuffled[:n_eval]


def target_texts(rows: list[Row], method: str) -> list[str]:
    """The text the loss learns from: completions (SFT), both answers (preference methods)."""
    keys = ("completion",) if method == "sft" else ("chosen", "rejected")
    return ["".join(m["content"] for m in row[k]) for row in rows for k in keys]


def load_prompts(path: Path, answer_column: str) -> tuple[Path, list[Row]]:
    """Rows for GRPO: a prompt (``prompt`` or ``messages``) and a verifiable answer column."""
    file = dataset_file(path, None) if path.is_file() else _first(path, ("grpo", "sft"))
    rows = read_rows(file)
    columns = columns_of(file, rows)
    if answer_column not in columns or not ({"prompt", "messages"} & columns):
        raise FactoryError(f"{file}: grpo needs a prompt (prompt or messages) and an answer column "
                           f"'{answer_column}'; it has {', '.join(sorted(columns))}")
    if not rows:
        raise FactoryError(f"{file}: no rows to train on")
    return file, rows


def _first(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        try:
            return dataset_file(folder, name)
        except FactoryError:
            continue
    raise FactoryError(f"dataset {folder}: no {' or '.join(n + '.parquet' for n in names)}")


def to_prompt_answer(file: Path, rows: list[Row], answer_column: str) -> list[Row]:
    """Conversational prompts (the turns before the first assistant answer) plus the answer."""
    out = []
    for i, row in enumerate(rows):
        if row.get("prompt") is not None:
            prompt = _as_messages(row["prompt"], "user")
        else:
            messages = _as_messages(row["messages"], "user")
            first = next((k for k, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
            prompt = messages[:first]
        if not prompt or row.get(answer_column) is None:
            raise FactoryError(f"{file}: row {i}: empty prompt or missing '{answer_column}'")
        # JSON for a list or mapping (a constraint list): the verifier reads it back as data.
        out.append({"prompt": prompt, "answer": answer_text(row[answer_column])})
    return out
