"""LoRA capacity: exact counts from shapes (meta device), PEFT agrees, the verdict and min rank."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from factory.core.models import load_model, meta_model, resolve_model
from tiny_model import build_tiny_llama
from trainers.capacity import Capacity, Verdict, count_lora, smallest_rank

LLAMA_31_8B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
               "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
               "num_key_value_heads": 8, "vocab_size": 128256}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny"))


def test_llama_31_8b_config_alone_gives_exact_count(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_31_8B))
    cap = count_lora(meta_model(resolve_model(str(tmp_path / "config.json"))), rank=32)
    assert cap.params == 83_886_080
    assert cap.per_module["k_proj"] == {"count": 32, "d_in": 4096, "d_out": 1024, "params": 5_242_880}
    assert cap.per_module["down_proj"]["params"] == 32 * 32 * (14336 + 4096)
    assert "lm_head" not in cap.per_module
    attention_only = count_lora(meta_model(resolve_model(str(tmp_path))), 32,
                                ["q_proj", "k_proj", "v_proj", "o_proj"])
    assert attention_only.params == 32 * 32 * (2 * 8192 + 2 * 5120)


def test_peft_trainable_count_equals_capacity_count(tiny):
    from peft import LoraConfig, get_peft_model

    ref = resolve_model(str(tiny))
    expected = count_lora(meta_model(ref), rank=8).params
    peft_model = get_peft_model(load_model(ref), LoraConfig(r=8, lora_alpha=32,
                                                            target_modules="all-linear"))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert trainable == expected == count_lora(load_model(ref), 8).params
    assert expected == 2 * 8 * (2 * (64 + 64) + 2 * (64 + 32) + 3 * (64 + 128))


def test_undercapacity_states_deficit_and_smallest_rank():
    cap = Capacity(rank=2, per_module={"q_proj": {"count": 1, "d_in": 10, "d_out": 10, "params": 40}})
    verdict = Verdict(cap, tokens=1000, method="sft")  # 80 bits held, 1000 needed
    assert not verdict.fits and verdict.min_rank == 25  # 25 × 20 params × 2 bits = 1000
    assert "short by 920 bits" in verdict.message() and "smallest rank that fits: 25" in verdict.message()
    assert Verdict(cap, tokens=1000, method="dpo").fits  # RL-like: 1 bit needed
    assert smallest_rank(1001, 20) == 26


def test_cli_reports_undercapacity_on_a_built_dataset(tiny, tmp_path):
    rows = [{"id": str(i), "messages": [{"role": "user", "content": "question"},
                                        {"role": "assistant", "content": "The quick brown fox " * 50}]}
            for i in range(40)]
    (tmp_path / "sft.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    result = run_cli("capacity", "--model", str(tiny), "--rank", "1", "--dataset", str(tmp_path))
    assert result.returncode == 3, result.stderr
    assert "UNDERCAPACITY" in result.stdout and "q_proj" in result.stdout
    fits = run_cli("capacity", "--model", str(tiny), "--rank", "64", "--dataset", str(tmp_path))
    assert fits.returncode == 0 and "ok: rank 64" in fits.stdout


def test_cli_names_the_missing_columns(tiny, tmp_path):
    (tmp_path / "sft.jsonl").write_text(json.dumps({"text": "hi"}) + "\n")
    result = run_cli("capacity", "--model", str(tiny), "--rank", "4", "--dataset",
                     str(tmp_path / "sft.jsonl"))
    assert result.returncode == 1
    assert "sft.jsonl: sft needs columns messages" in result.stderr and "it has text" in result.stderr
