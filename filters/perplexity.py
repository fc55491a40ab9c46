"""Perplexity filter: per-token perplexity of a text under a causal LM; the most perplexing go.

Default scorer: the embedded SmolLM2-135M GGUF dequantized by transformers (trainers/models.py);
any HF causal LM folder works. Texts are sorted by length and batched, so padding stays small.
With ``prompt_column`` the prompt is context only: its tokens are not scored.
"""

from __future__ import annotations

import math
from typing import Any

from factory.core.errors import FactoryError
from factory.core.record import Record
from factory.core.text import as_text, texts_or_failures
from filters.base import Drop, Failed, Filter, Keep, QCContext, Verdict, percentile_cut
from filters.config import PerplexityBlock

_LOADED: dict[str, tuple[Any, Any]] = {}  # one load per process (the GGUF takes ~20 s)


def load_scorer(spec: str) -> tuple[Any, Any]:
    if spec not in _LOADED:
        from transformers.utils import logging as hf_logging

        from factory.core.models import load_model, load_tokenizer, resolve_model

        hf_logging.disable_progress_bar()  # stderr stays one line per error

        ref = resolve_model(spec)
        model = load_model(ref).eval()
        _LOADED[spec] = (model, load_tokenizer(ref))
    return _LOADED[spec]


class PerplexityScorer:
    def __init__(self, model: str = "smollm2", batch_size: int = 16, max_tokens: int = 512) -> None:
        self.spec, self.batch_size, self.max_tokens = model, batch_size, max_tokens
        self._memo: dict[tuple[str, str], tuple[float, int]] = {}  # (prompt, text) -> (nll, tokens)

    def score(self, texts: list[str], prompts: list[str] | None = None, per: str = "token") -> list[float]:
        """Perplexity per text: exp(mean NLL per token), or per character with ``per="char"``."""
        todo = sorted({(p, t) for p, t in zip(prompts or [""] * len(texts), texts)} - set(self._memo))
        if todo:
            sums = self._nll([t for _, t in todo], [p for p, _ in todo] if prompts else None)
            self._memo.update(zip(todo, sums))
        out = []
        for p, t in zip(prompts or [""] * len(texts), texts):
            nll, count = self._memo[(p, t)]
            denom = count if per == "token" else len(t)
            out.append(math.exp(nll / denom) if count and denom else math.nan)
        return out

    def _nll(self, texts: list[str], prompts: list[str] | None) -> list[tuple[float, int]]:
        """(summed negative log-likelihood, scored tokens) per text."""
        import torch

        model, tok = load_scorer(self.spec)
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        seqs = []
        for i, text in enumerate(texts):
            ctx = bos + (tok(prompts[i] + "\n", add_special_tokens=False)["input_ids"] if prompts else [])
            body = tok(text, add_special_tokens=False)["input_ids"][: self.max_tokens]
            seqs.append((ctx[-self.max_tokens:], body))
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]) + len(seqs[i][1]))
        out: list[tuple[float, int]] = [(math.nan, 0)] * len(seqs)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = max(len(seqs[i][0]) + len(seqs[i][1]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attn = torch.zeros((len(batch), width), dtype=torch.long)
            scored = torch.zeros((len(batch), width), dtype=torch.bool)
            for row, i in enumerate(batch):
                ctx, body = seqs[i]
                n = len(ctx) + len(body)
                ids[row, :n] = torch.tensor(ctx + body)
                attn[row, :n] = 1
                # Token t is predicted from the ones before it; with no context the first is unscored.
                scored[row, max(len(ctx), 1):n] = True
            with torch.inference_mode():
                logits = model(input_ids=ids, attention_mask=attn).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            tok_lp = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            mask = scored[:, 1:]
            for row, i in enumerate(batch):
                out[i] = (-float(tok_lp[row][mask[row]].sum()), int(mask[row].sum()))
        return out


class PerplexityFilter(Filter):
    name = "perplexity"

    def __init__(self, block: PerplexityBlock, scorer: PerplexityScorer | None = None) -> None:
        super().__init__()
        self.block = block
        self.scorer = scorer or PerplexityScorer(block.model, block.batch_size, block.max_tokens)

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        texts, details = texts_or_failures(records, b.column)
        prompts: list[str | None] | None = None
        if b.prompt_column:
            prompts, pdetails = texts_or_failures(records, b.prompt_column)
            details = [d or p for d, p in zip(details, pdetails)]
        if b.context is not None:  # a fixed lead-in: the model sees what kind of text follows
            base = prompts if prompts is not None else [""] * len(texts)
            prompts = [None if p is None else f"{b.context}\n{p}" if p else b.context for p in base]
        ok = [i for i, t in enumerate(texts) if t is not None and (prompts is None or prompts[i] is not None)]
        scores = self.scorer.score([texts[i] or "" for i in ok],
                                   [prompts[i] or "" for i in ok] if prompts is not None else None, b.per)
        ppl: dict[int, float] = dict(zip(ok, scores))
        reference = list(ppl.values())
        if b.reference == "seeds" and b.max is None:  # a cut learned from known-good text
            col = b.seed_column or b.column
            seed_texts = [t for row in context.seeds if (t := as_text(row.get(col)))]
            if not seed_texts:
                raise FactoryError(f"qc.{self.label}: reference: seeds, but no seed has text in {col!r}")
            contexts = [b.context] * len(seed_texts) if b.context else None
            reference = self.scorer.score(seed_texts, contexts, b.per)
        finite = [v for v in reference if math.isfinite(v)]
        unit = "" if b.per == "token" else "_per_char"
        if b.max is not None:
            cut, reason = b.max, f"perplexity{unit}_above_{b.max:g}"
        else:
            cut = percentile_cut(finite, b.percentile) if finite else math.inf
            where = "seed_" if b.reference == "seeds" else ""
            reason = f"perplexity{unit}_above_{where}p{b.percentile:g}"
        self.info = {"model": b.model, "column": b.column, "cut": round(cut, 3), "rule": reason,
                     "per": b.per, "reference": b.reference,
                     "percentile": None if b.max is not None else b.percentile}
        out: list[Verdict] = []
        for i in range(len(records)):
            if i not in ppl:
                out.append(Failed(details[i]))
            elif not math.isfinite(ppl[i]):
                out.append(Failed("no tokens to score", "empty_text"))
            elif ppl[i] > cut:
                out.append(Drop(reason, round(ppl[i], 3), f"perplexity {ppl[i]:.1f} > {cut:.1f}"))
            else:
                out.append(Keep(round(ppl[i], 3)))
        return out
