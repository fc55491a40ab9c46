"""Run inside the vllm environment by tests/test_vllm_backend.py and bench/vllm_vs_llama.py:
factory's vllm backend on an HF folder; prints one JSON line of results."""

from __future__ import annotations

import asyncio
import json
import sys
import time

MARK = "FACTORY_RESULT "  # vLLM logs to stdout too: the result line carries this prefix


def prompts(n: int) -> list[list[dict[str, str]]]:
    """The chats both engines get in bench/vllm_vs_llama.py."""
    return [[{"role": "system", "content": "You are a helpful assistant."},
             {"role": "user", "content": f"Name one use of the number {i}."}] for i in range(n)]


def main(folder: str, n_prompts: int, max_tokens: int, samples: int) -> None:
    from factory.llm.backends.base import BackendSettings
    from factory.llm.backends.vllm_backend import VLLMBackend
    from factory.llm.request import Request, SamplingParams

    start = time.perf_counter()
    backend = VLLMBackend(BackendSettings(folder, 64, {"max_model_len": 1024}))
    backend._load()
    load_s = time.perf_counter() - start
    params = SamplingParams(temperature=0.7, top_k=40, top_p=0.95, max_tokens=max_tokens)
    requests = [Request.chat(chat, params, k) for chat in prompts(n_prompts) for k in range(samples)]

    async def run():
        t = time.perf_counter()
        out = await backend.generate(requests)
        first = time.perf_counter() - t
        again = await backend.generate(requests[:1])  # alone: the same seed gives the same text
        score = backend.score(["The quick brown fox jumps over the lazy dog."])[0]
        await backend.close()
        return out, first, again[0], score

    out, gen_s, alone, score = asyncio.run(run())
    print(MARK + json.dumps({"load_s": load_s, "gen_s": gen_s, "texts": [c.text for c in out],
                      "errors": [c.error for c in out if c.error], "alone": alone.text,
                      "completion_tokens": sum(c.completion_tokens for c in out),
                      "score": score}), flush=True)


if __name__ == "__main__":  # vLLM spawns workers: the engine must start under this guard
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
