"""Rows of a data file: .jsonl (.jsonl.gz), .json, .parquet, .csv, or a Hugging Face dataset folder.

The one reader behind seeds, ``factory qc`` / ``audit`` / ``train`` and eval sets; a bad row is an
error naming the file and the line. ``iter_rows`` reads lazily (line by line, parquet batch by
batch), so a million seed rows never need to sit in memory at once.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from factory.core.errors import RecipeError

SUPPORTED = ".jsonl, .json, .parquet, .csv, or a Hugging Face dataset folder"
BATCH = 4096  # parquet / dataset rows converted to Python at a time


def read_rows(path: Path, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of a data file or dataset folder; a bad row is an error naming the file and line."""
    return list(iter_rows(path, split))


def iter_rows(path: Path, split: str | None = None) -> Iterator[dict[str, Any]]:
    """``read_rows``, one row at a time; an unsupported file fails before the first row."""
    if path.is_dir():
        return _hf_folder(path, split)
    suffix = path.suffix.lower()
    if suffix == ".jsonl" or path.name.lower().endswith(".jsonl.gz"):
        return _jsonl(path)
    if suffix == ".json":
        return iter(_json_list(path))
    if suffix == ".parquet":
        return _parquet(path)
    if suffix == ".csv":
        return _csv(path)
    raise RecipeError(str(path), None, "", f"unsupported seed file type {suffix!r}; use {SUPPORTED}")


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opened = gzip.open(path, "rt", encoding="utf-8") if path.suffix.lower() == ".gz" else \
        path.open(encoding="utf-8")
    with opened as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = _json_value(path, line.rstrip("\r\n"), number)  # an error at its end is on this line
            if not isinstance(row, dict):
                raise RecipeError(str(path), number, "", "each line must be a JSON object")
            yield row


def _json_list(path: Path) -> list[dict[str, Any]]:
    data = _json_value(path, path.read_text(encoding="utf-8"), 1)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise RecipeError(str(path), 1, "", "a .json seed file holds a list of objects")
    return data


def _parquet(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH):
        yield from batch.to_pylist()


def _csv(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            yield dict(row)


def _json_value(path: Path, text: str, line: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecipeError(str(path), line + exc.lineno - 1, "", f"invalid JSON: {exc.msg}") from None


def load_hf_folder(path: Path) -> Any:
    """A ``datasets.Dataset`` or ``DatasetDict``: ``save_to_disk`` output, or data files."""
    try:
        import datasets
    except ImportError:
        raise RecipeError(str(path), None, "", "reading a dataset folder needs the 'datasets' "
                          "package: pip install datasets") from None
    saved = (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()
    return datasets.load_from_disk(str(path)) if saved else datasets.load_dataset(str(path))


def _hf_folder(path: Path, split: str | None) -> Iterator[dict[str, Any]]:
    ds = load_hf_folder(path)
    if hasattr(ds, "keys"):  # a DatasetDict
        name = split or ("train" if "train" in ds else next(iter(ds)))
        if name not in ds:
            raise RecipeError(str(path), None, "", f"no split {name!r}; has {sorted(ds)}")
        ds = ds[name]
    return _dataset_rows(ds)


def _dataset_rows(ds: Any) -> Iterator[dict[str, Any]]:
    table = ds.with_format("arrow")  # memory-mapped: only one slice at a time becomes Python objects
    for start in range(0, len(ds), BATCH):
        yield from table[start:start + BATCH].to_pylist()
