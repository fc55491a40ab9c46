"""The DPO split a build writes loads with `datasets` and trains in TRL's DPOTrainer (LoRA)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conftest import fake_recipe_text
from factory.build import run_build
from factory.engine.plan import BuildOptions, plan_build
from tiny_model import build_tiny_llama

pytest.importorskip("trl")
pytest.importorskip("peft")


def dpo_train_steps(dataset_dir: Path, model_dir: Path, out: Path, steps: int = 2) -> list[dict]:
    """Load `dpo.parquet` with `datasets`, run DPOTrainer with LoRA, return its logs."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from datasets import load_dataset

    torch.manual_seed(0)
    dataset = load_dataset("parquet", data_files=str(dataset_dir / "dpo.parquet"), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(dataset.column_names)
    config = DPOConfig(output_dir=str(out), per_device_train_batch_size=2, max_steps=steps,
                       learning_rate=1e-3, logging_steps=1, report_to=[], save_strategy="no",
                       bf16=False, gradient_checkpointing=False, use_cpu=True, max_length=256)
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir), args=config, train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    trainer.train()
    return [log for log in trainer.state.log_history if "loss" in log]


def test_dpo_split_trains_in_trl(write_recipe, tmp_path):
    options = BuildOptions(output=tmp_path / "ds", cache_path=tmp_path / "c.sqlite")
    result = asyncio.run(run_build(plan_build(write_recipe(fake_recipe_text()), options), options))
    assert result.stats["splits"]["dpo"]["rows"] >= 4
    logs = dpo_train_steps(tmp_path / "ds", build_tiny_llama(tmp_path / "tiny"), tmp_path / "run")
    assert len(logs) == 2
    assert all(log["loss"] == log["loss"] and log["loss"] > 0 for log in logs)  # finite, positive


def test_whole_folder_loads_by_config_name(write_recipe, tmp_path):
    from datasets import load_dataset

    options = BuildOptions(output=tmp_path / "ds", cache_path=tmp_path / "c.sqlite")
    asyncio.run(run_build(plan_build(write_recipe(fake_recipe_text()), options), options))
    sft = load_dataset(str(tmp_path / "ds"), "sft", split="train")
    assert sft.column_names[:2] == ["id", "messages"] and len(sft) > 0
    assert sft[0]["lineage"]["recipe"] == "pairs"
