"""Wire a plan to models through the run's LLM session (``factory.llm.session``): one backend
instance per backend block, one dispatcher per backend (cache, budget, slots), one runner per step."""

from __future__ import annotations

from factory.core.errors import FactoryError
from factory.engine.executor import BoundStep
from factory.engine.plan import BuildOptions, Plan
from factory.llm.backends import Backend
from factory.llm.dispatch import Dispatcher
from factory.llm.session import LLMSession
from factory.llm.spec import BackendBlock
from factory.steps import STEP_KINDS


def open_session(options: BuildOptions) -> LLMSession:
    """The build's session: its cache (``--cache`` / ``--no-cache``) and ``--budget-usd``."""
    return LLMSession.open(options.cache_path, options.use_cache, options.budget_usd)


def open_backends(plan: Plan, llm: LLMSession) -> dict[str, Backend]:
    """The backend of each recipe backend key the steps use; the session closes them."""
    out: dict[str, Backend] = {}
    for key in sorted({k for s in plan.recipe.steps for k in s.backends_used()}):
        block = plan.recipe.backend_block(key)
        where = ("backend",) if key == "default" else ("backends", key)
        try:
            out[key] = llm.backend(block)
        except ValueError as exc:  # a bad option or model name: the recipe's fault, nothing called
            raise plan.loaded.error(where + _blamed(block, str(exc)), str(exc)) from None
        except (RuntimeError, OSError) as exc:  # the backend cannot start here (model file, library)
            raise FactoryError(f"{plan.loaded.path}: {'.'.join(where)}: {exc}") from None
    return out


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
        # A step's other backends (a separate judge or scorer) sample with their own block's params.
        runner.backend_params = {key: plan.recipe.backend_block(key).sampling(plan.seed) for key in others}
        bound[step.name] = BoundStep(runner, own, others)
    return bound
