"""Seed rows from an inline list, a data file or dataset folder (``factory.core.rows``), or the
recipe task's train/test problems."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from factory.core.errors import FactoryError
from factory.core.rows import iter_rows
from factory.recipe.loader import LoadedRecipe
from factory.recipe.tasks import Problem, task_split


def load_seeds(loaded: LoadedRecipe, limit: int | None = None) -> list[dict[str, Any]]:
    """Every seed row in memory (QC's reference set, small tools); builds stream ``iter_seeds``."""
    return list(iter_seeds(loaded, limit))


def iter_seeds(loaded: LoadedRecipe, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The seed rows one at a time, in file order, the recipe's ``limit`` and ``--limit`` applied."""
    block = loaded.recipe.seeds
    rows: Iterator[dict[str, Any]]
    if block.task is not None:
        train, test = task_problems(loaded)
        rows = (p.row() for p in (train if block.task == "train" else test))
    elif block.rows is not None:
        rows = (dict(r) for r in block.rows)
    else:
        path = loaded.resolve(block.path or "")
        if not path.exists():
            raise loaded.error(("seeds", "path"), f"file not found: {path}")
        rows = iter_rows(path, block.split)
    for cap in (block.limit, limit):
        if cap is not None:
            rows = islice(rows, cap)
    return rows


@dataclass
class SeedScan:
    count: int
    columns: set[str]


def scan_seeds(loaded: LoadedRecipe, limit: int | None = None) -> SeedScan:
    """One streaming pass before any call: every row parses (a bad line fails the plan, naming it),
    how many rows there are (progress bars) and which columns they carry (the graph's wiring)."""
    count, columns = 0, set()
    for row in iter_seeds(loaded, limit):
        count += 1
        columns.update(row)
    block = loaded.recipe.seeds
    if count == 0 and block.task is None and block.rows is None:
        raise loaded.error(("seeds", "path"), f"no rows in {loaded.resolve(block.path or '')}")
    return SeedScan(count, columns)


def task_problems(loaded: LoadedRecipe) -> tuple[list[Problem], list[Problem]]:
    task = loaded.recipe.task
    assert task is not None
    try:
        train, test = task_split(task.family, task.train, task.test, task.seed, task.options,
                                 loaded.path.parent)
    except FactoryError as exc:
        raise loaded.error(("task",), str(exc)) from None
    held_out = {p.question for p in test}
    for i, step in enumerate(loaded.recipe.steps):  # a few-shot example must not give away a test answer
        for j, example in enumerate(getattr(step, "examples", [])):
            if example.user.strip() in held_out:
                raise loaded.error(("steps", i, "examples", j, "user"), "this example is a held-out "
                                   "test problem; pick another")
    return train, test
