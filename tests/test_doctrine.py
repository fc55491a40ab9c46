"""Rank table, learning-rate table and rule, epochs: values and their printed sources."""

from __future__ import annotations

import pytest

from trainers.doctrine import recommend_epochs, recommend_eval_steps, recommend_lr, recommend_rank


@pytest.mark.parametrize("params,method,expected", [
    (8.03e9, "sft", 32), (8.03e9, "dpo", 8), (13e9, "sft", 64), (13e9, "grpo", 16),
    (70e9, "sft", 128), (70e9, "dpo", 32), (135e6, "sft", 16), (135e6, "dpo", 4)])
def test_rank_table(params, method, expected):
    assert recommend_rank(int(params), method).value == expected


def test_moe_divides_rank_by_active_experts():
    choice = recommend_rank(int(30e9 + 1), "sft", experts=8)  # 128 / 8
    assert choice.value == 16 and "÷ 8 active experts" in choice.source


def test_known_lrs_by_name():
    assert recommend_lr("Meta-Llama-3.1-8B-Instruct", "llama", 4096).value == 3e-4
    assert recommend_lr("Llama-3.2-1B", "llama", 2048).value == 1e-3
    assert recommend_lr("Qwen3-8B", "qwen3", 4096).value == 1e-3
    assert "calibrated" in recommend_lr("Llama-3.2-3B-Instruct", "llama", 3072).source


def test_lr_rule_for_unknown_models():
    smol = recommend_lr("SmolLM2-135M-Instruct", "llama", 576)
    assert smol.value == pytest.approx(5e-4 * (2000 / 576) ** 0.781, rel=1e-2)
    assert "rule" in smol.source and "Llama-like" in smol.source
    qwen = recommend_lr("Qwen2.5-7B", "qwen2", 3584)
    assert qwen.value == pytest.approx(5e-4 * (2000 / 3584) ** 0.0775, rel=1e-2)
    assert recommend_lr("x", "llama", 2000).value == pytest.approx(5e-4)
    assert "assumed Llama-like" in recommend_lr("x", "falcon", 2000).source


def test_epochs_and_eval_frequency():
    assert recommend_epochs(500).value == 2
    assert recommend_epochs(50_000).value == 1
    assert "0.5-1" in recommend_epochs(200_000).source
    assert recommend_eval_steps(1000).value == 100 and recommend_eval_steps(3).value == 1
