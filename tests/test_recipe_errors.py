"""Every class of bad recipe fails before any LLM call: one line naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import fake_recipe_text, run_cli


def line_of(text: str, marker: str) -> int:
    """Line of the last occurrence (a broken recipe may repeat a line it copied)."""
    return [i for i, line in enumerate(text.splitlines(), 1) if marker in line][-1]




def broken(old: str, new: str) -> str:
    text = fake_recipe_text()
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    "old,new,marker,path,fragment",
    [
        ("    params: {temperature: 0.3}", "    params: {temperatur: 0.3}", "temperatur: 0.3",
         "steps[0].params.temperatur", "unknown key 'temperatur' (did you mean 'temperature'?)"),
        ("  concurrency: 8", "  concurrency: many", "concurrency: many", "backend.concurrency",
         "valid integer"),
        ("  path: ", "  path: /nonexistent/seeds.jsonl\n  limit: 3\n  #", "/nonexistent",
         "seeds.path", "file not found"),
        ("    reads: [prompt]\n    writes: answer_b\n    prompt: \"{prompt}\"",
         "    reads: [promt]\n    writes: answer_b\n    prompt: \"{promt}\"", "[promt]",
         "steps[1].reads[0]", "column 'promt' is not a seed column and no step writes it "
         "(did you mean 'prompt'?)"),
        ("  name: fake", "  name: llamacpp", "llamacpp", "backend.name",
         "unknown backend 'llamacpp' (did you mean 'llama_cpp'?)"),
        ("    kind: judge_pairwise", "    kind: judge_pairwize", "judge_pairwize", "steps[2].kind",
         "unknown step kind 'judge_pairwize' (did you mean 'judge_pairwise'?)"),
        ("    writes: answer_b", "    writes: answer_a", "writes: answer_a", "steps[1].writes[0]",
         "column 'answer_a' is already written by step 'answer_a'"),
        ("    dpo: {format: dpo, columns: [category]}", "    dpo: {format: dpo, chosen: chosn}",
         "chosn", "outputs.splits.dpo.chosen", "(did you mean 'chosen'?)"),
        ("    prompt: \"{prompt}\"\n    params: {temperature: 1.0}",
         "    prompt: \"{prompt} {answer_x}\"\n    params: {temperature: 1.0}", "{answer_x}",
         "steps[1].prompt", "template uses {answer_x} but 'reads' does not list it"),
        ("qc: []", "qc: [{filter: perplexty}]", "perplexty", "qc[0].filter",
         "unknown QC filter 'perplexty' (did you mean 'perplexity'?)"),
        ("  concurrency: 8", "  concurrency: 0", "concurrency: 0", "backend.concurrency",
         "greater than or equal to 1"),
    ],
    ids=["unknown_key", "wrong_type", "missing_file", "unwritten_column", "unknown_backend",
         "unknown_step_kind", "column_written_twice", "output_column", "template_column", "qc",
         "out_of_range"],
)
def test_bad_recipe_names_line_and_field(write_recipe, cache_env, old, new, marker, path, fragment):
    text = broken(old, new)
    recipe = write_recipe(text)
    result = run_cli("build", str(recipe), env=cache_env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    expected_line = line_of(text, marker.split("\n")[0])
    assert lines[0].startswith(f"error: {recipe}:{expected_line}: {path}"), lines[0]
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr
    assert not Path(cache_env["FACTORY_CACHE_DIR"]).exists(), "no LLM call may happen"


def test_cycle(write_recipe, cache_env):
    text = broken("    reads: [prompt]\n    writes: answer_a\n    prompt: \"{prompt}\"",
                  "    reads: [answer_b]\n    writes: answer_a\n    prompt: \"{answer_b}\"")
    text = text.replace("    reads: [prompt]\n    writes: answer_b\n    prompt: \"{prompt}\"",
                        "    reads: [answer_a]\n    writes: answer_b\n    prompt: \"{answer_a}\"")
    recipe = write_recipe(text)
    result = run_cli("validate", str(recipe), env=cache_env)
    assert result.returncode == 2
    assert f"{recipe}:{line_of(text, 'reads: [answer_b]')}: steps[0].reads: steps form a cycle" \
        in result.stderr
    assert "answer_a" in result.stderr and "answer_b" in result.stderr


def test_yaml_syntax_error(write_recipe, cache_env):
    text = fake_recipe_text().replace("  concurrency: 8", "  concurrency: [8")
    recipe = write_recipe(text)
    result = run_cli("validate", str(recipe), env=cache_env)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {recipe}:")
    assert "YAML syntax" in result.stderr and "Traceback" not in result.stderr


def test_missing_required_key(write_recipe, cache_env):
    text = fake_recipe_text()
    text = text[: text.index("outputs:")]
    recipe = write_recipe(text)
    result = run_cli("validate", str(recipe), env=cache_env)
    assert result.returncode == 2
    assert f"{recipe}:1: outputs: required key 'outputs' is missing" in result.stderr


def test_bad_seed_row_names_file_and_line(tmp_path, write_recipe, cache_env):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": oops}\n')
    recipe = write_recipe(fake_recipe_text(seeds=seeds))
    result = run_cli("build", str(recipe), env=cache_env)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {seeds}:3: invalid JSON: Expecting value"


def test_recipe_file_missing(tmp_path, cache_env):
    result = run_cli("build", str(tmp_path / "nope.yaml"), env=cache_env)
    assert result.returncode == 2
    assert "nope.yaml: recipe file not found" in result.stderr


def test_valid_recipe_validates(write_recipe, cache_env):
    recipe = write_recipe(fake_recipe_text())
    result = run_cli("validate", str(recipe), env=cache_env)
    assert result.returncode == 0, result.stderr
    assert "48 seed records, 3 steps" in result.stdout
