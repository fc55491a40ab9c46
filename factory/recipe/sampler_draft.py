"""Value pools a backend drafts once for the ``samplers:`` block: topic trees and personas.

Every call is an ordinary request through the build's session (cache, budget, counts in
``run.json`` under ``samplers``): a node's expansion is keyed by its path, the k-th persona by its
sample index, so a rebuild is answered by the cache and draws the same rows. A call that fails
stops the build before any step runs (the ones that succeeded are cached; a rerun makes the rest).
A reply that cannot be read is not an error: the node stays a leaf, the persona is not added, and
the counts say so.

``ask(backend_key, requests)`` returns one completion per request, or None for a call not made
(the dry run looks only in the cache).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from factory.core.errors import FactoryError
from factory.core.structured import json_object
from factory.llm.request import Completion, Request, SamplingParams
from factory.recipe.samplers import Pools
from factory.recipe.samplers_spec import PersonaSampler, TopicTreeSampler

Ask = Callable[[str, list[Request]], Awaitable[list[Completion | None]]]

TREE_SYSTEM = "You organise a subject into distinct, concrete subtopics."
TREE_PROMPT = ('Name {branching} different, specific parts of the subject "{topic}"{within} that people '
               'ask questions about. Reply with JSON only, a list of {branching} short phrases under the '
               'key "subtopics".')
TREE_ATTEMPTS = 3  # a node whose reply lists no subtopic is asked again (next sample index), then left a leaf
PERSONA_SYSTEM = "You write short, concrete persona descriptions."
PERSONA_PROMPT = ("Describe one person from this group: {describe}. One or two sentences: who they are, "
                  'what they do, what they need. Reply with JSON only: {{"persona": "..."}}')


def tree_schema(branching: int) -> dict[str, Any]:
    return {"type": "object", "properties": {"subtopics": {
        "type": "array", "minItems": 2, "maxItems": branching,
        "items": {"type": "string", "minLength": 2, "maxLength": 80}}},
        "required": ["subtopics"], "additionalProperties": False}


PERSONA_SCHEMA = {"type": "object", "properties": {"persona": {"type": "string", "minLength": 20,
                                                               "maxLength": 400}},
                  "required": ["persona"], "additionalProperties": False}


@dataclass
class DraftReport:
    """What drafting one sampler's pool took and gave (stats.json and the card)."""

    calls: int = 0  # requests asked (made or from the cache)
    not_made: int = 0  # dry run: requests the cache did not hold
    unreadable: int = 0  # replies that gave nothing usable
    values: int = 0  # pool size
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {"calls": self.calls, "unreadable": self.unreadable, "values": self.values, **self.detail}
        if self.not_made:
            out["not_made"] = self.not_made
        return out


def clean_topic(text: Any) -> str:
    """A subtopic as a short phrase: bullets, numbering and quotes stripped, spaces collapsed."""
    text = re.sub(r"^\s*(?:[-*•]+|\d+[.)]|[a-z][.)])\s*", "", str(text))
    return " ".join(text.strip().strip("\"'`").split())[:80].rstrip(" .,;:")


def subtopics(text: str, parent: str, limit: int) -> list[str]:
    """The subtopics a reply lists: its JSON, or else one per line; duplicates, the parent, and
    anything that is not a short phrase (JSON debris, sentences) out."""
    data = json_object(text)
    items = data.get("subtopics") if data else None
    if not isinstance(items, list):
        items = text.splitlines()
    seen = {parent.lower()}
    out = []
    for item in items:
        topic = clean_topic(item)
        phrase = not re.search(r'[{}\[\]":]', topic) and len(topic.split()) <= 8
        if phrase and len(topic) >= 2 and topic.lower() not in seen:
            seen.add(topic.lower())
            out.append(topic)
    return out[:limit]


