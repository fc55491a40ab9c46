"""``factory advise DATASET``: which method, rank, LR, epochs and eval frequency, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from factory.core.dataset_files import choose_split, describe, read_splits
from factory.core.errors import FactoryError
from factory.core.models import has_tokenizer, load_tokenizer, meta_model, resolve_model
from trainers.capacity import Verdict, count_lora, count_tokens
from trainers.doctrine import Choice, recommend_epochs, recommend_eval_steps, recommend_lr, recommend_rank
from trainers.facts import model_facts
from trainers.method import Method
from trainers.methods import METHODS

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


ADVISED = ("dpo", "sft", "grpo")  # pairs beat conversations beat prompts with answers


def pick_method(dataset: Path) -> tuple[Method, list[dict], str]:
    """The first of ``ADVISED`` that some split with rows can train (its rows shaped for it, and
    why): a dataset with both pairs and conversations gets DPO (and can do SFT)."""
    splits = read_splits(dataset)
    usable = [s for s in splits if s.rows]
    for method in (METHODS[name] for name in ADVISED if usable):
        try:
            split, layout, fmt = choose_split(usable, method.reads, "", prefer=method.prefer)
        except FactoryError:
            continue
        why = describe(layout, fmt) + (f": {method.note}" if method.note else "")
        return method, method.shape(split, layout), \
            f"{Path(split.source).name} has {why}, {len(split.rows):,} rows"
    found = "; ".join(f"{Path(s.source).name}: {', '.join(s.columns) or 'no columns'}, {len(s.rows)} rows"
                      for s in splits)
    raise FactoryError(f"dataset {dataset}: nothing to train on ({found}); generate first: "
                       "`factory build RECIPE` with a dpo or sft split")


def advise(dataset: Path, model: str) -> Advice:
    method, rows, why = pick_method(dataset)
    ref = resolve_model(model)
    meta = meta_model(ref)
    facts = model_facts(ref, meta)
    epochs = recommend_epochs(len(rows))
    steps = max(1, int(-(-len(rows) // BATCH) * epochs.value))
    rank = recommend_rank(facts.params, method.name, facts.experts)
    advice = Advice(dataset, method.name, why, len(rows), {
        "rank": rank, "learning_rate": recommend_lr(facts.name, facts.model_type, facts.hidden_size),
        "epochs": epochs, "eval_steps": recommend_eval_steps(steps)})
    if method.learns_from and has_tokenizer(ref):  # the table's rank may not hold the data: raise it
        verdict = Verdict(count_lora(meta, rank.value), count_tokens(
            method.target_texts(rows), load_tokenizer(ref)), method.name)
        advice.capacity = verdict.message()
        if not verdict.fits:
            advice.choices["rank"] = Choice(verdict.min_rank, f"raised from {rank.value}: smallest "
                                            "rank whose capacity holds the data")
    advice.command = (f"factory train {method.name} {dataset} --model {model} "
                      f"--set rank={advice.choices['rank'].value}")
    return advice
