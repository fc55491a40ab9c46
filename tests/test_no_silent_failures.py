"""A bug stops the build; failed records make a non-zero exit; options and sampling parameters that
would silently not apply are errors before any call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import SEEDS, fake_recipe_text, read_jsonl, run_cli
from factory.llm.backends.fake_api import FakeServer

KEY = "sk-test-not-a-real-key"


def env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "FACTORY_CACHE_DIR": str(tmp_path / "cache"),
            "ANTHROPIC_API_KEY": KEY, "OPENAI_API_KEY": KEY}


def write(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def best_of_n_recipe(verifier: str) -> dict:
    return {"name": "bon", "seeds": {"rows": [{"q": "1+1", "a": "2"}, {"q": "2+2", "a": "4"}]},
            "backend": {"name": "fake", "options": {"default": "Answer: {sample}"}},
            "steps": [{"name": "best_of_n", "kind": "rejection_sampling", "reads": ["q", "a"],
                       "writes": ["best", "worst", "scores", "pass_at_k"], "prompt": "{q}", "n": 2,
                       "scorer": {"type": "verifier", "verifier": verifier, "answer": "a"}}],
            "outputs": {"splits": {"sft": {"format": "sft", "prompt": "q", "completion": "best"}}}}


def test_a_step_that_raises_stops_the_build_with_one_line_naming_step_and_record(tmp_path):
    (tmp_path / "buggy.py").write_text("def check(text, answer):\n    return text + 1\n")
    path = write(tmp_path, best_of_n_recipe("buggy:check"))
    out = tmp_path / "out"
    result = run_cli("build", str(path), "--output", str(out), "--trust-code", env=env(tmp_path))
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "step 'best_of_n' crashed on record " in line and "TypeError" in line and "--debug" in line
    assert not out.exists()  # no dataset that looks like a successful run

    debug = run_cli("--debug", "build", str(path), "--output", str(out), "--trust-code",
                    env=env(tmp_path))
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "buggy.py" in debug.stderr  # where the bug is


def test_a_build_with_backend_failures_writes_what_it_made_and_exits_5(tmp_path):
    recipe = yaml.safe_load(fake_recipe_text(SEEDS))
    recipe["backend"]["options"]["fail_every"] = 4  # about one call in four fails, by request hash
    out = tmp_path / "out"
    result = run_cli("build", str(write(tmp_path, recipe)), "--limit", "12", "--output", str(out),
                     env=env(tmp_path))
    stats = json.loads((out / "stats.json").read_text())
    failed = stats["totals"]["failed"]
    assert failed > 0 and stats["totals"]["kept"] + stats["totals"]["rejected"] + failed == 12
    assert result.returncode == 5, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert f"error: {failed} record(s) failed (" in line and "backend_error" in line and "rerun" in line
    assert sum(r["kind"] == "failed" for r in read_jsonl(out / "rejects.jsonl")) == failed


@pytest.mark.parametrize("backend,options,key", [
    ("anthropic", {"batch": "no"}, "batch"),
    ("anthropic", {"send_sampling": "yes"}, "send_sampling"),
    ("openai_compatible", {"send_top_k": "false"}, "send_top_k"),
    ("openai_compatible", {"send_seed": 0}, "send_seed"),
])
def test_true_false_options_refuse_strings(tmp_path, backend, options, key):
    with FakeServer(api_key=KEY) as server:
        recipe = api_recipe(server, backend, options)
        result = run_cli("build", str(write(tmp_path, recipe)), "--output", str(tmp_path / "o"),
                         env=env(tmp_path))
        assert server.counts["requests"] == 0
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert f"backend.options.{key}: option {key} must be true or false" in line
    assert f"recipe.yaml:{line_of(tmp_path / 'recipe.yaml', key + ':')}:" in line


def api_recipe(server: FakeServer, backend: str, options: dict, params: dict | None = None,
               step_params: dict | None = None) -> dict:
    base = server.base_url + ("/v1" if backend == "openai_compatible" else "")
    model = "claude-haiku-4-5" if backend == "anthropic" else "served-model"
    block = {"name": backend, "model": model, "options": {"base_url": base, **options}}
    if params:
        block["params"] = params
    step = {"name": "answer", "kind": "generate", "reads": ["prompt"], "writes": "answer",
            "prompt": "{prompt}"}
    if step_params:
        step["params"] = step_params
    return {"name": "api", "seeds": {"rows": [{"prompt": "hi"}, {"prompt": "ho"}]}, "backend": block,
            "steps": [step],
            "outputs": {"splits": {"sft": {"format": "sft", "completion": "answer"}}}}


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize("backend,options,params,step_params,blamed", [
    ("anthropic", {}, {"temperature": 0.3}, None, "backend.params.temperature"),
    ("anthropic", {}, None, {"top_p": 0.9}, "steps[0].params.top_p"),
    ("openai_compatible", {}, None, {"top_k": 20}, "steps[0].params.top_k"),
    ("anthropic", {"send_sampling": True}, None, {"temperature": 1.5}, "steps[0].params"),
])
def test_a_sampling_parameter_that_would_not_apply_is_refused_before_any_call(
        tmp_path, backend, options, params, step_params, blamed):
    with FakeServer(api_key=KEY) as server:
        recipe = api_recipe(server, backend, options, params, step_params)
        result = run_cli("build", str(write(tmp_path, recipe)), "--output", str(tmp_path / "o"),
                         env=env(tmp_path))
        assert server.counts["requests"] == 0
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and f": {blamed}" in line, line
    assert ("would not be sent" in line) or ("accepts 0 to 1" in line)


def test_defaults_a_backend_does_not_send_are_written_in_the_card(tmp_path):
    with FakeServer(api_key=KEY) as server:
        recipe = api_recipe(server, "anthropic", {})
        out = tmp_path / "o"
        result = run_cli("build", str(write(tmp_path, recipe)), "--output", str(out), env=env(tmp_path))
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert set(stats["sampling_not_sent"]["default"]) == {"temperature", "top_p", "top_k"}
    card = (out / "README.md").read_text()
    assert "`default` does not send temperature, top_p, top_k" in card
    assert "options.send_sampling: true" in card
