"""Task families, the strict number_list verifier, eval arithmetic (Wilson, copyable split, win rate)
and the recipe checks of the task:/train:/eval: sections. Fake backend only: fast."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from conftest import run_cli
from factory.core.errors import FactoryError
from factory.core.verifiers import number_list_match
from factory.llm.backends.base import BackendSettings
from factory.llm.backends.fake import FakeBackend
from factory.llm.dispatch import Dispatcher
from factory.llm.request import SamplingParams
from factory.recipe.tasks import FAMILIES, generate_split, task_split
from factory.teach.evaluate import accuracy, save_result, wilson, win_rate


@pytest.mark.parametrize("family", [f for f, spec in FAMILIES.items() if spec.make])
def test_generated_train_and_test_are_disjoint_and_reproducible(family, tmp_path):
    train, test = task_split(family, 300, 200, 5, {}, tmp_path)
    assert len(train) == 300 and len(test) == 200
    assert not {p.question for p in train} & {p.question for p in test}
    assert len({p.question for p in train + test}) == 500
    again = task_split(family, 300, 200, 5, {}, tmp_path)
    assert (train, test) == again
    verifier = FAMILIES[family].verifier
    assert verifier == "number_list"
    assert all(number_list_match(p.answer, p.answer) == 1.0 for p in train + test)


def test_sorting_copyable_means_already_in_order(tmp_path):
    _, test = task_split("sort_numbers", 50, 300, 2, {}, tmp_path)
    for p in test:
        numbers = [int(n) for n in p.payload.split(", ")]
        assert p.copyable == (numbers == sorted(numbers))
        assert p.answer == ", ".join(map(str, sorted(numbers)))
    share = sum(p.copyable for p in test) / len(test)
    assert 0.08 < share < 0.25  # 1 in 6 orderings of 3 distinct numbers is sorted


def test_too_few_distinct_problems_is_an_error():
    with pytest.raises(FactoryError, match="distinct problems"):
        generate_split("sort_numbers", 10, 10, 0, {"count": 2, "low": 1, "high": 3})


def test_file_family_reads_gsm8k_style_rows_and_refuses_overlap(tmp_path):
    rows = [{"question": f"Q{i}: 2 + {i}?", "answer": f"work\n#### {2 + i}"} for i in range(6)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:4]))
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows[4:]))
    options = {"train_path": "train.jsonl", "test_path": "test.jsonl"}
    train, test = task_split("gsm8k", 10, 10, 0, options, tmp_path)
    assert [p.answer for p in train] == ["2", "3", "4", "5"] and len(test) == 2
    assert test[1].copyable is False  # "Q5: 2 + 5?" ends in 5, the answer is 7
    (tmp_path / "test.jsonl").write_text(json.dumps(rows[0]))
    with pytest.raises(FactoryError, match="in both train and test"):
        task_split("gsm8k", 10, 10, 0, options, tmp_path)
    (tmp_path / "test.jsonl").write_text('{"question": "x", "answer": "no final line"}')
    with pytest.raises(FactoryError, match=r"test.jsonl:1: expected JSON"):
        task_split("gsm8k", 10, 10, 0, options, tmp_path)


@pytest.mark.parametrize("text, answer, ok", [
    ("1, 8, 29", "1, 8, 29", True), ("The sorted numbers are 1, 8, 29.", "1, 8, 29", True),
    ("1,8,29", "1, 8, 29", True), ("29, 8, 1", "1, 8, 29", False), ("1, 8", "1, 8, 29", False),
    ("1, 8, 29, 30", "1, 8, 29", False), ("no numbers", "1, 8, 29", False), ("85", "85", True),
    ("37 + 48 = 85", "85", False),  # 'just the number': an echo of the sum is not the answer
])
def test_number_list_is_strict(text, answer, ok):
    assert number_list_match(text, answer) == (1.0 if ok else 0.0)


def test_wilson_interval_matches_known_values():
    assert wilson(0, 84) == [0.0, 0.0437]
    low, high = wilson(80, 200)
    assert low == pytest.approx(0.3346, abs=1e-4) and high == pytest.approx(0.4691, abs=1e-4)


def fake(rules: list[dict], default: str = "no idea", model: str = "fake-1") -> Dispatcher:
    """A fake backend behind a dispatcher with no cache (evals call models through dispatchers)."""
    return Dispatcher(FakeBackend(BackendSettings(model, 8, {"rules": rules, "default": default})), None, 8)


def test_accuracy_counts_add_up_by_copyable_part(tmp_path):
    _, test = task_split("sort_numbers", 0 + 1, 60, 3, {}, tmp_path)
    # The fake answers correctly for every third problem and copies the input otherwise.
    rules = [{"match": re.escape(p.question), "reply": p.answer if i % 3 == 0 else p.payload}
             for i, p in enumerate(test)]
    result = asyncio.run(accuracy(fake(rules), test, max_tokens=16))
    expected = sum(1 for i, p in enumerate(test) if i % 3 == 0 or p.copyable)
    assert result["correct"] == expected == sum(r["correct"] for r in result["rows"])
    nc, c = result["not_copyable"], result["copyable"]
    assert nc["n"] + c["n"] == result["n"] == 60
    assert c["correct"] == c["n"] == sum(p.copyable for p in test)  # copying solves exactly these
    assert nc["correct"] == sum(1 for i, p in enumerate(test) if i % 3 == 0 and not p.copyable)
    assert result["ci95"] == wilson(expected, 60)
    assert result["calls"]["made"] == 60 and result["calls"]["cached"] == 0
    card = tmp_path / "adapter"
    card.mkdir()
    save_result(result, tmp_path / "eval.json", card)
    assert json.loads((tmp_path / "eval.json").read_text())["correct"] == expected
    assert f"{expected}/60" in (card / "README.md").read_text()


def test_win_rate_counts_position_bias_as_a_tie():
    # Fake replies are str.format templates: braces are doubled once for us, once for the fake.
    verdict = '{{{{"reasoning": "r", "A": {{{{"correctness": 4, "helpfulness": 4, "clarity": 4}}}}, ' \
              '"B": {{{{"correctness": 1, "helpfulness": 1, "clarity": 1}}}}, "verdict": "{v}"}}}}'
    candidate = fake([{"match": r"^p(\d)$", "reply": "good answer {last}"}], model="cand")
    base = fake([{"match": r"^p(\d)$", "reply": "bad answer {last}"}], model="base")
    judge = fake([
        # p0, p1: the judge prefers the good answer in both orders -> win
        {"match": r"\[Request\]\np[01]\n\n\[Answer A\]\ngood", "reply": verdict.format(v="A")},
        {"match": r"\[Request\]\np[01]\n\n\[Answer A\]\nbad", "reply": verdict.format(v="B")},
        # p2: always A (follows the position) -> tie, counted as inconsistent
        {"match": r"\[Request\]\np2\n", "reply": verdict.format(v="A")},
        # p3: the base wins in both orders -> loss
        {"match": r"\[Request\]\np3\n\n\[Answer A\]\ngood", "reply": verdict.format(v="B")},
        {"match": r"\[Request\]\np3\n\n\[Answer A\]\nbad", "reply": verdict.format(v="A")},
    ], default="I cannot decide.")  # p4: no verdict -> tie, unparseable
    params = SamplingParams(temperature=0.0, max_tokens=100)
    result = asyncio.run(win_rate(candidate, base, judge, [f"p{i}" for i in range(5)], params))
    assert (result["win"], result["tie"], result["loss"]) == (2, 2, 1)
    assert result["ties_from_inconsistent_orders"] == 1 and result["ties_from_unparseable"] == 1
    assert result["win_rate"] == pytest.approx((2 + 0.5 * 2) / 5)
    assert [r["outcome"] for r in result["rows"]] == ["win", "win", "tie", "loss", "tie"]


TEACH_HEAD = """name: t
task: {{family: sort_numbers, train: 10, test: 10}}
seeds: {{task: train}}
backend: {{name: fake}}
steps:
  - {{name: solve, kind: rejection_sampling, reads: [question, answer], writes: [best, worst, scores, p],
     prompt: "{{question}}", n: 2, scorer: {{type: verifier, verifier: number_list, answer: answer}}}}
