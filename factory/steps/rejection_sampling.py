"""``kind: rejection_sampling`` — best-of-N: sample N answers, score them, keep the best that passes.

The scorer is a verifier (numeric / exact / regex / json_schema / number_list / constraints / a user
``module:function``), the rubric judge, or a reward model (``factory/steps/scorers.py``). From the N
scored samples:

- SFT: the best sample, if it passes (rejection-sampling fine-tuning, as in Llama 2 / RAFT / STaR);
- DPO: best vs worst when the score gap is at least ``min_margin`` (and > 0);
- pass@k per prompt with the unbiased estimator of Chen et al. 2021 (Codex), k ≤ n.

A prompt whose best passes but has no pair with enough margin is kept for SFT with ``worst = null``
(the DPO split then lists it under ``not_in_split``) unless ``require_pair: true`` rejects it as
``low_margin``: one good answer is worth keeping even when there is nothing to contrast it with.
A verifier that checks several things (``constraints``) leaves its per-sample results in the scores
column (``checks``); a row whose reference it cannot use (a bad constraint list) is rejected as
``bad_reference`` with the verifier's one-line reason.
"""

from __future__ import annotations

from collections import Counter
from math import comb
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from factory.core.record import Rejected
from factory.core.schema import Strict
from factory.core.templates import check_template
from factory.core.verifiers import is_user_verifier
from factory.llm.request import Request
from factory.steps.base import StepBase, StepContext, StepRunner, render, template_chat
from factory.steps.constraint_repair import repair_best
from factory.steps.scorers import JudgeScorer, Scorer, VerifierScorer, make_scoring, validate_scorer

HISTOGRAM = "prompts_passing_"  # figure key prefix: prompts_passing_{c}_of_{n}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c pass: 1 - C(n-c, k) / C(n, k) (Chen et al. 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


class FewShot(Strict):
    user: str = Field(min_length=1, description="an example prompt (plain text, not a template)")
    assistant: str = Field(min_length=1, description="its answer")


class RejectionSamplingStep(StepBase):
    """N samples per prompt, scored; writes [best, worst, scores, pass_at_k]."""

    kind: Literal["rejection_sampling"]
    prompt: str = Field(description="template; {column} inserts a column the step reads")
    system: str | None = Field(None, description="system message (template too)")
    examples: list[FewShot] = Field(default_factory=list, description="worked examples shown as "
                                    "earlier chat turns when sampling (few-shot); the dataset keeps "
                                    "the bare prompt, so training distills them away (as in STaR)")
    n: int = Field(8, ge=1, le=256, description="samples per prompt")
    k: list[int] = Field(default_factory=lambda: [1], min_length=1, description="pass@k for each k <= n")
    scorer: Scorer
    min_margin: float = Field(0.0, ge=0, description="DPO pair only when best - worst >= this (and > 0)")
    require_pair: bool = Field(False, description="reject a prompt with no DPO pair (low_margin) "
                                                  "instead of keeping its best for SFT")
    repair: bool = Field(False, description="constraints verifier only: when no sample passes, "
                         "repair the best one by program edits (re-checked); chosen = the repair, "
                         "rejected = the sample it came from")

    @field_validator("prompt", "system")
    @classmethod
    def template_reads_declared(cls, value: str | None, info: ValidationInfo) -> str | None:
        check_template(value, info.data.get("reads", []))
        return value

    @model_validator(mode="after")
    def shape(self) -> "RejectionSamplingStep":
        if len(self.writes) != 4:
            raise ValueError("rejection_sampling writes exactly [best, worst, scores, pass_at_k]")
        bad = [k for k in self.k if not 1 <= k <= self.n]
        if bad:
            raise ValueError(f"k={bad}: pass@k needs 1 <= k <= n (n={self.n})")
        validate_scorer(self.scorer, self.reads)
        if self.repair and not (isinstance(self.scorer, VerifierScorer)
                                and self.scorer.verifier == "constraints"):
            raise ValueError("repair: true needs scorer {type: verifier, verifier: constraints}")
        return self

    def backend_refs(self) -> dict[str, str]:
        refs = {"backend": self.backend}
        if isinstance(self.scorer, JudgeScorer):
            refs["scorer.backend"] = self.scorer.backend
        return refs

    def code_refs(self) -> dict[str, str]:
        if isinstance(self.scorer, VerifierScorer) and is_user_verifier(self.scorer.verifier):
            return {"scorer.verifier": self.scorer.verifier}
        return {}


