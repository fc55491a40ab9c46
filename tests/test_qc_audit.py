"""factory audit: one self-contained HTML page that renders in headless Chromium without errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from browser import assert_every_plot_shows_its_data, chromium_driver, plot_points
from conftest import SEEDS, run_cli

RUBRIC = ('{{"reasoning": "r", "correctness": 4, "helpfulness": 4, "clarity": 4}}',
          '{{"reasoning": "r", "correctness": 1, "helpfulness": 2, "clarity": 1}}')


def audit_inputs(tmp_path: Path) -> tuple[Path, Path]:
    from tiny_model import build_tiny_llama

    model = build_tiny_llama(tmp_path / "tiny")
    prompts = [json.loads(line)["prompt"] for line in SEEDS.read_text().splitlines()]
    rows = [{"prompt": p, "chosen": f"A careful answer to: {p.lower()} It explains the idea step by step.",
             "rejected": "I do not know."} for p in prompts]
    rows += [dict(rows[0]), {"prompt": "Same?", "chosen": "Same words.", "rejected": "same words"},
             {"prompt": "Why is the sky blue?", "chosen": "Air scatters blue light more than the",
              "rejected": "I do not know."},  # the one chosen answer that stops on a word
             {"prompt": "Name a fruit that is yellow.", "chosen": rows[1]["chosen"],
              "rejected": "I do not know."}]  # misjoined: a copy of another row's answer
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    chain = tmp_path / "chain.yaml"
    chain.write_text(f"""filters:
  - {{filter: pairs}}
  - {{filter: repetition, column: chosen}}
  - {{filter: perplexity, column: chosen, prompt_column: prompt, model: {model}}}
  - {{filter: fit, column: chosen, prompt_column: prompt, model: {model}}}
  - {{filter: dedup, column: chosen, prompt_column: prompt}}
  - filter: reward
    column: chosen
    scorer:
      kind: judge
      backend:
        name: fake
        options:
          rules:
            - match: "Rate the answer"
              replies: ['{RUBRIC[0]}', '{RUBRIC[1]}']
  - {{filter: drift, column: prompt, permutations: 20}}
""")
    return data, chain


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("audit")
    data, chain = audit_inputs(tmp_path)
    page = tmp_path / "audit.html"
    env = {**os.environ, "FACTORY_CACHE_DIR": str(tmp_path / "cache")}
    result = run_cli("audit", str(data), "--chain", str(chain), "--seeds", str(SEEDS), "--output", str(page),
                     env=env)
    assert result.returncode == 0, result.stderr
    assert "report only" in result.stdout and "would drop" in result.stdout
    return page


def test_report_has_every_section_and_no_external_resources(report):
    text = report.read_text()
    for heading in ("Counts and reasons", "Lengths", "perplexity: histogram", "reward: histogram",
                    "repetition: histogram", "fit: conditioning gain", "fit: ending",
                    "fit: another prompt fits better", "fit: answer-prompt cosine",
                    "drift: seeds vs synthetic", "pairs: pair QC", "Largest duplicate groups",
                    "Sample for manual review"):
        assert heading in text, heading
    assert "identical_pair" in text and "exact_duplicate" in text and "AUC" in text
    # each cut names its source; the repetition filter shows its rule set; the reward gate its verdict
    assert "in-house reference answers" in text and "Gopher repetition rules" in text
    assert "sanity pairs" in text
    assert "<script src=" not in text and "<link" not in text  # plotly.js is inlined: works offline
    assert text.count("<tr data-id=") == 20  # 5% of 50 rows is under 20: the sample is 20
    assert "Export verdicts" in text


@pytest.mark.slow
def test_report_renders_in_headless_chromium_without_console_errors(report, tmp_path):
    driver = chromium_driver()
    try:
        driver.get(report.as_uri())
        driver.implicitly_wait(5)
        plots = plot_points(driver)
        assert_every_plot_shows_its_data(plots)  # each trace drew every value it was given
        inputs = {p["title"]: [t["input"] for t in p["traces"]] for p in plots}
        rows = len(report.with_name("pairs.jsonl").read_text().splitlines())
        assert inputs["Lengths"] == [rows, rows, rows]  # prompt, chosen, rejected
        for section in ("perplexity: histogram", "reward: histogram", "repetition: histogram"):
            assert inputs[section] == [rows], (section, inputs)  # every record is in its histogram
        chosen = [json.loads(line)["chosen"] for line in report.with_name("pairs.jsonl").read_text().splitlines()]
        long = sum(len(c.split()) >= 8 for c in chosen)
        assert 0 < long < rows  # gain and cosine judge answers of 8+ words only
        assert inputs["fit: conditioning gain"] == [long] and inputs["fit: answer-prompt cosine"] == [long]
        assert inputs["fit: ending"] == [1]  # judged only where the answer stops on a word
        # the misjoined answer and the row it copies: each has the other's prompt as a candidate
        assert inputs["fit: another prompt fits better"] == [2]
        assert len(inputs["drift: seeds vs synthetic (PCA of embeddings)"]) == 2
        driver.find_element("css selector", "#sample input[value=drop]").click()
        driver.find_element("id", "export").click()
        exported = driver.execute_script("return window.lastExport")
        assert len(exported) == 20 and exported[0]["verdict"] == "drop"
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        shot = tmp_path / "audit.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()


@pytest.mark.slow
@pytest.mark.parametrize("per", ["token", "char"])
def test_perplexity_histogram_draws_every_row_per_token_and_per_char(per, tmp_path):
    """The issue's case: 220 prompt/response rows, perplexity scored per token or per character;
    the histogram's bars hold every row (it used to draw axes and the cut line only)."""
    from tiny_model import build_tiny_llama

    model = build_tiny_llama(tmp_path / "tiny")
    prompts = [json.loads(line)["prompt"] for line in SEEDS.read_text().splitlines()]
    rows = [{"prompt": prompts[i % len(prompts)], "response": f"Answer {i}: " + "word " * (i % 17 + 3)}
            for i in range(220)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    chain = tmp_path / "chain.yaml"
    chain.write_text(f"filters:\n  - {{filter: perplexity, column: response, prompt_column: prompt, "
                     f"per: {per}, model: {model}}}\n")
    page = tmp_path / "audit.html"
    env = {**os.environ, "FACTORY_CACHE_DIR": str(tmp_path / "cache")}
    result = run_cli("audit", str(data), "--chain", str(chain), "--output", str(page), env=env)
    assert result.returncode == 0, result.stderr
    driver = chromium_driver()
    try:
        driver.get(page.as_uri())
        plots = plot_points(driver)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert not errors, errors
    assert_every_plot_shows_its_data(plots)
    inputs = {p["title"]: [t["input"] for t in p["traces"]] for p in plots}
    assert inputs["perplexity: histogram"] == [220], inputs
