"""User-facing errors: one line, no traceback, a fixed exit code."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_RUNTIME = 1  # the build started and failed (backend unavailable, bad data, a bug, disk)
EXIT_RECIPE = 2  # bad recipe: nothing was called
EXIT_BUDGET = 4  # --budget-usd reached
EXIT_FAILED_RECORDS = 5  # the dataset was written, but some records failed (a rerun retries them)
EXIT_REVIEW_PENDING = 6  # the build stopped after QC for people to review rows (factory review)
EXIT_REVIEW_FAILED = 7  # people kept fewer sampled rows than the recipe's review.min_keep_rate


class FactoryError(Exception):
    exit_code = EXIT_RUNTIME
    label = "error"  # the one line starts "<label>: "


class RecipeError(FactoryError):
    """``recipe.yaml:LINE: field.path: what is wrong (did you mean ...?)``"""

    exit_code = EXIT_RECIPE

    def __init__(self, file: str, line: int | None, path: str, message: str) -> None:
        self.file, self.line, self.path, self.message = file, line, path, message
        location = f"{file}:{line}" if line else file
        super().__init__(f"{location}: {path}: {message}" if path else f"{location}: {message}")


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """' (did you mean X?)' when a close option exists, else ''."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class BudgetExceeded(FactoryError):
    """--budget-usd reached: finished calls are cached, a rerun with a higher cap resumes."""

    exit_code = EXIT_BUDGET


class StepCrashed(FactoryError):
    """Step code raised (TypeError, KeyError, ...): a bug, not bad model output. The build stops
    rather than write a dataset that looks fine but silently lost records to it."""

    def __init__(self, step: str, record_id: str, exc: BaseException) -> None:
        what = f"record {record_id}" if record_id else "its records"
        super().__init__(f"step {step!r} crashed on {what}: {type(exc).__name__}: {exc}; nothing was "
                         "written (finished calls are cached); rerun with --debug for the traceback")


class RecordsFailed(FactoryError):
    """The build finished and wrote its dataset, but some records failed (backend errors)."""

    exit_code = EXIT_FAILED_RECORDS


class UsageError(FactoryError):
    """A bad command argument or a missing setting (a repo name, a token): nothing was done."""

    exit_code = EXIT_RECIPE


class ReviewPending(FactoryError):
    """The build's review gate: rows wait for people's verdicts; the next build applies them."""

    exit_code = EXIT_REVIEW_PENDING
    label = "review"


class ReviewFailed(FactoryError):
    """People kept fewer of the sampled rows than the recipe's ``review.min_keep_rate``."""

    exit_code = EXIT_REVIEW_FAILED
    label = "review failed"
