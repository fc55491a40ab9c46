"""What every LoRA run shares: data + model + doctrine + capacity gate before, metrics and adapter
after. ``sft.py``, ``dpo.py``, ``reward.py`` and ``grpo.py`` read top to bottom and call these in
order, each with its own ``Method``."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.models import ModelRef, load_model, load_tokenizer, resolve_model
from trainers.capacity import Verdict, count_lora, count_tokens
from trainers.config import LoraRunConfig
from trainers.doctrine import Choice, recommend_epochs, recommend_eval_steps, recommend_lr, recommend_rank
from trainers.facts import model_facts
from trainers.method import Method

Log = Callable[[str], None]


@dataclass
class Prepared:
    method: Method
    ref: ModelRef
    model: Any
    tokenizer: Any
    train_rows: list[dict]
    eval_rows: list[dict]
    choices: dict[str, Choice]
    verdict: Verdict
    output_dir: Path


@dataclass
class TrainResult:
    output_dir: Path
    adapter_dir: Path
    history: list[dict] = field(default_factory=list)
    overfitting: str | None = None
    seconds_per_step: float = 0.0
    merged_dir: Path | None = None

    def losses(self, key: str = "loss") -> list[float]:
        return [h[key] for h in self.history if key in h]


def prepare(config: LoraRunConfig, dataset: Path, method: Method, force: bool, log: Log) -> Prepared:
    """Everything up to the trainer; refuses an undercapacity run unless ``force``."""
    import torch

    if not config.model:
        raise FactoryError("model: missing (pass --model, e.g. --model smollm2)")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    split, shaped = method.rows(dataset, config)
    train_rows, eval_rows = train_eval_split(shaped, config.eval_fraction, config.seed)
    log(f"data: {split.source} -> {len(train_rows)} train / {len(eval_rows)} eval rows")

    ref = resolve_model(config.model)
    tokenizer = load_tokenizer(ref)
    model = load_model(ref, method.scoring_head, config.base_adapters)
    if method.scoring_head:  # the scoring head finds each sequence's last token by the pad id
        model.config.pad_token_id = tokenizer.pad_token_id
    facts = model_facts(ref, model)
    choices = {
        "rank": Choice(config.rank, "config") if config.rank else
        recommend_rank(facts.params, method.name, facts.experts),
        "learning_rate": Choice(config.learning_rate, "config") if config.learning_rate else
        recommend_lr(facts.name, facts.model_type, facts.hidden_size),
        "epochs": Choice(config.epochs, "config") if config.epochs else recommend_epochs(len(shaped)),
    }
    # GRPO: a batch holds batch_size completions, num_generations per prompt
    samples = len(train_rows) * getattr(config, "num_generations", 1)
    steps = _total_steps(config, samples, choices["epochs"].value)
    choices["eval_steps"] = Choice(config.eval_steps, "config") if config.eval_steps else \
        recommend_eval_steps(steps)
    for key, choice in choices.items():
        if key != "eval_steps" or eval_rows:
            log(f"{key}: {choice}")

    capacity = count_lora(model, choices["rank"].value, config.targets)
    if method.learns_from:
        verdict = Verdict(capacity, count_tokens(method.target_texts(train_rows), tokenizer), method.name)
    else:  # no target text: each sampled completion is one ~1-bit episode
        episodes = steps * config.batch_size * config.grad_accum
        verdict = Verdict(capacity, 0, method.name, episodes=episodes)
    log(f"capacity: {capacity.params:,} LoRA params; {verdict.message()}")
    head = model.get_output_embeddings()
    if config.train_lm_head and head is not None:  # full-rank, so not part of the LoRA bit budget
        log(f"lm_head: trained fully (+{head.weight.numel():,} params, not counted above)")
    if not verdict.fits and not force:
        raise FactoryError(f"{verdict.message()}; raise the rank (--set rank={verdict.min_rank}) or "
                           "pass --force")
    out = Path(config.output_dir or f"runs/{Path(dataset).stem}-{method.name}")
    return Prepared(method, ref, model, tokenizer, train_rows, eval_rows, choices, verdict, out)


def train_eval_split(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded shuffle; at least one eval row whenever there are two or more rows."""
    if eval_fraction <= 0 or len(rows) < 2:
        return rows, []
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    n_eval = min(len(rows) - 1, max(1, round(len(rows) * eval_fraction)))
    return shuffled[n_eval:], shuffled[:n_eval]


