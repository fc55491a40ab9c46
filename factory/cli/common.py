"""What every ``factory`` command shares: the consoles, the one-line error guard, common options."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from factory.core.errors import FactoryError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


# How `factory qc` and `factory audit` read a dataset whose format is not detected.
FormatOption = Annotated[Optional[str], typer.Option(
    "--format", help="preference | conversation | prompt_completion | prompt_answer (default: detected)")]
PromptColumnOption = Annotated[Optional[str], typer.Option(
    "--prompt-column", help="the prompt column (default: detected)")]
ResponseColumnOption = Annotated[Optional[str], typer.Option(
    "--response-column", help="the response column (default: detected)")]
SplitOption = Annotated[Optional[str], typer.Option(
    "--split", help="only this split (a folder's <split>.parquet, or a Hugging Face split name)")]


# The request cache, as `factory build`, `eval` and `init` take it.
CacheOption = Annotated[Optional[Path], typer.Option(
    "--cache", help="request cache file (default: $FACTORY_CACHE_DIR or ~/.cache/factory)")]
NoCacheOption = Annotated[bool, typer.Option("--no-cache", help="neither read nor write the cache")]


def fail(message: str, code: int, label: str = "error") -> None:
    err.print(f"{label}: {message}", style="red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def debugging() -> bool:
    """``factory --debug ...`` (or FACTORY_DEBUG=1): tracebacks instead of one-line errors."""
    return bool(os.environ.get("FACTORY_DEBUG"))


def guard(fn: Callable[[], None]) -> None:
    """Known errors become one line and an exit code; a bug says how to see its traceback."""
    try:
        return fn()
    except FactoryError as exc:
        if debugging() and exc.__cause__ is not None:  # a crash inside a step: show where
            raise
        fail(str(exc), exc.exit_code, exc.label)
    except KeyboardInterrupt:
        err.print("interrupted: finished calls are cached, rerun to resume")
        raise typer.Exit(130)
    except (typer.Exit, SystemExit):
        raise
    except Exception as exc:
        if debugging():
            raise
        fail(f"{type(exc).__name__}: {exc} (rerun with --debug for the traceback)", 1)




def reasons(counts: dict[str, int]) -> str:
    """``reason n, reason n`` for a table cell, or 0."""
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "0"
