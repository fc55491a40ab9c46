"""Read any dataset for ``factory qc`` / ``factory audit`` and give every row plain text columns.

Inputs: a .jsonl/.json/.parquet/.csv file, a Hugging Face dataset folder, or a folder written by
``factory build`` (its dpo split, else sft, else the first split). Formats, auto-detected:
- ``dpo``: prompt / chosen / rejected (strings or chat messages)
- ``sft``: ``messages`` (the last assistant turn is the response, the user turn before it the prompt)
- ``columns``: an instruction-like and a response-like column (or given by name)
Each record gets text columns ``prompt`` and ``response`` (dpo: response = chosen) beside its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.record import Record
from factory.core.text import as_text

PROMPT_NAMES = ("prompt", "instruction", "question", "query", "input")
RESPONSE_NAMES = ("response", "output", "completion", "answer", "chosen")
FORMATS = ("dpo", "sft", "columns")


@dataclass
class LoadedDataset:
    path: Path
    format: str
    records: list[Record]
    rows: list[dict[str, Any]]  # as read, aligned with records: what `factory qc` writes back


def read_dataset_rows(path: Path) -> list[dict[str, Any]]:
    from factory.core.rows import read_rows

    if not path.exists():
        raise FactoryError(f"{path}: not found")
    if path.is_dir():
        for name in ("dpo.parquet", "sft.parquet"):
            if (path / name).exists():  # a factory build folder
                return read_rows(path / name)
        built = sorted(p for p in path.glob("*.parquet"))
        if built and not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
            return read_rows(built[0])
    return read_rows(path)


def detect_format(columns: set[str]) -> str:
    if {"prompt", "chosen", "rejected"} <= columns or {"chosen", "rejected"} <= columns:
        return "dpo"
    if "messages" in columns or "conversations" in columns:
        return "sft"
    return "columns"


def _last_user(messages: Any) -> str | None:
    if not isinstance(messages, list):
        return as_text(messages)
    users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users and isinstance(users[-1], str) else None


def load_dataset_records(path: str | Path, fmt: str | None = None, prompt_column: str | None = None,
                         response_column: str | None = None) -> LoadedDataset:
    path = Path(path)
    rows = read_dataset_rows(path)
    if not rows:
        raise FactoryError(f"{path}: no rows")
    columns = set().union(*(r.keys() for r in rows[:100]))
    fmt = fmt or detect_format(columns)
    if fmt not in FORMATS:
        raise FactoryError(f"--format {fmt}: one of {', '.join(FORMATS)}")
    pcol = prompt_column or next((c for c in PROMPT_NAMES if c in columns), None)
    rcol = response_column or next((c for c in RESPONSE_NAMES if c in columns), None)
    if fmt == "columns" and (pcol is None or rcol is None):
        raise FactoryError(f"{path}: cannot tell the prompt and response columns among "
                           f"{sorted(columns)}; pass --prompt-column and --response-column")
    records = []
    for i, row in enumerate(rows):
        fields = {k: v for k, v in row.items() if k not in ("lineage",)}
        where = f"{path}: row {i + 1}"
        if fmt == "dpo":
            prompt = _last_user(row.get(pcol or "prompt")) if (pcol or "prompt") in row else ""
            chosen, rejected = as_text(row.get("chosen")), as_text(row.get("rejected"))
            if chosen is None or rejected is None:
                raise FactoryError(f"{where}: 'chosen' and 'rejected' must be text or chat messages")
            fields.update(prompt=prompt or "", chosen=chosen, rejected=rejected, response=chosen)
        elif fmt == "sft":
            messages = row.get("messages", row.get("conversations"))
            if not isinstance(messages, list):
                raise FactoryError(f"{where}: 'messages' must be a list of chat messages")
            fields.update(prompt=_last_user(messages) or "", response=as_text(messages) or "")
        else:
            prompt, response = as_text(row.get(pcol)), as_text(row.get(rcol))
            if prompt is None or response is None:
                raise FactoryError(f"{where}: columns {pcol!r} and {rcol!r} must hold text")
            fields.update(prompt=prompt, response=response)
        rid = str(row["id"]) if isinstance(row.get("id"), (str, int)) else f"row{i + 1}"
        records.append(Record(rid, fields, path.name))
    return LoadedDataset(path, fmt, records, rows)


def default_chain_path(fmt: str) -> Path:
    """``filters/dpo.yaml`` for preference data, ``filters/default.yaml`` otherwise."""
    here = Path(__file__).resolve().parent
    return here / ("dpo.yaml" if fmt == "dpo" else "default.yaml")
