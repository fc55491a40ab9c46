"""`factory train sft|dpo` on the tiny Llama: 2 real TRL steps, loss logged, LoRA weights moved."""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import read_jsonl, run_cli
from factory.core.errors import FactoryError
from tiny_model import build_tiny_llama
from trainers.config import DPOLoraConfig, SFTLoraConfig, default_preset, load_config
from trainers.run import overfitting

pytest.importorskip("trl")

SFT_ROWS = [{"id": str(i), "lineage": {"recipe": "t"}, "messages": [
    {"role": "system", "content": "Be brief."}, {"role": "user", "content": f"question {i}"},
    {"role": "assistant", "content": "The quick brown fox jumps over the lazy dog."}]} for i in range(10)]
DPO_ROWS = [{"id": str(i), "prompt": [{"role": "user", "content": f"question {i}"}],
             "chosen": [{"role": "assistant", "content": "Water boils at one hundred degrees."}],
             "rejected": [{"role": "assistant", "content": "dog lazy fox"}]} for i in range(10)]
FAST = ["max_steps=2", "rank=4", "batch_size=2", "eval_steps=1", "threads=1"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    (folder / "ds").mkdir()
    (folder / "ds" / "sft.jsonl").write_text("\n".join(json.dumps(r) for r in SFT_ROWS))
    (folder / "ds" / "dpo.jsonl").write_text("\n".join(json.dumps(r) for r in DPO_ROWS))
    return folder, build_tiny_llama(folder / "tiny")


def lora_b_norms(adapter_dir) -> list[float]:
    from safetensors.torch import load_file

    weights = load_file(adapter_dir / "adapter_model.safetensors")
    return [float(w.norm()) for k, w in weights.items() if "lora_B" in k]


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_two_real_steps_log_loss_and_move_lora_weights(setup, method):
    from trainers.dpo import train_dpo
    from trainers.sft import train_sft

    folder, tiny = setup
    cls, train = (SFTLoraConfig, train_sft) if method == "sft" else (DPOLoraConfig, train_dpo)
    config = load_config(cls, default_preset(method), FAST, model=str(tiny),
                         output_dir=str(folder / f"run-{method}"))
    lines: list[str] = []
    result = train(config, folder / "ds", log=lines.append)
    losses = result.losses()
    assert len(losses) == 2 and all(0 < loss < 100 for loss in losses)
    assert result.losses("eval_loss"), "an eval split was held out, so eval loss is logged"
    norms = lora_b_norms(result.adapter_dir)  # B starts at zero: non-zero means it was trained
    assert len(norms) == 2 * 7 and all(n > 0 for n in norms)
    logged = read_jsonl(result.output_dir / "metrics.jsonl")
    assert [e["loss"] for e in logged if "loss" in e] == losses
    assert any(line.startswith("learning_rate: ") and "rule" in line for line in lines)
    saved = json.loads((result.output_dir / "train_config.json").read_text())
    assert saved["rank"] == 4 and saved["method"] == method and saved["lora_params"] > 0


def test_undercapacity_run_is_refused_before_training(setup):
    from trainers.sft import train_sft

    folder, tiny = setup
    big = [{**SFT_ROWS[0], "messages": SFT_ROWS[0]["messages"][:2] + [
        {"role": "assistant", "content": "The quick brown fox " * 400}]}] * 20
    (folder / "big.jsonl").write_text("\n".join(json.dumps(r) for r in big))
    config = load_config(SFTLoraConfig, None, ["rank=1"], model=str(tiny),
                         output_dir=str(folder / "never"))
    refusal = r"UNDERCAPACITY: rank 1 .*fits: 9; .*\(--set rank=9\) or pass --force"
    with pytest.raises(FactoryError, match=refusal):
        train_sft(config, folder / "big.jsonl", log=lambda _: None)
    assert not (folder / "never").exists()


def test_overfitting_flag():
    history = [{"step": 1, "loss": 2.0}, {"step": 1, "eval_loss": 1.5},
               {"step": 2, "loss": 1.0}, {"step": 2, "eval_loss": 1.8}]
    assert "eval loss rose 1.5000 -> 1.8000" in overfitting(history)
    history[3]["eval_loss"] = 1.2
    assert overfitting(history) is None


def test_every_config_field_has_help_and_presets_load():
    for cls in (SFTLoraConfig, DPOLoraConfig):
        assert all(f.metadata.get("help") for f in dataclasses.fields(cls))
    assert load_config(DPOLoraConfig, default_preset("dpo"), []).beta == 0.1
    sft = load_config(SFTLoraConfig, default_preset("sft"), ["learning_rate=2e-4", "targets=q_proj,v_proj"])
    assert sft.alpha == 32 and sft.completion_only_loss and sft.learning_rate == 2e-4
    assert sft.targets == ["q_proj", "v_proj"] and sft.train_lm_head is False


def test_bad_preset_key_names_the_file(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("alpah: 16\n")
    wanted = r"p.yaml: alpah: not a SFTLoraConfig field \(did you mean 'alpha'"
    with pytest.raises(FactoryError, match=wanted):
        load_config(SFTLoraConfig, preset, [])


@pytest.mark.slow  # two CLI processes importing torch + TRL: ~20 s on a busy 2-core machine
def test_cli_train_sft_one_command(setup, tmp_path):
    folder, tiny = setup
    result = run_cli("train", "sft", str(folder / "ds"), "--model", str(tiny), "--output",
                     str(tmp_path / "run"), *[a for kv in FAST for a in ("--set", kv)])
    assert result.returncode == 0, result.stderr
    assert "done: train loss" in result.stdout and (tmp_path / "run" / "adapter").is_dir()
    wrong = run_cli("train", "dpo", str(folder / "ds" / "sft.jsonl"), "--model", str(tiny))
    assert wrong.returncode == 1 and "sft.jsonl: dpo needs columns chosen and rejected" in wrong.stderr


def test_a_built_dataset_trains_as_written(setup, write_recipe, tmp_path):
    """The parquet folder `factory build` writes (id, lineage, extra columns) trains unchanged."""
    import asyncio

    from conftest import fake_recipe_text
    from factory.build import run_build
    from factory.engine.plan import BuildOptions, plan_build
    from trainers.dpo import train_dpo
    from trainers.sft import train_sft

    _, tiny = setup
    options = BuildOptions(output=tmp_path / "ds", cache_path=tmp_path / "c.sqlite")
    asyncio.run(run_build(plan_build(write_recipe(fake_recipe_text()), options), options))
    for cls, train in ((DPOLoraConfig, train_dpo), (SFTLoraConfig, train_sft)):
        config = load_config(cls, None, ["max_steps=1", "rank=4", "batch_size=2", "threads=1"],
                             model=str(tiny), output_dir=str(tmp_path / cls.__name__))
        assert len(train(config, tmp_path / "ds", log=lambda _: None).losses()) == 1


def test_sft_rows_get_completion_only_loss_in_trl(setup):
    """messages -> prompt/completion: TRL masks the prompt (system + user turns) out of the loss."""
    from trl import SFTConfig, SFTTrainer

    from datasets import Dataset
    from factory.core.dataset_files import Split, detect, prompt_completion_rows
    from factory.core.models import load_model, load_tokenizer, resolve_model

    folder, tiny = setup
    split = Split("sft", "x.jsonl", SFT_ROWS[:2], list(SFT_ROWS[0]))
    rows = prompt_completion_rows(split, detect(split.columns))
    assert [m["role"] for m in rows[0]["prompt"]] == ["system", "user"]
    ref = resolve_model(str(tiny))
    trainer = SFTTrainer(model=load_model(ref), processing_class=load_tokenizer(ref),
                         train_dataset=Dataset.from_list(rows),
                         args=SFTConfig(output_dir=str(folder / "mask"), completion_only_loss=True,
                                        use_cpu=True, bf16=False, report_to=[]))
    labels = trainer.train_dataset[0]["labels"]  # -100: not in the loss
    trained = [t for t in labels if t != -100]
    answer = load_tokenizer(ref)("The quick brown fox jumps over the lazy dog.")["input_ids"]
    assert labels[0] == -100 and trained[:len(answer)] == answer
    assert len(trained) <= len(answer) + 2  # the answer and its end-of-turn tokens, no prompt
