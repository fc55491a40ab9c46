"""The fit filter's two model signals, checked by hand from a real model's logits (the tiny Llama),
and its cuts: learned from the reference, the same whatever share of the data is garbage."""

from __future__ import annotations

import json
import math

import pytest

from factory.core.record import Record
from filters.base import Chain
from filters.config import FitBlock
from filters.fit import FitFilter
from filters.perplexity import PerplexityScorer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    from tiny_model import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny")))


def _chat_logprobs(tiny: str, prompt: str, text: str) -> tuple[list[int], list[int], list[list[float]]]:
    """(context ids, answer ids, log-softmax rows) for the answer after ``prompt`` as the user turn."""
    import torch

    from filters.perplexity import load_scorer

    model, tok = load_scorer(tiny)
    framed = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                     add_generation_prompt=True)
    ctx = tok(framed, add_special_tokens=False)["input_ids"]
    body = tok(text, add_special_tokens=False)["input_ids"]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ctx + body + [im_end]])).logits[0].float()
    return ctx, body, torch.log_softmax(logits, dim=-1).tolist()


def test_end_of_turn_and_gain_equal_the_hand_computed_figures(tiny):
    prompt, text = "A question about water?", "Water boils at one hundred degrees."
    ctx, body, logp = _chat_logprobs(tiny, prompt, text)
    from filters.perplexity import load_scorer

    im_end = load_scorer(tiny)[1].convert_tokens_to_ids("<|im_end|>")
    eot = logp[len(ctx) + len(body) - 1][im_end]  # the position after the answer's last token
    cond = [-logp[len(ctx) - 1 + j][t] for j, t in enumerate(body)]
    bare_ctx, bare_body, bare_logp = _chat_logprobs(tiny, "", text)
    bare = [-bare_logp[len(bare_ctx) - 1 + j][t] for j, t in enumerate(bare_body)]

    scorer = PerplexityScorer(tiny)
    assert scorer.end_of_turn([text], [prompt])[0] == pytest.approx(eot, abs=1e-4)
    assert scorer.token_nlls([text], [prompt], chat=True)[0] == pytest.approx(cond, abs=1e-4)
    from filters.fit import fit_signals

    (e, gain), = fit_signals(scorer, [text], [prompt])
    assert e == pytest.approx(eot, abs=1e-4)
    assert gain == pytest.approx(sum(bare) / len(bare) - sum(cond) / len(cond), abs=1e-4)


def test_end_of_turn_is_batch_invariant_and_nan_past_max_tokens(tiny):
    texts = ["Water boils.", "The quick brown fox jumps over the lazy dog.", "Numbers: 0 1 2 3"]
    prompts = ["q one", "q two is longer than the first", "q3"]
    batched = PerplexityScorer(tiny, batch_size=3).end_of_turn(texts, prompts)
    alone = [PerplexityScorer(tiny, batch_size=1).end_of_turn([t], [p])[0] for t, p in zip(texts, prompts)]
    assert batched == pytest.approx(alone, abs=1e-4)
    assert all(v < 0 for v in batched)
    cut = PerplexityScorer(tiny, max_tokens=8)
    long = "The quick brown fox jumps over the lazy dog. " * 3
    assert math.isnan(cut.end_of_turn([long], ["q"])[0])
    assert not math.isnan(cut.end_of_turn(["Water boils."], ["q"])[0])


class TableScorer(PerplexityScorer):
    """Signals by lookup (stands in for the model in the cut logic): the text names its figures."""

    def __init__(self, table: dict[str, tuple[float, float]]) -> None:
        super().__init__()
        self.table = table

    def end_of_turn(self, texts, prompts):
        return [self.table[t][0] for t in texts]

    def token_nlls(self, texts, prompts=None, chat=False):
        # with the prompt: 1.0 per token; without: 1.0 + the gain
        return [[1.0 + (0.0 if any(prompts) else self.table[t][1])] * 3 for t in texts]


