"""The reward filter's gate: a scorer that cannot tell real answers from degraded copies deletes
nothing and says so; one that can, cuts."""

from __future__ import annotations

import zlib

from factory.core.degrade import SanityPair
from factory.core.record import Record
from filters.base import Chain, Drop, Keep, QCContext
from filters.build_qc import qc_card
from filters.config import RewardBlock, RewardGate
from filters.reward import RewardFilter
from filters.reward_gate import gate_pairs, pair_agreement

TOPICS = ["the river", "a small garden", "the night train", "an old violin", "the harbour", "a winter market",
          "the library", "a mountain road", "the bakery", "a quiet office", "the lighthouse", "a school bus"]


def rows() -> list[tuple[str, str]]:
    out = []
    for i, topic in enumerate(TOPICS * 3):
        answer = (f"Answer {i}: {topic} is described here in plain words. It has a history, a place in town "
                  f"and people who care for it every day, number {i}.")
        out.append((f"Describe {topic} (case {i}).", answer))
    return out


class HashScorer:
    """At chance: a score from a hash of the answer, unrelated to its quality (like a judge that
    always says "A")."""

    label = "hash scorer (at chance)"

    def score(self, prompts, answers, llm=None, user="qc.reward"):
        return [(float(zlib.crc32(a.encode()) % 6), "") for a in answers]


class KnowsTheOriginals:
    """Scores the data's own answers high by length and anything else (a degraded copy) 0."""

    label = "knows the originals"

    def __init__(self, originals: set[str]) -> None:
        self.originals = originals

    def score(self, prompts, answers, llm=None, user="qc.reward"):
        return [(float(len(a) % 7) + 1 if a in self.originals else 0.0, "") for a in answers]


def records() -> list[Record]:
    return [Record(f"r{i}", {"prompt": p, "response": a}, "t") for i, (p, a) in enumerate(rows())]


def test_an_ungated_at_chance_scorer_deletes_nothing_and_says_so():
    recs = records()
    f = RewardFilter(RewardBlock(filter="reward", percentile=10), scorer=HashScorer())
    result = Chain([f]).run(recs, QCContext())
    assert len(result.kept) == len(recs) and not result.rejects  # no row deleted ...
    assert all(isinstance(v, Keep) and v.score is not None for v in result.verdicts["reward"])  # ... scores kept
    stats = result.summary(len(recs))["filters"]["reward"]
    gate = stats["reward_gate"]
    assert stats["deletes"] is False and gate["passed"] is False and gate["scored"] == 40
    assert 0.3 < gate["agreement"] < 0.7  # near chance
    assert "scores only, no row deleted" in stats["message"] and f"{gate['agreement']:.0%}" in stats["message"]
    card = qc_card(result.summary(len(recs)))
    assert "scores only, no row deleted" in card


def test_a_scorer_that_tells_originals_from_degraded_copies_passes_and_cuts():
    recs = records()
    f = RewardFilter(RewardBlock(filter="reward", percentile=50, gate=RewardGate(pairs=20)),
                     scorer=KnowsTheOriginals({a for _, a in rows()}))
    out = f.filter_batch(recs, QCContext())
    assert f.info["reward_gate"]["passed"] and f.info["reward_gate"]["agreement"] >= 0.9  # other_answer: both real
    assert f.info["reward_gate"]["pairs"] == 20 and f.info["deletes"] is True
    assert any(isinstance(v, Drop) and v.reason == "reward_below_p50" for v in out)
    assert "gate passed" in f.info["message"]


def test_too_few_usable_answers_cannot_pass_the_gate():
    recs = [Record(f"r{i}", {"prompt": "q", "response": f"short {i}"}, "t") for i in range(10)]
    f = RewardFilter(RewardBlock(filter="reward", percentile=50), scorer=KnowsTheOriginals(set()))
    assert all(isinstance(v, Keep) for v in f.filter_batch(recs, QCContext()))
    assert "needs 4 sanity pairs" in f.info["message"] and f.info["deletes"] is False


def test_pair_agreement_counts_ties_half_and_leaves_out_unscored():
    pairs = [SanityPair("p", f"good {i}", f"bad {i}", kind, i)
             for i, kind in enumerate(["loop", "loop", "empty", "empty", "empty"])]
    table = {"good 0": 2.0, "bad 0": 1.0,  # win
             "good 1": 1.0, "bad 1": 1.0,  # tie
             "good 2": 0.0, "bad 2": 3.0,  # loss
             "good 3": 5.0, "bad 3": None,  # unscored
             "good 4": 4.0, "bad 4": 0.0}  # win
    measured = pair_agreement(lambda prompts, answers: [table[a] for a in answers], pairs)
    assert (measured.wins, measured.ties, measured.unscored, measured.scored) == (2, 1, 1, 4)
    assert measured.agreement == 2.5 / 4
    assert measured.per_kind == {"empty": 0.5, "loop": 0.75}


def test_gate_pairs_spread_over_kinds_and_come_from_the_data():
    data = rows()
    pairs = gate_pairs(data, 10)
    assert len(pairs) == 10 and len({p.kind for p in pairs}) == 5
    assert all(p.chosen == data[p.source][1] and p.rejected != p.chosen for p in pairs)


def test_one_distinct_answer_still_gets_a_gate_without_other_answer_pairs():
    same = [("q", "The same answer, given every time, in one plain sentence here.")] * 6
    pairs = gate_pairs(same, 8)
    assert pairs and "other_answer" not in {p.kind for p in pairs}
