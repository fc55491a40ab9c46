"""``factory init DOMAIN_DIR --describe "..."``: draft seed tasks for a new domain and a ready recipe.

The drafted seeds are a starting point for a person to review and edit (``seeds.jsonl``), not
training data: the recipe grows them with Self-Instruct and Evol-Instruct, then gates the result
with a drift check against these seeds, so editing the seeds steers everything downstream.

To spread the seeds across the domain, the backend first splits the domain into subtopics (a
one-level topic tree, ``factory.recipe.sampler_draft``), and each draft request asks for tasks on
one subtopic in turn. Every call goes through the session's cache.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.structured import json_object
from factory.llm.dispatch import CallStats, Dispatcher
from factory.llm.request import Request, SamplingParams
from factory.llm.session import LLMSession
from factory.llm.spec import BackendBlock
from factory.recipe.sampler_draft import draft_tree
from factory.recipe.samplers_spec import TopicTreeSampler

DRAFT_SYSTEM = "You design training tasks for assistants that work in a specialised domain."

DRAFT_PROMPT = """The domain:
{description}
{examples}{focus}
Write {count} different tasks a user of this domain could ask an assistant to do. Vary the kind of
task (explain, compare, plan, rewrite, classify, calculate, list, advise) and the difficulty. Each task
has an instruction, an optional input (leave it empty when the instruction says everything), and a
good answer. Reply with JSON only: {{"tasks": [{{"instruction": "...", "input": "", "output": "..."}}]}}"""

TASKS_SCHEMA = {
    "type": "object",
    "properties": {"tasks": {"type": "array", "minItems": 1, "maxItems": 8, "items": {
        "type": "object",
        "properties": {"instruction": {"type": "string", "minLength": 10, "maxLength": 300},
                       "input": {"type": "string", "maxLength": 300},
                       "output": {"type": "string", "minLength": 1, "maxLength": 800}},
        "required": ["instruction", "input", "output"], "additionalProperties": False}}},
    "required": ["tasks"], "additionalProperties": False}


@dataclass
class Draft:
    tasks: list[dict[str, str]]
    asked: int  # draft requests sent
    dropped: dict[str, int]  # reason -> count of proposed tasks not kept
    calls: CallStats = field(default_factory=CallStats)  # of ``asked``: made, from cache, failed
    topics: list[str] = field(default_factory=list)  # the subtopics the requests were spread over
    topic_calls: CallStats = field(default_factory=CallStats)  # what splitting the domain took
    diversity: dict[str, Any] = field(default_factory=dict)  # filters.diversity figures of the tasks


def _normal(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def parse_tasks(text: str) -> list[dict[str, str]] | None:
    """The tasks in one draft reply, or None when the reply is not the JSON asked for."""
    data = json_object(text)
    tasks = data.get("tasks") if data is not None else None
    if not isinstance(tasks, list):
        return None
    return [{k: str(t.get(k, "")).strip() for k in ("instruction", "input", "output")}
            for t in tasks if isinstance(t, dict)]


TOPICS = 6  # subtopics the domain is split into


async def domain_topics(dispatcher: Dispatcher, description: str, params: SamplingParams) -> list[str]:
    """The domain's subtopics (one level of a topic tree rooted at the description's first
    sentence); none when the backend lists none."""
    root = re.split(r"(?<=[.!?])\s", " ".join(description.split()), maxsplit=1)[0][:120].rstrip(".")
    spec = TopicTreeSampler(name="topic", type="topic_tree", root=root, depth=1, branching=TOPICS)

    async def ask(_: str, requests: list[Request]) -> list[Any]:
        return list(await asyncio.gather(*(dispatcher.complete(r) for r in requests)))

    leaves, _ = await draft_tree(spec, params, ask)
    return [path[-1] for path in leaves if len(path) > 1]


async def draft_tasks(dispatcher: Dispatcher, description: str, examples: list[dict[str, Any]],
                      want: int, params: SamplingParams, max_requests: int = 12,
                      topics: list[str] | None = None) -> Draft:
    """Ask for tasks in small batches (a weak model loses the thread in long lists) until ``want``,
    request k on subtopic k (round robin) when ``topics`` are given. Requests are numbered
    (``sample_index``), so a rerun asks the same ones and the cache answers."""
    shown = "".join(f"\nExample task: {e.get('instruction', '')}" for e in examples[:5])
    shown = f"\nExamples the user gave:{shown}\n" if shown else ""
    kept: list[dict[str, str]] = []
    seen = {_normal(e.get("instruction", "")) for e in examples}
    dropped: dict[str, int] = {}
    asked = 0
    while len(kept) < want and asked < max_requests:
        batch = [Request.chat([{"role": "system", "content": DRAFT_SYSTEM},
                               {"role": "user", "content": DRAFT_PROMPT.format(
                                   description=description.strip(), examples=shown, count=5,
                                   focus=_focus(topics, asked + i))}],
                              params, sample_index=asked + i, json_schema=TASKS_SCHEMA)
                 for i in range(min(4, max_requests - asked))]
        asked += len(batch)
        for completion in await asyncio.gather(*(dispatcher.complete(r) for r in batch)):
            tasks = parse_tasks(completion.text) if completion.error is None else None
            if tasks is None:
                dropped["unparseable_reply"] = dropped.get("unparseable_reply", 0) + 1
                continue
            for task in tasks:
                reason = _drop_reason(task, seen)
                if reason:
                    dropped[reason] = dropped.get(reason, 0) + 1
                    continue
                seen.add(_normal(task["instruction"]))
                kept.append(task)
    return Draft(kept[:want], asked, dropped, dispatcher.stats, list(topics or []))


def _focus(topics: list[str] | None, k: int) -> str:
    return f"\nFocus on this part of the domain: {topics[k % len(topics)]}.\n" if topics else ""


def _drop_reason(task: dict[str, str], seen: set[str]) -> str | None:
    if len(task["instruction"].split()) < 3:
        return "instruction_too_short"
    if not task["output"]:
        return "empty_output"
    if _normal(task["instruction"]) in seen:
        return "duplicate"
    return None


def task_diversity(tasks: list[dict[str, str]], seed: int = 0) -> dict[str, Any]:
    """filters.diversity's figures of the seed instructions (Vendi when MiniLM is installed)."""
    from filters.diversity import minilm_embed, text_figures

    embed, missing = minilm_embed()
    figures = text_figures([t["instruction"] for t in tasks], embed, seed=seed)
    return {**figures, **({"missing": {"vendi": missing}} if missing else {})}


