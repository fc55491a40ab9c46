"""User-facing errors: one line, no traceback, a fixed exit code."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_RECIPE = 2  # bad recipe: nothing was called
EXIT_RUNTIME = 1  # the build started and failed (backend unavailable, bad data, disk)


class FactoryError(Exception):
    exit_code = EXIT_RUNTIME


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

    exit_code = 4
