"""``factory build --dry-run``: how many LLM calls and prompt tokens a build will make, and how many
the cache already holds — without calling any model.

Steps whose inputs are already in the cache are replayed from it, so a half-finished build reports
exactly what is left. Where a prompt contains text that is not generated yet, its token count is a
lower bound (the template and known columns only), and the report says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from factory.core.record import Rejected
from factory.engine.plan import BuildOptions, Plan
from factory.engine.wiring import bind_steps, draft_samplers, open_backends, open_session
from factory.steps import StepContext, StepRunner


@dataclass
class StepEstimate:
    calls: int = 0  # calls the build would make for this step
    cached: int = 0  # of those, answered by the cache
    prompt_tokens: int = 0
    tokens_are_lower_bound: bool = False
    usd: float = 0.0  # worst case for the calls to make: their prompts + max_tokens of output
    # Multi-turn, fan-out and set steps decide their next call from the last answer: their
    # calls are only known when they run, so the estimate stops at them.
    not_estimated: bool = False


async def _no_calls(requests: Any, backend: Any) -> Any:
    raise AssertionError("a local step asked for a model call")


async def estimate(plan: Plan, options: BuildOptions) -> dict[str, dict[str, Any]]:
    async with open_session(options) as llm:  # closes the cache and backends
        cache = llm.cache
        out = {}
        if plan.undrafted:  # topic trees and personas: from the cache, placeholders for the rest
            await draft_samplers(plan, llm, cache_only=True)
            asked = sum(r["calls"] for r in plan.drafted.values())
            missing = sum(r.get("not_made", 0) for r in plan.drafted.values())
            # A topic tree node the cache cannot expand hides the calls for the levels below it.
            deeper = any(r.get("not_made") and r.get("depth", 1) > 1 for r in plan.drafted.values())
            out["samplers"] = StepEstimate(calls=asked, cached=asked - missing, not_estimated=deeper,
                                           tokens_are_lower_bound=True)
        bound = bind_steps(plan, open_backends(plan, llm), llm)
        out.update({s.name: StepEstimate() for s in plan.graph.order})
        for record in plan.seed_records():
            fields, pending = dict(record.fields), set()
            for step in plan.graph.order:
                runner, dispatcher = bound[step.name].runner, bound[step.name].dispatcher
                est = out[step.name]
                unknown = pending.intersection(step.reads)
                view = {**fields, **{c: "" for c in unknown}}
                if any(c not in view for c in step.reads):
                    break  # the build rejects this record as missing a column
                if runner.local and not unknown:  # code only (constrain): run it, no call
                    made = await runner.run(view, StepContext(record.id, step.name, plan.seed, _no_calls))
                    if isinstance(made, Rejected):
                        break
                    fields.update(made)
                    continue
                if type(runner).requests is StepRunner.requests or runner.fans_out or runner.local:
                    est.not_estimated = True
                    break
                requests = runner.requests(view)
                if isinstance(requests, Rejected):
                    if unknown:  # only an artefact of the placeholders: count nominally
                        requests = runner.requests({**view, **{c: f"<{c}>" for c in unknown}})
                    if isinstance(requests, Rejected):
                        break
                est.calls += len(requests)
                est.prompt_tokens += sum(dispatcher.backend.count_tokens(r.message_dicts())
                                         for r in requests)
                est.usd += sum(dispatcher.backend.estimate_cost(r) for r in requests
                               if not (cache and dispatcher.key(r) in cache) or unknown)
                if unknown:
                    est.tokens_are_lower_bound = True
                    pending.update(step.writes)
                    continue
                hits = [cache.get(dispatcher.key(r)) if cache else None for r in requests]
                est.cached += sum(h is not None for h in hits)
                if any(h is None for h in hits):
                    pending.update(step.writes)
                    continue
                parsed = runner.parse(fields, hits)
                if isinstance(parsed, Rejected):
                    break
                fields.update(parsed)
        return {name: asdict(e) for name, e in out.items()}
