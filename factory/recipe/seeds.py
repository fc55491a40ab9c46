"""Seed rows from an inline list, a data file or dataset folder (``factory.core.rows``), or the
recipe task's train/test problems."""

from __future__ import annotations

from typing import Any

from factory.core.errors import FactoryError
from factory.core.rows import read_rows
from factory.recipe.loader import LoadedRecipe
from factory.recipe.tasks import Problem, task_split


def load_seeds(loaded: LoadedRecipe, limit: int | None = None) -> list[dict[str, Any]]:
    block = loaded.recipe.seeds
    if block.task is not None:
        train, test = task_problems(loaded)
        rows = [p.row() for p in (train if block.task == "train" else test)]
    elif block.rows is not None:
        rows = [dict(r) for r in block.rows]
    else:
        path = loaded.resolve(block.path or "")
        if not path.exists():
            raise loaded.error(("seeds", "path"), f"file not found: {path}")
        rows = read_rows(path, block.split)
        if not rows:
            raise loaded.error(("seeds", "path"), f"no rows in {path}")
    for cap in (block.limit, limit):
        if cap is not None:
            rows = rows[:cap]
    return rows


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
