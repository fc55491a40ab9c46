"""GRPO (verifiable reward) and reward-model training on the tiny Llama: 2 real steps each."""

from __future__ import annotations

import json

import pytest

from factory.core.errors import FactoryError
from test_train import lora_b_norms
from tiny_model import build_tiny_llama
from trainers.config import GRPOLoraConfig, load_config

pytest.importorskip("trl")


def test_grpo_two_steps_with_regex_reward(tmp_path):
    from trainers.grpo import train_grpo

    tiny = build_tiny_llama(tmp_path / "tiny")
    # a random tiny model says "o" in some samples and not others: the group has reward variance
    rows = [{"prompt": f"Say a word with o ({i})", "answer": "o"} for i in range(8)]
    (tmp_path / "grpo.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    config = load_config(GRPOLoraConfig, None, [
        "max_steps=2", "rank=4", "threads=1", "num_generations=2", "batch_size=4",
        "max_completion_length=8", "verifier=regex"], model=str(tiny), output_dir=str(tmp_path / "run"))
    lines: list[str] = []
    result = train_grpo(config, tmp_path, log=lines.append)
    rewards = result.losses("rewards/regex_match_reward/mean")
    assert len(rewards) == 2 and all(0 <= r <= 1 for r in rewards)
    assert any("needs ~8 (8 episodes × ~1 bit)" in line for line in lines)  # 2 steps × 4 samples
    assert all(n > 0 for n in lora_b_norms(result.adapter_dir))


def test_grpo_names_missing_answer_column(tmp_path):
    from trainers.grpo import train_grpo

    (tmp_path / "grpo.jsonl").write_text(json.dumps({"prompt": "2+2?"}) + "\n")
    config = load_config(GRPOLoraConfig, None, [], model="unused")
    with pytest.raises(FactoryError, match="grpo.jsonl: grpo needs .* answer column 'answer'; it has prompt"):
        train_grpo(config, tmp_path / "grpo.jsonl", log=lambda _: None)
    with pytest.raises(FactoryError, match="multiple of num_generations 4"):
        train_grpo(load_config(GRPOLoraConfig, None, ["batch_size=6"]), tmp_path)


def test_reward_model_two_steps(tmp_path):
    from test_train import DPO_ROWS
    from trainers.config import RewardLoraConfig
    from trainers.reward import train_reward

    tiny = build_tiny_llama(tmp_path / "tiny")
    (tmp_path / "dpo.jsonl").write_text("\n".join(json.dumps(r) for r in DPO_ROWS))
    config = load_config(RewardLoraConfig, None, ["max_steps=2", "rank=4", "threads=1",
                                                  "batch_size=2", "eval_steps=1"],
                         model=str(tiny), output_dir=str(tmp_path / "run"))
    result = train_reward(config, tmp_path, log=lambda _: None)
    assert len(result.losses()) == 2 and result.losses("eval_loss")
    assert all(n > 0 for n in lora_b_norms(result.adapter_dir))
    from safetensors.torch import load_file

    saved = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert any("score" in k for k in saved), "the scoring head is saved with the adapter"
