"""What the self-teaching loop evaluates on: the ``task:`` section's held-out problems (verifier
accuracy) or an IFEval-format file (lm-eval's IFEval checker), behind one interface: the items,
how to run them through a dispatcher, the figure the loop maximizes, and the paired comparison of
a trained model with the base model on the same items."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.llm.dispatch import Dispatcher
from factory.recipe.loader import LoadedRecipe
from factory.recipe.seeds import task_problems
from factory.teach.evaluate import accuracy
from factory.teach.ifeval import IFEvalPrompt, compare, ifeval, read_ifeval
from factory.teach.stats import paired


@dataclass
class HeldOut:
    benchmark: str  # "task" | "ifeval"
    items: list[Any]  # Problem | IFEvalPrompt
    data: str = ""  # ifeval: the file

    def facts(self) -> dict[str, Any]:
        if self.benchmark == "ifeval":
            return {"benchmark": "ifeval", "data": self.data, "n": len(self.items),
                    "instructions": sum(len(i.instruction_id_list) for i in self.items)}
        return {"benchmark": "task", "n": len(self.items),
                "copyable": sum(p.copyable for p in self.items),
                "not_copyable": sum(not p.copyable for p in self.items)}

    async def run(self, dispatcher: Dispatcher, max_tokens: int, system: str | None) -> dict[str, Any]:
        if self.benchmark == "ifeval":
            return await ifeval(dispatcher, self.items, max_tokens, system, self.data)
        return await accuracy(dispatcher, self.items, max_tokens, system)

    def score(self, result: dict[str, Any] | None) -> float:
        """What the loop maximizes: IFEval's prompt-level loose accuracy, or accuracy on the
        problems copying the input cannot solve."""
        if not result:
            return 0.0
        if self.benchmark == "ifeval":
            return result["prompt_level_loose"]["accuracy"]
        return result["not_copyable"]["accuracy"]

    def versus(self, base: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
        """Trained vs base on the same items: differences, paired intervals, McNemar p-values."""
        if self.benchmark == "ifeval":
            return compare(base, trained)
        a = {r["id"]: r for r in base["rows"]}
        b = {r["id"]: r for r in trained["rows"]}
        ids = sorted(i for i in a if not a[i]["copyable"])
        return {"not_copyable": paired([a[i]["correct"] for i in ids], [b[i]["correct"] for i in ids]),
                "all": paired([a[i]["correct"] for i in sorted(a)], [b[i]["correct"] for i in sorted(a)])}


def held_out_set(loaded: LoadedRecipe) -> HeldOut | None:
    """The recipe's eval set, or None without ``eval:``; a missing or bad IFEval file is a recipe
    error naming ``eval.data`` (checked before the build starts)."""
    block = loaded.recipe.eval
    if block is None:
        return None
    if block.benchmark == "ifeval":
        assert block.data is not None
        path = loaded.resolve(block.data)
        try:
            return HeldOut("ifeval", read_ifeval(path, block.limit), str(path))
        except FactoryError as exc:
            raise loaded.error(("eval", "data"), str(exc)) from None
    return HeldOut("task", task_problems(loaded)[1])


_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def check_disjoint(train_prompts: list[str], held_out: HeldOut) -> int:
    """Refuse to train when a train prompt is an eval prompt or contains one whole (after case and
    whitespace normalization); returns how many train prompts were checked. The decontaminate
    filter catches shared 13-word runs before this; this is the guarantee the loop relies on."""
    if held_out.benchmark == "ifeval":
        evals = {_norm(i.prompt) for i in held_out.items if isinstance(i, IFEvalPrompt)}
    else:
        evals = {_norm(p.question) for p in held_out.items}
    for prompt in train_prompts:
        text = _norm(prompt)
        hit = text if text in evals else next((e for e in evals if len(e) > 40 and e in text), None)
        if hit is not None:
            raise FactoryError(f"a train prompt contains an eval prompt ({hit[:80]!r}...): decontaminate "
                               "the train set (qc: decontaminate) before training")
    return len(train_prompts)


def train_prompts(split_file: Path) -> list[str]:
    """The user prompt of every row of a built split (conversational rows: the last user turn)."""
    import pyarrow.parquet as pq

    if not split_file.exists():
        return []
    out = []
    for row in pq.read_table(split_file).to_pylist():
        prompt = row.get("prompt")
        if isinstance(prompt, list):  # chat messages
            users = [m["content"] for m in prompt if m.get("role") == "user"]
            prompt = users[-1] if users else ""
        elif prompt is None and isinstance(row.get("messages"), list):
            users = [m["content"] for m in row["messages"] if m.get("role") == "user"]
            prompt = users[-1] if users else ""
        out.append(str(prompt or ""))
    return out
