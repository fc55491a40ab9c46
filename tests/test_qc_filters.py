"""QC filters: reason strings per filter, and input = kept + dropped + failed through a chain."""

from __future__ import annotations

import pytest

from factory.core.errors import FactoryError
from factory.core.record import Record
from factory.llm.session import run_blocking
from filters.base import Chain, Drop, Failed, Filter, Keep, QCContext
from filters.config import DedupBlock, JudgeScorer, PairsBlock, PerplexityBlock, RewardBlock
from filters.pairs import PairsFilter
from filters.perplexity import PerplexityFilter
from filters.reward import JudgeRewardScorer, RewardFilter


def rec(i: int, **fields) -> Record:
    return Record(f"r{i}", dict(fields), "test")


class FixedScorer:
    """Scores by a lookup on the answer text (stands in for a model in the logic tests)."""

    label = "fixed"

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def score(self, texts, prompts=None, per="token", **framing):  # perplexity form
        return [self.table[t] for t in texts]


class FixedReward(FixedScorer):
    def score(self, prompts, answers, llm=None, user="qc.reward"):
        return [(self.table[a], "") if a in self.table else (None, "judge_unparseable: no score") for a in answers]


def test_perplexity_percentile_reason_and_missing_column():
    scores = {f"t{i}": float(10 + i) for i in range(20)}
    scores["gibberish"] = 5000.0
    records = [rec(i, response=t) for i, t in enumerate(scores)] + [rec(99, other="x")]
    f = PerplexityFilter(PerplexityBlock(filter="perplexity", percentile=95, reference="data", per="token"),
                         scorer=FixedScorer(scores))
    out = f.filter_batch(records, QCContext())
    drops = {r.id: v for r, v in zip(records, out) if isinstance(v, Drop)}
    assert drops["r20"].reason == "perplexity_above_p95" and drops["r20"].score == 5000.0
    assert isinstance(out[-1], Failed) and "no column 'response'" in out[-1].detail
    absolute = PerplexityFilter(PerplexityBlock(filter="perplexity", max=25, per="token"), scorer=FixedScorer(scores))
    reasons = {v.reason for v in absolute.filter_batch(records[:-1], QCContext()) if isinstance(v, Drop)}
    assert reasons == {"perplexity_above_25"}


def test_reward_bottom_percentile_and_unscored():
    table = {f"a{i}": float(i) for i in range(10)}
    records = [rec(i, prompt="q", response=f"a{i}") for i in range(10)] + [rec(10, prompt="q", response="??")]
    f = RewardFilter(RewardBlock(filter="reward", percentile=10, gate=None), scorer=FixedReward(table))
    out = f.filter_batch(records, QCContext())
    assert [v.reason for v in out if isinstance(v, Drop)] == ["reward_below_p10"]
    assert f.info["deletes"] and "gate: null" in f.info["message"]
    assert out[0].score == 0.0 and isinstance(out[-1], Failed) and out[-1].reason == "reward_unscored"
    assert records[5].fields["qc_reward"] == 5.0


def test_judge_scorer_through_fake_backend_is_labeled(tmp_path):
    backend = {"name": "fake", "options": {"rules": [
        {"match": "good answer", "reply": '{{"reasoning": "fine", "correctness": 5, "helpfulness": 4, "clarity": 5}}'},
        {"match": "bad answer", "reply": '{{"reasoning": "no", "correctness": 1, "helpfulness": 0, "clarity": 2}}'}],
        "default": "no idea"}}
    scorer = JudgeRewardScorer(JudgeScorer(kind="judge", backend=backend))
    with pytest.raises(FactoryError, match="LLM session"):  # never a private cache or backend
        scorer.score(["q"], ["a good answer"])
    scores = run_blocking(lambda llm: scorer.score(["q", "q", "q"], ["a good answer", "a bad answer",
                                                                     "unjudgeable"], llm),
                          cache_path=tmp_path / "c.sqlite")
    assert scores[0] == (pytest.approx(14 / 3, abs=1e-3), "") and scores[1][0] == 1.0
    assert scores[2][0] is None and scores[2][1].startswith("judge_unparseable")
    assert "backend fake" in scorer.label


def test_pairs_reasons_and_length_bias():
    records = [rec(0, prompt="p", chosen="Same text.", rejected="same  TEXT."),
               rec(1, prompt="p", chosen="The capital of France is Paris.", rejected="The capital of France is Paris!"),
               rec(2, prompt="p", chosen="Long and careful answer.", rejected="No.", judgement={"margin": 0.2}),
               rec(3, prompt="p", chosen="A clear answer here.", rejected="Wrong.", judgement={"margin": 2.0}),
               rec(4, prompt="p", chosen="x", rejected=None)]
    f = PairsFilter(PairsBlock(filter="pairs", margin=0.5, margin_column="judgement", similarity=0.9))
    out = f.filter_batch(records, QCContext())
    assert [getattr(v, "reason", "keep") for v in out] == [
        "identical_pair", "near_identical_pair", "low_margin", "keep", "filter_error"]
    assert isinstance(out[3], Keep) and out[3].score == 2.0
    assert f.info["chosen_longer"] == 0.5 and f.info["pairs"] == 4


def test_pairs_margin_from_a_reward_scorer():
    records = [rec(0, prompt="p", chosen="good", rejected="bad"), rec(1, prompt="p", chosen="bad", rejected="good")]
    f = PairsFilter(PairsBlock(filter="pairs"), scorer=FixedReward({"good": 4.0, "bad": 1.0}))
    out = f.filter_batch(records, QCContext())
    assert isinstance(out[0], Keep) and out[0].score == 3.0
    assert isinstance(out[1], Drop) and out[1].reason == "low_margin" and out[1].score == -3.0


