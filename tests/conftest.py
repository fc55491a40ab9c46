"""Shared helpers: recipes written to tmp folders, the CLI run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Builds end with diversity figures; the Vendi score loads MiniLM (torch: seconds per CLI process).
# The suite leaves it out except where a test asks for it (tests/test_diversity.py).
os.environ.setdefault("FACTORY_DIVERSITY_EMBEDDINGS", "0")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "datasets" / "seeds" / "dpo_prompts.jsonl"

JUDGE_RULE = """
      - match: "Compare two answers"
        replies:
          - "A is better.\\nA: correctness=4 helpfulness=4 clarity=4\\nB: correctness=2 helpfulness=2 clarity=2\\nVerdict: [[A]]"
          - "B is better.\\nA: correctness=1 helpfulness=2 clarity=2\\nB: correctness=4 helpfulness=5 clarity=4\\nVerdict: [[B]]"
          - "They are equal. Verdict: [[TIE]]"
"""

FAKE_RECIPE = """name: pairs
seed: 0
seeds:
  path: {seeds}
backend:
  name: fake
  concurrency: {concurrency}
  options:
    latency: {latency}
    rules:{judge_rule}
steps:
  - name: answer_a
    kind: generate
    reads: [prompt]
    writes: answer_a
    prompt: "{{prompt}}"
    params: {{temperature: 0.3}}
  - name: answer_b
    kind: generate
    reads: [prompt]
    writes: answer_b
    prompt: "{{prompt}}"
    params: {{temperature: 1.0}}
  - name: judge
    kind: judge_pairwise
    reads: [prompt, answer_a, answer_b]
    writes: [chosen, rejected, judgement]
qc: []
outputs:
  splits:
    dpo: {{format: dpo, columns: [category]}}
    sft: {{format: sft, completion: chosen}}
"""


def fake_recipe_text(seeds: Path = SEEDS, concurrency: int = 8, latency: float = 0.0) -> str:
    return FAKE_RECIPE.format(seeds=seeds, concurrency=concurrency, latency=latency,
                              judge_rule=JUDGE_RULE)


@pytest.fixture
def write_recipe(tmp_path: Path):
    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@pytest.fixture
def cache_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "FACTORY_CACHE_DIR": str(tmp_path / "cache")}


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factory.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
