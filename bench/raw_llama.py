"""Baseline: how fast llama.cpp itself decodes a set of chat prompts, with no factory code.

``raw_batched_tokens_per_s`` formats the prompts with the GGUF's own chat template, then runs
continuous batching over llama.cpp's low-level batch API directly (greedy sampling in C, one KV
sequence per slot, a finished slot refilled on the next step). ``main`` runs it and
``LlamaCppBackend`` on the same prompts and prints both rates and their ratio:

    python -m bench.raw_llama [--prompts 16] [--parallel 8] [--max-tokens 64] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading
import time

import llama_cpp as L
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

TOPICS = ["the sea", "a lighthouse", "prime numbers", "autumn", "a robot cat", "coffee", "the moon",
          "bread baking", "a lost key", "trains", "volcanoes", "chess", "rain in a city", "bees",
          "an old library", "winter mornings"]


def bench_prompts(n: int = 16) -> list[list[dict[str, str]]]:
    """Chat prompts of varied length and kind (cycled when n > 16)."""
    kinds = ["Write a short poem about {}.", "Explain {} to a child in three sentences.",
             "List five facts about {}.", "Tell a very short story involving {}."]
    return [[{"role": "user", "content": kinds[i % 4].format(TOPICS[i % len(TOPICS)])}]
            for i in range(n)]


def _tokenize(vocab, text: str) -> list[int]:
    data = text.encode()
    buf = (L.llama_token * (len(data) + 8))()
    n = L.llama_tokenize(vocab, data, len(data), buf, len(buf), False, True)
    return list(buf[:n])


def raw_batched_tokens_per_s(model_path: str, prompts: list[list[dict]], n_parallel: int = 8,
                             max_tokens: int = 64, n_threads: int | None = None) -> dict:
    """Greedy-decode every prompt (at most ``max_tokens`` each) with ``n_parallel`` sequences."""
    n_threads = n_threads or len(os.sched_getaffinity(0))
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    L.llama_backend_init()
    model = L.llama_model_load_from_file(str(model_path).encode(), L.llama_model_default_params())
    vocab = L.llama_model_get_vocab(model)
    text = lambda t: L.llama_vocab_get_text(vocab, t).decode() if t >= 0 else ""  # noqa: E731
    fmt = Jinja2ChatFormatter(L.llama_model_chat_template(model, None).decode(),
                              eos_token=text(L.llama_vocab_eos(vocab)),
                              bos_token=text(L.llama_vocab_bos(vocab)), add_generation_prompt=True)
    tokenized = [_tokenize(vocab, fmt(messages=p).prompt) for p in prompts]

    n_batch = max(512, n_parallel)
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_seq_max = 2048 * n_parallel, n_parallel
    cp.n_batch = cp.n_ubatch = n_batch
    cp.n_threads = cp.n_threads_batch = n_threads
    cp.no_perf = True
    ctx = L.llama_init_from_model(model, cp)
    mem = L.llama_get_memory(ctx)
    batch = L.llama_batch_init(n_batch, 0, 1)
    greedy = L.llama_sampler_init_greedy()

    todo = list(range(len(prompts)))[::-1]
    # per slot: [pending tokens to decode, n_past, generated count] or None when free
    slots: list[list | None] = [None] * n_parallel
    generated = 0
    start = time.perf_counter()
    while todo or any(slots):
        for s in range(n_parallel):
            if slots[s] is None and todo:
                slots[s] = [tokenized[todo.pop()], 0, 0]
        n, rows = 0, {}
        for s, st in enumerate(slots):
            if st is None:
                continue
            chunk = st[0][: n_batch - n]
            for k, tok in enumerate(chunk):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = tok, st[1] + k, 1
                batch.seq_id[n][0], batch.logits[n] = s, False
                n += 1
            st[1] += len(chunk)
            st[0] = st[0][len(chunk):]
            if not st[0]:
                batch.logits[n - 1] = True
                rows[s] = n - 1
        batch.n_tokens = n
        if L.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        for s, row in rows.items():
            tok = L.llama_sampler_sample(greedy, ctx, row)
            st = slots[s]
            if L.llama_vocab_is_eog(vocab, tok):
                done = True
            else:
                st[2] += 1
                generated += 1
                st[0] = [tok]
                done = st[2] >= max_tokens
            if done:
                L.llama_memory_seq_rm(mem, s, -1, -1)
                slots[s] = None
    seconds = time.perf_counter() - start
    L.llama_sampler_free(greedy)
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return {"tokens": generated, "seconds": seconds, "tokens_per_s": generated / seconds}


def backend_tokens_per_s(prompts: list[list[dict]], n_parallel: int = 8, max_tokens: int = 64,
                         n_threads: int | None = None) -> dict:
    """The same job through ``LlamaCppBackend`` (greedy, same prompts, same slot count)."""
    from factory.llm.backends.base import BackendSettings
    from factory.llm.backends.llama_cpp import LlamaCppBackend
    from factory.llm.request import Request, SamplingParams

    opts = {"n_threads": n_threads} if n_threads else {}
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    requests = [Request.chat(p, params) for p in prompts]

    async def go() -> dict:
        backend = LlamaCppBackend(BackendSettings(concurrency=n_parallel, options=opts))
        try:
            start = time.perf_counter()
            out = await backend.generate(requests)
            seconds = time.perf_counter() - start
        finally:
            await backend.close()
        errors = [c.error for c in out if c.error]
        if errors:
            raise RuntimeError(f"backend errors: {errors[:3]}")
        tokens = sum(c.completion_tokens for c in out)
        return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}

    return asyncio.run(go())


def _in_thread(fn, *args):
    """Run fn in a short-lived thread. llama.cpp's OpenMP pool belongs to the calling thread and
    outlives the call: decoding on the main thread first slowed the backend's own decode thread by
    ~15% in the same process (measured). A thread that exits takes its pool with it."""
    out: list = []
    worker = threading.Thread(target=lambda: out.append(fn(*args)))
    worker.start()
    worker.join()
    if not out:
        raise RuntimeError(f"{fn.__name__} failed (see the traceback above)")
    return out[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=2, help="alternate runs; report the best of each")
    args = ap.parse_args()
    from factory.core.models import embedded_gguf as embedded_model_path

    prompts = bench_prompts(args.prompts)
    raw, ours = [], []
    for _ in range(args.repeat):  # alternate so that machine noise hits both alike
        raw.append(_in_thread(raw_batched_tokens_per_s, str(embedded_model_path()), prompts,
                              args.parallel, args.max_tokens, args.threads))
        ours.append(backend_tokens_per_s(prompts, args.parallel, args.max_tokens, args.threads))
        print(f"raw {raw[-1]['tokens_per_s']:.1f} tok/s ({raw[-1]['tokens']} tok)  "
              f"backend {ours[-1]['tokens_per_s']:.1f} tok/s ({ours[-1]['tokens']} tok)", flush=True)
    best_raw = max(r["tokens_per_s"] for r in raw)
    best_ours = max(r["tokens_per_s"] for r in ours)
    print(f"best: raw llama.cpp {best_raw:.1f} tok/s, LlamaCppBackend {best_ours:.1f} tok/s, "
          f"ratio {best_ours / best_raw:.2f}")


if __name__ == "__main__":
    main()
