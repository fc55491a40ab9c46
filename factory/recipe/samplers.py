"""Seed columns drawn from the recipe's ``samplers:`` axes, deterministic per (seed, row index).

Each row's values come from private RNGs keyed by (global seed, row index, column): row 41 is the
same whether it is drawn alone, in a stream of a million rows or with ``--limit 50``, and another
``--seed`` draws other rows. Nothing is held but the value pools: rows are made lazily.

Persona and topic-tree samplers need pools the backend drafts once (``factory.recipe.sampler_draft``);
a persona file is read here, at planning time.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

from factory.core.rows import iter_rows
from factory.recipe.loader import LoadedRecipe
from factory.recipe.samplers_spec import (
    CategorySampler,
    GridSampler,
    NumericSampler,
    PersonaSampler,
    SamplersBlock,
    SubcategorySampler,
    TopicTreeSampler,
    choices,
)

# Drafted or file-read values per sampler name: persona -> [text], topic_tree -> [path tuple].
Pools = dict[str, list[Any]]
PATH_SEPARATOR = " > "


def rng_for(seed: int, index: int, column: str) -> random.Random:
    key = repr((seed, index, column)).encode()
    return random.Random(int(hashlib.sha256(key).hexdigest()[:16], 16))


def needs_drafting(block: SamplersBlock | None) -> list[PersonaSampler | TopicTreeSampler]:
    if block is None:
        return []
    return [s for s in block.columns if isinstance(s, TopicTreeSampler)
            or (isinstance(s, PersonaSampler) and s.draft is not None)]


def sample_row(block: SamplersBlock, pools: Pools, seed: int, index: int) -> dict[str, Any]:
    """The sampled columns of row ``index``."""
    row: dict[str, Any] = {}
    for s in block.columns:
        rng = rng_for(seed, index, s.name)
        if isinstance(s, CategorySampler):
            values, weights = choices(s.values)
            row[s.name] = rng.choices(values, weights)[0]
        elif isinstance(s, SubcategorySampler):
            values, weights = choices(s.values[str(row[s.of])])
            row[s.name] = rng.choices(values, weights)[0]
        elif isinstance(s, NumericSampler):
            row[s.name] = _number(s, rng)
        elif isinstance(s, GridSampler):
            axes = list(s.axes.values())
            total = math.prod(len(a) for a in axes)
            combo = index % total if s.mode == "all" else rng.randrange(total)
            for name, values in reversed(list(s.axes.items())):  # mixed radix, last axis fastest
                combo, digit = divmod(combo, len(values))
                row[name] = values[digit]
        elif isinstance(s, PersonaSampler):
            row[s.name] = rng.choice(pools[s.name])
        else:
            path = rng.choice(pools[s.name])
            row[s.name] = path[-1]
            if s.path_column:
                row[s.path_column] = PATH_SEPARATOR.join(path)
    return {k: row[k] for k in block.sampled_columns()}  # grid axes in declared order


def _number(s: NumericSampler, rng: random.Random) -> int | float:
    if s.distribution == "integer":
        return rng.randint(int(s.low or 0), int(s.high or 0))
    value = rng.uniform(s.low or 0.0, s.high or 0.0) if s.distribution == "uniform" \
        else rng.gauss(s.mean or 0.0, s.std or 1.0)
    if s.low is not None:
        value = max(s.low, value)
    if s.high is not None:
        value = min(s.high, value)
    return round(value, s.decimals)


def iter_sampled(block: SamplersBlock, pools: Pools, seed: int, count: int) -> Iterator[dict[str, Any]]:
    return (sample_row(block, pools, seed, i) for i in range(count))


# ---- checks that span entries (the recipe's lines) ---------------------------------------------


def check_samplers(loaded: LoadedRecipe, seed_columns: set[str]) -> Pools:
    """Parents, value sets, name clashes, backends and persona files; returns the pools read from
    files. Nothing is called."""
    block = loaded.recipe.samplers
    if block is None:
        return {}
    recipe = loaded.recipe
    step_writes = {c: s.name for s in recipe.steps for c in s.writes}
    owner: dict[str, str] = {}
    parents: dict[str, set[str]] = {}
    pools: Pools = {}
    for i, s in enumerate(block.columns):
        where = ("samplers", "columns", i)
        for col in s.columns():
            key = "name" if col == s.name else ("path_column" if isinstance(s, TopicTreeSampler)
                                                else "axes")
            loc = where + ((key, col) if key == "axes" else (key,))
            if col in owner:
                raise loaded.error(loc, f"column {col!r} clashes: sampler {owner[col]!r} writes it too")
            if col in seed_columns:
                raise loaded.error(loc, f"column {col!r} clashes with a seed column of the same name")
            if col in step_writes:
                raise loaded.error(loc, f"column {col!r} clashes: step {step_writes[col]!r} writes it")
            owner[col] = s.name
        if isinstance(s, CategorySampler):
            parents[s.name] = {str(v) for v in choices(s.values)[0]}
        elif isinstance(s, SubcategorySampler):
            _check_subcategory(loaded, where, s, parents)
            parents[s.name] = {str(v) for sub in s.values.values() for v in choices(sub)[0]}
        elif isinstance(s, (PersonaSampler, TopicTreeSampler)):
            if s.backend != "default" and s.backend not in recipe.backends:
                raise loaded.error(where + ("backend",), f"no backend named {s.backend!r} in 'backends'")
            if isinstance(s, PersonaSampler) and s.path is not None:
                pools[s.name] = _persona_file(loaded, where, s)
    return pools


def _check_subcategory(loaded: LoadedRecipe, where: tuple[Any, ...], s: SubcategorySampler,
                       parents: dict[str, set[str]]) -> None:
    if s.of not in parents:
        known = ", ".join(parents) or "none"
        raise loaded.error(where + ("of",), f"{s.of!r} is not an earlier category or subcategory "
                           f"column (earlier: {known})")
    for value in s.values:
        if value not in parents[s.of]:
            raise loaded.error(where + ("values", value), f"subcategories for unknown category "
                               f"{value!r}: {s.of!r} has {', '.join(sorted(parents[s.of]))}")
    missing = sorted(parents[s.of] - set(s.values))
    if missing:
        raise loaded.error(where + ("values",), f"no subcategories for {s.of} value(s) "
                           f"{', '.join(map(repr, missing))}")


def _persona_file(loaded: LoadedRecipe, where: tuple[Any, ...], s: PersonaSampler) -> list[str]:
    path = loaded.resolve(s.path or "")
    if not path.is_file():
        raise loaded.error(where + ("path",), f"file not found: {path}")
    if path.suffix.lower() == ".txt":
        personas = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        personas = []
        for n, row in enumerate(iter_rows(path), 1):
            if s.field not in row:
                raise loaded.error(where + ("field",), f"row {n} of {path.name} has no column {s.field!r}")
            personas.append(str(row[s.field]).strip())
    personas = list(dict.fromkeys(p for p in personas if p))
    if not personas:
        raise loaded.error(where + ("path",), f"no personas in {path}")
    return personas


# ---- what the card and stats.json say about the axes ------------------------------------------


def possible_values(block: SamplersBlock, pools: Pools) -> dict[str, int | None]:
    """How many distinct values each column can take (None: a number, no fixed set)."""
    out: dict[str, int | None] = {}
    for s in block.columns:
        if isinstance(s, CategorySampler):
            out[s.name] = len(s.values)
        elif isinstance(s, SubcategorySampler):
            out[s.name] = len({str(v) for sub in s.values.values() for v in choices(sub)[0]})
        elif isinstance(s, NumericSampler):
            out[s.name] = int((s.high or 0) - (s.low or 0)) + 1 if s.distribution == "integer" else None
        elif isinstance(s, GridSampler):
            out.update({axis: len(values) for axis, values in s.axes.items()})
        else:
            pool = pools.get(s.name, [])
            out[s.name] = len({p[-1] for p in pool}) if isinstance(s, TopicTreeSampler) else len(pool)
            if isinstance(s, TopicTreeSampler) and s.path_column:
                out[s.path_column] = len(pool)
    return out


def axis_counts(block: SamplersBlock, pools: Pools, rows: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """Per sampled column: how often each value came up (numbers: min, mean, max) and how many of
    the possible values were drawn."""
    possible = possible_values(block, pools)
    counts: dict[str, Counter] = {c: Counter() for c, k in possible.items() if k is not None}
    numbers = {c: [math.inf, -math.inf, 0.0] for c, k in possible.items() if k is None}
    n = 0
    for row in rows:
        n += 1
        for col, counter in counts.items():
            counter[row[col]] += 1
        for col, (low, high, total) in numbers.items():
            value = float(row[col])
            numbers[col] = [min(low, value), max(high, value), total + value]
    out: dict[str, Any] = {}
    for col, known in possible.items():
        if known is None:
            low, high, total = numbers[col]
            out[col] = {"kind": "number", "min": low if n else None, "max": high if n else None,
                        "mean": round(total / n, 4) if n else None}
        else:
            counter = counts[col]
            ordered = sorted(counter.items(), key=lambda x: (-x[1], str(x[0])))
            out[col] = {"kind": "values", "possible": known, "drawn": len(counter),
                        "counts": {str(v): k for v, k in ordered}}
    return {"rows": n, "axes": out}
