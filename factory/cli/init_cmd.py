"""``factory init``: seeds and a recipe for a new domain."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from factory.cli.common import CacheOption, NoCacheOption, guard, out
from factory.core.errors import FactoryError


def init(
    domain_dir: Path = typer.Argument(..., help="new folder for seeds.jsonl and recipe.yaml"),
    describe: str = typer.Option(..., "--describe", help="one paragraph about the domain"),
    seeds: Optional[Path] = typer.Option(None, "--seeds", help="your example tasks (JSON lines with "
                                         "instruction, optional input/output); kept first"),
    count: int = typer.Option(15, "--count", min=10, max=20, help="seed tasks to end up with"),
    backend: str = typer.Option("llama_cpp", "--backend", help="backend that drafts the seeds and "
                                "that the recipe uses"),
    model: Optional[str] = typer.Option(None, "--model", help="backend model (llama_cpp: embedded)"),
    options: str = typer.Option("{}", "--options", help="backend options as JSON"),
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
) -> None:
    """Draft 10-20 seed tasks for a new domain and write a ready Self-Instruct → Evol-Instruct →
    QC → SFT + DPO recipe next to them (review the seeds before building)."""
    import json

    from factory.llm.backends import BACKENDS
    from factory.recipe.init_domain import init_domain, load_examples

    def body() -> None:
        if backend not in BACKENDS:
            known = ", ".join(sorted(BACKENDS))
            raise FactoryError(f"--backend: unknown backend {backend!r}; known: {known}")
        try:
            opts = json.loads(options)
        except json.JSONDecodeError as exc:
            raise FactoryError(f"--options: not JSON: {exc.msg}") from None
        examples = load_examples(seeds) if seeds else []
        seeds_file, recipe_file, draft = init_domain(domain_dir, describe, examples, backend, model, opts,
                                                     want=count, cache_path=cache, use_cache=not no_cache)
        topics = "; ".join(draft.topics) if draft.topics else "none (the backend listed none)"
        out.print(f"subtopics: {topics} ({draft.topic_calls.made} made, {draft.topic_calls.cached} from "
                  "cache)", markup=False, highlight=False)
        out.print(f"{seeds_file}: {len(examples)} of yours + {len(draft.tasks)} drafted in {draft.asked} "
                  f"requests ({draft.calls.made} made, {draft.calls.cached} from cache; not kept: "
                  f"{draft.dropped or 'none'}) — review and edit them", markup=False, highlight=False)
        d = draft.diversity
        vendi = d.get("vendi", "n/a (" + d.get("missing", {}).get("vendi", "") + ")")
        out.print(f"seed diversity ({d['texts']} instructions): distinct-1 {d['distinct_1']}, distinct-2 "
                  f"{d['distinct_2']}, mean ROUGE-L {d['rouge_l_mean']}, Vendi {vendi}", markup=False,
                  highlight=False)
        out.print(f"{recipe_file}: then run  factory build {recipe_file}", markup=False, highlight=False)

    guard(body)
