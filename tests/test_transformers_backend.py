"""transformers backend on the tiny local Llama: batched == alone (per-request seeds), log-probs."""

from __future__ import annotations

import asyncio

from factory.llm.backends import backend_class
from factory.llm.backends.base import BackendSettings
from factory.llm.request import Request, SamplingParams
from tiny_model import build_tiny_llama


def test_batched_equals_alone_and_logprobs(tmp_path):
    folder = build_tiny_llama(tmp_path / "tiny")
    params = SamplingParams(temperature=0.8, max_tokens=10)
    requests = [Request.chat([{"role": "user", "content": f"The quick {i}"}], params, k, logprobs=True)
                for i in range(3) for k in range(2)]

    async def run():
        backend = backend_class("transformers")(BackendSettings(str(folder), 8))
        batched = await backend.generate(requests)
        alone = [(await backend.generate([r]))[0] for r in requests[:2]]
        scores = backend.score(["The quick brown fox"])
        await backend.close()
        return batched, alone, scores

    batched, alone, scores = asyncio.run(run())
    assert all(c.error is None for c in batched)
    assert [c.text for c in alone] == [c.text for c in batched[:2]]
    assert all(len(c.logprobs) == c.completion_tokens for c in batched)
    assert batched[0].text != batched[1].text  # sample index changes the seed
    assert len(scores[0]) > 0 and all(x <= 0 for x in scores[0])
