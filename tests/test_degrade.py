"""Each degradation does what it says, deterministically per seed."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from factory.core.degrade import FOREIGN, KINDS, SANITY_KINDS, degrade, sanity_pairs

ANSWER = ("Plants take in light through their leaves and turn it into sugar. Water comes up from the "
          "roots, and the air gives them carbon dioxide. The sugar feeds the plant as it grows.")
POOL = [ANSWER, "Paris is the capital of France, and it sits on the river Seine in the north.",
        "To boil an egg, put it in boiling water for nine minutes, then cool it in cold water."]


def test_repetition_loop_repeats_a_phrase_of_the_answer_at_least_twelve_times():
    out = degrade("repetition_loop", ANSWER, random.Random(1))
    grams = Counter(tuple(out.split()[i:i + n]) for n in (2, 3, 4) for i in range(len(out.split())))
    phrase, count = grams.most_common(1)[0]
    assert count >= 12 and " ".join(phrase) in ANSWER


def test_truncated_is_a_prefix_cut_mid_sentence():
    out = degrade("truncated", ANSWER, random.Random(2))
    assert ANSWER.startswith(out) and len(out) < 0.75 * len(ANSWER)
    assert not out.endswith((".", "!", "?"))


def test_other_answer_and_word_salad_borrow_from_other_answers():
    rng = random.Random(3)
    assert degrade("other_answer", ANSWER, rng, POOL) in POOL[1:]
    salad = degrade("word_salad", ANSWER, rng, POOL).split()
    others = {w for p in POOL[1:] for w in p.split()}
    assert len(salad) == len(ANSWER.split()) and set(salad) <= others
    with pytest.raises(ValueError, match="needs a pool"):
        degrade("other_answer", ANSWER, rng, [ANSWER])


def test_shuffled_words_keeps_the_words_not_the_order():
    out = degrade("shuffled_words", ANSWER, random.Random(4))
    assert sorted(out.split()) == sorted(ANSWER.split()) and out != ANSWER


def test_char_noise_replaces_about_a_third_of_the_characters():
    out = degrade("char_noise", ANSWER, random.Random(5))
    changed = sum(a != b for a, b in zip(out, ANSWER)) / sum(not c.isspace() for c in ANSWER)
    assert len(out) == len(ANSWER) and 0.25 < changed < 0.45


def test_short_kinds_language_and_debris():
    rng = random.Random(6)
    assert degrade("empty", ANSWER, rng) == ""
    word = degrade("one_word", ANSWER, rng)
    assert len(word.split()) == 1 and word in ANSWER
    switched = degrade("language_switch", ANSWER, rng)
    assert switched.startswith(ANSWER.split()[0]) and sum(s in switched for s in FOREIGN) == 3
    debris = degrade("markup_debris", ANSWER, rng)
    assert re.search(r"</div>|\{\"id\"|<\|im_end\|>|\]\]>|```json|&lt;|<</SYS>>", debris)
    with pytest.raises(ValueError, match="unknown degradation 'loop'"):
        degrade("loop", ANSWER, rng)


def test_every_kind_is_deterministic_per_seed_and_changes_the_text():
    for kind in KINDS:
        a = degrade(kind, ANSWER, random.Random(7), POOL)
        assert a == degrade(kind, ANSWER, random.Random(7), POOL), kind
        assert a.strip() != ANSWER, kind


def test_sanity_pairs_one_per_usable_row_and_kind():
    rows = [("Q1?", ANSWER), ("Q2?", POOL[1]), ("Q3?", POOL[2]), ("Q4?", "Too short.")]
    pairs = sanity_pairs(rows, seed=1)
    assert Counter(p.kind for p in pairs) == {kind: 3 for kind in SANITY_KINDS}
    assert all(p.chosen == rows[p.source][1] and p.prompt == rows[p.source][0] for p in pairs)
    assert all(p.rejected != p.chosen for p in pairs)
    assert pairs == sanity_pairs(rows, seed=1) and pairs != sanity_pairs(rows, seed=2)
    assert len(sanity_pairs(rows, kinds=["truncated"], per_kind=2)) == 2
