"""``factory advise DATASET``: which method, rank, LR, epochs and eval frequency, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from factory.core.errors import FactoryError
from factory.core.models import has_tokenizer, load_tokenizer, meta_model, resolve_model
from trainers import data
from trainers.capacity import Verdict, count_lora, count_tokens
from trainers.doctrine import Choice, recommend_epochs, recommend_eval_steps, recommend_lr, recommend_rank
from trainers.facts import model_facts

BATCH = 4  # the presets' batch_size; eval frequency is counted in optimizer steps


@dataclass
class Advice:
    dataset: Path
    method: str
    why: str
    rows: int
    choices: dict[str, Choice] = field(default_factory=dict)
    capacity: str = ""
    command: str = ""

    def lines(self) -> list[str]:
        out = [f"method: {self.method.upper()} ({self.why})"]
        out += [f"{key}: {choice}" for key, choice in self.choices.items()]
        if self.capacity:
            out.append(f"capacity: {self.capacity}")
        return out + [f"run: {self.command}"]


def pick_split(dataset: Path) -> tuple[str, Path, list[dict], str]:
    """Pairs beat conversations: a dataset that has both can do DPO (and SFT on the chosen side)."""
    files = [dataset] if dataset.is_file() else \
        [dataset / f"{n}.{e}" for n in ("dpo", "sft", "grpo") for e in ("parquet", "jsonl")]
    seen = []
    for file in (f for f in files if f.exists()):
        rows = data.read_rows(file)
        columns = data.columns_of(file, rows)
        method = data.detect_method(columns)
        if method is None and "answer" in columns and {"prompt", "messages"} & columns:
            method = "grpo"  # prompts with checkable answers: RL on a verifiable reward
        seen.append(f"{file.name}: {', '.join(sorted(columns)) or 'no columns'}, {len(rows)} rows")
        if method and rows:
            why = {"dpo": "preference pairs: prompt/chosen/rejected",
                   "grpo": "prompts with an answer column: GRPO with --set verifier=numeric|exact|regex",
                   "sft": "conversations: " + ("messages" if "messages" in columns else
                                               "prompt/completion or instruction/response")}[method]
            return method, file, rows, f"{file.name} has {why}, {len(rows):,} rows"
    if not dataset.exists():
        raise FactoryError(f"dataset {dataset}: no such file or folder")
    found = "; ".join(seen) or "no sft/dpo split files"
    raise FactoryError(f"dataset {dataset}: nothing to train on ({found}); generate first: "
                       "`factory build RECIPE` with a dpo or sft split")


def advise(dataset: Path, model: str) -> Advice:
    method, file, rows, why = pick_split(dataset)
    ref = resolve_model(model)
    meta = meta_model(ref)
    facts = model_facts(ref, meta)
    epochs = recommend_epochs(len(rows))
    steps = max(1, int(-(-len(rows) // BATCH) * epochs.value))
    rank = recommend_rank(facts.params, method, facts.experts)
    advice = Advice(dataset, method, why, len(rows), {
        "rank": rank, "learning_rate": recommend_lr(facts.name, facts.model_type, facts.hidden_size),
        "epochs": epochs, "eval_steps": recommend_eval_steps(steps)})
    if method != "grpo" and has_tokenizer(ref):  # the table's rank may not hold the data: raise it
        shaped = data.to_prompt_completion(file, rows) if method == "sft" else data.to_preference(rows)
        verdict = Verdict(count_lora(meta, rank.value), count_tokens(
            data.target_texts(shaped, method), load_tokenizer(ref)), method)
        advice.capacity = verdict.message()
        if not verdict.fits:
            advice.choices["rank"] = Choice(verdict.min_rank, f"raised from {rank.value}: smallest "
                                            "rank whose capacity holds the data")
    advice.command = (f"factory train {method} {dataset} --model {model} "
                      f"--set rank={advice.choices['rank'].value}")
    return advice
