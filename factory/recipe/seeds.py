"""Seed rows from an inline list, a data file or dataset folder (``factory.core.rows``), or the
recipe task's train/test problems, with the ``samplers:`` columns drawn per row (or, with no seed
file, rows made of sampled columns alone: ``samplers.count`` of them)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from factory.core.errors import FactoryError
from factory.core.rows import iter_rows
from factory.recipe.loader import LoadedRecipe
from factory.recipe.samplers import Pools, check_samplers, iter_sampled, needs_drafting, sample_row
from factory.recipe.tasks import Problem, task_split


def load_seeds(loaded: LoadedRecipe, limit: int | None = None, seed: int | None = None,
               pools: Pools | None = None) -> list[dict[str, Any]]:
    """Every seed row in memory (QC's reference set, small tools); builds stream ``iter_seeds``."""
    return list(iter_seeds(loaded, limit, seed, pools))


def iter_seeds(loaded: LoadedRecipe, limit: int | None = None, seed: int | None = None,
               pools: Pools | None = None) -> Iterator[dict[str, Any]]:
    """The seed rows one at a time, in file order, the recipe's ``limit`` and ``--limit`` applied,
    each with its sampled columns (``seed``: the build's global seed; ``pools``: the persona and
    topic-tree values, which drafted samplers need)."""
    recipe = loaded.recipe
    seed = recipe.seed if seed is None else seed
    pools = pools or {}
    samplers = recipe.samplers
    undrafted = [s.name for s in needs_drafting(samplers) if s.name not in pools]
    if undrafted:
        raise RuntimeError(f"samplers {undrafted} are not drafted yet (factory.recipe.sampler_draft)")
    block = recipe.seeds
    if block is None:
        assert samplers is not None and samplers.count is not None
        return iter_sampled(samplers, pools, seed, _capped(samplers.count, limit))
    rows = _seed_file_rows(loaded, limit)
    if samplers is not None and samplers.columns:
        rows = ({**row, **sample_row(samplers, pools, seed, i)} for i, row in enumerate(rows))
    return rows


def _capped(count: int, limit: int | None) -> int:
    return count if limit is None else min(count, limit)


def _seed_file_rows(loaded: LoadedRecipe, limit: int | None) -> Iterator[dict[str, Any]]:
    block = loaded.recipe.seeds
    assert block is not None
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
    pools: Pools = field(default_factory=dict)  # sampler values read from files (personas)


def scan_seeds(loaded: LoadedRecipe, limit: int | None = None) -> SeedScan:
    """One streaming pass before any call: every row parses (a bad line fails the plan, naming it),
    how many rows there are (progress bars) and which columns they carry (the graph's wiring).
    Sampled columns are known from the recipe: they are checked here, not drawn."""
    block = loaded.recipe.seeds
    samplers = loaded.recipe.samplers
    count, columns = 0, set()
    if block is None:
        assert samplers is not None and samplers.count is not None
        count = _capped(samplers.count, limit)
    else:
        for row in _seed_file_rows(loaded, limit):
            count += 1
            columns.update(row)
        if count == 0 and block.task is None and block.rows is None:
            raise loaded.error(("seeds", "path"), f"no rows in {loaded.resolve(block.path or '')}")
    pools = check_samplers(loaded, columns)
    if samplers is not None:
        columns.update(samplers.sampled_columns())
    return SeedScan(count, columns, pools)


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
