"""Perplexity filter: texts a causal LM finds too surprising go.

Default scorer: the embedded SmolLM2-135M GGUF dequantized by transformers (factory/core/models.py);
any HF causal LM folder works. Texts are sorted by length and batched, so padding stays small.
With ``prompt_column`` the prompt is context only (its tokens are not scored): by default the user
turn of the model's chat template, the text its reply. The default statistic is the worst run of
8 tokens (``per: window``; ``token`` and ``char`` average the whole text), and the default cut is a
percentile of the same statistic on known-good reference text (in-house answers shipped in
``filters/reference/``, a file, or the seeds), so it does not move with the share of garbage in
the data; ``reference: data`` (a percentile of the data itself) is kept, and labelled as such.
A text of fewer than ``min_tokens`` scored tokens is kept uncut. The same forward pass gives the
log-probability that the text's turn or line ends right after it (``PerplexityScorer.ending``),
which the fit filter (``filters/fit.py``) reads from the shared scorer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.record import Record
from factory.core.text import as_text, texts_or_failures
from filters.base import Drop, Failed, Filter, Keep, QCContext, Verdict, percentile_cut
from filters.config import PerplexityBlock

# Answers written for this project (never copied from a data set): the default perplexity
# reference, so the cut is learned from known-good text and not from the data being filtered.
BUILTIN_REFERENCE = Path(__file__).resolve().parent / "reference" / "answers.jsonl"

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


def statistic(nlls: list[float], text: str, per: str, window: int = 8) -> float:
    """exp of the mean NLL per token (``token``), per character (``char``), or over the worst run
    of ``window`` tokens (``window``; a shorter text: all its tokens). NaN with nothing scored."""
    if not nlls or not text:
        return math.nan
    if per == "char":
        return math.exp(sum(nlls) / len(text))
    if per == "window" and len(nlls) > window:
        run = sum(nlls[:window])
        worst = run
        for i in range(window, len(nlls)):
            run += nlls[i] - nlls[i - window]
            worst = max(worst, run)
        return math.exp(worst / window)
    return math.exp(sum(nlls) / len(nlls))


class PerplexityScorer:
    def __init__(self, model: str = "smollm2", batch_size: int = 16, max_tokens: int = 512) -> None:
        self.spec, self.batch_size, self.max_tokens = model, batch_size, max_tokens
        # (context, text, chat) -> the scored tokens' NLLs: a text is scored once per scorer
        self._memo: dict[tuple[str, str, bool], list[float]] = {}
        # the same key -> log-prob that the turn or the line ends right after the text (chat framing,
        # text not cut at max_tokens; else NaN): computed in the same forward pass as the NLLs
        self._ending: dict[tuple[str, str, bool], float] = {}

    def score(self, texts: list[str], prompts: list[str] | None = None, per: str = "token",
              chat: bool = False, window: int = 8) -> list[float]:
        """Perplexity per text: exp(mean NLL per token); ``per="char"``: per character;
        ``per="window"``: of the worst ``window`` consecutive tokens (local garbage in a long answer
        is not averaged away). ``prompts`` condition the text and are not scored: with ``chat``, as
        the user turn of the tokenizer's chat template (the text is the assistant's reply), else
        as ``prompt + "\n"``."""
        keys = self._scored(texts, prompts, chat, self._memo)
        return [statistic(self._memo[key], key[1], per, window) for key in keys]

    def token_nlls(self, texts: list[str], prompts: list[str] | None = None,
                   chat: bool = False) -> list[list[float]]:
        """Each text's per-token NLLs (memoised as for ``score``)."""
        return [self._memo[key] for key in self._scored(texts, prompts, chat, self._memo)]

    def ending(self, texts: list[str], prompts: list[str]) -> list[float]:
        """Log-probability that the model ends its turn or the line right after each text (its
        chat template's end-of-turn token, or any token holding a newline), the prompt as the user
        turn: an answer cut mid-sentence ends neither. The newline counts because an answer may
        rightly stop on a word that ends a line (a list item, a label); measured on the QC
        benchmark it separates cut-offs better than the end-of-turn token alone (AUC 0.987 against
        0.963, 143 real open endings and 40 cut-offs). NaN where the text was cut at
        ``max_tokens`` or the tokenizer has no chat template."""
        return [self._ending[key] for key in self._scored(texts, prompts, True, self._ending)]

    def _scored(self, texts: list[str], prompts: list[str] | None, chat: bool,
                need: dict) -> list[tuple[str, str, bool]]:
        """The memo keys of ``texts``, scoring those ``need`` lacks (one pass fills both memos)."""
        keys = [(p, t, chat) for p, t in zip(prompts or [""] * len(texts), texts)]
        todo = sorted(set(keys) - set(need))
        if todo:
            scored = self._nll([t for _, t, _ in todo], [p for p, _, _ in todo] if prompts else None, chat)
            self._memo.update((k, nlls) for k, (nlls, _) in zip(todo, scored))
            self._ending.update((k, end) for k, (_, end) in zip(todo, scored))
        return keys

    def _context(self, tok: Any, prompt: str | None, chat: bool) -> list[int]:
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        if prompt is None:
            return bos
        if chat and getattr(tok, "chat_template", None):
            framed = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
            return tok(framed, add_special_tokens=False)["input_ids"]
        return bos + tok(prompt + "\n", add_special_tokens=False)["input_ids"]

    def _nll(self, texts: list[str], prompts: list[str] | None,
             chat: bool = False) -> list[tuple[list[float], float]]:
        """Per text: the negative log-likelihood of each scored token, and the log-probability that
        the turn or line ends after the text (chat framing with the whole text; else NaN). The
        end-of-turn token is appended and scored in the same pass: the text's own tokens do not see
        it (causal), so their NLLs are the same as without it; the ending is read from the
        distribution at that last position."""
        import torch

        model, tok = load_scorer(self.spec)
        eot = end_of_turn_id(tok) if chat and getattr(tok, "chat_template", None) else None
        endings = ending_ids(tok) if eot is not None else None
        seqs, ends = [], []
        for i, text in enumerate(texts):
            ctx = self._context(tok, prompts[i] if prompts else None, chat)
            body = tok(text, add_special_tokens=False)["input_ids"]
            whole = eot is not None and len(body) <= self.max_tokens
            body = body[: self.max_tokens] + ([eot] if whole else [])
            seqs.append((ctx[-self.max_tokens:], body))
            ends.append(whole)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]) + len(seqs[i][1]))
        out: list[list[float]] = [[] for _ in seqs]
        ending = [math.nan] * len(seqs)
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
            mask = scored[:, 1:]
            with torch.inference_mode():
                lp, lse = _scored_logprobs(model, ids, attn, mask, endings)
            counts = mask.sum(dim=1).tolist()
            at = 0
            for row, i in enumerate(batch):
                out[i] = [-v for v in lp[at:at + counts[row]].tolist()]
                at += counts[row]
                if ends[i]:
                    ending[i] = float(lse[at - 1])  # the appended end-of-turn token's position
        return [(nlls[:-1] if end else nlls, e) for nlls, end, e in zip(out, ends, ending)]


