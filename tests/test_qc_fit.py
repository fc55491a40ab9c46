"""The fit filter's model signals, checked by hand from a real model's logits (the tiny Llama), its
cuts (learned from the reference, the same whatever share of the data is garbage), and the
other-prompt, copy and unrelated checks (real MiniLM embeddings pick the candidates and give the
cosines; figures by lookup stand in for the model's)."""

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


def test_ending_and_gain_equal_the_hand_computed_figures(tiny):
    prompt, text = "A question about water?", "Water boils at one hundred degrees."
    ctx, body, logp = _chat_logprobs(tiny, prompt, text)
    from filters.perplexity import load_scorer

    tok = load_scorer(tiny)[1]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    enders = [i for i in range(len(tok)) if i == im_end or "\n" in tok.decode([i])]
    assert len(enders) > 1  # the end of turn and at least one newline token
    after = logp[len(ctx) + len(body) - 1]  # the position after the answer's last token
    ending = math.log(sum(math.exp(after[i]) for i in enders))
    cond = [-logp[len(ctx) - 1 + j][t] for j, t in enumerate(body)]
    bare_ctx, bare_body, bare_logp = _chat_logprobs(tiny, "", text)
    bare = [-bare_logp[len(bare_ctx) - 1 + j][t] for j, t in enumerate(bare_body)]

    scorer = PerplexityScorer(tiny)
    assert scorer.ending([text], [prompt])[0] == pytest.approx(ending, abs=1e-4)
    assert scorer.token_nlls([text], [prompt], chat=True)[0] == pytest.approx(cond, abs=1e-4)
    from filters.fit import fit_signals

    (e, gain), = fit_signals(scorer, [text], [prompt])
    assert e == pytest.approx(ending, abs=1e-4)
    assert gain == pytest.approx(sum(bare) / len(bare) - sum(cond) / len(cond), abs=1e-4)


def test_ending_is_batch_invariant_and_nan_past_max_tokens(tiny):
    texts = ["Water boils.", "The quick brown fox jumps over the lazy dog.", "Numbers: 0 1 2 3"]
    prompts = ["q one", "q two is longer than the first", "q3"]
    batched = PerplexityScorer(tiny, batch_size=3).ending(texts, prompts)
    alone = [PerplexityScorer(tiny, batch_size=1).ending([t], [p])[0] for t, p in zip(texts, prompts)]
    assert batched == pytest.approx(alone, abs=1e-4)
    assert all(v < 0 for v in batched)
    cut = PerplexityScorer(tiny, max_tokens=8)
    long = "The quick brown fox jumps over the lazy dog. " * 3
    assert math.isnan(cut.ending([long], ["q"])[0])
    assert not math.isnan(cut.ending(["Water boils."], ["q"])[0])


OTHER_SOURCE = ("other prompt and unrelated absolute (minilm embeddings; gain, other prompt and unrelated on "
                "answers of 8+ words)")


class TableScorer(PerplexityScorer):
    """Signals by lookup (stands in for the model in the cut logic): the text names its figures."""

    def __init__(self, table: dict[str, tuple[float, float]]) -> None:
        super().__init__()
        self.table = table

    def ending(self, texts, prompts):
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
    block = FitBlock(filter="fit", reference_file=str(ref), ending_margin=1.0, gain_margin=0.1, min_words=1,
                     min_ending=None, min_gain=None)
    cuts = set()
    for garbage in (0, 3, 20):
        records = [Record(f"r{i}", {"prompt": "q", "response": f"real {i}"}, "t") for i in range(60)]
        records += [Record(f"c{i}", {"prompt": "q", "response": f"cut {i}"}, "t") for i in range(garbage)]
        records += [Record(f"o{i}", {"prompt": "q", "response": f"other {i}"}, "t") for i in range(garbage)]
        f = FitFilter(block, scorer=TableScorer(table))
        result = Chain([f]).run(records)
        cuts.add((f.info["ending_cut"], f.info["gain_cut"]))
        reasons = {r.record.id: r.reason for r in result.rejects}
        assert reasons == {**{f"c{i}": "fit_ending" for i in range(garbage)},
                           **{f"o{i}": "fit_conditioning_gain" for i in range(garbage)}}
        assert f.info["cut_source"] == ("ending p1 of 50 texts minus 1; gain p1 of 50 texts minus 0.1 "
                                        f"nats: reference file {ref}; {OTHER_SOURCE.replace(' 8+', ' 1+')}")
    (end_cut, gain_cut), = cuts
    assert end_cut == pytest.approx(-1.0 - 49 / 40 * 0.99 - 1.0, abs=0.02)
    assert gain_cut == pytest.approx(0.5 + 49 / 80 * 0.01 - 0.1, abs=0.01)


