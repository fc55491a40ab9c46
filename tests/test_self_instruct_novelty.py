"""The fast ROUGE-L pool check gives exactly the brute-force rouge-score answer."""

from __future__ import annotations

import random

import pytest

from factory.steps.novelty import NoveltyPool, brute_force_match

WORDS = ("write a the an short poem story list of three five ways to explain why how what is sort "
         "numbers words sentence into french summary paragraph email friend reply give name best "
         "tell whether review positive negative classify animal city country capital").split()


def random_instruction(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 14))]
    text = " ".join(words)
    return text.capitalize() + rng.choice([".", "?", "!", ""])


def near_copy(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(rng.randint(0, 3)):
        op = rng.random()
        if op < 0.4 and len(words) > 1:
            words.pop(rng.randrange(len(words)))
        elif op < 0.8:
            words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS))
        else:
            words[rng.randrange(len(words))] = rng.choice(WORDS)
    return " ".join(words)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9])
def test_pool_equals_brute_force_rouge_score(seed, threshold):
    rng = random.Random(seed)
    pool_texts = [random_instruction(rng) for _ in range(150)]
    pool = NoveltyPool(threshold)
    for text in pool_texts:
        pool.add(text)
    queries = [near_copy(rng.choice(pool_texts), rng) for _ in range(25)]
    queries += [random_instruction(rng) for _ in range(10)] + ["", "!!!", pool_texts[0]]
    hits = 0
    for query in queries:
        expected = brute_force_match(query, pool_texts, threshold)
        got = pool.best_match(query)
        assert got == expected, query
        hits += expected is not None
    assert 0 < hits < len(queries)  # the pools exercise both verdicts


def test_pool_that_grows_between_queries():
    rng = random.Random(7)
    pool, texts = NoveltyPool(0.7), []
    for _ in range(120):
        query = near_copy(rng.choice(texts), rng) if texts and rng.random() < 0.5 else random_instruction(rng)
        assert pool.best_match(query) == brute_force_match(query, texts, 0.7)
        if pool.best_match(query) is None:
            pool.add(query)
            texts.append(query)
    assert len(pool) == len(texts) > 20


def test_match_names_the_most_similar_instruction():
    pool = NoveltyPool(0.7)
    for text in ["Write a poem about the sea.", "Write a short poem about the sea.", "Sort the numbers."]:
        pool.add(text)
    match = pool.best_match("write a short poem about the sea")
    assert match is not None and match.index == 1 and match.score == 1.0
    assert pool.best_match("Translate the sentence into French.") is None
