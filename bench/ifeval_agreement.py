"""Our constraint checks vs lm-eval's IFEval scorer, instruction by instruction, on IFEval's prompts.

For each of the 541 prompts of ``../shared/data/ifeval/input_data.jsonl`` a spread of responses is
made from in-house base text: one edited to follow every instruction, one per instruction edited to
break just that one, and edge cases (empty, blank, raw text, quoted, fenced, all caps, all
lowercase). Each response is scored per instruction by

- ours: the ``constraints`` verifier (``factory.core.constraints.check_constraints``) on the row's
  ``{id, kwargs}`` list: lm-eval's checker class where we use it, parsed and called by our code;
- lm-eval: ``lm_eval.tasks.ifeval.utils.test_instruction_following_strict`` (the reference scorer);

and the verdicts are compared. The hand-written case checkers (``change_case:lowercase`` /
``uppercase``) are also compared with IFEval's ``english_lowercase`` / ``english_capital`` (which add
a langdetect "is English" test) on every response of the prompts that carry those ids.

    FACTORY_SHARED_DATA=/path/to/shared/data python bench/ifeval_agreement.py
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("FACTORY_SHARED_DATA", ROOT.parent / "shared" / "data")) / "ifeval"

BASE = [
    "Good planning starts with a clear goal. Write down what you want to achieve and why it "
    "matters to you.",
    "Next, break the work into small steps. Each step should take less than an hour; small "
    "steps are easier to start and easier to finish.",
    "Finally, review your progress at the end of each week. Keep what worked, drop what did not, "
    "and adjust the plan for the week ahead.",
]
OTHER = "A second answer: keep a short list, do the hardest task first, and rest often."


def text() -> str:
    return "\n\n".join(BASE)


def comply(iid: str, kw: dict, t: str, prompt: str) -> str:
    """``t`` edited so that it plausibly follows instruction ``iid`` (the scorers decide)."""
    rel = kw.get("relation") or kw.get("let_relation") or kw.get("capital_relation")
    if iid == "keywords:existence":
        return t + " " + " ".join(kw["keywords"]) + "."
    if iid == "keywords:frequency":
        if rel == "at least":
            return t + (" " + kw["keyword"]) * kw["frequency"]
        return re.sub(re.escape(kw["keyword"]), "", t, flags=re.I)
    if iid == "keywords:forbidden_words":
        for w in kw["forbidden_words"]:
            t = re.sub(r"\b" + re.escape(w) + r"\b", "", t, flags=re.I)
        return t
    if iid == "keywords:letter_frequency":
        if rel == "at least":
            return t + (" " + kw["letter"]) * kw["let_frequency"]
        return re.sub(re.escape(kw["letter"]), "", t, flags=re.I)
    if iid == "length_constraints:number_words":
        words = t.split()
        if rel == "less than":
            return " ".join(words[: max(1, kw["num_words"] - 1)])
        return " ".join((words * (kw["num_words"] // len(words) + 1))[: kw["num_words"] + 5])
    if iid == "length_constraints:number_sentences":
        sentences = [s.strip() + "." for s in re.split(r"[.!?]", t) if s.strip()]
        if rel == "less than":
            return " ".join(sentences[: max(1, kw["num_sentences"] - 1)])
        return " ".join((sentences * (kw["num_sentences"] // len(sentences) + 1))[: kw["num_sentences"] + 1])
    if iid == "length_constraints:number_paragraphs":
        return "\n\n***\n\n".join((BASE * 10)[: kw["num_paragraphs"]])
    if iid == "length_constraints:nth_paragraph_first_word":
        paras = (BASE * 10)[: kw["num_paragraphs"]]
        n = kw.get("nth_paragraph") or 1
        if n <= len(paras):
            paras[n - 1] = f"{kw['first_word'].capitalize()} {paras[n - 1]}"
        return "\n\n".join(paras)
    if iid == "detectable_content:number_placeholders":
        return t + " " + " ".join(f"[field {i}]" for i in range(kw["num_placeholders"]))
    if iid == "detectable_content:postscript":
        return t + f"\n\n{kw['postscript_marker']} see you soon."
    if iid == "detectable_format:number_bullet_lists":
        return "\n".join(f"* point {i}" for i in range(kw["num_bullets"]))
    if iid == "detectable_format:constrained_response":
        return "My answer is yes."
    if iid == "detectable_format:number_highlighted_sections":
        return t + " " + " ".join(f"*part {i}*" for i in range(kw["num_highlights"]))
    if iid == "detectable_format:multiple_sections":
        return "\n".join(f"{kw['section_spliter']} {i + 1}\n{BASE[i % 3]}" for i in range(kw["num_sections"]))
    if iid == "detectable_format:json_format":
        return "```json\n" + json.dumps({"answer": t}) + "\n```"
    if iid == "detectable_format:title":
        return "<<A plan that works>>\n" + t
    if iid == "combination:two_responses":
        return t + "\n******\n" + OTHER
    if iid == "combination:repeat_prompt":
        return kw["prompt_to_repeat"] + "\n" + t
    if iid == "startend:end_checker":
        return t + " " + kw["end_phrase"]
    if iid == "startend:quotation":
        return f'"{t}"'
    if iid == "change_case:capital_word_frequency":
        return t + " NOTE" * kw["capital_frequency"] if rel == "at least" else t.lower()
    if iid == "change_case:english_capital":
        return t.upper()
    if iid == "change_case:english_lowercase":
        return t.lower()
    if iid == "punctuation:no_comma":
        return t.replace(",", "")
    return t  # response_language: the text stays English


def violate(iid: str, kw: dict, t: str, prompt: str) -> str:
    """``t`` edited so that it plausibly breaks instruction ``iid``."""
    rel = kw.get("relation") or kw.get("let_relation") or kw.get("capital_relation")
    flip = {"less than": "at least", "at least": "less than"}
    if rel in flip:
        key = "relation" if "relation" in kw else "let_relation" if "let_relation" in kw else "capital_relation"
        return comply(iid, {**kw, key: flip[rel]}, t, prompt)
    if iid == "keywords:existence":
        for w in kw["keywords"]:
            t = re.sub(re.escape(w), "", t, flags=re.I)
        return t
    if iid == "keywords:forbidden_words":
        return t + " " + " ".join(kw["forbidden_words"])
    edits = {
        "length_constraints:number_paragraphs": lambda: "\n\n***\n\n".join((BASE * 10)[: kw["num_paragraphs"] + 1]),
        "length_constraints:nth_paragraph_first_word": lambda: "\n\n".join(BASE),
        "detectable_content:number_placeholders": lambda: t.replace("[", "(").replace("]", ")"),
        "detectable_content:postscript": lambda: t,
        "detectable_format:number_bullet_lists": lambda: "\n".join(f"* point {i}" for i in range(kw["num_bullets"] + 1)),
        "detectable_format:constrained_response": lambda: "I am not sure.",
        "detectable_format:number_highlighted_sections": lambda: t.replace("*", ""),
        "detectable_format:multiple_sections": lambda: t,
        "detectable_format:json_format": lambda: "answer: " + t,
        "detectable_format:title": lambda: t.replace("<<", "").replace(">>", ""),
        "combination:two_responses": lambda: t,
        "combination:repeat_prompt": lambda: "Sure. " + t,
        "startend:end_checker": lambda: t + " " + kw["end_phrase"] + " Bye.",
        "startend:quotation": lambda: t.strip('"'),
        "change_case:english_capital": lambda: t,
        "change_case:english_lowercase": lambda: t,
        "punctuation:no_comma": lambda: t + ", and more",
    }
    return edits.get(iid, lambda: t)()


def responses(row: dict) -> list[str]:
    pairs = list(zip(row["instruction_id_list"], [clean(k) for k in row["kwargs"]]))
    out = []
    good = text()
    for iid, kw in pairs:
        good = comply(iid, kw, good, row["prompt"])
    out.append(good)
    for j, (iid, kw) in enumerate(pairs):
        t = text()
        for i, (jid, kwj) in enumerate(pairs):
            t = violate(jid, kwj, t, row["prompt"]) if i == j else comply(jid, kwj, t, row["prompt"])
        out.append(t)
    base = text()
    out += ["", "  \n ", base, f'"{base}"', f"```\n{base}\n```", base.upper(), base.lower()]
    return out


def clean(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if v is not None}


def main() -> None:
    from factory.core.constraints import CATALOG, ConstraintError, check_constraints, parse_constraints
    from factory.core.constraints.lm_eval_bridge import registry

    registry()
    from lm_eval.tasks.ifeval.utils import InputExample, test_instruction_following_strict

    path = DATA / "input_data.jsonl"
    if not path.exists():
        sys.exit(f"{path} not found (set FACTORY_SHARED_DATA)")
    rows = [json.loads(line) for line in path.open()]
    agree, total, true_ours = Counter(), Counter(), Counter()
    case_agree, case_total = Counter(), Counter()
    disagreements, refused = [], []
    started = time.perf_counter()
    for row in rows:
        constraints = [{"id": i, "kwargs": clean(k)} for i, k in zip(row["instruction_id_list"], row["kwargs"])]
        try:
            parse_constraints(constraints, CATALOG)
        except ConstraintError as exc:  # e.g. letter '#': lm-eval would draw a random letter instead
            refused.append(f"key {row['key']}: {exc}")
            continue
        example = InputExample(row["key"], row["instruction_id_list"], row["prompt"], row["kwargs"])
        for response in responses(row):
            ours = [r["ok"] for r in check_constraints(response, constraints)]
            ref = test_instruction_following_strict(example, response).follow_instruction_list
            for iid, a, b in zip(row["instruction_id_list"], ours, ref):
                total[iid] += 1
                agree[iid] += a == b
                true_ours[iid] += a
                if a != b and len(disagreements) < 5:
                    disagreements.append((row["key"], iid, response[:80]))
            for iid, ref_ok in zip(row["instruction_id_list"], ref):
                mine = {"change_case:english_lowercase": "change_case:lowercase",
                        "change_case:english_capital": "change_case:uppercase"}.get(iid)
                if mine:
                    ok = check_constraints(response, [{"id": mine, "kwargs": {}}])[0]["ok"]
                    case_total[mine] += 1
                    case_agree[mine] += ok == ref_ok
    elapsed = time.perf_counter() - started
    n = sum(total.values())
    print(f"{len(rows)} IFEval prompts ({len(refused)} refused by our parameter check), {n} instruction "
          f"verdicts, {elapsed:.1f} s")
    for why in refused:
        print("  refused:", why)
    print(f"\n{'type':48} {'verdicts':>8} {'followed':>8} {'agree':>7}  checker")
    for iid in sorted(total):
        print(f"{iid:48} {total[iid]:8d} {true_ours[iid] / total[iid]:8.0%} {agree[iid] / total[iid]:7.2%}  "
              f"{CATALOG[iid].checker_name}")
    print(f"{'all types':48} {n:8d} {sum(true_ours.values()) / n:8.0%} {sum(agree.values()) / n:7.2%}")
    print("\nhand-written case checks vs IFEval's english_* (langdetect) on the same responses:")
    for mine in sorted(case_total):
        print(f"  {mine:28} {case_total[mine]:5d} verdicts, agree {case_agree[mine] / case_total[mine]:.2%}")
    for d in disagreements:
        print("disagreement:", d)


if __name__ == "__main__":
    main()
