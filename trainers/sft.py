"""LoRA SFT with completion-only loss: ``train_sft(config, dataset) -> TrainResult``."""

from __future__ import annotations

from pathlib import Path

from factory.core.dataset_files import prompt_completion_rows
from trainers.config import SFTLoraConfig
from trainers.method import Method
from trainers.run import Log, TrainResult, lora_config, prepare, run_and_save, trl_args


def train_sft(config: SFTLoraConfig, dataset: Path, force: bool = False,
              log: Log = print) -> TrainResult:
    from trl import SFTConfig, SFTTrainer

    from datasets import Dataset

    # 1. data (messages -> prompt/completion), model, doctrine defaults, capacity gate
    prep = prepare(config, dataset, SFT, force, log)
    # 2. TRL config: loss on the completion only
    args = SFTConfig(**trl_args(config, prep), completion_only_loss=config.completion_only_loss)
    # 3. trainer with a LoRA adapter on every Linear layer except lm_head
    trainer = SFTTrainer(
        model=prep.model, args=args, processing_class=prep.tokenizer,
        train_dataset=Dataset.from_list(prep.train_rows),
        eval_dataset=Dataset.from_list(prep.eval_rows) if prep.eval_rows else None,
        peft_config=lora_config(config, prep))
    # 4. train, evaluate, write adapter + metrics.jsonl (+ merged model with --merge)
    return run_and_save(trainer, config, prep, log)


SFT = Method(
    "sft", SFTLoraConfig, train_sft, reads=("conversation", "prompt_completion"),
    needs="columns messages, or a prompt (prompt/instruction/question/query/input) and a completion "
          "(completion/response/output)",
    shape=prompt_completion_rows, prefer=("sft",), learns_from=("completion",))
