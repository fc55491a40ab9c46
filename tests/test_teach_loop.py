"""The whole self-teaching loop in one `factory build`: fake backend for round 1's samples, the tiny
local Llama for training (2 real TRL steps per stage), eval and round 2's sampling; then
`factory eval` on the adapter it wrote."""

from __future__ import annotations

import json
import os
import re

import pytest

from conftest import run_cli
from factory.recipe.tasks import task_split
from tiny_model import build_tiny_llama

pytest.importorskip("trl")

RECIPE = """name: teach_tiny
task: {{family: sort_numbers, train: 12, test: 20, seed: 4}}
seeds: {{task: train}}
backend:
  name: fake
  params: {{temperature: 0.8, max_tokens: 16}}
  options:
    default: "I do not know."
    rules:
{rules}
steps:
  - name: solve
    kind: rejection_sampling
    reads: [question, answer]
    writes: [best, worst, scores, pass_at_k]
    prompt: "{{question}}"
    n: 4
    k: [1, 4]
    scorer: {{type: verifier, verifier: number_list, answer: answer}}
    min_margin: 1.0
outputs:
  splits:
    sft: {{format: sft, prompt: question, completion: best, columns: [answer, copyable]}}
    dpo: {{format: dpo, prompt: question, chosen: best, rejected: worst}}
train:
  model: {model}
  output_dir: {runs}
  sft: {{rank: 4, max_steps: 2, batch_size: 2, eval_fraction: 0.0, threads: 1}}
  dpo: {{rank: 4, max_steps: 2, batch_size: 2, eval_fraction: 0.0, threads: 1}}
  rounds: 2
  min_gain: 0.0
  resample_backend: {{name: transformers, concurrency: 16, params: {{max_tokens: 8}}}}
eval: {{max_tokens: 8, batch_size: 16, threads: 1}}
"""


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teach")
    tiny = build_tiny_llama(folder / "tiny")
    train, test = task_split("sort_numbers", 12, 20, 4, {}, folder)
    # The fake solves the first 8 train problems: one right and one wrong answer each (DPO pairs).
    rules = "\n".join(f'      - {{match: "{re.escape(p.question)}", replies: ["{p.answer}", "{p.payload}"]}}'
                      for p in train[:8] if not p.copyable)
    recipe = folder / "teach.yaml"
    recipe.write_text(RECIPE.format(rules=rules.replace("\\", "\\\\"), model=tiny, runs=folder / "runs"))
    env = {"FACTORY_CACHE_DIR": str(folder / "cache")}
    result = run_cli("build", str(recipe), "--output", str(folder / "out"), env={**os.environ, **env},
                     timeout=900)
    return folder, tiny, train, test, result


