"""``factory judge-eval``: a perfect, an always-"A" and a coin judge on the fake backend, measured
on labelled pairs and on sanity pairs; figures, the verdict line, the files, the exit codes and the
one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from judge_scripts import QUESTIONS, SHORT, always_a_rules, coin_rules, full, judge_recipe, perfect_rules

# Many questions for the coin: its agreement is a proportion, measured on ~500 sanity pairs.
MANY = [f"How does machine number {i} in the old mill turn its wheel?" for i in range(100)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def judge_eval(tmp_path: Path, source: Path, rules: list[dict], *args: str, mode: str = "text",
               env: dict | None = None) -> tuple[dict, object]:
    recipe = judge_recipe(tmp_path, rules, mode=mode)
    result = run_cli("judge-eval", str(source), "--recipe", str(recipe), "--json",
                     "--output", str(tmp_path / "report"), *args, env=env)
    report = json.loads(result.stdout) if result.returncode in (0, 3) and result.stdout.strip() else {}
    return report, result


def answers(tmp_path: Path, questions: list[str]) -> Path:
    return write_jsonl(tmp_path / "answers.jsonl", [{"prompt": q, "response": full(q)} for q in questions])


@pytest.mark.parametrize("judge", ["perfect", "always_a", "coin"])
def test_sanity_pairs_tell_the_three_judges_apart(tmp_path, cache_env, judge):
    rules = {"perfect": perfect_rules, "always_a": always_a_rules, "coin": coin_rules}[judge]()
    report, result = judge_eval(tmp_path, answers(tmp_path, MANY), rules, "--sanity", env=cache_env)
    assert result.returncode == 0, result.stderr
    f = report["figures"]
    assert f["pairs"] == 500 and set(f["by_kind"]) == {"repetition_loop", "truncated", "other_answer",
                                                       "shuffled_words", "empty"}
    if judge == "perfect":
        assert f["agreement"]["rate"] == 1.0 and f["position_consistency"]["rate"] == 1.0
        assert f["kappa"]["value"] == 1.0 and f["ties"] == {}
        assert report["verdict"].startswith("fit: agreement 100%")
    elif judge == "always_a":  # says A in both orders: every pair is a position tie
        assert f["position_consistency"]["rate"] == 0.0 and f["coverage"]["rate"] == 0.0
        assert f["ties"] == {"position": 500} and f["agreement"]["rate"] == 0.0
        assert report["verdict"].startswith("NOT FIT: it decided none of 500 pairs")
    else:  # each order a fair coin: half the pairs survive the swap, half of those are right
        assert 0.4 < f["decided_agreement"]["rate"] < 0.6
        assert 0.4 < f["coverage"]["rate"] < 0.6 and 0.4 < f["position_consistency"]["rate"] < 0.6
        low, high = f["decided_agreement"]["ci95"]
        assert low < 0.5 < high and abs(f["kappa"]["value"]) < 0.15
        assert report["verdict"].startswith("NOT FIT: at chance")
    files = sorted(p.name for p in (tmp_path / "report").iterdir())
    assert files == ["decisions.jsonl", "judge_eval.html", "judge_eval.json"]
    assert json.loads((tmp_path / "report" / "judge_eval.json").read_text()) == report
    assert len((tmp_path / "report" / "decisions.jsonl").read_text().splitlines()) == 500
    page = (tmp_path / "report" / "judge_eval.html").read_text()
    assert page.count("<svg") == 2 and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_labelled_pairs_in_every_format_and_a_shared_cache(tmp_path, cache_env):
    rows = [{"prompt": q, "chosen": full(q), "rejected": SHORT.replace("{last}", q)} for q in QUESTIONS]
    dpo = write_jsonl(tmp_path / "pairs.jsonl", rows)
    report, result = judge_eval(tmp_path, dpo, perfect_rules(), env=cache_env)
    assert result.returncode == 0, result.stderr
    assert report["figures"]["agreement"] == {"k": 12, "n": 12, "rate": 1.0, "ci95": [0.7575, 1.0]}
    assert report["calls"]["made"] == 24 and report["judge"]["model"] == "fake-1"
    # HH-style transcripts: the shared Human turn is the question, the last turns the answers.
    hh = write_jsonl(tmp_path / "hh.jsonl", [
        {"chosen": f"\n\nHuman: {r['prompt']}\n\nAssistant: {r['chosen']}",
         "rejected": f"\n\nHuman: {r['prompt']}\n\nAssistant: {r['rejected']}"} for r in rows])
    again, result = judge_eval(tmp_path, hh, perfect_rules(), env=cache_env)
    assert result.returncode == 0, result.stderr
    # The same judge requests as the DPO file's: all answered by the cache.
    assert again["figures"]["agreement"]["rate"] == 1.0
    assert again["calls"]["made"] == 0 and again["calls"]["cached"] == 24


def test_logprob_mode_reports_calibration_by_hand_arithmetic(tmp_path, cache_env):
    report, result = judge_eval(tmp_path, answers(tmp_path, QUESTIONS), perfect_rules("logprob"),
                                "--sanity", "--kinds", "truncated,empty", mode="logprob", env=cache_env)
    assert result.returncode == 0, result.stderr
    calib = report["figures"]["calibration"]
    # Each order: P(right letter) = e^-0.05 / (e^-0.05 + e^-3) = 1 / (1 + e^-2.95) = 1 / 1.05234
    # = 0.95026; both orders agree, so the calibrated confidence is 0.95026 and every pick is
    # right: ECE = |1 - 0.95026| = 0.04974.
    assert calib["points"] == 24 and calib["ece"] == 0.0497
    assert [b["n"] for b in calib["bins"]] == [0, 0, 0, 0, 24]
    assert report["judge"]["mode"] == "logprob" and report["judge"]["min_confidence"] == 0.6
    coin, result = judge_eval(tmp_path, answers(tmp_path, MANY), coin_rules("logprob"), "--sanity",
                              mode="logprob", env=cache_env)
    assert result.returncode == 0
    # A coin sure of itself: on half the pairs the orders agree (confidence 0.95026, right half the
    # time); on the other half they cancel (P = 0.5 exactly: no error). ECE ~ 0.5 * 0.45 = 0.225.
    assert 0.15 < coin["figures"]["calibration"]["ece"] < 0.3
    assert coin["verdict"].startswith("NOT FIT")


def test_min_agreement_missed_exits_3_with_one_line(tmp_path, cache_env):
    _, result = judge_eval(tmp_path, answers(tmp_path, QUESTIONS), coin_rules(), "--sanity",
                           "--min-agreement", "0.8", env=cache_env)
    assert result.returncode == 3
    line = result.stderr.strip()
    assert line.startswith("judge-eval: agreement ") and "below --min-agreement 80%" in line
    assert "\n" not in line
    # (the fake's cache key does not hold its rules: the coin's cached verdicts must not answer)
    _, passed = judge_eval(tmp_path, answers(tmp_path, QUESTIONS), perfect_rules(), "--sanity",
                           "--min-agreement", "0.8", "--no-cache", env=cache_env)
    assert passed.returncode == 0, passed.stderr


def test_console_lists_each_kind_on_its_own_line(tmp_path, cache_env):
    recipe = judge_recipe(tmp_path, always_a_rules())
    result = run_cli("judge-eval", str(answers(tmp_path, QUESTIONS)), "--sanity", "--recipe", str(recipe),
                     "--output", str(tmp_path / "r"), env=cache_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for kind in ("repetition_loop", "truncated", "other_answer", "shuffled_words", "empty"):
        assert sum(line.strip().startswith(kind) for line in lines) == 1
    assert any(line.startswith("NOT FIT: it decided none") for line in lines)


@pytest.mark.parametrize("content, sanity, expected", [
    ('{"prompt": "q", "response": "r"}\n', False, "pairs.jsonl: judge-eval needs labelled pairs: columns "
     "chosen and rejected (prompt optional); it has prompt, response"),
    ("", False, "pairs.jsonl: no rows"),
    ('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": "a"\n', False,
     "pairs.jsonl:2: invalid JSON"),
    ('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": 7, "rejected": "b"}\n',
     False, "pairs.jsonl: row 2: 'chosen' and 'rejected' must be text or chat messages"),
    ('{"chosen": "just text", "rejected": "other text"}\n', False, "pairs.jsonl: row 1: no prompt"),
    ('{"prompt": "q", "response": "Too short."}\n', True, "pairs.jsonl: no answer of 8+ words"),
])
def test_bad_input_is_one_line_naming_file_and_row(tmp_path, cache_env, content, sanity, expected):
    path = tmp_path / "pairs.jsonl"
    path.write_text(content)
    recipe = judge_recipe(tmp_path, perfect_rules())
    result = run_cli("judge-eval", str(path), "--recipe", str(recipe), *(["--sanity"] if sanity else []),
                     env=cache_env)
    assert result.returncode in (1, 2)
    line = result.stderr.strip()
    assert expected in line and "\n" not in line and "Traceback" not in line


def test_sanity_pairs_from_a_recipes_first_step_share_the_builds_cache(tmp_path, cache_env):
    recipe = judge_recipe(tmp_path, perfect_rules())
    result = run_cli("judge-eval", str(recipe), "--sanity", "--json", "--output", str(tmp_path / "r"),
                     env=cache_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["figures"]["agreement"] == {"k": 60, "n": 60, "rate": 1.0, "ci95": [0.9398, 1.0]}
    assert report["judge"]["recipe"] == str(recipe) and report["judge"]["step"] == "judge"
    assert report["calls"]["made"] == 12 + 120  # the first step's 12 answers, 60 pairs x 2 orders
    built = run_cli("build", str(recipe), "--output", str(tmp_path / "out"), env=cache_env)
    assert built.returncode == 0, built.stderr
    steps = json.loads((tmp_path / "out" / "run.json").read_text())["step_calls"]
    assert steps["answer_a"]["made"] == 0 and steps["answer_a"]["cached"] == 12