def test_cuts_come_from_the_reference_and_stay_put_with_prevalence(tmp_path):
    table = {f"real {i}": (-1.0 - i / 50, 0.5 + i / 100) for i in range(60)}
    table |= {f"ref {i}": (-1.0 - i / 40, 0.5 + i / 80) for i in range(50)}
    table |= {f"cut {i}": (-9.0, 0.6) for i in range(20)} | {f"other {i}": (-1.0, 0.01) for i in range(20)}
    ref = tmp_path / "ref.jsonl"
    ref.write_text("".join(json.dumps({"prompt": "q", "response": f"ref {i}"}) + "\n" for i in range(50)))
    block = FitBlock(filter="fit", reference_file=str(ref), end_of_turn_margin=1.0, gain_margin=0.1,
                     min_end_of_turn=None, min_gain=None)
    cuts = set()
    for garbage in (0, 3, 20):
        records = [Record(f"r{i}", {"prompt": "q", "response": f"real {i}"}, "t") for i in range(60)]
        records += [Record(f"c{i}", {"prompt": "q", "response": f"cut {i}"}, "t") for i in range(garbage)]
        records += [Record(f"o{i}", {"prompt": "q", "response": f"other {i}"}, "t") for i in range(garbage)]
        f = FitFilter(block, scorer=TableScorer(table))
        result = Chain([f]).run(records)
        cuts.add((f.info["end_of_turn_cut"], f.info["gain_cut"]))
        reasons = {r.record.id: r.reason for r in result.rejects}
        assert reasons == {**{f"c{i}": "fit_end_of_turn" for i in range(garbage)},
                           **{f"o{i}": "fit_conditioning_gain" for i in range(garbage)}}
        assert f.info["cut_source"] == ("end of turn p1 of 50 texts minus 1; gain p1 of 50 texts minus 0.1 "
                                        f"nats: reference file {ref}")
    (eot_cut, gain_cut), = cuts
    assert eot_cut == pytest.approx(-1.0 - 49 / 40 * 0.99 - 1.0, abs=0.02)
    assert gain_cut == pytest.approx(0.5 + 49 / 80 * 0.01 - 0.1, abs=0.01)


def test_absolute_cuts_and_an_empty_answer_fails(tiny):
    block = FitBlock(filter="fit", model=tiny, min_end_of_turn=-0.001, min_gain=-100)
    records = [Record("a", {"prompt": "q", "response": "Water boils at"}, "t"),
               Record("b", {"prompt": "q", "response": ""}, "t"),
               Record("c", {"response": "no prompt"}, "t")]
    f = FitFilter(block)
    result = Chain([f]).run(records)
    got = {r.record.id: (r.reason, r.failed) for r in result.rejects}
    assert got["a"] == ("fit_end_of_turn", False)  # a random tiny model never ends a turn that surely
    assert got["b"] == ("empty_text", True) and got["c"][1] is True
    assert f.info["cut_source"] == "absolute"


def test_end_of_turn_judges_only_an_answer_that_stops_on_a_word():
    """A low end-of-turn figure drops an answer cut mid-sentence; after a full stop, a URL, a table
    row or code the model cannot tell an end from a cut, and the answer stays."""
    from filters.fit import ends_open

    endings = {"It boils at one hundred degrees at": True, "It boils at one hundred.": False,
               "- https://example.org/docs/latest": False, "a | b\n1 | 2": False, "y <- x/1": False,
               "1. Uno 2. Kubb": True, "Trees (oaks)": False}
    assert {t: ends_open(t) for t in endings} == endings
    table = {t: (-30.0, 1.0) for t in endings}
    records = [Record(str(i), {"prompt": "q", "response": t}, "t") for i, t in enumerate(endings)]
    result = Chain([FitFilter(FitBlock(filter="fit"), scorer=TableScorer(table))]).run(records)
    dropped = {r.record.fields["response"] for r in result.rejects}
    assert dropped == {t for t, open_end in endings.items() if open_end}
    assert {r.reason for r in result.rejects} == {"fit_end_of_turn"}


def test_perplexity_and_fit_on_one_model_share_a_scorer():
    from filters.chain import build_chain
    from filters.config import PerplexityBlock

    chain = build_chain([PerplexityBlock(filter="perplexity", prompt_column="prompt"), FitBlock(filter="fit"),
                         FitBlock(filter="fit", max_tokens=64)])
    ppl, fit, other = chain.filters
    assert fit.scorer is ppl.scorer and other.scorer is not ppl.scorer


def test_fit_says_when_it_could_not_judge_end_of_turn(tiny):
    """Every answer past max_tokens has no end-of-turn figure: fit judges gain alone and says so."""
    records = [Record("a", {"prompt": "q", "response": "Water boils at one hundred degrees at sea level and"}, "t")]
    short = FitFilter(FitBlock(filter="fit", model=tiny, max_tokens=8, min_gain=-100))
    Chain([short]).run(records)
    assert "end of turn not judged" in short.info["message"]
    full = FitFilter(FitBlock(filter="fit", model=tiny, min_gain=-100))
    Chain([full]).run(records)
    assert "message" not in full.info
