"""Diversity figures: hand-made sets against hand arithmetic, ROUGE-L against rouge-score, the
Vendi shortcut against its definition, and the figures in stats.json, the card and the audit."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from conftest import fake_recipe_text, run_cli
from filters.diversity import (
    DiversityTally,
    Reservoir,
    distinct_n,
    mean_pairwise_rouge_l,
    rouge_l,
    sampled_pairs,
    text_figures,
    vendi_score,
)


def test_distinct_n_by_hand():
    texts = ["a b a", "B c"]  # words: a b a | b c  (lowercased)
    assert distinct_n(texts, 1) == pytest.approx(3 / 5)  # {a, b, c} of 5 words
    assert distinct_n(texts, 2) == pytest.approx(3 / 3)  # (a b) (b a) (b c)
    assert distinct_n(["the cat", "the cat"], 2) == pytest.approx(1 / 2)
    assert distinct_n(["one"], 2) is None  # no bigram at all


def test_rouge_l_by_hand_and_against_rouge_score():
    # LCS of "a b c d" and "a c d e" is "a c d": P = R = 3/4, F1 = 0.75
    assert rouge_l("a b c d", "a c d e") == pytest.approx(0.75)
    # LCS 2 of lengths 4 and 2: P = 1, R = 1/2, F1 = 2/3
    assert rouge_l("x y z w", "y w") == pytest.approx(2 / 3)
    assert rouge_l("", "a") == 0.0 and rouge_l("a b", "c d") == 0.0
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(3)
    vocab = "the a cat dog sat ran on under mat log quickly, slowly! Big big".split()
    for _ in range(200):
        a = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 14)))
        b = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 14)))
        assert rouge_l(a, b) == pytest.approx(scorer.score(a, b)["rougeL"].fmeasure)


def test_mean_pairwise_rouge_l_by_hand():
    texts = ["a b c d", "a c d e", "x y"]
    # pairs: 0.75, 0, 0 -> mean 0.25, all 3 pairs scored
    assert mean_pairwise_rouge_l(texts) == (pytest.approx(0.25), 3)
    assert mean_pairwise_rouge_l(["one"]) == (None, 0)
    chosen = sampled_pairs(100, 50, seed=1)
    assert len(set(chosen)) == 50 and all(i < j for i, j in chosen) and chosen == sampled_pairs(100, 50, 1)
    assert len(sampled_pairs(5, 50, 0)) == 10  # all pairs when there are few


def test_vendi_by_hand():
    # K = [[1,1,0],[1,1,0],[0,0,1]]: eigenvalues of K/3 are 2/3 and 1/3
    expected = math.exp(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))
    assert vendi_score(np.array([[1.0, 0], [2.0, 0], [0, 3.0]])) == pytest.approx(expected)  # 1.8899
    assert vendi_score(np.ones((5, 4))) == pytest.approx(1.0)  # five copies: one distinct text
    assert vendi_score(np.eye(6)) == pytest.approx(6.0)  # orthogonal: all distinct
    assert vendi_score(np.zeros((0, 3))) is None


def test_vendi_shortcut_equals_the_definition():
    rng = np.random.default_rng(0)
    for n, d in ((50, 8), (8, 50)):  # more texts than dimensions, and fewer
        x = rng.normal(size=(n, d))
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        eig = np.linalg.eigvalsh(unit @ unit.T / n)
        eig = eig[eig > 1e-12]
        assert vendi_score(x) == pytest.approx(math.exp(-(eig * np.log(eig)).sum()), rel=1e-9)


def test_figures_of_a_set_and_the_sample():
    figures = text_figures(["a b a", "b c"], embed=lambda texts: np.eye(len(texts)))
    assert figures == {"texts": 2, "distinct_1": 0.6, "distinct_2": 1.0, "rouge_l_mean": 0.4,
                       "rouge_l_pairs": 1, "vendi": 2.0}  # ROUGE-L: LCS "b" of 3 and 2 words: 2/5
    assert "vendi" not in text_figures(["a b"], embed=None)
    one, two = Reservoir(10, seed=4), Reservoir(10, seed=4)
    for i in range(1000):
        one.add(str(i))
        two.add(str(i))
    assert one.items == two.items and len(one.items) == 10 and one.seen == 1000
    assert len({int(x) for x in one.items if int(x) >= 500}) >= 2  # not just the first ten


def test_tally_picks_text_columns_and_counts_axes():
    tally = DiversityTally(None, ["topic"], maybe=None)
    for i in range(20):
        tally.add({"prompt": f"write a short poem about thing {i}", "label": "yes", "topic": f"t{i % 3}",
                   "n": i})
    assert tally.text_columns() == ["prompt"] and tally.values["topic"] == {"t0", "t1", "t2"}
    named = DiversityTally(["answer"], [], maybe=["label", "prompt"])
    named.add({"answer": "4", "label": "yes", "prompt": "what is two plus two, please"})
    assert named.text_columns() == ["answer", "prompt"]  # named always; extras only when they are text


def test_build_writes_figures_seeds_beside_generated(tmp_path, write_recipe, cache_env):
    recipe = write_recipe(fake_recipe_text())
    done = run_cli("build", str(recipe), "--output", str(tmp_path / "o"), env=cache_env)
    assert done.returncode == 0, done.stdout + done.stderr
    diversity = json.loads((tmp_path / "o" / "stats.json").read_text())["diversity"]
    sides = [(s["side"], s["column"]) for s in diversity["sets"]]
    assert sides == [("seeds", "prompt"), ("generated", "prompt"), ("generated", "chosen")]
    seeds = diversity["sets"][0]
    assert seeds["rows"] == seeds["texts"] == 48 and seeds["rouge_l_pairs"] == 1000  # of 1128 pairs
    assert "FACTORY_DIVERSITY_EMBEDDINGS=0" in diversity["missing"]["vendi"]
    card = (tmp_path / "o" / "README.md").read_text()
    assert "## Diversity" in card and "| seeds | prompt | 48 | 48 |" in card and "vendi: not computed" in card


@pytest.mark.slow
def test_vendi_in_a_build_and_in_the_audit(tmp_path, write_recipe, cache_env):
    """The one run with MiniLM: the card's Vendi is the score of the kept texts' embeddings."""
    pytest.importorskip("sentence_transformers")
    env = {**cache_env, "FACTORY_DIVERSITY_EMBEDDINGS": "1"}
    done = run_cli("build", str(write_recipe(fake_recipe_text())), "--limit", "12", "--output",
                   str(tmp_path / "o"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    diversity = json.loads((tmp_path / "o" / "stats.json").read_text())["diversity"]
    assert "missing" not in diversity
    from filters.embed import Embedder

    seeds = next(s for s in diversity["sets"] if s["side"] == "seeds")
    assert seeds["texts"] == 12 and 1.0 < seeds["vendi"] <= 12
    rows = [json.loads(x) for x in (tmp_path / "o" / "sft.jsonl").read_text().splitlines()]
    kept_prompts = [r["messages"][0]["content"] for r in rows]
    generated = next(s for s in diversity["sets"] if s["side"] == "generated" and s["column"] == "prompt")
    assert generated["vendi"] == pytest.approx(vendi_score(Embedder("minilm").encode(kept_prompts)), abs=2e-3)
    audit = run_cli("audit", str(tmp_path / "o"), "--split", "sft", env=env)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert f"diversity: generated prompt ({len(rows)} of {len(rows)} sampled)" in audit.stdout
    page = (tmp_path / "o" / "audit.html").read_text()
    assert "<h2>Diversity</h2>" in page
