"""Reward scorers and the bottom-percentile cut, behind a gate (``filters.reward_gate``): the cut
deletes rows only when the scorer put real answers above degraded copies of them in enough sanity
pairs from the same data; otherwise the filter reports scores only and says why.

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
        user = f"qc.{self.label}"
        scored = dict(zip(ok, self.scorer.score([prompts[i] or "" for i in ok],
                                                [answers[i] or "" for i in ok], context.llm, user)))
        values = [s for s, _ in scored.values() if s is not None and math.isfinite(s)]
        if b.min is not None:
            cut, reason = b.min, f"reward_below_{b.min:g}"
        else:
            cut = percentile_cut(values, b.percentile) if values else -math.inf
            reason = f"reward_below_p{b.percentile:g}"
        gate, why = self._gate([(prompts[i] or "", answers[i] or "") for i in ok], context, user)
        deletes = gate is None or gate["passed"]
        self.info = {"scorer": self.scorer.label, "cut": round(cut, 4), "rule": reason,
                     "cut_source": (f"absolute min {b.min:g}" if b.min is not None else
                                    f"p{b.percentile:g} of this data's scores"),
                     "default_scorer": b.scorer is None, "deletes": deletes, "reward_gate": gate,
                     "message": why}
        out: list[Verdict] = []
        for i, record in enumerate(records):
            if i not in scored:
                out.append(Failed(details[i] or pdetails[i]))
                continue
            value, why_unscored = scored[i]
            if value is None:
                out.append(Failed(why_unscored, unscored_reason(why_unscored, "reward_unscored")))
                continue
            record.fields["qc_reward"] = value  # lets a later dedup keep the best of a group
            # Strictly below the cut: with ties at the cut (a 0-5 judge) nobody at the cut is dropped.
            below = value < cut
            out.append(Drop(reason, value, f"reward {value:.3g} < {cut:.3g}") if below and deletes
                       else Keep(value))
        return out

    def _gate(self, rows: list[tuple[str, str]], context: QCContext,
              user: str) -> tuple[dict[str, Any] | None, str]:
        """The scorer's agreement on sanity pairs from these rows, and what it means for the cut."""
        from filters.reward_gate import gate_pairs, pair_agreement

        g = self.block.gate
        if g is None:
            return None, "no gate (gate: null): the cut deletes rows without measuring the scorer"
        pairs = gate_pairs(rows, g.pairs, g.seed)
        base = {"pairs_wanted": g.pairs, "min_agreement": g.min_agreement, "passed": False}
        if len(pairs) < 4:
            return ({**base, "pairs": len(pairs), "agreement": None},
                    f"scores only, no row deleted: the gate needs 4 sanity pairs and the data gave "
                    f"{len(pairs)} (answers of 8+ words with a sentence end)")

        def score(prompts: list[str], answers: list[str]) -> list[float | None]:
            return [v for v, _ in self.scorer.score(prompts, answers, context.llm, f"{user}.gate")]

        measured = pair_agreement(score, pairs)
        value = measured.agreement
        passed = value is not None and value >= g.min_agreement
        shown = "n/a" if value is None else f"{value:.0%}"
        if passed:
            why = (f"gate passed: the scorer put the real answer above its degraded copy in {shown} of "
                   f"{measured.scored} sanity pairs (needs {g.min_agreement:.0%})")
        else:
            why = (f"scores only, no row deleted: the scorer put the real answer above its degraded copy "
                   f"in {shown} of {measured.scored} sanity pairs from this data (needs "
                   f"{g.min_agreement:.0%}; 50% is chance)")
        return {**base, **measured.as_dict(), "passed": passed}, why
