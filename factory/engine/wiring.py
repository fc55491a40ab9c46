"""Wire a plan to models: one backend instance per backend block, one dispatcher per backend
(cache, budget, slots), one runner per step."""

from __future__ import annotations

from contextlib import AsyncExitStack

from factory.core.errors import FactoryError
from factory.core.paths import default_cache_path
from factory.engine.executor import BoundStep
from factory.engine.plan import BuildOptions, Plan
from factory.llm.backends import Backend, BackendSettings, backend_class
from factory.llm.cache import RequestCache
from factory.llm.dispatch import Dispatcher
from factory.llm.pricing import Budget
from factory.llm.spec import BackendBlock
from factory.steps import STEP_KINDS


def open_backends(plan: Plan, stack: AsyncExitStack) -> dict[str, Backend]:
    """One backend instance per backend block the steps use; closed when the stack unwinds."""
    out: dict[str, Backend] = {}
    for key in sorted({k for s in plan.recipe.steps for k in s.backends_used()}):
        block: BackendBlock = plan.recipe.backend_block(key)
        settings = BackendSettings(block.model, block.concurrency, dict(block.options))
        where = ("backend",) if key == "default" else ("backends", key)
        try:
            backend = backend_class(block.name)(settings)
        except ValueError as exc:  # a bad option or model name: the recipe's fault, nothing called
            raise plan.loaded.error(where + _blamed(block, str(exc)), str(exc)) from None
        except (RuntimeError, OSError) as exc:  # the backend cannot start here (model file, library)
            raise FactoryError(f"{plan.loaded.path}: {'.'.join(where)}: {exc}") from None
        stack.push_async_callback(backend.close)
        out[key] = backend
    return out


def _blamed(block: BackendBlock, message: str) -> tuple[str, ...]:
    """The block key an option error is about, so the error points at its line."""
    for name in sorted(block.options, key=len, reverse=True):
        if name in message:
            return ("options", name)
    return ("model",) if "model" in message else ()


def bind_steps(plan: Plan, backends: dict[str, Backend], cache: RequestCache | None,
               budget: Budget | None = None) -> dict[str, BoundStep]:
    dispatchers = {key: Dispatcher(b, cache, plan.recipe.backend_block(key).concurrency, budget)
                   for key, b in backends.items()}
    bound = {}
    for step in plan.recipe.steps:
        params = step.params.over(plan.recipe.backend_block(step.backend).sampling(plan.seed))
        # One view per dispatcher and step: steps sharing a backend share its slots, cache and
        # in-flight calls but count their own tokens and cost.
        others = {key: dispatchers[key].for_step() for key in step.backends_used() if key != step.backend}
        runner = STEP_KINDS[step.kind](step, params)
        # A step's other backends (a separate judge or scorer) sample with their own block's params.
        runner.backend_params = {key: plan.recipe.backend_block(key).sampling(plan.seed) for key in others}
        bound[step.name] = BoundStep(runner, dispatchers[step.backend].for_step(), others)
    return bound


def open_cache(options: BuildOptions) -> RequestCache | None:
    return RequestCache(options.cache_path or default_cache_path()) if options.use_cache else None