def _total_steps(config: LoraRunConfig, rows: int, epochs: float) -> int:
    if config.max_steps > 0:
        return config.max_steps
    per_epoch = max(1, -(-rows // (config.batch_size * config.grad_accum)))
    return max(1, int(per_epoch * epochs))


def trl_args(config: LoraRunConfig, prep: Prepared) -> dict[str, Any]:
    """Arguments shared by SFTConfig and DPOConfig. TRL defaults to bf16 and gradient
    checkpointing: 3.5× slower on CPU, so both are on only with a GPU."""
    import torch

    cuda = torch.cuda.is_available()
    return dict(
        output_dir=str(prep.output_dir), learning_rate=prep.choices["learning_rate"].value,
        num_train_epochs=prep.choices["epochs"].value, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, max_length=config.max_length,
        warmup_steps=config.warmup_steps, logging_steps=config.logging_steps,
        eval_strategy="steps" if prep.eval_rows else "no", eval_steps=prep.choices["eval_steps"].value,
        save_strategy="no", report_to=[], seed=config.seed, use_cpu=not cuda, disable_tqdm=True,
        bf16=cuda and torch.cuda.is_bf16_supported(), gradient_checkpointing=cuda)


def lora_config(config: LoraRunConfig, prep: Prepared, task_type: str = "CAUSAL_LM") -> Any:
    """SEQ_CLS (reward models) makes PEFT train the new scoring head fully."""
    from peft import LoraConfig

    return LoraConfig(r=prep.choices["rank"].value, lora_alpha=config.alpha,
                      lora_dropout=config.dropout, target_modules=config.targets or "all-linear",
                      modules_to_save=["lm_head"] if config.train_lm_head else None,
                      task_type=task_type)


def metrics_callback(path: Path, history: list[dict], log: Log) -> Any:
    """Every Trainer log line goes to metrics.jsonl (and ``history``) as it happens."""
    from transformers import TrainerCallback

    class Metrics(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any):
            entry = {"step": state.global_step, **(logs or {})}
            history.append(entry)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")
            shown = {k: round(v, 4) for k, v in entry.items() if k in ("loss", "eval_loss", "reward")}
            if shown:
                log(f"step {state.global_step}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))

    return Metrics()


def overfitting(history: list[dict]) -> str | None:
    """Eval loss rising between two evaluations while train loss fell over the same steps."""
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    trains = [(h["step"], h["loss"]) for h in history if "loss" in h]

    def train_at(step: int) -> float | None:
        before = [loss for s, loss in trains if s <= step]
        return before[-1] if before else None

    for (s1, e1), (s2, e2) in zip(evals, evals[1:]):
        t1, t2 = train_at(s1), train_at(s2)
        if e2 > e1 and t1 is not None and t2 is not None and t2 < t1:
            return (f"overfitting: eval loss rose {e1:.4f} -> {e2:.4f} (steps {s1}->{s2}) while "
                    f"train loss fell {t1:.4f} -> {t2:.4f}; fewer epochs or a lower LR")
    return None


def run_and_save(trainer: Any, config: LoraRunConfig, prep: Prepared, log: Log) -> TrainResult:
    """Train, evaluate, write the adapter (and merged model), metrics and the resolved config."""
    prep.output_dir.mkdir(parents=True, exist_ok=True)
    metrics = prep.output_dir / "metrics.jsonl"
    metrics.unlink(missing_ok=True)
    history: list[dict] = []
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # raw dicts on stdout; our callback prints a line
    trainer.add_callback(metrics_callback(metrics, history, log))
    start = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - start
    evaluated = [h["step"] for h in history if "eval_loss" in h]
    if prep.eval_rows and (not evaluated or evaluated[-1] != trainer.state.global_step):
        trainer.evaluate()  # the final eval loss, unless the last step just measured it
    result = TrainResult(prep.output_dir, prep.output_dir / "adapter", history, overfitting(history),
                         elapsed / max(1, trainer.state.global_step))
    if result.overfitting:
        log(result.overfitting)
        with metrics.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"event": "overfitting", "message": result.overfitting}) + "\n")
    trainer.save_model(str(result.adapter_dir))
    prep.tokenizer.save_pretrained(str(result.adapter_dir))
    resolved = {**asdict(config), **{k: c.value for k, c in prep.choices.items()},
                "sources": {k: c.source for k, c in prep.choices.items()}, "method": prep.method.name,
                "lora_params": prep.verdict.capacity.params, "target_tokens": prep.verdict.tokens}
    (prep.output_dir / "train_config.json").write_text(json.dumps(resolved, indent=2) + "\n")
    if config.merge:
        result.merged_dir = prep.output_dir / "merged"
        trainer.model.merge_and_unload().save_pretrained(str(result.merged_dir))
        prep.tokenizer.save_pretrained(str(result.merged_dir))
    log(f"adapter: {result.adapter_dir} ({result.seconds_per_step:.2f} s/step, "
        f"{trainer.state.global_step} steps)")
    return result
