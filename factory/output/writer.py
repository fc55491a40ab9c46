"""Write ``datasets/<recipe>/``: parquet + jsonl per split, rejects, stats, and a dataset card.

Everything is written into a temporary folder beside the target and renamed into place at the
end, so a killed build never leaves a half-written dataset where a finished one is expected.
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
                  rejects: list[Reject], stats: dict[str, Any], card: str,
                  extra_files: dict[str, str] | None = None) -> dict[str, Any]:
    """Write all files (and ``extra_files``: name -> text); returns per-split row counts (also
    stored in stats.json)."""
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in sorted(out_dir.parent.glob(f".{out_dir.name}.old-*")):
        if not out_dir.exists():  # killed between the two renames: the last finished dataset comes back
            stale.rename(out_dir)
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
        split_counts[name] = {"rows": len(rows), "skipped": dict(sorted(skipped.items()))}
        if rows:
            _write_split(tmp, name, rows)
        else:  # Hugging Face `datasets` cannot load a 0-row split file: leave it out and say why
            split_counts[name]["not_written"] = _why_empty(len(kept), skipped, stats)
    stats = {**stats, "splits": split_counts}
    with (tmp / "rejects.jsonl").open("w", encoding="utf-8") as fh:
        for row in reject_rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    (tmp / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    (tmp / "README.md").write_text(card.replace("{split_configs}", split_configs(split_counts))
                                   .replace("{split_table}", _split_table(split_counts)))
    for name, text in (extra_files or {}).items():
        (tmp / name).write_text(text, encoding="utf-8")
    _swap_into_place(tmp, out_dir)
    return split_counts


def _write_split(folder: Path, name: str, rows: list[dict[str, Any]]) -> None:
    with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    pq.write_table(pa.Table.from_pylist(rows), folder / f"{name}.parquet")


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
