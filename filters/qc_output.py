"""What ``factory qc`` writes: a folder that is itself a dataset, like the one it read.

Per split: ``<split>.parquet`` + ``<split>.jsonl`` with the kept rows exactly as read (the input's
columns and types, ``id`` and ``lineage``); beside them ``rejects.jsonl`` (split, row, filter,
reason, score), ``qc_stats.json`` and a README.md whose ``configs`` let
``datasets.load_dataset(folder, "<split>")`` load a split by name. A split that loses every row is
left out, as ``factory build`` leaves out an empty split (``datasets`` cannot load one), and
qc_stats.json and the card say why. Written into a temporary folder and renamed into place, so a
killed run never leaves half a dataset.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from factory.core.dataset_writer import write_split
from factory.core.errors import FactoryError
from filters.base import QCResult
from filters.dataset_io import LoadedDataset

QCRun = tuple[LoadedDataset, QCResult, Path]  # a split, what the chain did to it, the chain file


def check_output(source: Path, out_dir: Path) -> None:
    """Refuse to replace a folder qc did not write, or the dataset being read."""
    source, out_dir = source.resolve(), out_dir.resolve()
    if source == out_dir or out_dir in source.parents:
        raise FactoryError(f"--output {out_dir}: holds the input {source}; choose another folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "qc_stats.json").exists():
        raise FactoryError(f"--output {out_dir}: exists and was not written by factory qc; "
                           "choose a new folder")


def write_qc_outputs(runs: list[QCRun], source: Path, out_dir: Path) -> dict[str, Any]:
    """Write every split's kept rows, the rejects, the stats and the card; returns the stats."""
    check_output(source, out_dir)
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    stats: dict[str, Any] = {"input": str(source), "splits": {}}
    with (tmp / "rejects.jsonl").open("w", encoding="utf-8") as fh:
        for dataset, result, chain in runs:
            name = dataset.split.name
            position = {id(r): i for i, r in enumerate(dataset.records)}
            kept = [dataset.rows[position[id(r)]] for r in result.kept]
            notes = write_split(tmp, name, kept, dataset.split.arrow_schema()) if kept else []
            for rej in result.rejects:
                row = {"split": name, "row": position[id(rej.record)] + 1, **rej.as_row()}
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            stats["splits"][name] = {"source": dataset.split.source, "format": dataset.format,
                                     "chain": str(chain), "notes": notes,
                                     **result.summary(len(dataset.records))}
            if not kept:
                stats["splits"][name]["not_written"] = _why_empty(result)
    (tmp / "qc_stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    (tmp / "README.md").write_text(_card(stats, tmp))
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return stats


def _why_empty(result: QCResult) -> str:
    reasons = Counter(f"{r.step.removeprefix('qc.')}: {r.reason}" for r in result.rejects)
    top = ", ".join(f"{what} {n}" for what, n in reasons.most_common(3))
    return f"0 rows: QC dropped every row ({top})"


def _card(stats: dict[str, Any], folder: Path) -> str:
    configs, lines = [], []
    for name, s in stats["splits"].items():
        file = f"{name}.parquet" if (folder / f"{name}.parquet").exists() else f"{name}.jsonl"
        if "not_written" not in s:  # no config may name a file that is not there
            configs.append(f"- config_name: {name}\n  data_files:\n  - split: train\n    path: {file}")
        lines.append(f"| {name} | {s['format']} | `{Path(s['chain']).name}` | {s['input']} | {s['kept']} "
                     f"| {s['dropped']} | {s['failed']} | {s.get('not_written', f'`{file}`')} |")
    header = "configs:\n" + "\n".join(configs) + "\n" if configs else ""
    return ("---\n" + header + "tags:\n- factory\n---\n\n"
            f"# QC of `{stats['input']}`\n\nWritten by `factory qc`: each split keeps the rows the chain "
            "kept, exactly as read; dropped rows are in `rejects.jsonl` with their filter and reason.\n\n"
            "| split | format | chain | in | kept | dropped | failed | file |\n" + "|---" * 8 + "|\n"
            + "\n".join(lines) + "\n")
