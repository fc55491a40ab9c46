"""Wire a plan to models through the run's LLM session (``factory.llm.session``): one backend
instance per backend block, one dispatcher per backend (cache, budget, slots), one runner per step."""

from __future__ import annotations

import asyncio
from typing import Any

from factory.core.errors import FactoryError
from factory.engine.executor import BoundStep
from factory.engine.plan import BuildOptions, Plan
from factory.llm.backends import Backend
from factory.llm.dispatch import Dispatcher
from factory.llm.request import Completion, Request
from factory.llm.session import LLMSession
from factory.llm.spec import BackendBlock
from factory.recipe.sampler_draft import draft_pools
from factory.recipe.samplers import needs_drafting
from factory.steps import STEP_KINDS


def open_session(options: BuildOptions) -> LLMSession:
    """The build's session: its cache (``--cache`` / ``--no-cache``) and ``--budget-usd``."""
    return LLMSession.open(options.cache_path, options.use_cache, options.budget_usd)


def open_backends(plan: Plan, llm: LLMSession) -> dict[str, Backend]:
    """The backend of each recipe backend key the steps use; the session closes them."""
    return {key: open_backend(plan, llm, key)
            for key in sorted({k for s in plan.recipe.steps for k in s.backends_used()})}


def open_backend(plan: Plan, llm: LLMSession, key: str) -> Backend:
    block = plan.recipe.backend_block(key)
    where = ("backend",) if key == "default" else ("backends", key)
    try:
        return llm.backend(block)
    except ValueError as exc:  # a bad option or model name: the recipe's fault, nothing called
        raise plan.loaded.error(where + _blamed(block, str(exc)), str(exc)) from None
    except (RuntimeError, OSError) as exc:  # the backend cannot start here (model file, library)
        raise FactoryError(f"{plan.loaded.path}: {'.'.join(where)}: {exc}") from None


async def draft_samplers(plan: Plan, llm: LLMSession, cache_only: bool = False) -> None:
    """Draft the persona and topic-tree pools the samplers need (``plan.pools``), through the
    session (counted under ``samplers``). ``cache_only`` (the dry run): call nothing; a pool the
    cache cannot fill holds a placeholder, and ``plan.drafted`` says how many calls are missing."""
    specs = [s for s in needs_drafting(plan.recipe.samplers) if s.name not in plan.pools]
    if not specs:
        return
    views: dict[str, Dispatcher] = {}

    async def ask(key: str, requests: list[Request]) -> list[Completion | None]:
        if key not in views:
            views[key] = llm.dispatcher(open_backend(plan, llm, key),
                                        plan.recipe.backend_block(key).concurrency, user="samplers")
        view = views[key]
        if cache_only:
            return [view.cache.get(view.key(r)) if view.cache is not None else None for r in requests]
        return list(await asyncio.gather(*(view.complete(r) for r in requests)))

    def params_for(spec: Any) -> Any:
        return spec.params.over(plan.recipe.backend_block(spec.backend).sampling(plan.seed))

    pools, reports = await draft_pools(specs, params_for, ask)
    for spec in specs:  # the dry run's placeholders: rows can be drawn, prompts counted
        if not pools[spec.name]:
            pools[spec.name] = [(f"<{spec.name}>",)] if spec.type == "topic_tree" else [f"<{spec.name}>"]
    plan.pools.update(pools)
    plan.drafted.update(reports)


def _blamed(block: BackendBlock, message: str) -> tuple[str, ...]:
    """The block key an option error is about, so the error points at its line."""
    for name in sorted(block.options, key=len, reverse=True):
        if name in message:
            return ("options", name)
    return ("model",) if "model" in message else ()


def bind_steps(plan: Plan, backends: dict[str, Backend], llm: LLMSession) -> dict[str, BoundStep]:
    """A runner per step with dispatcher views from the session; each view counts under its recipe
    backend key (``run.json``'s ``calls``) and for its step alone (``step_calls``)."""

    def view(key: str) -> Dispatcher:
        return llm.dispatcher(backends[key], plan.recipe.backend_block(key).concurrency, user=key)

    bound = {}
    for step in plan.recipe.steps:
        params = step.params.over(plan.recipe.backend_block(step.backend).sampling(plan.seed))
        # Steps sharing a backend share its slots, cache and in-flight calls but count their own
        # tokens and cost.
        own = view(step.backend)
        others = {key: view(key) for key in step.backends_used() if key != step.backend}
        runner = STEP_KINDS[step.kind](step, params)
        runner.backend = backends[step.backend]
        # A step's other backends (a separate judge or scorer) sample with their own block's params.
        runner.backend_params = {key: plan.recipe.backend_block(key).sampling(plan.seed) for key in others}
        bound[step.name] = BoundStep(runner, own, others)
    return bound
