"""LoRA GRPO with a verifiable reward: ``train_grpo(config, dataset) -> TrainResult``.

Rows need a prompt and an answer column; the reward is a ``factory.verifiers`` check on each
sampled completion, so no reward model is involved.
"""

from __future__ import annotations

from pathlib import Path

from factory.core.dataset_files import prompt_answer_rows
from factory.core.errors import FactoryError
from factory.core.verifiers import as_reward_fn, get_verifier
from trainers.config import GRPOLoraConfig
from trainers.method import Method
from trainers.run import Log, TrainResult, lora_config, prepare, run_and_save, trl_args


def train_grpo(config: GRPOLoraConfig, dataset: Path, force: bool = False,
               log: Log = print) -> TrainResult:
    from trl import GRPOConfig, GRPOTrainer

    from datasets import Dataset

    reward = as_reward_fn(get_verifier(config.verifier))  # fail on a bad name before loading
    if config.batch_size % config.num_generations:
        raise FactoryError(f"batch_size {config.batch_size}: must be a multiple of "
                           f"num_generations {config.num_generations}")
    # 1. data (prompt + answer), model, doctrine defaults (RL rank), capacity gate (episodes)
    prep = prepare(config, dataset, GRPO, force, log)
    # 2. TRL config: rollouts sampled with explicit top-k/top-p; max_length is not a GRPO field
    shared = trl_args(config, prep)
    shared.pop("max_length")
    args = GRPOConfig(**shared, num_generations=config.num_generations,
                      max_completion_length=config.max_completion_length,
                      temperature=config.temperature, top_k=config.top_k, top_p=config.top_p,
                      beta=config.beta)
    # 3. trainer: LoRA policy, reward = verifier(completion, answer)
    trainer = GRPOTrainer(
        model=prep.model, args=args, processing_class=prep.tokenizer, reward_funcs=[reward],
        train_dataset=Dataset.from_list(prep.train_rows),
        eval_dataset=Dataset.from_list(prep.eval_rows) if prep.eval_rows else None,
        peft_config=lora_config(config, prep))
    # 4. train, write adapter + metrics.jsonl (rewards per step) (+ merged model with --merge)
    return run_and_save(trainer, config, prep, log)


GRPO = Method(
    "grpo", GRPOLoraConfig, train_grpo, reads=("prompt_answer",),
    needs="a prompt (prompt or messages) and an answer column '{answer}'",
    shape=prompt_answer_rows, prefer=("grpo", "sft"), learns_from=(),
    note="GRPO with --set verifier=numeric|exact|regex")