def test_one_build_samples_trains_evaluates_and_goes_round_again(loop):
    folder, tiny, train, test, result = loop
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = folder / "out"
    summary = json.loads((out / "teach.json").read_text())
    # train and test problems never overlap, and the sampled problems are the train set
    import pyarrow.parquet as pq

    sft = pq.read_table(out / "sft.parquet").to_pylist()
    trained_on = {row["messages"][-2]["content"] for row in sft} if sft and "messages" in sft[0] \
        else {row["prompt"] for row in sft}
    assert trained_on and trained_on <= {p.question for p in train}
    assert not trained_on & {p.question for p in test}
    # round 1: SFT then DPO from the SFT adapter, each 2 real steps, each evaluated
    first = summary["rounds"][0]
    assert first["splits"]["sft"] >= 1 and first["splits"]["dpo"] >= 1
    assert set(first["eval"]) == {"sft", "sft_dpo"}
    assert first["adapters"]["sft_dpo"][0] == first["adapters"]["sft"][0]
    for stage in ("sft", "dpo"):
        metrics = [json.loads(line) for line in
                   (folder / "runs" / "round_1" / stage / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in metrics if "loss" in m] == [1, 2]
    # eval counts add up, on the held-out problems, for base and every trained stage
    for name in ("base", "round_1_sft", "round_1_sft_dpo"):
        ev = json.loads((out / "eval" / f"{name}.json").read_text())
        assert ev["n"] == len(test) == ev["copyable"]["n"] + ev["not_copyable"]["n"]
        assert ev["copyable"]["n"] == sum(p.copyable for p in test)
        assert ev["correct"] == sum(r["correct"] for r in ev["rows"])
        assert [r["id"] for r in ev["rows"]] == [p.id for p in test]
        assert ev["correct"] == ev["copyable"]["correct"] + ev["not_copyable"]["correct"]
    # round 2 sampled from the trained (tiny) model: it solves nothing, so the loop stops there
    assert len(summary["rounds"]) == 2
    assert summary["rounds"][1]["splits"]["sft"] == 0
    assert "round 2: no correct answer to train on" in result.stdout
    assert (out / "round_2" / "stats.json").exists()
    round2 = json.loads((out / "round_2" / "run.json").read_text())
    assert round2["calls"]["default"]["made"] == 12 * 4  # new calls: a different model, not cache hits
    report = (out / "report.md").read_text()
    assert "| base |" in report and "| round 1 sft+dpo |" in report
    assert (out / "report.html").read_text().count("plotly") > 10
    # the model card of the last adapter got the eval line
    card = folder / "runs" / "round_1" / "dpo" / "adapter" / "README.md"
    assert "greedy_accuracy" in card.read_text()


@pytest.mark.slow
def test_report_html_plots_draw_every_point(loop):
    """report.html in headless Chromium: every plot (accuracy bars, pass@k, loss curves) drew each
    value it was given, and the loss curves hold every logged step."""
    from browser import assert_every_plot_shows_its_data, chromium_driver, plot_points

    folder = loop[0]
    summary = json.loads((folder / "out" / "teach.json").read_text())
    driver = chromium_driver()
    try:
        driver.get((folder / "out" / "report.html").as_uri())
        plots = plot_points(driver)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert not errors, errors
    assert len(plots) == 3
    assert_every_plot_shows_its_data(plots)
    evaluated = (1 if summary.get("base") else 0) + sum(1 for e in summary["rounds"]
                                                        for r in (e.get("eval") or {}).values() if r)
    assert [t["input"] for t in plots[0]["traces"]] == [evaluated, evaluated]  # one bar per evaluated model
    steps = sum(1 for e in summary["rounds"] for path in e.get("metrics", {}).values()
                for line in open(path) if '"loss"' in line)
    assert sum(t["input"] for t in plots[2]["traces"]) == steps


def test_eval_command_on_the_recipe_held_out_set(loop):
    folder, tiny, train, test, result = loop
    assert result.returncode == 0
    adapters = [folder / "runs" / "round_1" / s / "adapter" for s in ("sft", "dpo")]
    out = folder / "cli_eval.json"
    args = ["eval", str(tiny), "--adapter", str(adapters[0]), "--adapter", str(adapters[1]),
            "--task", str(folder / "teach.yaml"), "--max-tokens", "8", "--threads", "1", "--output", str(out)]
    env = {**os.environ, "FACTORY_CACHE_DIR": str(folder / "cache")}  # the build's cache
    cli = run_cli(*args, "--no-cache", env=env)
    assert cli.returncode == 0, cli.stderr[-2000:]
    ev = json.loads(out.read_text())
    built = json.loads((folder / "out" / "eval" / "round_1_sft_dpo.json").read_text())
    # same model, adapters, problems and greedy decoding: the same answers as inside the build
    assert [r["output"] for r in ev["rows"]] == [r["output"] for r in built["rows"]]
    assert ev["calls"]["made"] == len(test) and ev["calls"]["cached"] == 0  # --no-cache: all decoded
    assert ev["model"] == built["model"] and "+lora:" in ev["model"]
    assert "not copyable" in cli.stdout and str(out) in cli.stdout
    # The build's evals went through the request cache: the same eval now decodes nothing.
    cached = run_cli(*args, env=env)
    assert cached.returncode == 0, cached.stderr[-2000:]
    ev = json.loads(out.read_text())
    assert ev["calls"]["made"] == 0 and ev["calls"]["cached"] == len(test)
    assert [r["output"] for r in ev["rows"]] == [r["output"] for r in built["rows"]]
    assert f"calls: 0 made, {len(test)} from cache" in cached.stdout


def test_eval_command_judge_win_rate_counts_add_up(loop):
    folder, tiny, train, test, result = loop
    prompts = folder / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": f"Say something about {w}."})
                                  for w in ("rain", "bread", "chess")) + "\n")
    adapter = folder / "runs" / "round_1" / "sft" / "adapter"
    cli = run_cli("eval", str(tiny), "--adapter", str(adapter), "--judge-prompts", str(prompts),
                  "--judge-backend", "fake", "--judge-option", "default=no verdict here",
                  "--max-tokens", "6", "--threads", "1",
                  env={**os.environ, "FACTORY_CACHE_DIR": str(folder / "cache")})
    assert cli.returncode == 0, cli.stderr[-2000:]
    saved = json.loads((adapter / f"winrate_{tiny.name}+adapter.json").read_text())
    assert saved["n"] == 3 == saved["win"] + saved["tie"] + saved["loss"]
    assert saved["ties_from_unparseable"] == 3 and saved["judge"] == "fake-1"
    assert saved["calls"]["failed"] == 0 and saved["calls"]["made"] > 0
    assert "pairwise_win_rate" in (adapter / "README.md").read_text()
    bad = run_cli("eval", str(tiny), "--judge-prompts", str(prompts), "--judge-option", "nokey")
    assert bad.returncode != 0 and "expected key=value" in bad.stderr and "Traceback" not in bad.stderr
