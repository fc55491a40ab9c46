"""``factory review`` (the local review app) and ``factory push`` (a dataset to the Hugging Face Hub)."""

from __future__ import annotations

import asyncio
import sys
import webbrowser
from pathlib import Path
from typing import Optional

import typer

from factory.cli.common import FormatOption, PromptColumnOption, ResponseColumnOption, guard, out


def review(
    dataset: Path = typer.Argument(..., help="dataset folder (factory build output) or file, as for "
                                   "factory qc"),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="port on 127.0.0.1 (0: any free one)"),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="your name (else the page asks)"),
    fraction: float = typer.Option(0.05, "--fraction", min=0.0001, max=1.0, help="share of rows in the "
                                   "random sample (a new queue only)"),
    min_rows: int = typer.Option(20, "--min-rows", min=1, help="sample at least this many rows"),
    borderline: int = typer.Option(10, "--borderline", min=0, help="also this many rows nearest a cut line"),
    stratify: Optional[list[str]] = typer.Option(None, "--stratify", help="column to stratify by "
                                                 "(repeatable; default: category when present)"),
    seed: int = typer.Option(0, "--seed", help="seed of the random sample"),
    chain: Optional[Path] = typer.Option(None, "--chain", help="run this QC chain report-only for cut "
                                         "lines and QC verdicts (a new queue only)"),
    seeds: Optional[Path] = typer.Option(None, "--seeds", help="seed file for the chain's drift/dedup"),
    fmt: FormatOption = None,
    prompt_column: PromptColumnOption = None,
    response_column: ResponseColumnOption = None,
    open_browser: bool = typer.Option(False, "--open", help="open the page in the default browser"),
) -> None:
    """Review a sample of a dataset in the browser: keep, drop or edit rows, by keyboard."""
    from factory.review.server import ReviewServer, progress, reviewer_name, serve
    from factory.review.session import SampleOptions, open_session

    def body() -> None:
        name = reviewer_name(reviewer)
        opts = SampleOptions(fraction, min_rows, borderline, list(stratify or []), seed, chain, seeds, fmt,
                             prompt_column, response_column)
        session = open_session(dataset, opts)
        rows = session.queue["rows"]
        groups = {g: sum(r["group"] == g for r in rows) for g in ("sample", "borderline")}
        say(f"review queue: {len(rows)} rows ({groups['sample']} sampled, {groups['borderline']} borderline) "
            f"in {session.queue_path}" + ("" if session.made_queue else " (the existing queue: the sampling "
                                             "options apply to a new one; delete the file to draw again)"))
        say(f"verdicts go to {session.reviews_path} as they are given")

        def ready(url: str) -> None:
            link = url + (f"?reviewer={name}" if name else "")
            say(f"review app: {link}  (Ctrl+C stops it; nothing is lost)")
            if open_browser:
                webbrowser.open(link)

        try:
            asyncio.run(serve(ReviewServer(session, name), port, ready))
        except KeyboardInterrupt:
            done = ", ".join(f"{who} {n}/{len(rows)}" for who, n in sorted(progress(session).items()))
            say(f"stopped; reviewed: {done or 'nothing yet'}")

    guard(body)


def push(
    dataset: Path = typer.Argument(..., help="dataset folder written by factory build"),
    repo: str = typer.Option(..., "--repo", help="OWNER/NAME of the dataset repo on the Hub"),
    private: bool = typer.Option(False, "--private", help="create the repo private"),
    rejects: bool = typer.Option(False, "--rejects", help="also upload rejects.jsonl"),
) -> None:
    """Upload a dataset, its card and (optionally) its rejects to the Hugging Face Hub (token: HF_TOKEN)."""
    from factory.publish import push_dataset

    def body() -> None:
        done = push_dataset(dataset, repo, private, rejects)
        size = f"{done.bytes / 1024:.1f} KiB"
        say(f"pushed {len(done.files)} files ({size}: {', '.join(done.files)}) to {done.url} "
            f"({done.visibility}), commit {done.commit[:12]}")

    guard(body)


def say(line: str) -> None:
    out.print(line, markup=False, highlight=False)
    sys.stdout.flush()