async def draft_tree(spec: TopicTreeSampler, params: SamplingParams, ask: Ask) -> tuple[list[tuple[str, ...]],
                                                                                         DraftReport]:
    """Leaves (as paths from the root) of the tree grown level by level; each level's nodes are
    asked at once. A node whose replies list no subtopic in ``TREE_ATTEMPTS`` tries stays a leaf."""
    report = DraftReport()
    level: list[tuple[str, ...]] = [(spec.root,)]
    leaves: list[tuple[str, ...]] = []
    for _ in range(spec.depth):
        children: dict[tuple[str, ...], list[str]] = {}
        asking = list(level)
        for attempt in range(TREE_ATTEMPTS):
            requests = [_tree_request(spec, path, params, attempt) for path in asking]
            replies = await _asked(spec, ask, requests, report)
            for path, reply in zip(asking, replies):
                children[path] = subtopics(reply.text, path[-1], spec.branching) if reply is not None else []
            # Ask again only what was answered but unreadable (a dry run's missing answer is not).
            asking = [p for p, r in zip(asking, replies) if r is not None and not children[p]]
            if not asking:
                break
        report.unreadable += len(asking)
        nxt = []
        for path in level:
            if children[path]:
                nxt.extend(path + (c,) for c in children[path])
            else:
                leaves.append(path)
        level = nxt
    leaves.extend(level)
    report.values = len(leaves)
    report.detail = {"leaves": len(leaves), "depth": spec.depth, "branching": spec.branching,
                     "unexpanded": report.unreadable}
    return leaves, report


def _tree_request(spec: TopicTreeSampler, path: tuple[str, ...], params: SamplingParams,
                  attempt: int = 0) -> Request:
    within = f" (within: {' > '.join(path[:-1])})" if len(path) > 1 else ""
    prompt = TREE_PROMPT.format(branching=spec.branching, topic=path[-1], within=within)
    return Request.chat([{"role": "system", "content": TREE_SYSTEM}, {"role": "user", "content": prompt}],
                        params, sample_index=attempt, json_schema=tree_schema(spec.branching))


async def draft_personas(spec: PersonaSampler, params: SamplingParams, ask: Ask) -> tuple[list[str],
                                                                                           DraftReport]:
    """``spec.draft`` personas, one request each (sample index k); empty and repeated ones are
    dropped and counted."""
    report = DraftReport()
    chat = [{"role": "system", "content": PERSONA_SYSTEM},
            {"role": "user", "content": PERSONA_PROMPT.format(describe=(spec.describe or "").strip())}]
    requests = [Request.chat(chat, params, sample_index=k, json_schema=PERSONA_SCHEMA)
                for k in range(spec.draft or 0)]
    personas: list[str] = []
    for reply in await _asked(spec, ask, requests, report):
        if reply is None:
            continue
        data = json_object(reply.text)
        text = " ".join(str(data.get("persona", "") if data else reply.text).split())
        if len(text) < 20 or text in personas:
            report.unreadable += 1
            continue
        personas.append(text)
    report.values = len(personas)
    return personas, report


async def _asked(spec: Any, ask: Ask, requests: list[Request],
                 report: DraftReport) -> list[Completion | None]:
    replies = await ask(spec.backend, requests)
    report.calls += len(requests)
    report.not_made += sum(r is None for r in replies)
    errors = [r.error for r in replies if r is not None and r.error is not None]
    if errors:
        raise FactoryError(f"samplers: {spec.name}: {len(errors)} of {len(requests)} drafting call(s) "
                           f"failed ({errors[0]}); the others are cached: rerun to retry")
    return replies


async def draft_pools(specs: list[PersonaSampler | TopicTreeSampler],
                      params_for: Callable[[Any], SamplingParams],
                      ask: Ask) -> tuple[Pools, dict[str, dict[str, Any]]]:
    """Every drafted pool (samplers drafted concurrently), and what each took. An empty pool is a
    FactoryError: a column with nothing to draw from."""

    async def one(spec: PersonaSampler | TopicTreeSampler) -> tuple[list[Any], DraftReport]:
        if isinstance(spec, TopicTreeSampler):
            return await draft_tree(spec, params_for(spec), ask)
        return await draft_personas(spec, params_for(spec), ask)

    results = await asyncio.gather(*(one(s) for s in specs))
    pools: Pools = {}
    reports = {}
    for spec, (pool, report) in zip(specs, results):
        if not pool and not report.not_made:
            raise FactoryError(f"samplers: {spec.name}: the backend drafted no usable "
                               f"{'topics' if isinstance(spec, TopicTreeSampler) else 'personas'} in "
                               f"{report.calls} call(s); try a stronger backend or other params")
        pools[spec.name] = pool
        reports[spec.name] = report.as_dict()
    return pools, reports