outputs:
  splits:
    sft: {{format: sft, prompt: question, completion: best}}
{extra}"""


@pytest.mark.parametrize("extra, message", [
    ("eval: {max_tokens: 8}", "eval: needs a 'task:' section"),
    ("train: {model: smollm2, dpo: {beta: 0.1}}", "needs an outputs split 'dpo' with format dpo"),
    ("train: {model: smollm2, sft: {rnak: 4}, dpo: null}", "rnak: not a SFTLoraConfig field (did you mean"),
    ("train: {model: smollm2, sft: {output_dir: x}, dpo: null}", "output_dir: not a SFTLoraConfig field"),
])
def test_teach_sections_are_checked_at_load(extra, message, write_recipe):
    text = TEACH_HEAD.format(extra=extra)
    if extra.startswith("eval"):
        text = text.replace("seeds: {task: train}", "seeds: {rows: [{question: q, answer: '1'}]}")
        text = text.replace("task: {family: sort_numbers, train: 10, test: 10}\n", "")
    result = run_cli("validate", str(write_recipe(text)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert re.search(r"recipe.yaml:\d+: ", result.stderr)


def test_a_few_shot_example_that_is_a_test_problem_is_refused(write_recipe, tmp_path):
    _, test = task_split("sort_numbers", 10, 10, 0, {}, tmp_path)
    text = TEACH_HEAD.format(extra="").replace(
        "n: 2,", f"n: 2, examples: [{{user: '{test[3].question}', assistant: '{test[3].answer}'}}],")
    result = run_cli("build", str(write_recipe(text)), "--dry-run")
    assert result.returncode == 2, result.stdout + result.stderr
    wanted = "recipe.yaml:7: steps[0].examples[0].user: this example is a held-out test problem"
    assert wanted in result.stderr


def test_unknown_family_names_the_line(write_recipe):
    text = TEACH_HEAD.format(extra="").replace("family: sort_numbers", "family: sort_number")
    result = run_cli("validate", str(write_recipe(text)))
    assert result.returncode == 2
    assert "recipe.yaml:2: task.family" in result.stderr and "did you mean 'sort_numbers'" in result.stderr


def test_eval_cli_errors_are_one_line(tmp_path):
    result = run_cli("eval", "smollm2", "--task", "sort_numberz")
    assert result.returncode != 0 and "did you mean 'sort_numbers'" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("eval", "smollm2")
    assert result.returncode != 0 and "give --task and/or --judge-prompts" in result.stderr


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_shipped_teach_sort_holds_out_200_problems_copying_cannot_solve():
    from factory.recipe.loader import load_recipe
    from factory.recipe.seeds import task_problems

    train, test = task_problems(load_recipe(ROOT / "recipes" / "teach_sort.yaml"))
    assert sum(not p.copyable for p in test) >= 200
    assert not {p.question for p in train} & {p.question for p in test}


def test_shipped_teach_gsm8k_reads_the_shared_split():
    if not (ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl").exists():
        pytest.skip("../shared/data/gsm8k is not here")
    from factory.recipe.loader import load_recipe
    from factory.recipe.seeds import task_problems

    train, test = task_problems(load_recipe(ROOT / "recipes" / "teach_gsm8k.yaml"))
    assert (len(train), len(test)) == (1000, 500)
    assert all(re.fullmatch(r"-?[\d.]+", p.answer) for p in train + test)
