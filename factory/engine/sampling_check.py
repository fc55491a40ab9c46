"""Sampling parameters a backend would not honour are recipe errors, found before any call (and a
judge in logprob mode on a backend without log-probabilities).

An API backend may leave some parameters out of its requests (Anthropic's temperature unless
``send_sampling: true``; top_k on OpenAI-compatible servers unless ``send_top_k: true``). The value
still sits in the cache key, so two steps that differ only in it would silently get the same kind
of sample. A recipe that sets such a parameter is refused at its line; the defaults a backend does
not send are returned for stats.json and the dataset card, so the rule is written down.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from factory.engine.plan import Plan
from factory.llm.backends import Backend
from factory.llm.spec import Params


def check_sampling(plan: Plan, backends: dict[str, Backend]) -> dict[str, dict[str, str]]:
    """Raise a RecipeError for a parameter the recipe sets that its backend does not send, or a
    value the backend cannot honour; return ``{backend key: {param: rule}}`` for the card."""
    recipe = plan.recipe
    for key, backend in backends.items():
        where = ("backend",) if key == "default" else ("backends", key)
        _refuse_unsent(plan, recipe.backend_block(key).params, where + ("params",), backend)
    for i, step in enumerate(recipe.steps):
        for path, params, key in _params_in(step, step.backend):
            if key in backends:
                _refuse_unsent(plan, params, ("steps", i, *path), backends[key])
        effective = step.params.over(recipe.backend_block(step.backend).sampling(plan.seed))
        problem = backends[step.backend].params_problem(effective) if step.backend in backends else None
        if problem:
            raise plan.loaded.error(("steps", i, "params"), problem)
        if step.needs_raw_prompts and getattr(step, "pre_query", None) is None and step.backend in backends:
            try:  # Magpie renders the model's chat template: a backend that cannot is a recipe error
                backends[step.backend].pre_query_prefix(None)
            except (NotImplementedError, ValueError) as exc:
                raise plan.loaded.error(("steps", i, "kind"), f"{exc}; give the step a 'pre_query' "
                                        "(the prefix to send)") from None
        for path, key in step.logprob_refs().items():
            if key in backends and not backends[key].gives_top_logprobs:
                raise plan.loaded.error(("steps", i, *path.split(".")), (
                    f"logprob mode reads top-k log-probabilities, which the {backends[key].name} "
                    "backend does not give; use mode: votes (sampled verdicts) or another backend"))
    return {key: rules for key, b in sorted(backends.items()) if (rules := b.unsent_params())}


def _refuse_unsent(plan: Plan, params: Params, loc: tuple[Any, ...], backend: Backend) -> None:
    unsent = backend.unsent_params()
    for name in sorted(params.model_fields_set):
        if name in unsent and getattr(params, name) is not None:
            raise plan.loaded.error(loc + (name,), f"{name} would not be sent: {unsent[name]}")


def _params_in(model: BaseModel, backend: str, path: tuple[Any, ...] = ()) -> Iterator[
        tuple[tuple[Any, ...], Params, str]]:
    """Every ``Params`` inside a step spec, with its field path and the backend key it applies to
    (a nested model with its own ``backend``, e.g. a rejection-sampling judge, names another)."""
    backend = getattr(model, "backend", backend) if isinstance(getattr(model, "backend", None), str) \
        else backend
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Params):
            yield path + (name,), value, backend
        elif isinstance(value, BaseModel):
            yield from _params_in(value, backend, path + (name,))
        elif isinstance(value, list):
            for j, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from _params_in(item, backend, path + (name, j))
