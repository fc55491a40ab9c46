"""Datasets for ``factory qc`` / ``factory audit``: each split as records with plain text columns.

Splits and formats come from ``factory.core.dataset_files`` (the one reader and format rule set);
each record gets ``prompt`` and ``response`` text (preference pairs: also ``chosen`` and
``rejected``; response = chosen) beside its own columns, for the filters to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.core.dataset_files import FORMATS, Split, choose_split, detect, read_splits, text_rows
from factory.core.errors import FactoryError
from factory.core.record import Record

OLD_NAMES = {"dpo": "preference", "sft": "conversation", "columns": "prompt_completion"}


@dataclass
class LoadedDataset:
    path: Path  # what the user named
    split: Split
    format: str
    records: list[Record]

    @property
    def rows(self) -> list[dict[str, Any]]:  # as read, aligned with records: what `factory qc` writes
        return self.split.rows


def load_dataset_splits(path: str | Path, fmt: str | None = None, prompt_column: str | None = None,
                        response_column: str | None = None,
                        split: str | None = None) -> list[LoadedDataset]:
    """Every split of the dataset (or only ``split``), each read in its detected format."""
    path = Path(path)
    formats = _formats(fmt)
    splits = read_splits(path)
    if split is not None:
        splits = [s for s in splits if s.name == split]
        if not splits:
            raise FactoryError(f"--split {split}: {path} has splits "
                               f"{', '.join(s.name for s in read_splits(path))}")
    return [_load(path, s, formats, prompt_column, response_column) for s in splits]


def load_dataset_records(path: str | Path, fmt: str | None = None, prompt_column: str | None = None,
                         response_column: str | None = None,
                         split: str | None = None) -> LoadedDataset:
    """One split: ``split``, else the first by format (pairs, conversations, ...), then name."""
    path = Path(path)
    if split is not None:
        return load_dataset_splits(path, fmt, prompt_column, response_column, split)[0]
    splits = read_splits(path)
    best = min(splits, key=lambda s: (_rank(s, prompt_column, response_column), s.name))
    return _load(path, best, _formats(fmt), prompt_column, response_column)


def _rank(split: Split, prompt_column: str | None, response_column: str | None) -> int:
    try:
        found = detect(split.columns, prompt_column, response_column).format
    except FactoryError:
        found = None
    return FORMATS.index(found) if found else len(FORMATS)


def _formats(fmt: str | None) -> tuple[str, ...]:
    if fmt is None:
        return FORMATS
    fmt = OLD_NAMES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise FactoryError(f"--format {fmt}: one of {', '.join(FORMATS)}")
    return (fmt,)


def _load(path: Path, split: Split, formats: tuple[str, ...], prompt_column: str | None,
          response_column: str | None) -> LoadedDataset:
    need = f"--format {formats[0]}: its columns do not fit" if len(formats) == 1 else \
        "cannot tell the prompt and response columns (pass --prompt-column and --response-column)"
    split, layout, fmt = choose_split([split], formats, need, prompt_column=prompt_column,
                                      response_column=response_column)
    if not split.rows:
        raise FactoryError(f"{split.source}: no rows")
    records = []
    for i, (row, texts) in enumerate(zip(split.rows, text_rows(split, layout, fmt))):
        fields = {k: v for k, v in row.items() if k != "lineage"}
        fields.update(texts)
        rid = str(row["id"]) if isinstance(row.get("id"), (str, int)) else f"row{i + 1}"
        records.append(Record(rid, fields, Path(split.source).name))
    return LoadedDataset(path, split, fmt, records)


def default_chain_path(fmt: str) -> Path:
    """``filters/dpo.yaml`` for preference pairs, ``filters/default.yaml`` otherwise."""
    here = Path(__file__).resolve().parent
    return here / ("dpo.yaml" if fmt == "preference" else "default.yaml")
