"""IFEval eval on the fake backend: lm-eval's checker gives the verdicts, and the four figures, the
per-type table and the paired comparison add up; `factory eval --task ifeval` end to end. The
prompts here are written for the test in IFEval's format (never IFEval's own)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from conftest import run_cli
from factory.core.errors import FactoryError
from factory.llm.backends import BackendSettings
from factory.llm.backends.fake import FakeBackend
from factory.llm.dispatch import Dispatcher
from factory.teach.ifeval import LEVELS, compare, ifeval, read_ifeval, summarize
from factory.teach.stats import clustered_share, paired

pytest.importorskip("lm_eval")

PROMPTS = [
    {"key": 1, "prompt": "Describe a quiet morning in a fishing village. Do not use any commas.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 2, "prompt": "Give advice on keeping houseplants alive, in lowercase letters only and in "
                         "fewer than 20 words.",
     "instruction_id_list": ["change_case:english_lowercase", "length_constraints:number_words"],
     "kwargs": [{}, {"relation": "less than", "num_words": 20}]},
    {"key": 3, "prompt": "Write a tiny story about a lost key with a title in double angular brackets, "
                         "and finish with the exact phrase 'Any other questions?'",
     "instruction_id_list": ["detectable_format:title", "startend:end_checker"],
     "kwargs": [{}, {"end_phrase": "Any other questions?"}]},
    {"key": 4, "prompt": "Name some colours of the rainbow as exactly 3 markdown bullet points.",
     "instruction_id_list": ["detectable_format:number_bullet_lists"], "kwargs": [{"num_bullets": 3}]},
    {"key": 5, "prompt": "Explain why bread goes stale. Do not use any commas.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 6, "prompt": "Write a long speech about rivers. Do not use any commas.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
]
RULES = [
    {"match": "fishing village", "reply": "A calm harbour wakes slowly as the boats drift out to sea."},
    # strict fails (the first line has a capital); loose drops the first line and passes
    {"match": "houseplants", "reply": "Sure!\nkeep the soil a little moist and give every plant "
                                      "plenty of bright indirect light."},
    {"match": "lost key", "reply": "<<The Lost Key>>\nA key fell behind the old piano and stayed "
                                   "there for years. Any other questions?"},
    {"match": "rainbow", "reply": "* red\n* blue"},
    {"match": "rivers", "reply": " ".join(["Rivers carve valleys and feed the sea"] * 10)},
]
# Hand-checked verdicts per prompt: (strict, loose), one bool per instruction; prompt 5 fails
# (an error follows nothing), prompt 6 is cut at the token cap but has no comma.
EXPECTED = {"1": ([True], [True]), "2": ([False, True], [True, True]),
            "3": ([True, True], [True, True]), "4": ([False], [False]), "5": ([False], [False]),
            "6": ([True], [True])}


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "ifeval_style.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS), encoding="utf-8")
    return path


def run_fake(items, max_tokens=40):
    backend = FakeBackend(BackendSettings("fake-ifeval", 4, {"rules": RULES, "fail_match": "stale"}))

    async def go():
        return await ifeval(Dispatcher(backend, None, 4), items, max_tokens)

    return asyncio.run(go())


def test_verdicts_are_lm_evals_and_the_counts_add_up(data):
    result = run_fake(read_ifeval(data))
    got = {r["key"]: (r["strict"], r["loose"]) for r in result["rows"]}
    assert got == EXPECTED
    assert result["n"] == 6 and result["errors"] == 1 and result["truncated"] == 1
    # prompt level: every instruction followed; instruction level: each one counted once
    assert result["prompt_level_strict"]["correct"] == 3 and result["prompt_level_loose"]["correct"] == 4
    assert result["inst_level_strict"]["n"] == result["inst_level_loose"]["n"] == 8
    assert result["inst_level_strict"]["correct"] == 5 and result["inst_level_loose"]["correct"] == 6
    # per instruction type: n and followed sum to the instruction-level totals, in both modes
    per_type = result["per_type"]
    assert sum(t["n"] for t in per_type.values()) == 8
    for mode in ("strict", "loose"):
        assert sum(t[mode]["correct"] for t in per_type.values()) == result[f"inst_level_{mode}"]["correct"]
    assert per_type["punctuation:no_comma"]["n"] == 3
    assert per_type["punctuation:no_comma"]["strict"]["correct"] == 2
    assert per_type["change_case:english_lowercase"]["strict"]["correct"] == 0
    assert per_type["change_case:english_lowercase"]["loose"]["correct"] == 1
    for name in LEVELS:
        low, high = result[name]["ci95"]
        assert low <= result[name]["accuracy"] <= high


def test_summarize_counts_follow_the_rows():
    rows = [{"instruction_id_list": ["a", "b"], "strict": [True, False], "loose": [True, True]},
            {"instruction_id_list": ["a"], "strict": [True], "loose": [True]},
            {"instruction_id_list": ["b", "c", "a"], "strict": [False, False, True],
             "loose": [True, False, True]}]
    out = summarize(rows)
    assert out["prompt_level_strict"]["correct"] == 1 and out["prompt_level_loose"]["correct"] == 2
    assert (out["inst_level_strict"]["correct"], out["inst_level_strict"]["n"]) == (3, 6)
    assert {k: (v["n"], v["strict"]["correct"], v["loose"]["correct"]) for k, v in out["per_type"].items()} \
        == {"a": (3, 3, 3), "b": (2, 0, 2), "c": (1, 0, 0)}


def test_paired_comparison_and_intervals():
    before, after = [False] * 20 + [True] * 10, [True] * 6 + [False] * 14 + [True] * 9 + [False]
    out = paired(before, after)
    assert (out["gained"], out["lost"]) == (6, 1)
    assert out["difference"] == round(5 / 30, 4)
    assert out["mcnemar_p"] == pytest.approx(0.125, abs=1e-3)  # two-sided exact: 2 * P(X <= 1 | 7, 1/2)
    assert out["ci95"][0] < out["difference"] < out["ci95"][1]
    assert paired([True] * 5, [True] * 5)["mcnemar_p"] == 1.0
    # a clustered interval is wider than treating 2 correlated instructions as independent
    groups = [[True, True]] * 30 + [[False, False]] * 30
    clustered = clustered_share(groups)
    assert clustered["accuracy"] == 0.5 and clustered["ci95"][1] - clustered["ci95"][0] > 0.2


def test_compare_needs_the_same_prompts(data):
    items = read_ifeval(data)
    base, other = run_fake(items), run_fake(items[:4])
    same = compare(base, base)
    assert all(same[name]["difference"] == 0 and same[name]["mcnemar_p"] == 1.0 for name in LEVELS)
    with pytest.raises(FactoryError, match="same prompts"):
        compare(base, other)


@pytest.mark.parametrize("line, message", [
    ("{not json", ":2: not JSON"),
    ('{"key": 9, "prompt": "Hi.", "instruction_id_list": ["punctuation:no_coma"], "kwargs": [{}]}',
     "instruction_id_list: unknown IFEval instruction 'punctuation:no_coma'"),
    ('{"key": 9, "prompt": "Hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]}',
     "kwargs: expected a list of 1 mapping"),
    ('{"key": 9, "prompt": "", "instruction_id_list": ["punctuation:no_comma"]}', "prompt: expected"),
])
def test_bad_rows_name_the_line_and_field(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(PROMPTS[0]) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(FactoryError, match=message.replace("(", r"\(")) as err:
        read_ifeval(path)
    assert f"{path}:2" in str(err.value)


def test_eval_command_ifeval_on_any_backend(tmp_path, data):
    out = tmp_path / "result.json"
    env = {**os.environ, "FACTORY_CACHE_DIR": str(tmp_path / "cache")}
    rules = json.dumps(RULES)
    args = ["eval", "fake-ifeval", "--backend", "fake", "--task", "ifeval", "--data", str(data),
            "--option", f"rules={rules}", "--option", "fail_match=stale", "--max-tokens", "40",
            "--output", str(out)]
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    saved = json.loads(out.read_text())
    assert saved["metric"] == "ifeval" and saved["backend"] == "fake" and len(saved["rows"]) == 6
    assert {r["key"]: (r["strict"], r["loose"]) for r in saved["rows"]} == EXPECTED
    report = out.with_suffix(".md").read_text()
    assert "| `punctuation:no_comma` | 3 |" in report and "prompt_level_loose" in report
    assert "IFEval 6 prompts" in result.stdout
    # the same run against itself: a paired comparison with nothing gained or lost; calls cached
    again = run_cli(*args[:-1], str(tmp_path / "again.json"), "--versus", str(out), env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    versus = json.loads((tmp_path / "again.json").read_text())["versus"]
    assert versus["prompt_level_loose"]["gained"] == versus["prompt_level_loose"]["lost"] == 0
    assert "1 made, 5 from cache, 1 failed" in again.stdout  # a failed call is never cached: retried
    bad = run_cli("eval", "m", "--backend", "fake", "--task", "ifeval", env=env)
    assert bad.returncode != 0 and "--data" in bad.stdout + bad.stderr and "Traceback" not in bad.stderr
