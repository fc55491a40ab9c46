"""Markup filter: pipeline debris a real answer does not contain.

Generation pipelines leak their plumbing into answers: chat-template tokens (``<|im_end|>``,
``[INST]``, ``<</SYS>>``, ``<s>``), HTML entities in text that holds no markup (``&lt;br/&gt;``), the tail of
markup the answer never opened (``</div>``, ``]]>``), a code fence opened and never closed. Each
rule names the offending text. A rule is waived when the prompt holds the same text (a question
about chat templates, HTML to complete): the answer may then quote it. None of the rules fired on
any of the 427 real self_instruct answers, code and HTML answers included (README, Quality control).
"""

from __future__ import annotations

import re
from collections import Counter

from factory.core.record import Record
from factory.core.text import texts_with_prompts
from filters.base import Drop, Failed, Filter, Keep, QCContext, Verdict
from filters.config import MarkupBlock

TEMPLATE_TOKEN = re.compile(r"<\|[A-Za-z_]+\|>|\[/?INST\]|<</?SYS>>")
# Llama's <s> is also HTML's strikethrough: a template token only when no </s> closes it (a lone
# </s> is a closing tag never opened)
LONE_BOS = re.compile(r"<s>(?![\s\S]*</s>)")
ENTITY = re.compile(r"&(?:[a-zA-Z]{2,8}|#\d{2,5}|#x[0-9a-fA-F]{2,4});")
TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)\b[^<>]*?(/?)>")
FENCE = re.compile(r"```")


def unopened_closing_tag(text: str) -> str | None:
    """The first closing tag with no opening tag of its name before it (``</div>`` alone)."""
    open_count: Counter = Counter()
    for m in TAG.finditer(text):
        closing, name, self_closing = m.group(1), m.group(2).lower(), m.group(3)
        if self_closing:
            continue
        if not closing:
            open_count[name] += 1
        elif open_count[name] == 0:
            return m.group(0)
        else:
            open_count[name] -= 1
    return None


def debris(text: str, prompt: str = "") -> tuple[str, str] | None:
    """The first rule the text breaks, as (rule, offending text), or None. Text the prompt holds
    too is never debris."""
    m = TEMPLATE_TOKEN.search(text) or LONE_BOS.search(text)
    if m and m.group(0) not in prompt:
        return "template_token", m.group(0)
    m = ENTITY.search(text)
    # HTML escapes its text (&amp; in a list item): an entity is debris in text with no tag at all
    asked = m is not None and (m.group(0) in prompt or re.search(r"escap|entit", prompt, re.I) is not None)
    if m and not TAG.search(text) and not asked:
        return "escaped_entity", m.group(0)
    tag = unopened_closing_tag(text)
    if tag and tag not in prompt:
        return "unopened_closing_tag", tag
    if "]]>" in text and "<![CDATA[" not in text and "]]>" not in prompt:
        return "unopened_cdata_end", "]]>"
    if len(FENCE.findall(text)) % 2 and len(FENCE.findall(prompt)) % 2 == 0:
        at = list(FENCE.finditer(text))[-1].start()
        return "unclosed_code_fence", text[at:at + 20]
    return None


class MarkupFilter(Filter):
    name = "markup"

    def __init__(self, block: MarkupBlock) -> None:
        super().__init__()
        self.block = block

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        texts, prompts, details = texts_with_prompts(records, b.column, b.prompt_column)
        fired: Counter = Counter()
        out: list[Verdict] = []
        for text, prompt, detail in zip(texts, prompts, details):
            if text is None or prompt is None:
                out.append(Failed(detail))
                continue
            found = debris(text, prompt)
            if found is None:
                out.append(Keep(0.0))
                continue
            rule, what = found
            fired[rule] += 1
            out.append(Drop(f"markup_{rule}", 1.0, f"{rule}: {what!r}"))
        self.info = {"column": b.column, "rule": "template tokens, escaped entities, closing tags never "
                     "opened, ']]>' without '<![CDATA[', an unclosed ``` fence (waived when the prompt "
                     "holds the same text)", "fired": dict(sorted(fired.items()))}
        return out
