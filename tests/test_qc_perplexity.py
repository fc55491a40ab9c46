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
    assert len(scorer._nll([text], [prompt])[0][0]) == len(body)  # answer tokens only
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
    f = PerplexityFilter(PerplexityBlock(filter="perplexity", percentile=50, reference="data", per="token"))
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


class TableScorer:
    """Perplexity by lookup (stands in for the model in the cut logic)."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def score(self, texts, prompts=None, per="token", **framing):
        return [self.table[t] for t in texts]


def _mixed(garbage: int) -> list[Record]:
    real = [Record(f"r{i}", {"prompt": "q", "response": f"real {i}"}, "t") for i in range(60)]
    bad = [Record(f"g{i}", {"prompt": "q", "response": f"garbage {i}"}, "t") for i in range(garbage)]
    return real + bad


def test_the_cut_stays_put_when_the_share_of_garbage_changes(tmp_path):
    """A reference cut is the same at 0%, 10% and 40% garbage and removes all of it; a cut at a
    percentile of the data itself moves with the garbage and removes real rows when there is none."""
    import json

    table = {f"real {i}": 10.0 + i / 10 for i in range(60)} | {f"garbage {i}": 500.0 + i for i in range(40)}
    table |= {f"known good {i}": 10.0 + i / 8 for i in range(50)}
    ref = tmp_path / "ref.jsonl"
    ref.write_text("".join(json.dumps({"prompt": "q", "response": f"known good {i}"}) + "\n" for i in range(50)))
    block = PerplexityBlock(filter="perplexity", prompt_column="prompt", reference="file",
                            reference_file=str(ref), percentile=99, margin=1.1)
    data_block = PerplexityBlock(filter="perplexity", prompt_column="prompt", reference="data", percentile=95)
    cuts, data_cuts = set(), set()
    for garbage in (0, 7, 40):
        records = _mixed(garbage)
        f = PerplexityFilter(block, scorer=TableScorer(table))
        result = Chain([f]).run(records)
        cuts.add(f.info["cut"])
        assert {r.record.id for r in result.rejects} == {f"g{i}" for i in range(garbage)}
        assert "p99 × 1.1 of 50 texts: reference file" in f.info["cut_source"]
        assert result.rejects == [] or result.rejects[0].reason == "perplexity_window8_above_file_p99"
        d = PerplexityFilter(data_block, scorer=TableScorer(table))
        lost = {r.record.id for r in Chain([d]).run(records).rejects}
        data_cuts.add(d.info["cut"])
        assert d.info["cut_source"].startswith("p95 of ") and "this data itself" in d.info["cut_source"]
        if garbage == 0:
            assert lost and all(i.startswith("r") for i in lost)  # 5% of clean data goes
        if garbage == 40:
            assert len(lost & {f"g{i}" for i in range(40)}) < 40  # most garbage stays
    assert len(cuts) == 1 and len(data_cuts) == 3


def test_builtin_reference_is_scored_with_the_same_framing(tiny):
    """The shipped reference (in-house answers) is scored like the data: prompt as the chat user
    turn; the cut and its source are reported."""
    from filters.perplexity import BUILTIN_REFERENCE

    records = [Record("a", {"prompt": "Say hello.", "response": "Hello there, nice to meet you."}, "t")]
    f = PerplexityFilter(PerplexityBlock(filter="perplexity", model=tiny, prompt_column="prompt"))
    Chain([f]).run(records)
    n = sum(1 for line in BUILTIN_REFERENCE.read_text().splitlines() if line.strip())
    assert f.info["cut_source"] == (f"p99 × 1.5 of {n} texts: in-house reference answers "
                                    "(filters/reference/answers.jsonl)")
    assert f.info["per"] == "window" and f.info["framing"] == "chat template" and f.info["cut"] > 1
    keys = list(f.scorer._memo)
    assert len(keys) == n + 1 and all(chat for _, _, chat in keys)


def test_worst_window_statistic():
    from filters.perplexity import statistic

    nlls = [1.0] * 20 + [5.0] * 8 + [1.0] * 20
    assert statistic(nlls, "x" * 100, "window", 8) == pytest.approx(math.exp(5.0))
    assert statistic(nlls, "x" * 100, "token") == pytest.approx(math.exp(sum(nlls) / len(nlls)))
    assert statistic(nlls, "x" * 100, "char") == pytest.approx(math.exp(sum(nlls) / 100))
    assert statistic([2.0, 4.0], "ab", "window", 8) == pytest.approx(math.exp(3.0))  # short: all tokens
    assert math.isnan(statistic([], "", "window"))


def test_a_text_shorter_than_min_tokens_is_kept_uncut(tiny):
    """A class label's perplexity is the surprise of one word: kept, its score still reported."""
    records = [Record("label", {"prompt": "Classify: spam or ham?", "response": "spam"}, "t"),
               Record("long", {"prompt": "q", "response": "The quick brown fox jumps over the lazy dog."}, "t")]
    f = PerplexityFilter(PerplexityBlock(filter="perplexity", model=tiny, prompt_column="prompt", max=2.0))
    result = Chain([f]).run(records)
    assert [r.record.id for r in result.rejects] == ["long"] and [r.id for r in result.kept] == ["label"]
    assert f.info["short_kept_uncut"] == 1 and result.stats["perplexity"].scores[0] > 2.0
    every = PerplexityFilter(PerplexityBlock(filter="perplexity", model=tiny, prompt_column="prompt", max=2.0,
                                             min_tokens=1), scorer=f.scorer)
    assert len(Chain([every]).run(records).rejects) == 2
