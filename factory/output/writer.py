"""Write ``datasets/<recipe>/``: parquet + jsonl per split, rejects, stats, and a dataset card.

Everything is written into a temporary folder beside the target and renamed into place at the
end, so a killed build never leaves a half-written dataset where a finished one is expected.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from factory.core.record import Record, Reject
from factory.recipe.spec import SplitSpec


def split_row(record: Record, spec: SplitSpec) -> dict[str, Any] | str:
    """One output row in TRL's conversational format, or the reason the record cannot fill it."""
    values = record.fields
    for col in spec.reads():
        if col in (spec.prompt, spec.chosen, spec.rejected, spec.completion) and \
                not isinstance(values.get(col), str):
            return f"not_text:{col}"
    system = [{"role": "system", "content": spec.system}] if spec.system else []
    if spec.format == "dpo":
        row: dict[str, Any] = {
            "id": record.id,
            "prompt": system + [{"role": "user", "content": values[spec.prompt]}],
            "chosen": [{"role": "assistant", "content": values[spec.chosen]}],
            "rejected": [{"role": "assistant", "content": values[spec.rejected]}]}
    elif spec.format == "sft":
        row = {"id": record.id, "messages": system + [
            {"role": "user", "content": values[spec.prompt]},
            {"role": "assistant", "content": values[spec.completion]}]}
    else:
        row = {"id": record.id}
    for col in spec.columns:
        row[col] = values.get(col)
    row["lineage"] = record.lineage()
    return row


def write_dataset(out_dir: Path, splits: dict[str, SplitSpec], kept: list[Record],
                  rejects: list[Reject], stats: dict[str, Any], card: str) -> dict[str, Any]:
    """Write all files; returns per-split row counts (also stored in stats.json)."""
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.*-*"):  # left by a build killed mid-write
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    split_counts: dict[str, Any] = {}
    reject_rows = [r.as_row() for r in rejects]
    for name, spec in splits.items():
        rows, skipped = [], Counter()
        for record in kept:
            row = split_row(record, spec)
            if isinstance(row, str):
                skipped[row] += 1
                reject_rows.append({"id": record.id, "step": f"split:{name}", "reason": row,
                                    "kind": "not_in_split", "fields": record.fields,
                                    "lineage": record.lineage()})
            else:
                rows.append(row)
        _write_split(tmp, name, rows, spec)
        split_counts[name] = {"rows": len(rows), "skipped": dict(sorted(skipped.items()))}
    stats = {**stats, "splits": split_counts}
    with (tmp / "rejects.jsonl").open("w", encoding="utf-8") as fh:
        for row in reject_rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    (tmp / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    (tmp / "README.md").write_text(card.replace("{split_table}", _split_table(split_counts)))
    _swap_into_place(tmp, out_dir)
    return split_counts


def _write_split(folder: Path, name: str, rows: list[dict[str, Any]], spec: SplitSpec) -> None:
    with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    table = pa.Table.from_pylist(rows) if rows else _empty_table(spec)
    pq.write_table(table, folder / f"{name}.parquet")


def _empty_table(spec: SplitSpec) -> pa.Table:
    """A zero-row table that still has the split's columns, so loaders see the right schema."""
    example = Record("", {c: "" for c in spec.reads()}, "", [], [])
    row = split_row(example, spec)
    assert isinstance(row, dict)
    row["lineage"] = {"recipe": "", "parent_ids": [""],
                      "steps": [{"step": "", "backend": "", "model": "", "prompt_hashes": [""]}]}
    return pa.Table.from_pylist([row]).slice(0, 0)


def _split_table(counts: dict[str, Any]) -> str:
    lines = ["| split | rows | file |", "|---|---|---|"]
    lines += [f"| {n} | {c['rows']} | `{n}.parquet`, `{n}.jsonl` |" for n, c in counts.items()]
    return "\n".join(lines)


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
