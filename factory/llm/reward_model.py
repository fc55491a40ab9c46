"""The one reward-model scorer: a sequence classifier with one logit scores (prompt, answer) pairs.

The rejection-sampling step's ``reward_model`` scorer and the QC reward and pairs filters' ``hf`` /
``trained`` scorers all score through ``RewardModel``, so one model gives one pair one score
wherever it is asked (they used to join and truncate differently).

- Text: the tokenizer's chat template over ``[user: prompt, assistant: answer]`` when it has one,
  tokenized without adding special tokens (the template writes its own): that is how TRL's
  RewardTrainer tokenizes the conversational pairs ``factory train reward`` trains on. Without a
  template: ``prompt + "\\n\\n" + answer`` with the tokenizer's usual special tokens.
- Truncation keeps the answer and cuts the prompt from the left: the score head reads the last
  token, and the answer's end (and its end-of-turn token) is what is being judged; cutting from
  the right would score a headless prompt plus half an answer.
- Padding on the right: a plain forward numbers positions from the left edge, so with absolute
  position embeddings left padding would shift a padded row's positions and its score would depend
  on the batch it landed in (rotary models are shift-invariant; right padding is safe for both).
- Model folders: a Hugging Face sequence-classification folder (one label), or the output of
  ``factory train reward`` (its run folder or ``adapter/``: base model + LoRA + score head).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError

PLAIN_JOIN = "\n\n"


def trained_run(path: Path) -> Path | None:
    """The ``factory train reward`` run folder ``path`` is (or whose ``adapter/`` it is), else None."""
    run = path.parent if path.name == "adapter" else path
    return run if (run / "train_config.json").exists() and (run / "adapter").is_dir() else None


class RewardModel:
    """Loads on first use (torch and transformers are imported only then); thread-safe loading."""

    def __init__(self, path: str | Path, batch_size: int = 8, max_length: int = 1024) -> None:
        self.path = Path(path).expanduser()
        self.batch_size = batch_size
        self.max_length = max_length
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    @property
    def trained(self) -> bool:
        return trained_run(self.path) is not None

    def load(self) -> tuple[Any, Any]:
        """(tokenizer, model), ready to score."""
        with self._lock:
            if self._loaded is None:
                run = trained_run(self.path)
                tokenizer, model = self._load_trained(run) if run is not None else self._load_hf()
                if model.config.num_labels != 1:
                    raise FactoryError(f"reward model {self.path}: needs one output label, has "
                                       f"{model.config.num_labels}")
                if tokenizer.pad_token is None:  # batching needs one; eos is the usual stand-in
                    tokenizer.pad_token = tokenizer.eos_token
                if model.config.pad_token_id is None:  # the head finds each row's end by it
                    model.config.pad_token_id = tokenizer.pad_token_id
                tokenizer.truncation_side = "left"
                tokenizer.padding_side = "right"
                self._loaded = (tokenizer, model.eval())
        return self._loaded

    def _load_hf(self) -> tuple[Any, Any]:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not self.path.exists():
            raise FactoryError(f"reward model {self.path}: not found")
        if not (self.path / "config.json").exists():
            raise FactoryError(f"reward model {self.path}: no config.json (nothing is downloaded)")
        return (AutoTokenizer.from_pretrained(self.path),
                AutoModelForSequenceClassification.from_pretrained(self.path))

    def _load_trained(self, run: Path) -> tuple[Any, Any]:
        from peft import PeftModel

        from factory.core.models import load_model, load_tokenizer, resolve_model

        base = resolve_model(json.loads((run / "train_config.json").read_text())["model"])
        model = PeftModel.from_pretrained(load_model(base, reward_head=True), str(run / "adapter"))
        return load_tokenizer(base), model

    def texts(self, prompts: list[str], answers: list[str]) -> list[str]:
        tokenizer, _ = self.load()
        if getattr(tokenizer, "chat_template", None):
            return [tokenizer.apply_chat_template([{"role": "user", "content": p},
                                                   {"role": "assistant", "content": a}], tokenize=False)
                    for p, a in zip(prompts, answers)]
        return [f"{p}{PLAIN_JOIN}{a}" for p, a in zip(prompts, answers)]

    def score(self, prompts: list[str], answers: list[str]) -> list[float]:
        """One reward per (prompt, answer), in order; blocking (call it from a worker thread)."""
        import torch

        tokenizer, model = self.load()
        texts = self.texts(prompts, answers)
        templated = bool(getattr(tokenizer, "chat_template", None))
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                              truncation=True, max_length=self.max_length,
                              add_special_tokens=not templated)
            with torch.inference_mode():
                logits = model(**batch).logits.float()
            out += [round(float(v), 6) for v in logits[:, 0]]
        return out
