"""A local Hugging Face causal LM: batched decoding with left padding, per-request seeds, log-probs.

``model``: an HF folder, a .gguf file (dequantized to fp32 by transformers), or ``smollm2`` (the
embedded GGUF). Requests arriving within ``batch_wait_s`` (default 0.02) form one batch of at most
``concurrency``; one batch decodes at a time on a worker thread. The decode loop is ours, not
``generate``: each row samples with its own ``torch.Generator`` seeded from the request, so a
request's sample does not depend on the batch's random stream (float rounding of a different batch
shape can still move a near-tie). Options: ``batch_wait_s``, ``n_threads``, ``dtype`` (float32),
``adapters`` (LoRA adapter folders merged into the weights in order: SFT then DPO).
"""

from __future__ import annotations

import threading
from typing import Any

from factory.llm.backends.base import Backend, BackendSettings
from factory.llm.backends.batching import MicroBatcher
from factory.llm.backends.chat_prefix import cut_at_user_turn
from factory.llm.request import Completion, Request, top_alternatives


class TransformersBackend(Backend):
    name = "transformers"
    raw_prompts = True
    gives_top_logprobs = True

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        opts = dict(settings.options)
        wait = float(opts.pop("batch_wait_s", 0.02))
        self.n_threads = opts.pop("n_threads", None)
        self.dtype = str(opts.pop("dtype", "float32"))
        adapters = opts.pop("adapters", [])
        self.adapters = [adapters] if isinstance(adapters, str) else list(adapters)
        if opts:
            raise ValueError(f"unknown transformers backend option(s): {', '.join(sorted(opts))}")
        from factory.core.models import adapters_id, resolve_model, weights_id

        self.ref = resolve_model(settings.model or "smollm2")
        self._adapters_id = adapters_id(self.adapters)  # also checks that each folder exists
        self._weights_id = weights_id(self.ref)
        self._model: Any = None
        self._lock = threading.Lock()
        self.batcher = MicroBatcher(self._run_batch, max(1, settings.concurrency), wait)

    @property
    def model_id(self) -> str:
        # Adapters are named by a hash of their weights: a retrained adapter never hits old cache rows.
        return f"hf:{self.ref.name}" + (f"+lora:{self._adapters_id}" if self.adapters else "")

    @property
    def cache_id(self) -> str:
        # model_id names the base model by its folder only: two models in folders of the same name,
        # or one retrained in place, must not share cached answers (``factory eval`` caches them).
        return f"{self.model_id}@{self._weights_id}"

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            import torch

            from factory.core.models import load_model, load_tokenizer

            if self.n_threads:
                torch.set_num_threads(int(self.n_threads))
            self.tokenizer = load_tokenizer(self.ref)
            self.tokenizer.padding_side = "left"  # new tokens line up at the right edge
            self._model = load_model(self.ref, adapters=self.adapters).to(getattr(torch, self.dtype)).eval()
            eos = self._model.generation_config.eos_token_id
            eos = eos if isinstance(eos, list) else [eos]
            self.eos = {e for e in [*eos, self.tokenizer.eos_token_id] if e is not None}

    async def generate(self, requests: list[Request]) -> list[Completion]:
        return await self.batcher.submit(requests)

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        self._load()
        return len(self._prompt_ids(messages))

    def _prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _request_ids(self, request: Request) -> list[int]:
        if request.raw is not None:  # sent as is: the text already holds any special tokens
            return self.tokenizer(request.raw, add_special_tokens=False).input_ids
        return self._prompt_ids(request.message_dicts())

    def pre_query_prefix(self, system: str | None) -> str:
        tokenizer = getattr(self, "tokenizer", None)
        if tokenizer is None:  # the tokenizer alone: no weights are loaded for this
            from factory.core.models import load_tokenizer

            tokenizer = load_tokenizer(self.ref)
        return cut_at_user_turn(lambda messages: tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False), system)

    # ---- decoding (worker thread) -----------------------------------------------------------

    def _run_batch(self, requests: list[Request]) -> list[Completion]:
        try:
            self._load()
            return self._decode(requests)
        except Exception as exc:  # a failed batch fails its requests, never the process
            return [Completion("", "error", error=f"transformers: {type(exc).__name__}: {exc}")
                    for _ in requests]

    def _decode(self, requests: list[Request]) -> list[Completion]:
        import torch

        prompts = [self._request_ids(r) for r in requests]
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        gens = [torch.Generator().manual_seed(r.sampling_seed(self.name, self.model_id)) for r in requests]
        tokens: list[list[int]] = [[] for _ in requests]
        logps: list[list[float]] = [[] for _ in requests]
        tops: list[list[tuple[str, dict[str, float]]]] = [[] for _ in requests]  # with top_logprobs
        finish: list[str | None] = [None] * len(requests)
        texts = [""] * len(requests)
        past, step_ids = None, ids
        with torch.inference_mode():
            for _ in range(max(r.params.max_tokens for r in requests)):
                out = self._model(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                                  past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[:, -1, :].float()
                chosen = []
                for i, r in enumerate(requests):
                    if finish[i] is not None:
                        chosen.append(pad)
                        continue
                    token = _sample(logits[i], r, gens[i])
                    chosen.append(token)
                    finish[i], texts[i] = self._advance(r, token, logits[i], tokens[i], logps[i], tops[i])
                if all(f is not None for f in finish):
                    break
                step_ids = torch.tensor(chosen).unsqueeze(1)
                mask = torch.cat([mask, torch.ones(len(requests), 1, dtype=mask.dtype)], dim=1)
                positions = positions[:, -1:] + 1
        return [Completion(texts[i] or self.tokenizer.decode(tokens[i], skip_special_tokens=True),
                           finish[i] or "length", len(prompts[i]), len(tokens[i]),
                           logps[i] if r.logprobs else None,
                           tokens=[t for t, _ in tops[i]] if r.top_logprobs else None,
                           top_logprobs=[a for _, a in tops[i]] if r.top_logprobs else None)
                for i, r in enumerate(requests)]

    def _advance(self, request: Request, token: int, logits: Any, tokens: list[int],
                 logps: list[float], tops: list[tuple[str, dict[str, float]]]) -> tuple[str | None, str]:
        """Append one token; returns (finish reason or None, final text or '')."""
        import torch

        if token in self.eos:
            return "stop", ""
        tokens.append(token)
        if request.logprobs or request.top_logprobs:  # of the raw logits (temperature 1)
            logp = torch.log_softmax(logits, -1)
            logps.append(float(logp[token]))
            if request.top_logprobs:
                values, ids = torch.topk(logp, min(request.top_logprobs, logp.numel()))
                alternatives = top_alternatives((self.tokenizer.decode([t]), lp)
                                                for t, lp in zip(ids.tolist(), values.tolist()))
                tops.append((self.tokenizer.decode([token]), alternatives))
        if request.params.stop:
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            cuts = [text.find(s) for s in request.params.stop if s and s in text]
            if cuts:
                return "stop", text[: min(cuts)]
        if len(tokens) >= request.params.max_tokens:
            return "length", ""
        return None, ""

    def score(self, texts: list[str]) -> list[list[float]]:
        """Log-probability of each token of each text after the first (perplexity filters)."""
        import torch

        self._load()
        out = []
        with torch.inference_mode():
            for text in texts:
                ids = self.tokenizer(text, return_tensors="pt").input_ids
                logits = self._model(input_ids=ids).logits[0, :-1].float()
                lp = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
                out.append(lp.tolist())
        return out

    async def close(self) -> None:
        await self.batcher.close()
        self._model = None


def _sample(logits: Any, request: Request, generator: Any) -> int:
    import torch

    p = request.params
    if p.temperature <= 0:
        return int(logits.argmax())
    scores = logits / p.temperature
    if p.top_k:
        kth = torch.topk(scores, min(p.top_k, scores.numel())).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if p.top_p < 1.0:
        ordered, order = torch.sort(scores, descending=True)
        cumulative = torch.softmax(ordered, -1).cumsum(-1)
        drop = cumulative - torch.softmax(ordered, -1) > p.top_p  # keep the token that crosses top_p
        scores = scores.scatter(0, order, ordered.masked_fill(drop, float("-inf")))
    return int(torch.multinomial(torch.softmax(scores, -1), 1, generator=generator))

