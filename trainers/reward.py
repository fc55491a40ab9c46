"""LoRA reward model on preference pairs: ``train_reward(config, dataset) -> TrainResult``.

The base model gets a one-logit scoring head (trained fully) and LoRA on every Linear layer;
the loss is Bradley-Terry: chosen should score above rejected.
"""

from __future__ import annotations

from pathlib import Path

from factory.core.dataset_files import preference_rows
from trainers.config import RewardLoraConfig
from trainers.dpo import PAIRS
from trainers.method import Method
from trainers.run import Log, TrainResult, lora_config, prepare, run_and_save, trl_args


def train_reward(config: RewardLoraConfig, dataset: Path, force: bool = False,
                 log: Log = print) -> TrainResult:
    from trl import RewardConfig, RewardTrainer

    from datasets import Dataset

    # 1. data (prompt/chosen/rejected from dpo.parquet), model with a scoring head, capacity gate
    prep = prepare(config, dataset, REWARD, force, log)
    # 2. TRL config
    args = RewardConfig(**trl_args(config, prep),
                        center_rewards_coefficient=config.center_rewards_coefficient)
    # 3. trainer: LoRA + a fully trained score head
    trainer = RewardTrainer(
        model=prep.model, args=args, processing_class=prep.tokenizer,
        train_dataset=Dataset.from_list(prep.train_rows),
        eval_dataset=Dataset.from_list(prep.eval_rows) if prep.eval_rows else None,
        peft_config=lora_config(config, prep, task_type="SEQ_CLS"))
    # 4. train, evaluate, write adapter + score head + metrics.jsonl
    return run_and_save(trainer, config, prep, log)


REWARD = Method("reward", RewardLoraConfig, train_reward, reads=("preference",), needs=PAIRS,
                shape=preference_rows, prefer=("reward", "dpo"), learns_from=("chosen", "rejected"),
                scoring_head=True)
