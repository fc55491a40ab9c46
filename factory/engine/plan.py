"""A build's plan: the recipe loaded and checked, its graph, its seeds, where it writes.

Nothing is called while planning: every recipe error surfaces here, before the first LLM call.
The seeds are scanned once (every row parses, their count and columns are known) but not kept:
a build reads them again lazily, record by record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.core.record import Record, seed_record_id
from factory.recipe.graph import Graph, build_graph
from factory.recipe.loader import LoadedRecipe, load_recipe
from factory.recipe.samplers import Pools, needs_drafting
from factory.recipe.seeds import iter_seeds, scan_seeds
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
    seed: int
    output: Path
    limit: int | None = None  # --limit: only the first N seed rows
    seed_count: int = 0  # rows ``seed_records`` yields (from the planning scan)
    # Sampler value pools: persona files at planning; drafted pools once ``draft_samplers`` ran.
    pools: Pools = field(default_factory=dict)
    drafted: dict[str, dict[str, Any]] = field(default_factory=dict)  # what drafting each pool took

    @property
    def undrafted(self) -> list[str]:
        """Samplers whose values the backend must draft before the seed rows can be drawn."""
        return [s.name for s in needs_drafting(self.recipe.samplers) if s.name not in self.pools]

    @property
    def recipe(self) -> Recipe:
        return self.loaded.recipe

    def seed_rows(self) -> Iterator[dict[str, Any]]:
        return iter_seeds(self.loaded, self.limit, self.seed, self.pools)

    def seed_records(self) -> Iterator[Record]:
        """The seed records, lazily, in file order; ids are stable across runs."""
        name = self.recipe.name
        for i, row in enumerate(self.seed_rows()):
            yield Record(seed_record_id(name, i, row), row, name)


def plan_build(recipe_path: str | Path, options: BuildOptions) -> Plan:
    loaded = load_recipe(recipe_path)
    check_code_refs(loaded, options.trust_code)
    scan = scan_seeds(loaded, options.limit)
    graph = build_graph(loaded, scan.columns)
    recipe = loaded.recipe
    seed = recipe.seed if options.seed is None else options.seed
    output = options.output or Path(recipe.outputs.dir or f"datasets/{recipe.name}")
    check_raw_prompts(loaded)
    return Plan(loaded, graph, seed, output, options.limit, scan.count, scan.pools)


def check_raw_prompts(loaded: LoadedRecipe) -> None:
    """A step that sends a raw prompt (Magpie) needs a backend with raw completions: a chat-only
    API is a recipe error before any call."""
    from factory.llm.backends import backend_class

    for i, step in enumerate(loaded.recipe.steps):
        if not step.needs_raw_prompts:
            continue
        block = loaded.recipe.backend_block(step.backend)
        if not backend_class(block.name).raw_prompts:
            raise loaded.error(("steps", i, "kind"), f"{step.kind} sends a raw prompt (the chat "
                               f"template's pre-query prefix); the {block.name} backend takes chat "
                               "messages only: use llama_cpp, transformers, vllm or openai_compatible")


def check_code_refs(loaded: LoadedRecipe, trust_code: bool) -> None:
    """A recipe that names user code fails before any call unless the build trusts it."""
    for i, step in enumerate(loaded.recipe.steps):
        step._recipe_dir = loaded.path.parent.resolve()
        for where, ref in step.code_refs().items():
            if not trust_code:
                raise loaded.error(("steps", i, *where.split(".")), f"{ref!r} runs code named in the "
                                   "recipe; pass --trust-code to allow it")