def load_examples(path: Path) -> list[dict[str, Any]]:
    """User examples: JSON lines with at least ``instruction`` (``input``/``output`` optional)."""
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FactoryError(f"{path}:{n}: invalid JSON: {exc.msg}") from None
        if not isinstance(row, dict) or not str(row.get("instruction", "")).strip():
            raise FactoryError(f"{path}:{n}: each example needs a non-empty 'instruction'")
        rows.append({"instruction": str(row["instruction"]), "input": str(row.get("input", "")),
                     "output": str(row.get("output", ""))})
    return rows


def init_domain(domain_dir: Path, description: str, examples: list[dict[str, Any]], backend_name: str,
                model: str | None, options: dict[str, Any], want: int = 15, seed: int = 0,
                min_tasks: int = 10, cache_path: Path | None = None,
                use_cache: bool = True) -> tuple[Path, Path, Draft]:
    """Draft seeds with the backend and write ``seeds.jsonl`` + ``recipe.yaml`` into ``domain_dir``.
    The draft calls go through an LLM session on the request cache (``use_cache`` False: none)."""
    from factory.recipe.init_recipe import render_recipe

    if (domain_dir / "recipe.yaml").exists() or (domain_dir / "seeds.jsonl").exists():
        raise FactoryError(f"{domain_dir}: already holds a recipe or seeds; choose a new folder")
    if len(description.split()) < 5:
        raise FactoryError("--describe: give a sentence or a paragraph about the domain")
    block = BackendBlock(name=backend_name, model=model, concurrency=4, options=dict(options))

    async def run() -> Draft:
        async with LLMSession.open(cache_path, use_cache) as llm:
            try:
                dispatcher = llm.dispatcher_for(block, "init")
                splitter = llm.dispatcher_for(block, "init.topics")
            except (ValueError, RuntimeError, OSError) as exc:
                raise FactoryError(f"--backend {backend_name}: {exc}") from None
            topics = await domain_topics(splitter, description,
                                         SamplingParams(temperature=1.0, max_tokens=150, seed=seed))
            draft = await draft_tasks(dispatcher, description, examples, want - len(examples),
                                      SamplingParams(temperature=0.8, max_tokens=700, seed=seed),
                                      topics=topics)
            draft.topic_calls = splitter.stats
            return draft

    draft = asyncio.run(run())
    tasks = examples + draft.tasks
    draft.diversity = task_diversity(tasks, seed)
    if len(tasks) < min_tasks:
        raise FactoryError(f"the {backend_name} backend drafted only {len(draft.tasks)} usable tasks "
                           f"in {draft.asked} requests (dropped: {draft.dropped}); add examples with "
                           f"--seeds or use a stronger backend")
    domain_dir.mkdir(parents=True, exist_ok=True)
    seeds = domain_dir / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tasks))
    recipe = domain_dir / "recipe.yaml"
    recipe.write_text(render_recipe(domain_dir.name, description, backend_name, model, options))
    return seeds, recipe, draft
