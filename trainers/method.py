"""One training method as one small object: its config, its train function, the data it reads and
how it shapes rows, and what the capacity check counts. ``trainers/methods.py`` holds the four."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.core.dataset_files import ANSWER, Layout, Row, Split, choose_split, read_splits, unwritten
from factory.core.errors import FactoryError
from trainers.config import LoraRunConfig


@dataclass(frozen=True)
class Method:
    name: str
    config: type[LoraRunConfig]
    train: Callable[..., Any]  # (config, dataset, force=False, log=print) -> TrainResult
    reads: tuple[str, ...]  # formats of factory.core.dataset_files it trains on
    needs: str  # those formats in words, for the error when a dataset has none ({answer}: the column)
    shape: Callable[[Split, Layout], list[Row]]  # split rows -> TRL rows
    prefer: tuple[str, ...]  # split names it looks for first in a folder (dpo.parquet for dpo)
    # Columns of the shaped rows whose tokens the capacity check counts (completions; both answers
    # of a pair, at ~1000x fewer bits per token); () = no target text: GRPO counts episodes.
    learns_from: tuple[str, ...]
    scoring_head: bool = False  # a one-logit head on the base model (reward models)
    note: str = ""  # what `factory advise` adds when it picks this method

    def split(self, dataset: Path, config: LoraRunConfig) -> tuple[Split, Layout, str]:
        """The split to train on (a ``prefer`` name first, else the first by name that this method
        can read), its layout and format."""
        answer = getattr(config, "answer_column", ANSWER)  # GRPO's verifiable answer column
        need = f"{self.name} needs {self.needs.format(answer=answer)}"
        absent = unwritten(dataset) if dataset.is_dir() else {}  # an emptied split: say why
        return choose_split(read_splits(dataset), self.reads, need, prefer=self.prefer, absent=absent,
                            answer_column=answer)

    def rows(self, dataset: Path, config: LoraRunConfig) -> tuple[Split, list[Row]]:
        split, layout, _ = self.split(dataset, config)
        if not split.rows:
            raise FactoryError(f"{split.source}: no rows to train on")
        return split, self.shape(split, layout)

    def target_texts(self, rows: list[Row]) -> list[str]:
        """The text the loss learns from, for the capacity check."""
        return ["".join(m["content"] for m in row[key]) for row in rows for key in self.learns_from]