class Explodes(Filter):
    name = "explodes"

    def filter(self, record: Record):
        if record.fields["response"] == "boom":
            raise ValueError("cannot judge")
        return Drop("too_short", len(record.fields["response"])) if len(record.fields["response"]) < 3 else Keep()


def test_chain_accounting_identity_and_rejects():
    records = [rec(i, prompt="p", response=t, chosen=t, rejected=t + " but worse and longer")
               for i, t in enumerate(["ok answer", "no", "boom", "fine answer", "another one", "x"])]
    table = {"ok answer": 3.0, "fine answer": 1.0, "another one": 4.0}
    chain = Chain([Explodes(), RewardFilter(RewardBlock(filter="reward", percentile=34, gate=None), scorer=FixedReward(table)),
                   PairsFilter(PairsBlock(filter="pairs"))])
    result = chain.run(records)
    summary = result.summary(len(records))
    assert summary["input"] == summary["kept"] + summary["dropped"] + summary["failed"] == 6
    assert summary["filters"]["explodes"]["dropped"] == {"too_short": 2}
    assert summary["filters"]["explodes"]["failed"] == {"filter_error": 1}
    rows = {r.record.id: r for r in result.rejects}
    assert rows["r2"].failed and rows["r2"].step == "qc.explodes" and "cannot judge" in rows["r2"].detail
    assert rows["r3"].step == "qc.reward" and rows["r3"].reason == "reward_below_p34"
    assert rows["r3"].as_row()["raw"] == {"filter": "reward", "score": 1.0}
    assert [r.id for r in result.kept] == ["r0", "r4"]


def test_report_only_runs_every_filter_on_everything():
    records = [rec(i, response=t) for i, t in enumerate(["no", "long enough", "x"])]
    result = Chain([Explodes(), Explodes()]).run(records, QCContext(report_only=True))
    assert len(result.kept) == 3 and len(result.rejects) == 4
    assert set(result.stats) == {"explodes", "explodes#2"}


def test_dedup_exact_near_and_seed_copies(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_CACHE_DIR", str(tmp_path))
    texts = ["How do I bake sourdough bread at home?",
             "Explain the difference between TCP and UDP.",
             "how do I bake sourdough bread at home",  # case/punctuation: a near-duplicate
             "Explain the difference between TCP and UDP.",  # exact
             "Write a haiku about autumn leaves.",
             "List three uses of a paperclip."]
    records = [rec(i, response=t) for i, t in enumerate(texts)]
    seeds = [{"response": "List three uses of a paperclip."}]
    f = _dedup()
    out = f.filter_batch(records, QCContext(seeds=seeds))
    reasons = [getattr(v, "reason", "keep") for v in out]
    assert reasons == ["keep", "keep", "near_duplicate", "exact_duplicate", "keep", "copies_seed"]
    assert f.info["groups"] == 2 and f.info["method"] == "exact" and f.info["seed_copies"] == 1
    assert "duplicate of r0" in out[2].detail


def test_dedup_keeps_best_scored_and_approximate_path_agrees(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_CACHE_DIR", str(tmp_path))
    records = [rec(0, response="What is the boiling point of water?", qc_reward=1.0),
               rec(1, response="What is the boiling point of water", qc_reward=4.0),
               rec(2, response="Name a prime number larger than ten.", qc_reward=2.0)]
    out = _dedup(keep="best").filter_batch(records, QCContext())
    assert isinstance(out[0], Drop) and isinstance(out[1], Keep)
    approx = _dedup(exact_limit=2).filter_batch(records, QCContext())
    assert [type(v) for v in approx] == [Keep, Drop, Keep]


def _dedup(**kw):
    from filters.dedup import DedupFilter

    return DedupFilter(DedupBlock(filter="dedup", **kw))


def test_drift_gate_same_vs_off_topic(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_CACHE_DIR", str(tmp_path))
    from filters.config import DriftBlock
    from filters.drift import DriftFilter

    cooking = [f"How long should I {v} the {f} for dinner tonight?" for v in ("roast", "boil", "grill", "bake")
               for f in ("chicken", "potatoes", "salmon", "carrots", "rice", "beef")]
    code = [f"Why does my {lang} program {bug} when I {act}?" for lang in ("Python", "Rust", "Java")
            for bug in ("crash", "hang", "leak memory") for act in ("open a file", "start a thread", "parse JSON")]
    import random

    random.Random(0).shuffle(cooking)  # a random half, not every other template (that splits by food)
    seeds = [{"prompt": t} for t in cooking[::2]]
    block = DriftBlock(filter="drift", permutations=50)
    same = DriftFilter(block)
    out = same.filter_batch([rec(i, prompt=t) for i, t in enumerate(cooking[1::2])], QCContext(seeds=seeds))
    assert all(isinstance(v, Keep) for v in out) and same.info["gate"] in ("ok", "warn")
    assert same.info["auc"] < 0.85
    off = DriftFilter(block)
    off.filter_batch([rec(i, prompt=t) for i, t in enumerate(code)], QCContext(seeds=seeds))
    assert off.info["gate"] == "fail" and off.info["auc"] > 0.95 and off.info["mmd_p"] < 0.05
    result = Chain([DriftFilter(block)]).run([rec(i, prompt=t) for i, t in enumerate(code)], QCContext(seeds=seeds))
    assert result.gate_failed and "classifier AUC" in result.gate_failed and "MMD" in result.gate_failed
