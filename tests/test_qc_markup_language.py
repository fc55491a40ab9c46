"""Rule filters: pipeline debris (markup) and a switch of language (language). Each rule catches
its kind and keeps ordinary answers: code, HTML answering an HTML question, a translation."""

from __future__ import annotations

import pytest

from factory.core.record import Record
from filters.base import Chain
from filters.config import LanguageBlock, MarkupBlock
from filters.language import LanguageFilter
from filters.markup import MarkupFilter, debris

CODE = ("```python\ndef largest(xs):\n    return max(xs)\n```\n\nUse `largest([1, 5, 3])`; "
        "in C: `if (a < b && b > c) { return b; }`.")
HTML = '<ul>\n  <li><a href="/">Home</a></li>\n  <li>About &amp; contact</li>\n</ul>\n<br/>'


@pytest.mark.parametrize(("text", "rule", "what"), [
    ("Paris is the capital. <|im_end|>\n<|im_start|>assistant\nIt is.", "template_token", "<|im_end|>"),
    ("The answer is four. [/INST] Done.", "template_token", "[/INST]"),
    ("Sure. <</SYS>> Here it is.", "template_token", "<</SYS>>"),
    ("<s> The answer is four.", "template_token", "<s>"),
    ("The answer is four.</s>", "unopened_closing_tag", "</s>"),
    ("First line &lt;br/&gt;&nbsp; second line.", "escaped_entity", "&lt;"),
    ('Fine. </div><div class="answer"> More text.', "unopened_closing_tag", "</div>"),
    ("The value ]]></content> is set.", "unopened_closing_tag", "</content>"),
    ("It ends ]]> here.", "unopened_cdata_end", "]]>"),
    ('Here: ```json\n{"response": "hi"} and that is all.', "unclosed_code_fence", "```json\n{\"response\":"),
])
def test_each_debris_rule_names_the_offending_text(text, rule, what):
    assert debris(text, "Answer the question.") == (rule, what)


@pytest.mark.parametrize(("prompt", "text"), [
    ("Write a Python function that returns the largest number.", CODE),
    ("Write an HTML list with links to Home and About & contact.", HTML),
    ("What does `<|im_end|>` mean in a ChatML template?", "<|im_end|> closes a turn in ChatML."),
    ("Escape this for HTML: a < b", "a &lt; b"),
    ("Close the tags of this HTML:\n<b><i>text", "<b><i>text</i></b>"),
    ("Wrap this in CDATA: x", "<![CDATA[x]]>"),
    ("Show a price cut in HTML.", "<p><s>$20</s> $15</p>"),
])
def test_ordinary_answers_pass(prompt, text):
    assert debris(text, prompt) is None


def test_markup_filter_drops_with_reason_and_keeps_the_rest():
    records = [Record("ok", {"prompt": "Write code.", "response": CODE}, "t"),
               Record("bad", {"prompt": "Say hi.", "response": "Hi! <|im_end|>"}, "t"),
               Record("none", {"prompt": "Say hi."}, "t")]
    f = MarkupFilter(MarkupBlock(filter="markup"))
    result = Chain([f]).run(records)
    got = {r.record.id: (r.reason, r.detail, r.failed) for r in result.rejects}
    assert got["bad"] == ("markup_template_token", "template_token: '<|im_end|>'", False)
    assert got["none"][2] is True and [r.id for r in result.kept] == ["ok"]
    assert f.info["fired"] == {"template_token": 1}


ENGLISH = ("Water boils at one hundred degrees at sea level. At higher altitudes the air pressure is "
           "lower, so water boils at a lower temperature. This is why pasta takes longer to cook in "
           "the mountains than it does by the sea.")
SWITCH = ("Water boils at one hundred degrees at sea level. Der Bericht wurde gestern Abend fertig, "
          "aber niemand hat ihn gelesen. Nous avons marché jusqu'à la gare avant que la pluie ne "
          "commence. El mercado abre temprano y cierra cuando se vende el último pan.")
FRENCH = ("L'eau bout à cent degrés au niveau de la mer. En altitude, la pression de l'air est plus "
          "basse, donc l'eau bout à une température plus basse.")


def _language(records):
    f = LanguageFilter(LanguageBlock(filter="language"))
    result = Chain([f]).run(records)
    return {r.record.id: r for r in result.rejects}, f


def test_a_switch_of_language_is_dropped_and_named():
    rejects, f = _language([Record("switch", {"prompt": "Why does water boil at lower temperatures "
                                                        "in the mountains?", "response": SWITCH}, "t")])
    r = rejects["switch"]
    assert r.reason == "language_switch" and r.detail.startswith("3 sentences in de, es, fr, not en: ")


def test_english_code_and_translations_are_kept():
    from filters.language import top_language

    translate = "Translate the second half of this text into another language.\n\n" + ENGLISH + " " + ENGLISH
    named = "Explain in French why water boils at lower temperatures up high. " + ENGLISH
    records = [
        Record("en", {"prompt": "Why does water boil at lower temperatures up high?", "response": ENGLISH}, "t"),
        Record("code", {"prompt": "Write a Python function that returns the largest number.",
                        "response": CODE}, "t"),
        Record("translate", {"prompt": translate, "response": FRENCH}, "t"),
        Record("named", {"prompt": named, "response": FRENCH}, "t"),
    ]
    # the conversation as a whole is English: the French sentences are kept because the prompt allows them
    assert {top_language(f"{r.fields['prompt']}\n{r.fields['response']}")[0] for r in records} == {"en"}
    rejects, _ = _language(records)
    assert rejects == {}


def test_a_translation_word_in_the_input_does_not_allow_a_switch():
    prompt = ("Summarize the paper.\n\nPaper: Machine translation models translate between languages "
              "with an encoder and a decoder.")
    rejects, _ = _language([Record("s", {"prompt": prompt, "response": SWITCH}, "t")])
    assert rejects["s"].reason == "language_switch"


def test_language_is_deterministic():
    from filters.language import top_language

    assert len({top_language("Il treno per Milano parte dal binario tre tra dieci minuti.")
                for _ in range(5)}) == 1
