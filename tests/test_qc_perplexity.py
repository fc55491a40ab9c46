"""Perplexity scoring on real torch models: the tiny Llama (fast) and the embedded SmolLM2 (slow)."""

from __future__ import annotations

import math

import pytest

from factory.core.record import Record
from filters.base import Chain, Drop
from filters.config import PerplexityBlock
from filters.perplexity import PerplexityFilter, PerplexityScorer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    from tiny_model import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny")))


def test_batching_and_padding_do_not_change_a_score(tiny):
    texts = ["The quick brown fox.", "Water boils at one hundred degrees at sea level, said the teacher.", "Hi"]
    batched = PerplexityScorer(tiny, batch_size=3).score(texts)
    alone = [PerplexityScorer(tiny, batch_size=1).score([t])[0] for t in texts]
    assert batched == pytest.approx(alone, rel=1e-4)
    assert all(math.isfinite(v) and v > 1 for v in batched)


def test_prompt_is_context_not_scored(tiny):
    """The score is exactly exp(mean NLL of the answer's tokens given the prompt), computed here by
    hand from the model's logits: the prompt's tokens condition it and are not counted."""
    import torch

    from filters.perplexity import load_scorer

    model, tok = load_scorer(tiny)
    prompt, text = "A long question that is not scored at all?", "a clear answer"
    ctx = [tok.bos_token_id] + tok(prompt + "\n", add_special_tokens=False)["input_ids"]
    body = tok(text, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ctx + body])).logits[0].float(), dim=-1)
    nll = -sum(float(logp[len(ctx) - 1 + j, token]) for j, token in enumerate(body))

    scorer = PerplexityScorer(tiny)
    assert scorer.score([text], [prompt])[0] == pytest.approx(math.exp(nll / len(body)), rel=1e-5)
    assert scorer._nll([text], [prompt])[0][1] == len(body)  # answer tokens only
    assert scorer.score([text], [prompt], per="char")[0] == pytest.approx(math.exp(nll / len(text)),
                                                                           rel=1e-5)


def test_empty_text_fails_not_drops(tiny):
    records = [Record("a", {"response": "Numbers: 0 1 2 3."}, "t"), Record("b", {"response": ""}, "t")]
    result = Chain([PerplexityFilter(PerplexityBlock(filter="perplexity", model=tiny))]).run(records)
    assert [(r.reason, r.failed) for r in result.rejects] == [("empty_text", True)]


@pytest.mark.slow
def test_embedded_smollm2_finds_gibberish():
    real = ["Write a short poem about the sea and the wind.",
            "Explain why the sky looks blue during the day.",
            "Give me three tips for learning a new language quickly."]
    shuffled = ["sea wind. poem a short and Write about the", "the during why blue the looks Explain day. sky",
                "xq7!Rt kz0P; vvB#uQ mL2 yy%Hd 9Zq wE&rT"]
    records = [Record(f"r{i}", {"response": t}, "t") for i, t in enumerate(real + shuffled)]
    f = PerplexityFilter(PerplexityBlock(filter="perplexity", percentile=50))
    out = f.filter_batch(records, None)
    assert max(v.score for v in out[:3]) < min(v.score for v in out[3:])
    assert [isinstance(v, Drop) for v in out] == [False, False, False, True, True, True]
    assert out[3].reason == "perplexity_above_p50"


def test_fixed_context_is_not_scored_and_a_missing_prompt_still_fails(tiny):
    records = [Record("a", {"response": "The quick brown fox.", "prompt": "Say something."}, "t"),
               Record("b", {"response": "The quick brown fox."}, "t")]
    block = PerplexityBlock(filter="perplexity", model=tiny, context="<|im_start|>user", prompt_column="prompt")
    result = Chain([PerplexityFilter(block)]).run(records)
    assert [(r.record.id, r.reason, r.failed) for r in result.rejects] == [("b", "filter_error", True)]
    plain = PerplexityScorer(tiny).score(["The quick brown fox."], per="char")[0]
    framed = PerplexityScorer(tiny).score(["The quick brown fox."], ["<|im_start|>user"], per="char")[0]
    assert plain != framed and math.isfinite(framed)
