"""factory audit: one self-contained HTML page that renders in headless Chromium without errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import SEEDS, run_cli

RUBRIC = ('{{"reasoning": "r", "correctness": 4, "helpfulness": 4, "clarity": 4}}',
          '{{"reasoning": "r", "correctness": 1, "helpfulness": 2, "clarity": 1}}')


def audit_inputs(tmp_path: Path) -> tuple[Path, Path]:
    from tiny_model import build_tiny_llama

    model = build_tiny_llama(tmp_path / "tiny")
    prompts = [json.loads(line)["prompt"] for line in SEEDS.read_text().splitlines()]
    rows = [{"prompt": p, "chosen": f"A careful answer to: {p.lower()} It explains the idea step by step.",
             "rejected": "I do not know."} for p in prompts]
    rows += [dict(rows[0]), {"prompt": "Same?", "chosen": "Same words.", "rejected": "same words"}]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    chain = tmp_path / "chain.yaml"
    chain.write_text(f"""filters:
  - {{filter: pairs}}
  - {{filter: perplexity, column: chosen, model: {model}}}
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
                    "drift: seeds vs synthetic", "pairs: pair QC", "Largest duplicate groups",
                    "Sample for manual review"):
        assert heading in text, heading
    assert "identical_pair" in text and "exact_duplicate" in text and "AUC" in text
    assert "<script src=" not in text and "<link" not in text  # plotly.js is inlined: works offline
    assert text.count("<tr data-id=") == 20  # 5% of 50 rows is under 20: the sample is 20
    assert "Export verdicts" in text


def _chromium_driver():
    driver_path = shutil.which("chromedriver")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not driver_path or not browser:
        if os.environ.get("CI"):
            pytest.fail("chromium / chromium-driver missing: .ci/run installs them with apt-get")
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


@pytest.mark.slow
def test_report_renders_in_headless_chromium_without_console_errors(report, tmp_path):
    driver = _chromium_driver()
    try:
        driver.set_window_size(1280, 2000)
        driver.get(report.as_uri())
        driver.implicitly_wait(5)
        plots = driver.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length")
        assert plots >= 4, plots
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