def end_of_turn_id(tok: Any) -> int:
    """The token the chat template puts right after an assistant reply (SmolLM2: <|im_end|>)."""
    marker = "Zq9xMarker"
    framed = tok.apply_chat_template([{"role": "user", "content": "hi"},
                                      {"role": "assistant", "content": marker}], tokenize=False)
    after = framed.split(marker, 1)[1]
    ids = tok(after, add_special_tokens=False)["input_ids"]
    if not ids:
        raise FactoryError("the chat template puts nothing after the assistant's reply: no end-of-turn token")
    return ids[0]


_ENDINGS: dict[int, list[int]] = {}  # per tokenizer (those of _LOADED live as long as the process)


def ending_ids(tok: Any) -> list[int]:
    """The end-of-turn token and every token whose text holds a newline: what may follow the last
    word of a whole answer (SmolLM2: <|im_end|> and 129 newline tokens)."""
    key = id(tok)
    if key not in _ENDINGS:
        texts = tok.convert_ids_to_tokens(list(range(len(tok))))
        newline = [i for i, t in enumerate(texts) if t is not None and
                   "\n" in tok.convert_tokens_to_string([t])]
        _ENDINGS[key] = sorted({end_of_turn_id(tok), *newline})
    return _ENDINGS[key]


def _scored_logprobs(model: Any, ids: Any, attn: Any, mask: Any,
                     endings: list[int] | None = None) -> tuple[Any, Any]:
    """Log-probabilities of the scored tokens only, flattened in row order, and (with ``endings``)
    at each scored position the log of the summed probability of those tokens. The vocabulary
    projection and softmax run on scored positions only (not on the prompt, the chat header or
    padding): with a 49k vocabulary that is most of the memory and a good share of the time.
    Models whose head does more than a linear projection (logit soft-capping) take the plain path."""
    import torch

    targets = ids[:, 1:][mask]
    decoder = getattr(model, getattr(model, "base_model_prefix", ""), None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    plain_head = getattr(model.config, "final_logit_softcapping", None) is None
    if decoder is not None and isinstance(head, torch.nn.Linear) and plain_head:
        hidden = decoder(input_ids=ids, attention_mask=attn).last_hidden_state
        logits = head(hidden[:, :-1][mask]).float()
    else:
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1][mask].float()
    logp = torch.log_softmax(logits, dim=-1)
    lse = torch.logsumexp(logp[:, endings], dim=-1) if endings else None
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1), lse


