"""The dataset card (README.md with a Hugging Face YAML header): provenance, backend, counts.

Only the backend's name, model and sampling params are written: backend ``options`` can hold
URLs or credentials and never reach the card.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from factory import __version__
from factory.recipe.graph import Graph
from factory.recipe.spec import Recipe


def render_card(recipe: Recipe, recipe_path: Path, graph: Graph, stats: dict[str, Any],
                models: dict[str, str], sections: list[str] | None = None) -> str:
    """Card text; ``{split_table}`` is filled in by the writer once split sizes are known.
    ``sections``: markdown the steps add (``StepRunner.card_section``), after the counts."""
    configs = "\n".join(
        f"- config_name: {name}\n  data_files:\n  - split: train\n    path: {name}.parquet"
        for name in recipe.outputs.splits)
    total = stats["totals"]["kept"]
    size = "n<1K" if total < 1000 else "1K<n<10K" if total < 10_000 else "10K<n<100K"
    digest = hashlib.sha256(recipe_path.read_bytes()).hexdigest()[:12]
    backends = [("default", recipe.backend)] + list(recipe.backends.items())
    backend_lines = "\n".join(
        f"- `{key}`: backend `{block.name}`, model `{models[key]}`, params "
        f"`{json.dumps(block.params.model_dump(exclude_none=True))}`"
        for key, block in backends)
    reasons = "\n".join(f"| {step} | {reason} | {n} |"
                        for step, counts in stats["totals"]["dropped_by_step"].items()
                        for reason, n in counts.items()) or "| - | - | 0 |"
    steps = "\n".join(f"- {line}" for line in graph.describe())
    t = stats["totals"]
    return f"""---
configs:
{configs}
tags:
- synthetic
- factory
size_categories:
- {size}
---

# {recipe.name}

{recipe.description.strip() or 'Synthetic data made by factory.'}

Made by factory {__version__} from recipe `{recipe_path.name}` (sha256 `{digest}`), global seed
{stats['seed']}.

## Splits

{{split_table}}

Every split row carries `id` and `lineage` (recipe, parent ids, and per step: backend, model and
the hash of each prompt). Load one with
`datasets.load_dataset("parquet", data_files="<this folder>/<split>.parquet")`.

## Backends

{backend_lines}

## Steps

{steps}

## Counts

{t['input']} seed records: {t['kept']} kept, {t['rejected']} rejected, {t['failed']} failed
(`rejects.jsonl` holds every dropped record with its step and reason; `stats.json` the counts).

| step | reason | records |
|---|---|---|
{reasons}
""" + "".join(f"\n{section.strip()}\n" for section in sections or [])
