"""``factory qc`` and ``factory audit`` on any dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from factory.cli.common import FormatOption, PromptColumnOption, ResponseColumnOption, guard, out, reasons
from factory.core.errors import FactoryError


def qc(
    dataset: Path = typer.Argument(..., help="jsonl/json/parquet/csv file, HF dataset folder, or a "
                                   "folder written by factory build"),
    chain: Optional[Path] = typer.Option(None, "--chain", help="chain YAML (default: "
                                         "filters/default.yaml, or filters/dpo.yaml for pairs)"),
    output: Optional[Path] = typer.Option(None, "--output", help="folder for kept.jsonl, "
                                          "rejects.jsonl, qc_stats.json (default: DATASET-qc)"),
    seeds: Optional[Path] = typer.Option(None, "--seeds", help="seed file for dedup-against-seeds "
                                         "and the drift check"),
    fmt: FormatOption = None,
    prompt_column: PromptColumnOption = None,
    response_column: ResponseColumnOption = None,
) -> None:
    """Run a QC chain on an existing dataset: keep, drop (with reasons) and count."""

    def body() -> None:
        from filters.audit import run_dataset_chain, write_qc_outputs
        from filters.dataset_io import load_dataset_records

        data = load_dataset_records(dataset, fmt, prompt_column, response_column)
        result, chain_path = run_dataset_chain(data, chain, seeds, report_only=False)
        folder = output or dataset.with_name(dataset.stem + "-qc")
        summary = write_qc_outputs(data, result, folder)
        _print_qc(summary, f"{dataset} ({data.format}) with {chain_path} -> {folder}")
        if summary["gate_failed"]:
            raise FactoryError(summary["gate_failed"])

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
) -> None:
    """Report-only QC with one self-contained HTML page (plots, groups, a sample to review)."""

    def body() -> None:
        from filters.audit import audit as run_audit

        page, summary = run_audit(dataset, output, chain, seeds, fmt, prompt_column, response_column)
        _print_qc(summary, f"audit of {dataset} (report only: nothing removed)", True)
        from filters.agreement import describe

        agreement = summary.get("agreement") or {}
        for row in agreement.get("machine", []) + agreement.get("reviewers", []):
            out.print(f"agreement: {row['reviewer']} vs {row['rater']}: {describe(row)}", markup=False,
                      highlight=False)
        out.print(f"report: {page}", markup=False, highlight=False)

    guard(body)


def _print_qc(summary: dict, title: str, report_only: bool = False) -> None:
    table = Table(title=title)
    for col in ("filter", "in", "kept", "dropped", "failed", "rule / figures"):
        table.add_column(col, justify="left" if col in ("filter", "dropped", "failed", "rule / figures")
                         else "right")
    for name, f in summary["filters"].items():
        note = f.get("message") or f.get("rule") or ""
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