def test_absolute_cuts_and_an_empty_answer_fails(tiny):
    block = FitBlock(filter="fit", model=tiny, min_ending=-0.001, min_gain=-100)
    records = [Record("a", {"prompt": "q", "response": "Water boils at"}, "t"),
               Record("b", {"prompt": "q", "response": ""}, "t"),
               Record("c", {"response": "no prompt"}, "t")]
    f = FitFilter(block)
    result = Chain([f]).run(records)
    got = {r.record.id: (r.reason, r.failed) for r in result.rejects}
    assert got["a"] == ("fit_ending", False)  # a random tiny model never ends a turn or line that surely
    assert got["b"] == ("empty_text", True) and got["c"][1] is True
    assert f.info["cut_source"] == f"absolute; {OTHER_SOURCE}"


def test_ending_judges_only_an_answer_that_stops_on_a_word():
    """A low ending figure drops an answer cut mid-sentence; after a full stop, a URL, a table
    row or code the model cannot tell an end from a cut, and the answer stays."""
    from filters.fit import ends_open

    endings = {"It boils at one hundred degrees at": True, "It boils at one hundred.": False,
               "- https://example.org/docs/latest": False, "a | b\n1 | 2": False, "y <- x/1": False,
               "1. Uno 2. Kubb": True, "Trees (oaks)": False,
               "Mix 1/2 cup of flour. Then stir the": True, "Add 1/2 cup": False,
               "Cards/games: board games, flameless candles": True, "see https://example.org/a": False}
    assert {t: ends_open(t) for t in endings} == endings
    table = {t: (-30.0, 1.0) for t in endings}
    records = [Record(str(i), {"prompt": "q", "response": t}, "t") for i, t in enumerate(endings)]
    result = Chain([FitFilter(FitBlock(filter="fit"), scorer=TableScorer(table))]).run(records)
    dropped = {r.record.fields["response"] for r in result.rejects}
    assert dropped == {t for t, open_end in endings.items() if open_end}
    assert {r.reason for r in result.rejects} == {"fit_ending"}


def test_perplexity_and_fit_on_one_model_share_a_scorer():
    from filters.chain import build_chain
    from filters.config import PerplexityBlock

    chain = build_chain([PerplexityBlock(filter="perplexity", prompt_column="prompt"), FitBlock(filter="fit"),
                         FitBlock(filter="fit", max_tokens=64)])
    ppl, fit, other = chain.filters
    assert fit.scorer is ppl.scorer and other.scorer is not ppl.scorer


def test_fit_says_when_it_could_not_judge_the_ending(tiny):
    """Every answer past max_tokens has no ending figure: fit judges gain alone and says so."""
    records = [Record("a", {"prompt": "q", "response": "Water boils at one hundred degrees at sea level and"}, "t")]
    short = FitFilter(FitBlock(filter="fit", model=tiny, max_tokens=8, min_gain=-100))
    Chain([short]).run(records)
    assert "ending not judged" in short.info["message"]
    full = FitFilter(FitBlock(filter="fit", model=tiny, min_gain=-100))
    Chain([full]).run(records)
    assert "message" not in full.info


BREAD = "Mix flour, water, salt and starter, let the dough rise overnight, then bake it hot."
PARIS = "The capital city of France is Paris, on the river Seine."


def test_nearer_prompts_finds_the_prompt_a_misjoined_answer_belongs_to():
    from filters.embed import Embedder
    from filters.fit_other import Embedded

    def nearer_prompts(texts, own, prompts, k=1):
        return Embedded.of(Embedder(), texts, prompts).nearer_prompts(own, k)

    prompts = ["How do I bake sourdough bread at home?", "What is the capital city of France?",
               "Give me three tips for running a marathon.", "How do I bake sourdough bread at home?"]
    texts = [BREAD, PARIS, BREAD, "Bake it with care and let the sourdough rise before it goes in."]
    # the marathon row holds the bread answer: its nearest prompt is the bread one, first held by
    # record 0; the last row's prompt is record 0's text, its own, so it has no candidate
    assert nearer_prompts(texts, prompts, prompts) == [[], [], [0], []]
    # only the rows asked about, searched among every prompt; k: the prompts nearer than its own
    assert nearer_prompts(texts[2:3], prompts[2:3], prompts) == [[0]]
    # cosines to the bread answer: bread 0.55, marathon 0.14, Hamlet 0.07 (its own). In the test
    # below, each answer's nearest prompt is ahead of the next by 0.2 or more.
    three = [prompts[0], prompts[2], "Summarise the plot of Hamlet."]
    assert nearer_prompts([BREAD], [three[2]], three, k=2) == [[0, 1]]
    assert nearer_prompts([BREAD], [three[2]], three, k=1) == [[0]]


class PairScorer(PerplexityScorer):
    """Mean NLL per (prompt, text) by lookup: 1.0 unless listed, 3.0 with no prompt; every answer
    ends cleanly. Stands in for the model in the other-prompt logic."""

    def __init__(self, table: dict[tuple[str, str], float]) -> None:
        super().__init__()
        self.table = table

    def ending(self, texts, prompts):
        return [0.0] * len(texts)

    def token_nlls(self, texts, prompts=None, chat=False):
        return [[3.0 if not p else self.table.get((p, t), 1.0)] * 4 for p, t in zip(prompts, texts)]


