"""LoRA DPO: ``train_dpo(config, dataset) -> TrainResult``. The reference model is the policy with
its adapter disabled (TRL does this when given a PEFT config and no ``ref_model``): no second copy."""

from __future__ import annotations

from pathlib import Path

from factory.core.dataset_files import preference_rows
from trainers.config import DPOLoraConfig
from trainers.method import Method
from trainers.run import Log, TrainResult, lora_config, prepare, run_and_save, trl_args

PAIRS = ("columns chosen and rejected, with a prompt column or as whole conversations that share "
         "the prompt")


def train_dpo(config: DPOLoraConfig, dataset: Path, force: bool = False,
              log: Log = print) -> TrainResult:
    from trl import DPOConfig, DPOTrainer

    from datasets import Dataset

    # 1. data (prompt/chosen/rejected; the prompt may be implicit), model, doctrine, capacity gate
    prep = prepare(config, dataset, DPO, force, log)
    # 2. TRL config: beta, everything else shared with SFT
    args = DPOConfig(**trl_args(config, prep), beta=config.beta)
    # 3. trainer: LoRA policy, reference = same weights with the adapter off
    trainer = DPOTrainer(
        model=prep.model, ref_model=None, args=args, processing_class=prep.tokenizer,
        train_dataset=Dataset.from_list(prep.train_rows),
        eval_dataset=Dataset.from_list(prep.eval_rows) if prep.eval_rows else None,
        peft_config=lora_config(config, prep))
    # 4. train, evaluate, write adapter + metrics.jsonl (+ merged model with --merge)
    return run_and_save(trainer, config, prep, log)


DPO = Method("dpo", DPOLoraConfig, train_dpo, reads=("preference",), needs=PAIRS, shape=preference_rows,
             prefer=("dpo",), learns_from=("chosen", "rejected"))