class RejectionSampling(StepRunner):
    spec: RejectionSamplingStep

    def __init__(self, spec: RejectionSamplingStep, params: Any) -> None:
        super().__init__(spec, params)
        self._scoring: Any = None  # built on first use: backend_params are set after __init__

    @property
    def scoring(self) -> Any:
        if self._scoring is None:
            scorer = self.spec.scorer
            base = self.backend_params.get(getattr(scorer, "backend", ""), self.params)
            self._scoring = make_scoring(scorer, base, self.spec.backend, self.spec._recipe_dir)
        return self._scoring

    def messages(self, fields: dict[str, Any]) -> list[dict[str, str]]:
        return template_chat(self.spec.system, self.spec.prompt, fields,
                             [(e.user, e.assistant) for e in self.spec.examples])

    def sample_requests(self, fields: dict[str, Any]) -> list[Request]:
        # Not ``requests``: the scorer's calls (a judge) come after, so a dry run cannot count them.
        chat = self.messages(fields)
        return [Request.chat(chat, self.params, sample_index=i) for i in range(self.spec.n)]

    async def run(self, fields: dict[str, Any], ctx: StepContext) -> dict[str, Any] | Rejected:
        n = self.spec.n
        completions = await ctx.ask(self.sample_requests(fields))
        texts = [c.text.strip() for c in completions]
        truncated = [c.finish_reason == "length" for c in completions]
        ctx.count("samples", n)
        ctx.count("samples_truncated", sum(truncated))
        # A cut-off answer is never a candidate: it would teach stopping mid-sentence.
        candidates = [i for i in range(n) if texts[i] and not truncated[i]]
        scores: list[float | None] = [None] * n
        checks: list[Any] = [None] * n  # per sample: the verifier's per-check results, if it has any
        if candidates:
            scored = await self.scoring.score(render(self.spec.prompt, fields),
                                              [texts[i] for i in candidates], fields, ctx)
            if scored.bad_reference is not None:
                return Rejected("bad_reference", scored.bad_reference, {"samples": texts})
            if isinstance(self.spec.scorer, JudgeScorer):
                ctx.count("judge_unparseable", scored.unparseable_judge)
            for i, value in zip(candidates, scored.scores):
                scores[i] = value
            for i, value in zip(candidates, scored.checks or []):
                checks[i] = value
        passed = [s is not None and self.scoring.passes(s) for s in scores]
        c = sum(passed)
        ctx.count(f"{HISTOGRAM}{c}_of_{n}")  # pass@k over the set is computed from this histogram
        ctx.count("samples_passing", c)
        ctx.count("samples_unreadable", sum(s is None for s, t in zip(scores, truncated) if not t))
        record: dict[str, Any] = {"samples": texts, "scores": scores, "passed": passed}
        if any(c is not None for c in checks):
            record["checks"] = checks
            for sample_checks in checks:
                for check in sample_checks or []:  # per check kind: how often samples meet it
                    ctx.count(f"checked:{check['id']}")
                    ctx.count(f"met:{check['id']}", bool(check["ok"]))
        if c == 0 and self.spec.repair:
            return await self.repaired(fields, texts, truncated, scores, record, ctx)
        if c:
            ctx.count("sampled_pass")
        if all(truncated):
            return Rejected("truncated", f"all {n} samples hit max_tokens={self.params.max_tokens}",
                            record)
        if all(s is None for s in scores):
            return Rejected("all_samples_failed_to_parse", f"the {self.spec.scorer.type} scorer read "
                            f"no answer in any of the {n} samples", record)
        if c == 0:
            best_seen = max(s for s in scores if s is not None)
            return Rejected("no_passing_sample", f"0 of {n} passed (best score {best_seen:g})", record)
        best = max((i for i in range(n) if passed[i]), key=lambda i: (scores[i], -i))
        worst = min((i for i in range(n) if scores[i] is not None), key=lambda i: (scores[i], i))
        margin = float(scores[best]) - float(scores[worst])  # type: ignore[arg-type]
        pair = margin > 0 and margin >= self.spec.min_margin and texts[best] != texts[worst]
        if not pair and self.spec.require_pair:
            return Rejected("low_margin", f"best - worst = {margin:g} < min_margin "
                            f"{self.spec.min_margin:g} (or no different answer)", record)
        ctx.count("pairs" if pair else "low_margin")
        best_col, worst_col, scores_col, pass_col = self.spec.writes
        return {best_col: texts[best], worst_col: texts[worst] if pair else None,
                scores_col: {**record, "best": best, "worst": worst if pair else None,
                             "margin": round(margin, 6), "pair": "ok" if pair else "low_margin"},
                pass_col: {"n": n, "c": c, **{f"pass@{k}": round(pass_at_k(n, c, k), 6)
                                              for k in self.spec.k},
                           **({"source": "sampled", "repaired": []} if self.spec.repair else {})}}

    async def repaired(self, fields: dict[str, Any], texts: list[str], truncated: list[bool],
                       scores: list[float | None], record: dict[str, Any],
                       ctx: StepContext) -> dict[str, Any] | Rejected:
        """No sample passed: the best repaired one is chosen, its unedited sample rejected."""
        found = await repair_best(self.scoring, render(self.spec.prompt, fields), fields,
                                  self.spec.scorer.answer, texts, truncated, scores, ctx)
        if isinstance(found, Rejected):
            return found
        text, source, lineage = found
        best_col, worst_col, scores_col, pass_col = self.spec.writes
        n = self.spec.n
        return {best_col: text, worst_col: texts[source],
                scores_col: {**record, "best": None, "worst": source, "pair": "repaired",
                             "repaired": lineage, "margin": round(1.0 - float(scores[source] or 0), 6)},
                pass_col: {"n": n, "c": 0, **{f"pass@{k}": 0.0 for k in self.spec.k},
                           "source": "repaired", "repaired": lineage}}

    def rates(self, figures: Counter) -> dict[str, float]:
        """Mean pass@k over every scored prompt (kept or rejected), and the per-sample pass rate."""
        hist = [(int(c), int(n), count) for key, count in figures.items() if key.startswith(HISTOGRAM)
                for c, n in [key[len(HISTOGRAM):].split("_of_")]]
        prompts = sum(count for _, _, count in hist)
        out: dict[str, float] = {}
        if prompts:
            for k in self.spec.k:
                out[f"pass@{k}"] = sum(count * pass_at_k(n, c, k) for c, n, count in sorted(hist)) / prompts
        if figures.get("samples"):
            out["sample_pass_rate"] = figures["samples_passing"] / figures["samples"]
        return out

    def card_section(self, figures: Counter) -> str:
        """Per check kind (constraint type): samples checked and the share that met it."""
        kinds = sorted(k[len("checked:"):] for k in figures if k.startswith("checked:"))
        if not kinds:
            return ""
        rows = "\n".join(f"| `{k}` | {figures[f'checked:{k}']} | "
                         f"{figures[f'met:{k}'] / figures[f'checked:{k}']:.0%} |" for k in kinds)
        return (f"## Checks met by the samples (step `{self.name}`, verifier "
                f"`{getattr(self.spec.scorer, 'verifier', '')}`)\n\n| check | samples checked | met |\n"
                f"|---|---|---|\n{rows}\n")
