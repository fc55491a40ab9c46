"""Repetition filter: loops of several shapes go, with the rule and its figure; lists, tables and
code that repeat legitimately stay."""

from __future__ import annotations

import random

import pytest

from factory.core.degrade import repetition_loop
from factory.core.record import Record
from filters.base import Chain, Drop, Keep, QCContext
from filters.config import RepetitionBlock
from filters.repetition import RepetitionFilter, repetition_figures

ANSWER = ("Photosynthesis turns light into chemical energy. Plants take in carbon dioxide and water, "
          "and with the energy of sunlight they build sugars and release oxygen into the air.")

LOOPS = {
    "phrase": "The main reason is that " + "the water is the water is " * 15,
    "sentence": "Here is my answer. " + "I hope this helps you with your question. " * 10,
    "lines": "Steps:\n" + "\n".join(["- Preheat the oven to 200 degrees."] * 8),
    "paragraphs": "\n\n".join(["Thank you for asking. Let me know if you need anything else."] * 5),
    "characters": "Sure! " + "ha" * 150,
    "punctuation": "Wow" + "!" * 300,
    "after a long good start": ANSWER + " " + "and so on and so on " * 12,
    "degrade.repetition_loop": repetition_loop(ANSWER, random.Random(3)),
}

LEGITIMATE = {
    "bullet list": "- Apples: rich in fiber\n- Oranges: rich in vitamin C\n- Bananas: rich in potassium\n"
                   "- Grapes: rich in antioxidants\n- Pears: rich in fiber and vitamin K",
    "numbered questions": "1. What is your favorite food?\n2. What is your favorite restaurant?\n"
                          "3. What is your favorite dessert?\n4. Do you have any food allergies?\n"
                          "5. Do you cook at home?",
    "markdown table": "| item | price | stock |\n|---|---|---|\n| pen | 1.20 | yes |\n| pad | 3.50 | yes |\n"
                      "| ink | 7.00 | no |\n| tape | 2.10 | yes |",
    "code": "def total(items):\n    result = 0\n    for item in items:\n        if item > 0:\n"
            "            result += item\n        else:\n            result -= item\n    return result\n\n"
            "int main() {\n    if (x) {\n        y();\n    }\n    if (z) {\n        w();\n    }\n}\n",
    "prose": ANSWER,
    "short": "Positive",
}


def verdicts(texts: dict[str, str]) -> dict[str, object]:
    records = [Record(name, {"response": t}, "t") for name, t in texts.items()]
    out = RepetitionFilter(RepetitionBlock(filter="repetition")).filter_batch(records, QCContext())
    return dict(zip(texts, out))


@pytest.mark.parametrize("shape", list(LOOPS))
def test_loops_of_every_shape_are_dropped_with_rule_and_figure(shape):
    v = verdicts({shape: LOOPS[shape]})[shape]
    assert isinstance(v, Drop), (shape, v, repetition_figures(LOOPS[shape]))
    rule = v.reason.removeprefix("repetition_")
    assert rule in repetition_figures(LOOPS[shape])  # the reason names the rule ...
    assert rule in v.detail and any(c.isdigit() for c in v.detail)  # ... and the detail its figure
    assert v.score > 1.0  # severity: the worst figure as a multiple of its threshold


@pytest.mark.parametrize("kind", list(LEGITIMATE))
def test_lists_tables_and_code_with_legitimate_repetition_are_kept(kind):
    v = verdicts({kind: LEGITIMATE[kind]})[kind]
    assert isinstance(v, Keep) and v.score <= 1.0, (kind, v, repetition_figures(LEGITIMATE[kind]))


def test_gopher_thresholds_are_there_for_web_text_and_stricter():
    """The Gopher defaults are one setting away; on a numbered list they are too strict for
    answers, which is why the defaults differ (README: the measured rates)."""
    gopher = RepetitionBlock(filter="repetition", top_ngram_char_frac=(0.2, 0.18, 0.16),
                             dup_ngram_char_frac=(0.15, 0.14, 0.13, 0.12, 0.11, 0.10))
    record = Record("q", {"response": LEGITIMATE["numbered questions"]}, "t")
    assert isinstance(RepetitionFilter(gopher).filter_batch([record], QCContext())[0], Drop)


def test_chain_counts_rules_and_reports_thresholds():
    records = [Record(k, {"response": t}, "t") for k, t in {**LOOPS, **LEGITIMATE}.items()]
    records.append(Record("missing", {"prompt": "no response"}, "t"))
    result = Chain([RepetitionFilter(RepetitionBlock(filter="repetition"))]).run(records)
    summary = result.summary(len(records))
    stats = summary["filters"]["repetition"]
    assert summary["kept"] == len(LEGITIMATE) and summary["failed"] == 1
    assert sum(stats["dropped"].values()) == len(LOOPS) == sum(stats["fired"].values())
    assert stats["thresholds"]["dup_5gram_char_frac"] == 0.4 and "Gopher" in stats["cut_source"]
