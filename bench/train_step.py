"""SFT step time: our ``train_sft`` ÷ a plain TRL ``SFTTrainer`` script, same config, one run.

    python bench/train_step.py [--model smollm2] [--steps 8] [--rounds 2] [--threads 1]

Both sides train the same model on the same 32 rows (an ``sft.parquet`` of ``messages``, as factory
writes it) with the hyperparameters our run resolved (rank, alpha, targets, LR, batch, max length,
threads, completion-only loss, bf16 and gradient checkpointing off on CPU, no eval). The raw side
is written against TRL + PEFT directly. Seconds per optimizer step are the median time between
consecutive ``on_step_end`` calls (model load, the first step and saving excluded); the sides
alternate ``--rounds`` times and the best of each is kept (speed drifts ±10% here). Target <= 1.05.
Results are printed as a table and written to bench/results/train_step-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from rich.table import Table  # noqa: E402

from report import report  # noqa: E402

TOPICS = ["the sea", "prime numbers", "autumn", "coffee", "the moon", "bread", "trains", "chess"]


def write_dataset(folder: Path, rows: int) -> Path:
    """``sft.parquet`` with factory's ``messages`` column (system, user, assistant)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = []
    for i in range(rows):
        topic = TOPICS[i % len(TOPICS)]
        answer = " ".join(f"Fact {k} about {topic}: it is worth a short, clear and correct sentence."
                          for k in range(1 + i % 4))
        records.append({"id": f"r{i}", "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": f"Tell me something about {topic} (question {i})."},
            {"role": "assistant", "content": answer}]})
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), folder / "sft.parquet")
    return folder


def build_model(folder: Path) -> Path:
    """tests/tiny_model.py's Llama and tokenizer, scaled to hidden 256 × 4 layers (~0.2+ s/step)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tiny_model import build_tiny_llama

    build_tiny_llama(folder)
    config = LlamaConfig.from_pretrained(folder)
    config.update(dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                       num_attention_heads=8, num_key_value_heads=4))
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def step_timer():
    """A callback: seconds between consecutive optimizer-step ends, and tokens per row."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.ends, self.row_tokens = [], 0.0

        def on_train_begin(self, args, state, control, train_dataloader=None, **kw):
            ids = train_dataloader.dataset["input_ids"]
            self.row_tokens = sum(map(len, ids)) / len(ids)

        def on_step_end(self, args, state, control, **kw):
            self.ends.append(time.perf_counter())

        def result(self, batch: int) -> dict:
            gaps = [b - a for a, b in zip(self.ends, self.ends[1:])]  # step 1 (warm-up) is skipped
            s = statistics.median(gaps)
            return {"s_per_step": s, "tokens_per_s": self.row_tokens * batch / s, "steps_timed": len(gaps)}

    return StepTimer()


def ours(model: str, dataset: Path, out: Path, steps: int, threads: int) -> tuple[dict, dict]:
    """``train_sft`` as the CLI runs it; the timer rides on the trainer it builds."""
    import trainers.sft as sft
    from trainers.config import SFTLoraConfig, default_preset, load_config

    timer = step_timer()
    original = sft.run_and_save

    def with_timer(trainer, *a, **kw):
        trainer.add_callback(timer)
        return original(trainer, *a, **kw)

    config = load_config(SFTLoraConfig, default_preset("sft"), [
        f"max_steps={steps}", f"threads={threads}", "eval_fraction=0"], model=model, output_dir=str(out))
    sft.run_and_save = with_timer
    try:
        sft.train_sft(config, dataset, force=True, log=lambda _: None)
    finally:
        sft.run_and_save = original
    resolved = json.loads((out / "train_config.json").read_text())
    return timer.result(config.batch_size), resolved


def raw(folder: str, gguf: str | None, parquet: Path, out: Path, hp: dict) -> dict:
    """The baseline: a plain TRL SFT script, nothing from factory or trainers."""
    import pyarrow.parquet as pq
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from datasets import Dataset

    torch.set_num_threads(hp["threads"])
    torch.manual_seed(hp["seed"])
    rows = []
    for r in pq.read_table(parquet).to_pylist():  # last assistant turn = completion
        m = [{"role": x["role"], "content": x["content"]} for x in r["messages"]]
        rows.append({"prompt": m[:-1], "completion": m[-1:]})
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
    if gguf:  # Trainer refuses a model flagged quantized; transformers already dequantized it
        model.hf_quantizer, model.is_quantized = None, False
        del model.config.quantization_config
    args = SFTConfig(
        output_dir=str(out), learning_rate=hp["learning_rate"], num_train_epochs=hp["epochs"],
        max_steps=hp["max_steps"], per_device_train_batch_size=hp["batch_size"],
        gradient_accumulation_steps=hp["grad_accum"], max_length=hp["max_length"],
        warmup_steps=hp["warmup_steps"], logging_steps=hp["logging_steps"], save_strategy="no",
        report_to=[], seed=hp["seed"], use_cpu=True, disable_tqdm=True, bf16=False,
        gradient_checkpointing=False, completion_only_loss=True)
    peft = LoraConfig(r=hp["rank"], lora_alpha=hp["alpha"], lora_dropout=hp["dropout"],
                      target_modules=hp["targets"] or "all-linear", task_type="CAUSAL_LM")
    timer = step_timer()
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list(rows), peft_config=peft, callbacks=[timer])
    trainer.remove_callback(PrinterCallback)  # ours prints no raw log dicts either
    trainer.train()
    return timer.result(hp["batch_size"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny (local Llama, hidden 256 × 4) or smollm2")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=32)
    args = parser.parse_args()
    import transformers

    import datasets
    from factory.core.models import resolve_model

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dataset = write_dataset(work / "data", args.rows)
        spec = str(build_model(work / "tiny")) if args.model == "tiny" else args.model
        ref = resolve_model(spec)  # only to hand the raw side the same files
        runs: dict[str, list[dict]] = {"ours": [], "raw": []}
        hp: dict = {}
        for r in range(args.rounds):  # alternate, and which side goes first; best of each
            for side in ("ours", "raw") if r % 2 == 0 else ("raw", "ours"):
                if side == "ours":  # round 0 runs ours first: the raw side copies what it resolved
                    result, hp = ours(spec, dataset, work / f"ours{r}", args.steps, args.threads)
                else:
                    result = raw(str(ref.folder), ref.gguf_file, dataset / "sft.parquet",
                                 work / f"raw{r}", hp)
                runs[side].append(result)
    best = {k: min(v, key=lambda x: x["s_per_step"]) for k, v in runs.items()}
    ratio = best["ours"]["s_per_step"] / best["raw"]["s_per_step"]
    results = {"model": args.model, "rows": args.rows, "steps": args.steps, "threads": args.threads,
               "hyperparameters": {k: hp[k] for k in ("rank", "alpha", "learning_rate", "batch_size",
                                                      "max_length", "epochs", "targets")},
               "runs": runs, "best": best, "ratio": ratio}
    table = Table(title=f"SFT step: train_sft vs raw TRL ({args.model}, {args.rounds} rounds, best of each)")
    for col in ("side", "s/step (each round)", "best s/step", "tokens/s"):
        table.add_column(col)
    for side in ("ours", "raw"):
        rounds = ", ".join(f"{x['s_per_step']:.3f}" for x in runs[side])
        table.add_row(side, rounds, f"{best[side]['s_per_step']:.3f}", f"{best[side]['tokens_per_s']:.0f}")
    table.add_row("ratio ours ÷ raw", "", f"{ratio:.3f}", "target <= 1.05")
    report(table, results, "train_step-")


if __name__ == "__main__":
    main()
