"""`factory advise`: method from the columns, rank/LR/epochs/eval frequency with their sources."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from factory.core.errors import FactoryError
from test_capacity import LLAMA_31_8B
from tiny_model import build_tiny_llama
from trainers.advise import advise

PAIR = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
        "rejected": [{"role": "assistant", "content": "b"}]}
CHAT = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.fixture(scope="module")
def llama8b(tmp_path_factory):
    folder = tmp_path_factory.mktemp("m") / "Llama-3.1-8B-Instruct"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA_31_8B))
    return str(folder)


def test_pairs_mean_dpo_with_rl_rank_and_calibrated_lr(tmp_path, llama8b):
    write(tmp_path / "dpo.jsonl", [PAIR] * 30)
    write(tmp_path / "sft.jsonl", [CHAT] * 30)
    advice = advise(tmp_path, llama8b)
    assert advice.method == "dpo" and "prompt/chosen/rejected" in advice.why
    assert advice.choices["rank"].value == 8  # 7-8B RL: 8-16
    assert advice.choices["learning_rate"].value == 3e-4
    assert advice.choices["epochs"].value == 2 and advice.choices["eval_steps"].value == 1
    assert advice.command.startswith("factory train dpo ")


def test_instruction_response_means_sft(tmp_path, llama8b):
    rows = [{"instruction": "q", "response": "a"}] * 20_000
    advice = advise(write(tmp_path / "data.jsonl", rows), llama8b)
    assert advice.method == "sft" and advice.choices["rank"].value == 32
    assert advice.choices["epochs"].value == 1
    assert advice.choices["eval_steps"].value == 500  # 5000 steps, ~10 evaluations


def test_rank_is_raised_when_the_data_does_not_fit(tmp_path):
    tiny = build_tiny_llama(tmp_path / "tiny")
    long = {"messages": [CHAT["messages"][0], {"role": "assistant",
                                               "content": "The quick brown fox " * 500}]}
    advice = advise(write(tmp_path / "sft.jsonl", [long] * 30), str(tiny))
    assert "UNDERCAPACITY" in advice.capacity
    assert advice.choices["rank"].value > 16 and "raised from 16" in advice.choices["rank"].source


def test_nothing_usable_says_generate_first(tmp_path, llama8b):
    write(tmp_path / "sft.jsonl", [{"text": "x"}])
    with pytest.raises(FactoryError, match="nothing to train on .*text.*generate first"):
        advise(tmp_path, llama8b)
    result = run_cli("advise", str(tmp_path), "--model", llama8b)
    assert result.returncode == 1 and "generate first" in result.stderr


def test_prompts_with_answers_mean_grpo(tmp_path, llama8b):
    write(tmp_path / "grpo.jsonl", [{"prompt": "2+2?", "answer": "4"}] * 50)
    advice = advise(tmp_path, llama8b)
    assert advice.method == "grpo" and advice.choices["rank"].value == 8
    assert advice.command.startswith("factory train grpo ")
