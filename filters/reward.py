"""Reward scorers and the bottom-percentile cut.

Scorers (``score(prompts, answers, llm, user) -> [(score | None, detail)]``):
- ``judge``: the rubric judge (factory.llm.rubric) through any backend, asked through the run's LLM
  session (``QCContext.llm``): the build's cache, ``--budget-usd`` and ``run.json`` counts (as
  ``user``, e.g. ``qc.reward``). The default when no scorer is configured, on the embedded
  SmolLM2 — labeled as such in stats.
- ``hf``: any sequence-classification reward model folder (e.g. Skywork-Reward), logit 0.
- ``trained``: the output of ``factory train reward`` (base model + LoRA + score head).
``hf`` and ``trained`` score through ``factory.llm.reward_model``, as rejection sampling does.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.record import Record, Rejected
from factory.core.text import texts_or_failures
from factory.llm.dispatch import BUDGET_ERROR
from factory.llm.reward_model import RewardModel, trained_run
from factory.llm.session import LLMSession
from factory.llm.spec import BackendBlock
from filters.base import Drop, Failed, Filter, Keep, QCContext, Verdict, percentile_cut
from filters.config import HFScorer, JudgeScorer, RewardBlock, TrainedScorer

Scored = tuple[float | None, str]  # (score, "") or (None, why it could not be scored)
DEFAULT_LABEL = "judge rubric score (0-5) from the embedded SmolLM2-135M (default scorer; weak judge)"


def make_scorer(spec: JudgeScorer | HFScorer | TrainedScorer | None) -> Any:
    if spec is None:
        return JudgeRewardScorer(JudgeScorer(kind="judge"), default=True)
    if isinstance(spec, JudgeScorer):
        return JudgeRewardScorer(spec)
    if isinstance(spec, HFScorer):
        return ClassifierRewardScorer(Path(spec.model), spec.batch_size, spec.max_tokens)
    return ClassifierRewardScorer(Path(spec.path), spec.batch_size, spec.max_tokens, trained=True)


def unscored_reason(why: str, default: str) -> str:
    """A record whose judge call the budget refused fails as ``budget_exhausted``."""
    return BUDGET_ERROR if BUDGET_ERROR in why else default


class JudgeRewardScorer:
    def __init__(self, spec: JudgeScorer, default: bool = False) -> None:
        self.spec = spec
        self.block = spec.backend or BackendBlock(name="llama_cpp", model="embedded")
        self.label = DEFAULT_LABEL if default else (
            f"judge rubric score (0-5) from backend {self.block.name}, model {self.block.model or 'default'}")

    def score(self, prompts: list[str], answers: list[str], llm: LLMSession | None = None,
              user: str = "qc.reward") -> list[Scored]:
        if llm is None:
            raise FactoryError("the judge reward scorer calls a model: run it with an LLM session "
                               "(QCContext.llm), which owns the cache and the budget")
        return llm.run_sync(self._score(prompts, answers, llm, user))

    async def _score(self, prompts: list[str], answers: list[str], llm: LLMSession,
                     user: str) -> list[Scored]:
        from factory.llm.request import SamplingParams
        from factory.llm.rubric import parse_rubric, rubric_request

        b = self.block
        try:
            dispatcher = llm.dispatcher_for(b, user)
        except (ValueError, RuntimeError, OSError) as exc:
            raise FactoryError(f"{user}: scorer.backend: {exc}") from None
        params = b.params.over(SamplingParams(temperature=0.0, max_tokens=self.spec.max_tokens))
        requests = [rubric_request(p, a, params, self.spec.criteria) for p, a in zip(prompts, answers)]
        completions = await asyncio.gather(*(dispatcher.complete(r) for r in requests))
        out: list[Scored] = []
        for c in completions:
            if c.error is not None:
                out.append((None, f"judge call failed: {c.error}"))
                continue
            parsed = parse_rubric(c, self.spec.criteria)
            out.append((None, f"{parsed.reason}: {parsed.detail}") if isinstance(parsed, Rejected)
                       else (float(parsed["score"]), ""))
        return out


class ClassifierRewardScorer:
    """A one-logit sequence classifier (``factory.llm.reward_model``); ``trained``: the path must
    be a ``factory train reward`` run folder."""

    def __init__(self, path: Path, batch_size: int = 8, max_tokens: int = 1024,
                 trained: bool = False) -> None:
        self.path, self.trained = path, trained
        self.model = RewardModel(path, batch_size, max_tokens)
        self.label = f"{'trained reward model' if trained else 'reward model'} {path}"

    def score(self, prompts: list[str], answers: list[str], llm: LLMSession | None = None,
              user: str = "qc.reward") -> list[Scored]:
        if self.trained and trained_run(self.path) is None:
            raise FactoryError(f"reward model {self.path}: not a 'factory train reward' output "
                               "(needs train_config.json and adapter/)")
        return [(v, "") for v in self.model.score(prompts, answers)]


class RewardFilter(Filter):
    name = "reward"

    def __init__(self, block: RewardBlock, scorer: Any = None) -> None:
        super().__init__()
        self.block = block
        self.scorer = scorer or make_scorer(block.scorer)

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        answers, details = texts_or_failures(records, b.column)
        prompts, pdetails = texts_or_failures(records, b.prompt_column)
        ok = [i for i in range(len(records)) if answers[i] is not None and prompts[i] is not None]
        scored = dict(zip(ok, self.scorer.score([prompts[i] or "" for i in ok],
                                                [answers[i] or "" for i in ok], context.llm,
                                                f"qc.{self.label}")))
        values = [s for s, _ in scored.values() if s is not None and math.isfinite(s)]
        if b.min is not None:
            cut, reason = b.min, f"reward_below_{b.min:g}"
        else:
            cut = percentile_cut(values, b.percentile) if values else -math.inf
            reason = f"reward_below_p{b.percentile:g}"
        self.info = {"scorer": self.scorer.label, "cut": round(cut, 4), "rule": reason,
                     "default_scorer": b.scorer is None}
        out: list[Verdict] = []
        for i, record in enumerate(records):
            if i not in scored:
                out.append(Failed(details[i] or pdetails[i]))
                continue
            value, why = scored[i]
            if value is None:
                out.append(Failed(why, unscored_reason(why, "reward_unscored")))
                continue
            record.fields["qc_reward"] = value  # lets a later dedup keep the best of a group
            # Strictly below the cut: with ties at the cut (a 0-5 judge) nobody at the cut is dropped.
            out.append(Drop(reason, value, f"reward {value:.3g} < {cut:.3g}") if value < cut else Keep(value))
        return out
