"""A build's plan: the recipe loaded and checked, its seed records and graph, where it writes.

Nothing is called while planning: every recipe error surfaces here, before the first LLM call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from factory.core.record import Record, seed_record_id
from factory.recipe.graph import Graph, build_graph
from factory.recipe.loader import LoadedRecipe, load_recipe
from factory.recipe.seeds import load_seeds
from factory.recipe.spec import Recipe


@dataclass
class BuildOptions:
    limit: int | None = None
    output: Path | None = None
    seed: int | None = None
    cache_path: Path | None = None  # None: $FACTORY_CACHE_DIR or ~/.cache/factory
    use_cache: bool = True
    trust_code: bool = False  # --trust-code: allow recipe steps that import user code (module:function)
    budget_usd: float | None = None  # stop before a call could take the build's spend past this
    executor: str = "local"  # "ray": per-record stages on Ray workers (factory/ray_executor.py)
    address: str | None = None  # Ray cluster address (host:port); None starts a local Ray
    workers: int | None = None  # Ray workers (default: one per GPU for GPU backends, else per CPU)


@dataclass
class Plan:
    """A recipe that passed every check: nothing has been called yet."""

    loaded: LoadedRecipe
    graph: Graph
    records: list[Record]
    seed: int
    output: Path

    @property
    def recipe(self) -> Recipe:
        return self.loaded.recipe


def plan_build(recipe_path: str | Path, options: BuildOptions) -> Plan:
    loaded = load_recipe(recipe_path)
    check_code_refs(loaded, options.trust_code)
    rows = load_seeds(loaded, options.limit)
    columns = {c for row in rows for c in row}
    graph = build_graph(loaded, columns)
    recipe = loaded.recipe
    records = [Record(seed_record_id(recipe.name, i, row), dict(row), recipe.name)
               for i, row in enumerate(rows)]
    seed = recipe.seed if options.seed is None else options.seed
    output = options.output or Path(recipe.outputs.dir or f"datasets/{recipe.name}")
    return Plan(loaded, graph, records, seed, output)


def check_code_refs(loaded: LoadedRecipe, trust_code: bool) -> None:
    """A recipe that names user code fails before any call unless the build trusts it."""
    for i, step in enumerate(loaded.recipe.steps):
        step._recipe_dir = loaded.path.parent.resolve()
        for where, ref in step.code_refs().items():
            if not trust_code:
                raise loaded.error(("steps", i, *where.split(".")), f"{ref!r} runs code named in the "
                                   "recipe; pass --trust-code to allow it")
