"""Write ``datasets/<recipe>/``: parquet + jsonl per split, rejects, stats, and a dataset card.

Rows are written as the build's outcomes arrive (jsonl line by line, parquet in row groups), so
the kept records never need to be in memory together. Everything is written into a temporary
folder beside the target and renamed into place at the end, so a killed build never leaves a
half-written dataset where a finished one is expected.
People's work in the folder (``reviews.jsonl``) is carried into the new folder, never replaced.
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

# Files people write into a dataset folder (the review app's verdicts): every build carries them over.
CARRIED = ("reviews.jsonl",)
ROW_GROUP_BYTES = 16 << 20  # JSON text per parquet row group (its rows are held until written)


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


class SplitWriter:
    """One split, row by row: ``<name>.jsonl`` line by line and ``<name>.parquet`` in row groups of
    about ``ROW_GROUP_BYTES`` of JSON text, so only one group's rows are in memory at a time. A
    split that fits in one group is byte-identical to writing the whole table at once."""

    def __init__(self, folder: Path, name: str, spec: SplitSpec) -> None:
        self.name, self.spec = name, spec
        self.path = folder / f"{name}.parquet"
        self.jsonl_path = folder / f"{name}.jsonl"
        self.jsonl = self.jsonl_path.open("w", encoding="utf-8")
        # Records that cannot fill this split: they join rejects.jsonl after the engine's rejects.
        self.skips_path = folder / f".{name}.not_in_split.jsonl"
        self.skips = self.skips_path.open("w", encoding="utf-8")
        self.rows = 0
        self.skipped: Counter = Counter()
        self._group: list[dict[str, Any]] = []
        self._group_bytes = 0
        self._parquet: pq.ParquetWriter | None = None

    def add(self, record: Record) -> None:
        row = split_row(record, self.spec)
        if isinstance(row, str):
            self.skipped[row] += 1
            self.skips.write(_line({"id": record.id, "step": f"split:{self.name}", "reason": row,
                                    "kind": "not_in_split", "fields": record.fields,
                                    "lineage": record.lineage()}))
            return
        line = _line(row)
        self.jsonl.write(line)
        self.rows += 1
        self._group.append(row)
        self._group_bytes += len(line)
        if self._group_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def close(self) -> dict[str, Any]:
        """Finish both files; the split's row count and skip reasons. A split with no rows leaves no
        file (Hugging Face `datasets` cannot load a 0-row split file)."""
        self._flush()
        if self._parquet is not None:
            self._parquet.close()
        self.jsonl.close()
        self.skips.close()
        if not self.rows:
            self.jsonl_path.unlink()
        return {"rows": self.rows, "skipped": dict(sorted(self.skipped.items()))}

    def abort(self) -> None:
        for fh in (self.jsonl, self.skips, self._parquet):
            if fh is not None:
                fh.close()

    def _flush(self) -> None:
        if not self._group:
            return
        table = pa.Table.from_pylist(self._group)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        elif not table.schema.equals(self._parquet.schema, check_metadata=False):
            # A later group typed a column differently (a null column now has text, a struct gained
            # a key): widen the file's schema, rewriting the groups written so far if needed.
            schema = pa.unify_schemas([self._parquet.schema, table.schema], promote_options="permissive")
            if not schema.equals(self._parquet.schema, check_metadata=False):
                self._rewrite(schema)
            table = pa.Table.from_pylist(self._group, schema=schema)
        self._parquet.write_table(table)
        self._group, self._group_bytes = [], 0

    def _rewrite(self, schema: pa.Schema) -> None:
        assert self._parquet is not None
        self._parquet.close()
        old = self.path.with_name(self.path.name + ".narrow")
        self.path.rename(old)
        self._parquet = pq.ParquetWriter(self.path, schema)
        written = pq.ParquetFile(old)
        for i in range(written.num_row_groups):  # the same row groups, in the wider schema
            rows = written.read_row_group(i).to_pylist()
            self._parquet.write_table(pa.Table.from_pylist(rows, schema=schema))
        written.close()
        old.unlink()


class DatasetWriter:
    """``datasets/<recipe>/`` written as the ordered outcomes arrive: split rows and rejects go to
    files at once, so a build never holds its kept records. Everything lands in a temporary folder
    beside the target, renamed into place by ``finish``."""

    def __init__(self, out_dir: Path, splits: dict[str, SplitSpec]) -> None:
        self.out_dir = out_dir.resolve()
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        for stale in sorted(self.out_dir.parent.glob(f".{self.out_dir.name}.old-*")):
            if not self.out_dir.exists():  # killed between the two renames: the last dataset comes back
                stale.rename(self.out_dir)
        for stale in self.out_dir.parent.glob(f".{self.out_dir.name}.*-*"):  # a build killed mid-write
            shutil.rmtree(stale, ignore_errors=True)
        self.tmp = self.out_dir.parent / f".{self.out_dir.name}.tmp-{os.getpid()}"
        self.tmp.mkdir()
        self.rejects = (self.tmp / "rejects.jsonl").open("w", encoding="utf-8")
        self.splits = {name: SplitWriter(self.tmp, name, spec) for name, spec in splits.items()}
        self.kept = 0

    def add(self, outcome: Record | Reject) -> None:
        if isinstance(outcome, Reject):
            self.rejects.write(_line(outcome.as_row()))
            return
        self.kept += 1
        for split in self.splits.values():
            split.add(outcome)

    def finish(self, stats: dict[str, Any], card: str,
               extra_files: dict[str, str] | None = None) -> dict[str, Any]:
        """Close every file, write stats, card and ``extra_files`` (name -> text), move the folder
        into place; per-split counts (also stored in stats.json)."""
        split_counts = {name: split.close() for name, split in self.splits.items()}
        for name, counts in split_counts.items():  # no file: say why in stats.json and the card
            if not counts["rows"]:
                counts["not_written"] = _why_empty(self.kept, self.splits[name].skipped, stats)
        for split in self.splits.values():  # rows no split could take, after the engine's rejects
            with split.skips_path.open(encoding="utf-8") as fh:
                shutil.copyfileobj(fh, self.rejects)
            split.skips_path.unlink()
        self.rejects.close()
        stats = {**stats, "splits": split_counts}
        (self.tmp / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
        (self.tmp / "README.md").write_text(card.replace("{split_configs}", split_configs(split_counts))
                                            .replace("{split_table}", _split_table(split_counts)))
        for name, text in (extra_files or {}).items():
            (self.tmp / name).write_text(text, encoding="utf-8")
        _swap_into_place(self.tmp, self.out_dir)
        return split_counts

    def abort(self) -> None:
        """The build failed: close and remove the temporary folder (nothing moves into place)."""
        for split in self.splits.values():
            split.abort()
        self.rejects.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_dataset(out_dir: Path, splits: dict[str, SplitSpec], kept: list[Record],
                  rejects: list[Reject], stats: dict[str, Any], card: str,
                  extra_files: dict[str, str] | None = None) -> dict[str, Any]:
    """Write all files from lists at once (and ``extra_files``: name -> text); returns per-split row
    counts (also stored in stats.json)."""
    writer = DatasetWriter(out_dir, splits)
    try:
        for outcome in [*rejects, *kept]:
            writer.add(outcome)
        return writer.finish(stats, card, extra_files)
    except BaseException:
        writer.abort()
        raise


def _line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=str) + "\n"


def _why_empty(kept: int, skipped: Counter, stats: dict[str, Any]) -> str:
    """One line for stats.json and the card: why a split has no rows, so it has no file."""
    if kept and skipped:
        reasons = ", ".join(f"{reason} {n}" for reason, n in skipped.most_common())
        return f"0 rows: every kept record lacked a text column this split needs ({reasons})"
    by_step = stats.get("totals", {}).get("dropped_by_step", {})
    drops = [(f"{step}: {reason}", n) for step, counts in by_step.items() for reason, n in counts.items()]
    top = ", ".join(f"{what} {n}" for what, n in sorted(drops, key=lambda d: -d[1])[:3])
    return "0 rows: no record was kept" + (f" (dropped: {top})" if top else "")


def split_configs(counts: dict[str, Any]) -> str:
    """The card header's ``configs:`` (one per written split; an empty split has no file to name)."""
    configs = [f"- config_name: {name}\n  data_files:\n  - split: train\n    path: {name}.parquet"
               for name, c in counts.items() if c["rows"]]
    return "configs:\n" + "\n".join(configs) if configs else ""


def _split_table(counts: dict[str, Any]) -> str:
    lines = ["| split | rows | file |", "|---|---|---|"]
    lines += [f"| {n} | {c['rows']} | " + (f"`{n}.parquet`, `{n}.jsonl` |" if c["rows"] else
                                           f"not written: {c['not_written']} |") for n, c in counts.items()]
    return "\n".join(lines)


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    copied = {}
    for name in CARRIED:
        if (out_dir / name).exists():
            data = (out_dir / name).read_bytes()
            (tmp / name).write_bytes(data)
            copied[name] = len(data)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    for name, size in copied.items():  # lines a running review app appended between copy and rename
        late = (old / name).read_bytes()[size:]
        if late:
            with (out_dir / name).open("ab") as fh:
                fh.write(late)
    shutil.rmtree(old, ignore_errors=True)
