"""``factory qc`` and ``factory audit`` on any dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from factory.cli.common import (
    FormatOption,
    PromptColumnOption,
    ResponseColumnOption,
    SplitOption,
    guard,
    out,
    reasons,
)
from factory.core.errors import FactoryError


def qc(
    dataset: Path = typer.Argument(..., help="jsonl/json/parquet/csv file, HF dataset folder, or a "
                                   "folder written by factory build"),
    chain: Optional[Path] = typer.Option(None, "--chain", help="chain YAML (default: "
                                         "filters/default.yaml, or filters/dpo.yaml for pairs)"),
    output: Optional[Path] = typer.Option(None, "--output", help="folder for the kept rows (a dataset: "
                                          "<split>.parquet + <split>.jsonl as read), rejects.jsonl, "
                                          "qc_stats.json (default: DATASET-qc)"),
    seeds: Optional[Path] = typer.Option(None, "--seeds", help="seed file for dedup-against-seeds "
                                         "and the drift check"),
    fmt: FormatOption = None,
    prompt_column: PromptColumnOption = None,
    response_column: ResponseColumnOption = None,
    split: SplitOption = None,
) -> None:
    """Run a QC chain on every split of a dataset: keep, drop (with reasons) and count."""

    def body() -> None:
        from filters.audit import run_dataset_chain
        from filters.dataset_io import load_dataset_splits
        from filters.qc_output import check_output, write_qc_outputs

        folder = output or dataset.with_name(dataset.stem + "-qc")
        check_output(dataset, folder)  # before the chain runs, not after
        runs = []
        for data in load_dataset_splits(dataset, fmt, prompt_column, response_column, split):
            result, chain_path = run_dataset_chain(data, chain, seeds, report_only=False)
            runs.append((data, result, chain_path))
        stats = write_qc_outputs(runs, dataset, folder)
        for name, summary in stats["splits"].items():
            written = "not written" if "not_written" in summary else f"{folder / name}.parquet"
            _print_qc(summary, f"{summary['source']} ({summary['format']}) with {summary['chain']} "
                               f"-> {written}")
            for note in summary["notes"] + [summary.get("not_written", "")]:
                if note:
                    out.print(f"{name}: {note}", markup=False, highlight=False)
        failed = [f"{name}: {s['gate_failed']}" for name, s in stats["splits"].items() if s["gate_failed"]]
        if failed:
            raise FactoryError("; ".join(failed))

    guard(body)


def audit(
    dataset: Path = typer.Argument(..., help="dataset file or folder (as for factory qc)"),
    output: Optional[Path] = typer.Option(None, "--output", help="HTML file (default: "
                                          "DATASET/audit.html or DATASET.audit.html)"),
    chain: Optional[Path] = typer.Option(None, "--chain", help="chain YAML (default by format)"),
    seeds: Optional[Path] = typer.Option(None, "--seeds", help="seed file for the drift check"),
    fmt: FormatOption = None,
    prompt_column: PromptColumnOption = None,
    response_column: ResponseColumnOption = None,
    split: SplitOption = None,
) -> None:
    """Report-only QC of one split, with one self-contained HTML page (plots, groups, a sample)."""

    def body() -> None:
        from filters.audit import audit as run_audit

        page, summary = run_audit(dataset, output, chain, seeds, fmt, prompt_column, response_column,
                                  split=split)
        _print_qc(summary, f"audit of {dataset} (report only: nothing removed)", True)
        for s in summary["diversity"]["sets"]:
            vendi = "n/a" if s.get("vendi") is None else s["vendi"]
            out.print(f"diversity: {s['side']} {s['column']} ({s['texts']} of {s['rows']} sampled): "
                      f"distinct-1 {s['distinct_1']}, distinct-2 {s['distinct_2']}, mean ROUGE-L "
                      f"{s['rouge_l_mean']}, Vendi {vendi}", markup=False, highlight=False)
        for name, why in summary["diversity"].get("missing", {}).items():
            out.print(f"diversity: {name} {why}", markup=False, highlight=False)
        from filters.agreement import describe

        agreement = summary.get("agreement") or {}
        for row in agreement.get("machine", []) + agreement.get("reviewers", []):
            out.print(f"agreement: {row['reviewer']} vs {row['rater']}: {describe(row)}", markup=False,
                      highlight=False)
        out.print(f"report: {page}", markup=False, highlight=False)

    guard(body)


def _print_qc(summary: dict, title: str, report_only: bool = False) -> None:
    from filters.base import figures_note

    table = Table(title=escape(title))  # "folder[train]" is not rich markup
    for col in ("filter", "in", "kept", "dropped", "failed", "rule / figures"):
        table.add_column(col, justify="left" if col in ("filter", "dropped", "failed", "rule / figures")
                         else "right")
    for name, f in summary["filters"].items():
        note = figures_note(f)
        table.add_row(name, str(f["in"]), str(f["kept"]), reasons(f["dropped"]), reasons(f["failed"]),
                      str(note))
    out.print(table)
    if report_only:
        out.print(f"records: {summary['input']}; would drop {summary['dropped']} times, "
                  f"{summary['failed']} failed (a record can be flagged by several filters)",
                  markup=False, highlight=False)
        return
    out.print(f"records: {summary['input']} in = {summary['kept']} kept + {summary['dropped']} dropped + "
              f"{summary['failed']} failed", markup=False, highlight=False)
