"""Embedded llama.cpp backend: continuous batching over llama.cpp's low-level batch API.

One worker thread owns the llama context and runs the decode loop; ``generate`` only enqueues
requests and awaits futures that the thread resolves. Each request gets its own KV sequence (a
"slot") and its own sampler chain seeded from the request, and a new request takes a slot as soon as
one frees, so the batch stays full. Samples of one prompt share its KV cells, and prompts that open
with the same earlier turns (few-shot examples) share those turns' cells: computed once, copied
after (``llama_cpp_sharing``; ``share_prompts: false`` turns that off). Options (the recipe's
``backend.options``): ``n_threads`` (default: the CPUs this process may use), ``n_ctx_per_seq``
(default 2048), ``n_batch`` (default 512), ``flash_attn`` (default false: faster, but a text then
depends on what shares its batch), ``adapters`` (PEFT LoRA folders applied in order on top of the
GGUF: ``gguf_files``), ``dtype`` (float32 / float16: serve a dequantized copy of a quantized GGUF,
the weights adapters are trained on). ``concurrency`` is the number of parallel sequences.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp as L
import numpy as np

from factory.core.models import EMBEDDED_FILE, embedded_gguf
from factory.llm.backends.base import Backend, BackendSettings, pop_flag
from factory.llm.backends.chat_prefix import cut_at_user_turn
from factory.llm.backends.gguf_files import adapter_files, attach_adapters, dequantized, pop_adapter_options
from factory.llm.backends.llama_cpp_sampling import Samplers, position_logprobs
from factory.llm.backends.llama_cpp_sharing import PromptSharing, prefix_cut
from factory.llm.backends.llama_cpp_template import chat_formatter, vocab_formatter
from factory.llm.request import Completion, Request, top_alternatives

EMBEDDED_ALIASES = (None, "", "embedded", "smollm2", "smollm2-135m")


@dataclass
class _Job:
    request: Request
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class _Seq:
    """One request being decoded in KV sequence ``slot``."""

    job: _Job
    slot: int
    prompt: list[int]
    sampler: Any
    cut: int = 0  # where the prompt's earlier turns end (a fixed decode boundary); 0: none
    n_past: int = 0  # tokens of this sequence already in the KV cache
    next_token: int | None = None  # sampled, not yet decoded
    row: int = -1  # batch row holding this sequence's logits after the current decode
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)  # with top_logprobs: each token's text
    top: list[dict[str, float]] = field(default_factory=list)  # its top-k alternatives
    text: str = ""
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))


class LlamaCppBackend(Backend):
    name = "llama_cpp"
    raw_prompts = True
    gives_top_logprobs = True

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        opts = dict(settings.options)
        n_threads = int(opts.pop("n_threads", len(os.sched_getaffinity(0))))
        n_ctx_per_seq = int(opts.pop("n_ctx_per_seq", 2048))
        self.n_batch = int(opts.pop("n_batch", 512))
        self.share_prompts = pop_flag(opts, "share_prompts", True)  # off: only to measure the gain
        self.flash_attn = pop_flag(opts, "flash_attn", False)
        self.dtype, self.adapters, weights_suffix = pop_adapter_options(opts)
        if opts:
            raise ValueError(f"unknown llama_cpp backend option(s): {', '.join(sorted(opts))}")
        self.n_seq = max(1, int(settings.concurrency))
        self.n_batch = max(self.n_batch, self.n_seq)  # every generating sequence needs a row

        if settings.model in EMBEDDED_ALIASES:
            self.path = embedded_gguf()
            self._model_id = EMBEDDED_FILE.removesuffix(".gguf")
        else:
            self.path = Path(settings.model).expanduser()
            if not self.path.is_file():
                raise FileNotFoundError(f"GGUF model not found: {self.path}")
            self._model_id = f"{self.path.name}:{self.path.stat().st_size}"
        if self.flash_attn:  # other numerics, other texts: never mixed with the default's cache rows
            self._model_id += "+flash_attn"
        self._model_id += weights_suffix  # dtype, adapters' hash

        # llama.cpp logs every load detail to stderr; keep errors only unless the user chose a level.
        log = logging.getLogger("llama-cpp-python")
        if log.level == logging.NOTSET:
            log.setLevel(logging.ERROR)
        self.n_threads, self.n_ctx_per_seq = n_threads, n_ctx_per_seq
        self._model = None  # loaded on first use: a fully cached rebuild never loads the model
        self._formatter = None  # the chat template (read with the vocabulary alone if need be)
        self._sharing: PromptSharing | None = None
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _load(self) -> None:
        """Load the model, make the context and start the decode thread (once)."""
        if self._model is not None:
            return
        n_threads, n_ctx_per_seq = self.n_threads, self.n_ctx_per_seq
        L.llama_backend_init()
        path = dequantized(self.path, self.dtype) if self.dtype else self.path
        self._model = L.llama_model_load_from_file(str(path).encode(), L.llama_model_default_params())
        if not self._model:
            raise RuntimeError(f"llama.cpp could not load {self.path}")
        self._vocab = L.llama_model_get_vocab(self._model)
        self._samplers = Samplers(self._vocab)
        self._n_vocab = L.llama_vocab_n_tokens(self._vocab)

        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx_per_seq * (self.n_seq + 1)  # one more stream holds a shared prefix
        cp.n_batch = cp.n_ubatch = self.n_batch  # one ubatch per step where llama.cpp allows it
        cp.n_seq_max = self.n_seq + 1
        cp.n_threads = cp.n_threads_batch = n_threads
        # Batch invariance (measured): with one KV stream per sequence, flash attention off, and
        # prompts decoded apart from generated tokens (see _step), a request gives the same text
        # alone or batched. A unified cache does not; flash attention (~18% more tokens/s on
        # 2 cores) changed 3 of 16 greedy and 7 of 16 sampled texts of mixed-length prompts.
        cp.kv_unified = False
        cp.flash_attn_type = (L.LLAMA_FLASH_ATTN_TYPE_AUTO if self.flash_attn
                              else L.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        cp.no_perf = True
        self._ctx = L.llama_init_from_model(self._model, cp)
        if not self._ctx:
            L.llama_model_free(self._model)
            self._model = None
            raise RuntimeError("llama.cpp could not create a context (lower concurrency or n_ctx_per_seq)")
        if self.adapters:
            attach_adapters(self._model, self._ctx, adapter_files(self.adapters, self.path))
        self._n_ctx_seq = L.llama_n_ctx_seq(self._ctx)  # llama.cpp rounds the per-sequence size up
        self._mem = L.llama_get_memory(self._ctx)
        self._sharing = PromptSharing(self._mem, holder=self.n_seq)
        self._batch = L.llama_batch_init(self.n_batch, 0, 1)

        self._formatter = chat_formatter(self._model)
        self._thread = threading.Thread(target=self._run, name="llama_cpp-decode", daemon=True)
        self._thread.start()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def shared_prompt_tokens(self) -> int:
        """Prompt tokens copied from another sequence or the held prefix, not computed."""
        return self._sharing.shared_tokens if self._sharing else 0

    @property
    def n_ctx_seq(self) -> int:
        """Tokens one sequence may hold (llama.cpp rounds the requested size up)."""
        self._load()
        return self._n_ctx_seq

    # ---- public API -------------------------------------------------------------------------

    async def generate(self, requests: list[Request]) -> list[Completion]:
        if self._stopping.is_set():
            return [Completion("", "error", error="llama_cpp backend is closed") for _ in requests]
        self._load()
        loop = asyncio.get_running_loop()
        futures = []
        for request in requests:
            future = loop.create_future()
            self._queue.put(_Job(request, future, loop))
            futures.append(future)
        return list(await asyncio.gather(*futures))

    def pre_query_prefix(self, system: str | None) -> str:
        if self._formatter is None:  # no weights needed: a cached rebuild still loads nothing big
            self._formatter = vocab_formatter(self.path)
        return cut_at_user_turn(self._format, system)

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        self._load()
        return len(self._tokenize(self._format(messages)))

    async def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._stopping.set()
            self._queue.put(None)  # wakes the worker if it is waiting for work
            await asyncio.to_thread(self._thread.join)
        if self._model:
            L.llama_model_free(self._model)
            self._model = None

    # ---- prompt and tokens (read-only model data: safe from any thread) -----------------------

    def _format(self, messages: list[dict[str, str]]) -> str:
        assert self._formatter is not None
        return self._formatter(messages=messages).prompt

    def _tokenize(self, text: str) -> list[int]:
        data = text.encode()
        buf = (L.llama_token * (len(data) + 8))()  # a token covers at least one byte
        # add_special=False: the template already writes any BOS; parse_special: <|im_start|> etc.
        n = L.llama_tokenize(self._vocab, data, len(data), buf, len(buf), False, True)
        if n < 0:
            raise RuntimeError(f"tokenization failed ({n})")
        return list(buf[:n])

    def _piece(self, token: int) -> bytes:
        buf = (L.ctypes.c_char * 64)()
        n = L.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return bytes(buf[:n]) if n > 0 else b""

    # ---- the decode thread ------------------------------------------------------------------

    def _run(self) -> None:
        slots: list[_Seq | None] = [None] * self.n_seq
        try:
            while not self._stopping.is_set():
                try:
                    self._admit(slots)
                    if any(slots) and not self._stopping.is_set():
                        self._step(slots)
                except Exception as exc:  # fail what is in flight, reset the cache, keep serving
                    for seq in filter(None, slots):
                        self._finish(slots, seq, "error", error=f"llama_cpp decode failed: {exc!r}")
                    L.llama_memory_clear(self._mem, True)
                    self._sharing.reset()
        finally:
            for seq in filter(None, slots):
                self._finish(slots, seq, "error", error="llama_cpp backend closed")
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    self._resolve(job, Completion("", "error", error="llama_cpp backend closed"))
            L.llama_batch_free(self._batch)
            L.llama_free(self._ctx)

    def _admit(self, slots: list[_Seq | None]) -> None:
        """Fill free slots (lowest first: contiguous sequence ids decode in fewer ubatches)."""
        free = [i for i, seq in enumerate(slots) if seq is None]
        while free and not self._stopping.is_set():
            try:
                job = self._queue.get(block=not any(slots))  # idle: sleep until work arrives
            except queue.Empty:
                return
            if job is None:
                return
            if job.future.done():  # cancelled while queued
                continue
            seq = self._start(job, free[0])
            if seq is not None:
                slots[free.pop(0)] = seq

    def _start(self, job: _Job, slot: int) -> _Seq | None:
        try:
            request = job.request  # a raw prompt is sent as is: no template
            messages = request.message_dicts()
            prompt = self._tokenize(request.raw if request.raw is not None else self._format(messages))
            cut = 0 if request.raw is not None else prefix_cut(
                messages, prompt, lambda m: self._tokenize(self._format(m)))
        except Exception as exc:
            self._resolve(job, Completion("", "error", error=f"prompt formatting failed: {exc!r}"))
            return None
        if len(prompt) >= self._n_ctx_seq:
            self._resolve(job, Completion("", "error", len(prompt), 0, error=(
                f"prompt is {len(prompt)} tokens; the per-sequence context is {self._n_ctx_seq} "
                "(raise options.n_ctx_per_seq)")))
            return None
        try:
            sampler = self._samplers.chain(job.request, job.request.sampling_seed(self.name, self.model_id))
        except Exception as exc:
            self._resolve(job, Completion("", "error", len(prompt), 0, error=f"sampler: {exc}"))
            return None
        return _Seq(job, slot, prompt, sampler, cut)

    def _step(self, slots: list[_Seq | None]) -> None:
        """Share or decode one prompt, then decode one token for every sequence past its prompt.

        Never mix a prompt chunk and generated tokens in one llama_decode: llama.cpp picks its
        matmul kernels by ubatch size, so a token decoded beside a 400-token prompt chunk gets
        other float rounding than the same token decoded alone (measured: greedy texts diverged).
        A prompt, all but its last token, is cut at the same places (where its earlier turns
        end, and multiples of n_batch) and decoded alone; its last token goes with the generation
        step. So a sequence whose prompt, or prefix, another stream already holds (the n samples
        of one prompt; few-shot turns) copies those KV cells instead of computing them, and gets
        exactly the cells it would have computed.
        """
        for seq in [s for s in slots if s is not None]:
            if seq.job.future.done():  # the caller cancelled: free the slot
                self._finish(slots, seq, "error", resolve=False)
        active = [s for s in slots if s is not None]
        if self.share_prompts:
            for seq in active:
                self._sharing.share(seq, active)
        pending = [s for s in active if s.n_past < len(s.prompt) - 1]
        if pending:
            seq = pending[0]
            end = seq.cut if seq.n_past < seq.cut else len(seq.prompt) - 1
            take = min(end - seq.n_past, self.n_batch)
            self._decode([(seq, seq.prompt[seq.n_past:seq.n_past + take], False)], slots)
            if self.share_prompts:
                self._sharing.keep_prefix(seq)
        work = []
        for s in active:
            if slots[s.slot] is not s:
                continue
            if s.next_token is not None:
                work.append((s, [s.next_token], True))
            elif s.n_past == len(s.prompt) - 1:  # the prompt's last token: its logits start sampling
                work.append((s, [s.prompt[-1]], True))
        if work:
            self._decode(work, slots)

    def _decode(self, work: list[tuple[_Seq, list[int], bool]], slots: list[_Seq | None]) -> None:
        """One llama_decode over (sequence, tokens, wants logits) items, then sample where asked."""
        b, n = self._batch, 0
        for seq, chunk, wants_logits in work:
            seq.row, seq.next_token = -1, None
            for k, token in enumerate(chunk):
                b.token[n], b.pos[n], b.n_seq_id[n] = token, seq.n_past + k, 1
                b.seq_id[n][0], b.logits[n] = seq.slot, False
                n += 1
            seq.n_past += len(chunk)
            if wants_logits:  # only the last prompt token's logits are needed
                b.logits[n - 1] = True
                seq.row = n - 1
        b.n_tokens = n
        rc = L.llama_decode(self._ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        for seq, _, _ in work:
            if seq.row >= 0:
                self._sample(slots, seq)

    def _sample(self, slots: list[_Seq | None], seq: _Seq) -> None:
        params = seq.job.request.params
        token = L.llama_sampler_sample(seq.sampler, self._ctx, seq.row)
        if L.llama_vocab_is_eog(self._vocab, token):
            return self._finish(slots, seq, "stop")
        request = seq.job.request
        if request.logprobs or request.top_logprobs:  # log-softmax of the raw logits (temperature 1)
            logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self._ctx, seq.row), (self._n_vocab,))
            chosen, top = position_logprobs(logits, token, request.top_logprobs)
            seq.logprobs.append(chosen)
            if request.top_logprobs:
                seq.pieces.append(self._piece(token).decode("utf-8", "replace"))
                seq.top.append(top_alternatives((self._piece(t).decode("utf-8", "replace"), lp)
                                                for t, lp in top))
        seq.tokens.append(token)
        before = len(seq.text)
        seq.text += seq.decoder.decode(self._piece(token))
        hits = [i for s in params.stop if s and (i := seq.text.find(s, max(0, before - len(s) + 1))) >= 0]
        if hits:
            seq.text = seq.text[:min(hits)]
            return self._finish(slots, seq, "stop", flush=False)
        if len(seq.tokens) >= params.max_tokens or seq.n_past + 1 >= self._n_ctx_seq:
            return self._finish(slots, seq, "length")
        seq.next_token = token

    def _finish(self, slots: list[_Seq | None], seq: _Seq, reason: str, error: str | None = None,
                flush: bool = True, resolve: bool = True) -> None:
        slots[seq.slot] = None
        L.llama_memory_seq_rm(self._mem, seq.slot, -1, -1)  # free the KV cells for the next request
        L.llama_sampler_free(seq.sampler)
        if not resolve:
            return
        if flush:
            seq.text += seq.decoder.decode(b"", final=True)
        top = seq.job.request.top_logprobs and not error
        self._resolve(seq.job, Completion(
            "" if error else seq.text, reason, len(seq.prompt), len(seq.tokens),
            seq.logprobs if seq.job.request.logprobs and not error else None, error,
            seq.pieces if top else None, seq.top if top else None))

    @staticmethod
    def _resolve(job: _Job, completion: Completion) -> None:
        def settle() -> None:
            if not job.future.done():
                job.future.set_result(completion)

        try:
            job.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the caller's event loop is gone; nobody is waiting
            pass