class PerplexityFilter(Filter):
    name = "perplexity"

    def __init__(self, block: PerplexityBlock, scorer: PerplexityScorer | None = None) -> None:
        super().__init__()
        self.block = block
        self.scorer = scorer or PerplexityScorer(block.model, block.batch_size, block.max_tokens)

    def _framed(self, prompts: list[str | None] | None, n: int) -> list[str | None] | None:
        """Each text's conditioning: its prompt, behind the fixed ``context`` when there is one."""
        c = self.block.context
        if c is None:
            return prompts
        base = prompts if prompts is not None else [""] * n
        return [None if p is None else f"{c}\n{p}" if p else c for p in base]

    def _score(self, texts: list[str], prompts: list[str | None] | None) -> list[float]:
        b = self.block
        return self.scorer.score(texts, [p or "" for p in prompts] if prompts is not None else None, b.per,
                                 chat=b.chat and b.prompt_column is not None, window=b.window)

    def _short(self, texts: list[str], prompts: list[str | None] | None) -> list[bool]:
        """Which texts have fewer than ``min_tokens`` scored tokens (a scorer without token counts:
        none)."""
        if not hasattr(self.scorer, "token_nlls"):
            return [False] * len(texts)
        b = self.block
        nlls = self.scorer.token_nlls(texts, [p or "" for p in prompts] if prompts is not None else None,
                                      chat=b.chat and b.prompt_column is not None)
        return [0 < len(n) < b.min_tokens for n in nlls]

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        texts, details = texts_or_failures(records, b.column)
        prompts: list[str | None] | None = None
        if b.prompt_column:
            prompts, pdetails = texts_or_failures(records, b.prompt_column)
            details = [d or p for d, p in zip(details, pdetails)]
        prompts = self._framed(prompts, len(texts))
        ok = [i for i, t in enumerate(texts) if t is not None and (prompts is None or prompts[i] is not None)]
        scores = self._score([texts[i] or "" for i in ok],
                             [prompts[i] for i in ok] if prompts is not None else None)
        ppl: dict[int, float] = dict(zip(ok, scores))
        short = self._short([texts[i] or "" for i in ok],
                            [prompts[i] for i in ok] if prompts is not None else None)
        short_ids = {i for i, s in zip(ok, short) if s}
        unit = {"token": "", "char": "_per_char", "window": f"_window{b.window}"}[b.per]
        if b.max is not None:
            cut, reason, source = b.max, f"perplexity{unit}_above_{b.max:g}", f"absolute max {b.max:g}"
        else:
            reference, where = (list(ppl.values()), "this data itself (removes the same share whatever "
                                "the data holds)") if b.reference == "data" else self._reference(context)
            finite = [v for v in reference if math.isfinite(v)]
            if not finite:
                raise FactoryError(f"qc.{self.label}: the reference ({where}) has no text to score")
            factor = b.margin if b.margin is not None else 1.5 if b.reference == "builtin" else 1.0
            cut = percentile_cut(finite, b.percentile) * factor
            tag = "" if b.reference == "data" else f"{b.reference}_"
            reason = f"perplexity{unit}_above_{tag}p{b.percentile:g}"
            margin = f" × {factor:g}" if factor != 1 else ""
            source = f"p{b.percentile:g}{margin} of {len(finite)} texts: {where}"
        self.info = {"model": b.model, "column": b.column, "cut": round(cut, 3), "rule": reason,
                     "cut_source": source, "per": b.per, "reference": b.reference,
                     "framing": ("chat template" if b.chat else "prompt + newline") if b.prompt_column
                     else ("fixed context" if b.context else "no prompt"),
                     "percentile": None if b.max is not None else b.percentile,
                     "short_kept_uncut": sum(ppl[i] > cut for i in short_ids if math.isfinite(ppl[i])),
                     "min_tokens": b.min_tokens}
        out: list[Verdict] = []
        for i in range(len(records)):
            if i not in ppl:
                out.append(Failed(details[i]))
            elif not math.isfinite(ppl[i]):
                out.append(Failed("no tokens to score", "empty_text"))
            elif ppl[i] > cut and i not in short_ids:
                out.append(Drop(reason, round(ppl[i], 3), f"perplexity {ppl[i]:.2f} > {cut:.2f} ({source})"))
            else:
                out.append(Keep(round(ppl[i], 3)))
        return out

    def _reference(self, context: QCContext) -> tuple[list[float], str]:
        """Scores of known-good text, framed like the data: the cut does not move with the share of
        garbage in the data."""
        b = self.block
        if b.reference == "seeds":
            col = b.seed_column or b.column
            seed_texts = [t for row in context.seeds if (t := as_text(row.get(col)))]
            if not seed_texts:
                raise FactoryError(f"qc.{self.label}: reference: seeds, but no seed has text in {col!r}")
            return self._score(seed_texts, self._framed(None, len(seed_texts))), f"the seeds' {col!r}"
        from factory.core.rows import read_rows

        path = Path(b.reference_file) if b.reference == "file" and b.reference_file else BUILTIN_REFERENCE
        rows = read_rows(path)
        own = b.reference == "file"  # a user's file has the data's columns; ours: prompt, response
        texts = [as_text(row.get(b.column if own else "response")) for row in rows]
        prompts = None
        if b.prompt_column:
            prompts = [as_text(row.get(b.prompt_column if own else "prompt")) for row in rows]
        keep = [i for i, t in enumerate(texts) if t and (prompts is None or prompts[i] is not None)]
        if not keep:
            cols = f"{b.column!r}" + (f" and {b.prompt_column!r}" if b.prompt_column else "")
            raise FactoryError(f"qc.{self.label}: reference_file {path}: no row has text in {cols}")
        framed = self._framed([prompts[i] for i in keep] if prompts is not None else None, len(keep))
        where = ("in-house reference answers (filters/reference/answers.jsonl)" if path == BUILTIN_REFERENCE
                 else f"reference file {path}")
        return self._score([texts[i] or "" for i in keep], framed), where