def test_an_answer_another_prompt_fits_better_is_dropped_naming_that_record():
    bread_q, paris_q, run_q, haiku_q, hamlet_q = (
        "How do I bake sourdough bread at home?", "What is the capital city of France?",
        "Give me three tips for running a marathon.", "Write a haiku about winter.",
        "Summarise the plot of Hamlet.")
    paris2 = "Paris has been the capital of France for centuries, and the Seine runs through it."
    sour = "Sourdough needs a lively starter, a long cold rise and a very hot oven."
    rows = {"bread": (bread_q, BREAD), "paris": (paris_q, PARIS),
            "copied": (run_q, BREAD),  # a copy of bread's answer: its prompt fits better by 0.02
            "misjoined": (haiku_q, paris2),  # paris' prompt fits it better by 0.5 nats/token
            "close": (hamlet_q, sour),  # bread's prompt fits it better by 0.05: under the margin
            "label": ("Name one European capital.", "Paris")}  # one word: not judged
    table = {(run_q, BREAD): 1.02, (bread_q, BREAD): 1.0, (haiku_q, paris2): 1.5, (paris_q, paris2): 1.0,
             (hamlet_q, sour): 1.05, (bread_q, sour): 1.0,
             ("Name one European capital.", "Paris"): 2.0, (paris_q, "Paris"): 0.1}
    records = [Record(k, {"prompt": p, "response": t}, "t") for k, (p, t) in rows.items()]
    f = FitFilter(FitBlock(filter="fit"), scorer=PairScorer(table))
    result = Chain([f]).run(records)
    got = {r.record.id: (r.reason, r.detail) for r in result.rejects}
    assert sorted(got) == ["copied", "misjoined"] and {r for r, _ in got.values()} == {"fit_other_prompt"}
    assert "record bread's prompt (it holds a copy of this answer)" in got["copied"][1]
    assert "0.020 > 0" in got["copied"][1]
    assert "record paris's prompt makes" in got["misjoined"][1] and "0.500 >= 0.1" in got["misjoined"][1]
    # bread's own answer has the copy's prompt as a candidate too, and fits its own better
    assert sorted(f.info["_other_prompt"]) == pytest.approx([-0.02, 0.02, 0.05, 0.5])
    assert f.info["other_prompt_cut"] == 0.1
    no_copies = FitFilter(FitBlock(filter="fit", copy_similarity=None), scorer=PairScorer(table))
    assert [r.record.id for r in Chain([no_copies]).run(records).rejects] == ["misjoined"]
    off = FitFilter(FitBlock(filter="fit", other_prompt_margin=None), scorer=PairScorer(table))
    assert Chain([off]).run(records).rejects == [] and off.info["_other_prompt"] == []


def test_an_unrelated_answer_the_prompt_barely_helps_is_dropped_and_short_answers_get_no_gain_check():
    """cosine (MiniLM) to its prompt under 0.1 and gain under 0.25: dropped; as far from its prompt
    (cosine 0.07) with a gain of 0.5: kept. A one-word answer with a negative gain is not judged on gain."""
    hamlet_q, capital_q = "Summarise the plot of Hamlet.", "Name one European capital."
    paris2 = "Paris has been the capital of France for centuries, and the Seine runs through it."
    # PairScorer: 3.0 with no prompt, so gain = 3.0 - the listed figure
    table = {(hamlet_q, PARIS): 2.9, (hamlet_q, paris2): 2.5, (capital_q, "Paris"): 3.5}
    records = [Record("unrelated", {"prompt": hamlet_q, "response": PARIS}, "t"),
               Record("helped", {"prompt": hamlet_q, "response": paris2}, "t"),
               Record("label", {"prompt": capital_q, "response": "Paris"}, "t")]
    f = FitFilter(FitBlock(filter="fit", other_prompt_margin=None), scorer=PairScorer(table))
    (reject,) = Chain([f]).run(records).rejects
    assert (reject.record.id, reject.reason) == ("unrelated", "fit_unrelated")
    assert "< 0.1 and conditioning gain 0.100 < 0.25" in reject.detail
    assert f.info["_gain"] == pytest.approx([0.1, 0.5])  # the label's gain is not judged
    judged = FitFilter(FitBlock(filter="fit", other_prompt_margin=None, min_words=1), scorer=PairScorer(table))
    assert {r.record.id: r.reason for r in Chain([judged]).run(records).rejects} == {
        "unrelated": "fit_unrelated", "label": "fit_conditioning_gain"}
    off = FitFilter(FitBlock(filter="fit", other_prompt_margin=None, unrelated_cosine=None),
                    scorer=PairScorer(table))
    assert Chain([off]).run(records).rejects == []
