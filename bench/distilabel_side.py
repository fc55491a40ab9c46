"""The distilabel 1.5.3 half of bench/vs_distilabel.py (module level: its workers unpickle these).

    python bench/distilabel_side.py WORKDIR RECORDS BATCH
        -> one JSON line of figures; the rows in WORKDIR/distilabel_rows.jsonl
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from distilabel.models.llms.base import LLM  # noqa: E402
from distilabel.models.llms.utils import prepare_output  # noqa: E402
from distilabel.pipeline import Pipeline  # noqa: E402
from distilabel.steps import LoadDataFromDicts  # noqa: E402
from distilabel.steps.tasks import Task, TextGeneration  # noqa: E402

from factory.llm.rubric import DEFAULT_CRITERIA, parse_rubric, rubric_messages  # noqa: E402
from vs_distilabel import ANSWER, JUDGE_MARK, VERDICT, prompts  # noqa: E402


class InstantLLM(LLM):
    """Canned text, instantly: the verdict for judge prompts, else the answer (as factory's fake)."""

    @property
    def model_name(self) -> str:
        return "instant"

    def generate(self, inputs: list, num_generations: int = 1) -> list:
        out = []
        for chat in inputs:
            text = VERDICT if any(JUDGE_MARK in m["content"] for m in chat) else ANSWER
            out.append(prepare_output([text] * num_generations, [8], [len(text.split())]))
        return out


class RubricJudge(Task):
    """factory's single-answer rubric judge: its prompt (same messages) and its parser."""

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "generation"]

    def format_input(self, input: dict[str, Any]) -> list[dict[str, str]]:
        return rubric_messages(input["instruction"], input["generation"], DEFAULT_CRITERIA)

    @property
    def outputs(self) -> list[str]:
        return ["score", "judgement"]

    def format_output(self, output: str | None, input: dict[str, Any] | None = None) -> dict[str, Any]:
        parsed = parse_rubric(output or "")
        if not isinstance(parsed, dict):
            return {"score": None, "judgement": None}
        return {"score": parsed["score"],
                "judgement": {"scores": parsed["scores"], "reasoning": parsed["reasoning"]}}


def run(work: Path, records: int, batch: int) -> dict[str, Any]:
    data = [{"instruction": p} for p in prompts(records)]
    with Pipeline(name="bench-vs-factory", cache_dir=str(work / "distilabel_cache")) as pipeline:
        load = LoadDataFromDicts(data=data, batch_size=batch)
        generate = TextGeneration(llm=InstantLLM(), input_batch_size=batch)
        judge = RubricJudge(llm=InstantLLM(), input_batch_size=batch)
        load >> generate >> judge
    started = time.perf_counter()
    distiset = pipeline.run(use_cache=True)  # the default: a cold cache in an empty dir
    seconds = time.perf_counter() - started
    rows = distiset["default"]["train"]
    with (work / "distilabel_rows.jsonl").open("w") as fh:  # for the same-work check
        for row in rows:
            fh.write(json.dumps({k: row[k] for k in ("instruction", "generation", "score", "judgement")}))
            fh.write("\n")
    return {"seconds": seconds, "records_per_s": records / seconds, "kept": len(rows),
            "scored": sum(r["score"] is not None for r in rows)}


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
