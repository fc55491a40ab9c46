"""The step graph: who reads what who writes, checked before any LLM call."""

from __future__ import annotations

from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter

from factory.core.errors import did_you_mean
from factory.recipe.loader import LoadedRecipe
from factory.recipe.spec import Step


@dataclass
class Graph:
    order: list[Step]  # topological, ties broken by recipe order
    deps: dict[str, set[str]]  # step name -> the steps whose columns it reads
    producer: dict[str, str]  # column -> step that writes it ("" for seed columns)

    def describe(self) -> list[str]:
        lines = []
        for step in self.order:
            after = f"  (after {', '.join(sorted(self.deps[step.name]))})" if self.deps[step.name] else ""
            lines.append(f"{step.name} [{step.kind}] reads {step.reads} -> writes {step.writes}{after}")
        return lines


def build_graph(loaded: LoadedRecipe, seed_columns: set[str]) -> Graph:
    recipe = loaded.recipe
    producer = {col: "" for col in seed_columns}
    names: set[str] = set()
    for i, step in enumerate(recipe.steps):
        if step.name in names:
            raise loaded.error(("steps", i, "name"), f"duplicate step name {step.name!r}")
        names.add(step.name)
        for where, key in step.backend_refs().items():
            if key != "default" and key not in recipe.backends:
                raise loaded.error(("steps", i, *where.split(".")), f"no backend named {key!r} in "
                                   f"'backends'{did_you_mean(key, recipe.backends)}")
        for j, col in enumerate(step.writes):
            if col in producer:
                owner = f"step {producer[col]!r}" if producer[col] else "the seeds"
                raise loaded.error(("steps", i, "writes", j), f"column {col!r} is already written "
                                   f"by {owner}")
            producer[col] = step.name
    deps: dict[str, set[str]] = {}
    for i, step in enumerate(recipe.steps):
        deps[step.name] = set()
        for j, col in enumerate(step.reads):
            if col not in producer:
                raise loaded.error(("steps", i, "reads", j), f"column {col!r} is not a seed column "
                                   f"and no step writes it{did_you_mean(col, producer)}")
            if producer[col] == step.name:
                raise loaded.error(("steps", i, "reads", j), f"step reads its own output {col!r}")
            if producer[col]:
                deps[step.name].add(producer[col])
    for split, spec in recipe.outputs.splits.items():
        for col in spec.reads():
            if col not in producer:
                field = next(k for k, v in spec.model_dump().items() if v == col or
                             (isinstance(v, list) and col in v))
                raise loaded.error(("outputs", "splits", split, field), f"column {col!r} is not "
                                   f"written by any step{did_you_mean(col, producer)}")
    return Graph(_ordered(loaded, deps), deps, producer)


def _ordered(loaded: LoadedRecipe, deps: dict[str, set[str]]) -> list[Step]:
    steps = loaded.recipe.steps
    position = {s.name: i for i, s in enumerate(steps)}
    sorter = TopologicalSorter(deps)
    try:
        sorter.prepare()
    except CycleError as exc:
        cycle = exc.args[1]
        first = min(cycle, key=position.__getitem__)
        raise loaded.error(("steps", position[first], "reads"),
                           f"steps form a cycle: {' -> '.join(cycle)}") from None
    order: list[Step] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(steps[position[n]] for n in ready)
        sorter.done(*ready)
    return order
