"""Writing one split the way every reader here reads it back (``dataset_files.read_splits``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from factory.core.dataset_files import Row


def write_split(folder: Path, name: str, rows: list[Row], schema: Any = None) -> list[str]:
    """``<name>.jsonl`` and ``<name>.parquet`` (in ``schema``'s types when given); returns notes.
    Callers leave a 0-row split out: ``datasets`` cannot load one (see ``unwritten``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    try:
        table = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # mixed types in one column: jsonl only
        return [f"{name}.parquet not written ({exc}); {name}.jsonl holds every row"]
    pq.write_table(table, folder / f"{name}.parquet")
    return []
