"""Reward scorers and the bottom-percentile cut.

Scorers (``score(prompts, answers) -> [(score | None, detail)]``):
- ``judge``: the rubric judge (factory.rubric) through any backend, calls cached like a build's.
  The default when no scorer is configured, on the embedded SmolLM2 — labeled as such in stats.
- ``hf``: any sequence-classification reward model folder (e.g. Skywork-Reward), logit 0.
- ``trained``: the output of ``factory train reward`` (base model + LoRA + score head).
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.record import Record, Rejected
from factory.core.text import texts_or_failures
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


class JudgeRewardScorer:
    def __init__(self, spec: JudgeScorer, default: bool = False) -> None:
        self.spec = spec
        self.block = spec.backend or BackendBlock(name="llama_cpp", model="embedded")
        self.label = DEFAULT_LABEL if default else (
            f"judge rubric score (0-5) from backend {self.block.name}, model {self.block.model or 'default'}")

    def score(self, prompts: list[str], answers: list[str]) -> list[Scored]:
        return asyncio.run(self._score(prompts, answers))

    async def _score(self, prompts: list[str], answers: list[str]) -> list[Scored]:
        from factory.core.paths import default_cache_path
        from factory.llm.backends import backend_class
        from factory.llm.backends.base import BackendSettings
        from factory.llm.cache import RequestCache
        from factory.llm.dispatch import Dispatcher
        from factory.llm.request import SamplingParams
        from factory.llm.rubric import parse_rubric, rubric_request

        b = self.block
        backend = backend_class(b.name)(BackendSettings(b.model, b.concurrency, dict(b.options)))
        cache = RequestCache(default_cache_path())
        try:
            params = b.params.over(SamplingParams(temperature=0.0, max_tokens=self.spec.max_tokens))
            dispatcher = Dispatcher(backend, cache, b.concurrency)
            requests = [rubric_request(p, a, params, self.spec.criteria) for p, a in zip(prompts, answers)]
            completions = await asyncio.gather(*(dispatcher.complete(r) for r in requests))
        finally:
            await backend.close()
            cache.close()
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
    """A one-logit sequence classifier; ``trained``: a ``factory train reward`` run folder."""

    def __init__(self, path: Path, batch_size: int = 8, max_tokens: int = 1024,
                 trained: bool = False) -> None:
        self.path, self.batch_size, self.max_tokens, self.trained = path, batch_size, max_tokens, trained
        self.label = f"{'trained reward model' if trained else 'reward model'} {path}"
        self._model: Any = None

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            self._model = self._load_trained() if self.trained else self._load_hf()
        return self._model

    def _load_hf(self) -> tuple[Any, Any]:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not (self.path / "config.json").exists():
            raise FactoryError(f"reward model {self.path}: no config.json (nothing is downloaded)")
        tok = AutoTokenizer.from_pretrained(self.path)
        model = AutoModelForSequenceClassification.from_pretrained(self.path).eval()
        return model, tok

    def _load_trained(self) -> tuple[Any, Any]:
        from peft import PeftModel

        from factory.core.models import load_model, load_tokenizer, resolve_model

        run = self.path.parent if self.path.name == "adapter" else self.path
        config = run / "train_config.json"
        if not config.exists() or not (run / "adapter").is_dir():
            raise FactoryError(f"reward model {self.path}: not a 'factory train reward' output "
                               "(needs train_config.json and adapter/)")
        base = resolve_model(json.loads(config.read_text())["model"])
        model = PeftModel.from_pretrained(load_model(base, reward_head=True), str(run / "adapter")).eval()
        tok = load_tokenizer(base)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tok.pad_token_id
        return model, tok

    def _text(self, tok: Any, prompt: str, answer: str) -> str:
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([{"role": "user", "content": prompt},
                                            {"role": "assistant", "content": answer}], tokenize=False)
        return f"{prompt}\n{answer}"

    def score(self, prompts: list[str], answers: list[str]) -> list[Scored]:
        import torch

        model, tok = self._load()
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        texts = [self._text(tok, p, a) for p, a in zip(prompts, answers)]
        out: list[Scored] = []
        for start in range(0, len(texts), self.batch_size):
            enc = tok(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                      truncation=True, max_length=self.max_tokens, add_special_tokens=False)
            with torch.inference_mode():
                logits = model(**enc).logits.float()
            out += [(float(v), "") for v in logits[:, 0]]
        return out


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
                                                [answers[i] or "" for i in ok])))
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
                out.append(Failed(why, "reward_unscored"))
                continue
            record.fields["qc_reward"] = value  # lets a later dedup keep the best of a group
            # Strictly below the cut: with ties at the cut (a 0-5 judge) nobody at the cut is dropped.
            out.append(Drop(reason, value, f"reward {value:.3g} < {cut:.3g}") if value < cut else Keep(value))
        return out
