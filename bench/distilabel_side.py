"""The distilabel 1.5.3 half of bench/vs_distilabel.py (module level: its workers unpickle these).

    python bench/distilabel_side.py WORKDIR RECORDS   -> one JSON line
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

from factory.llm.rubric import parse_rubric  # noqa: E402
from vs_distilabel import ANSWER, JUDGE_SYSTEM, VERDICT, prompts  # noqa: E402


class InstantLLM(LLM):
    """Canned text, instantly: the judge verdict for judge prompts, else a short answer."""

    @property
    def model_name(self) -> str:
        return "instant"

    def generate(self, inputs: list, num_generations: int = 1) -> list:
        out = []
        for chat in inputs:
            text = VERDICT if "impartial judge" in chat[0]["content"] else ANSWER
            out.append(prepare_output([text] * num_generations, [8], [len(text.split())]))
        return out


class RubricJudge(Task):
    """The same single-answer rubric judge: one call, parsed by factory's own parser."""

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "generation"]

    def format_input(self, input: dict[str, Any]) -> list[dict[str, str]]:
        return [{"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user",
                 "content": f"[Request]\n{input['instruction']}\n\n[Answer]\n{input['generation']}"}]

    @property
    def outputs(self) -> list[str]:
        return ["score", "judgement"]

    def format_output(self, output: str | None, input: dict[str, Any] | None = None) -> dict[str, Any]:
        parsed = parse_rubric(output or "")
        if not isinstance(parsed, dict):
            return {"score": None, "judgement": None}
        return {"score": parsed["score"], "judgement": parsed["scores"]}


def run(work: Path, records: int) -> dict[str, Any]:
    data = [{"instruction": p} for p in prompts(records)]
    with Pipeline(name="bench-vs-factory", cache_dir=str(work / "distilabel_cache")) as pipeline:
        load = LoadDataFromDicts(data=data, batch_size=50)
        generate = TextGeneration(llm=InstantLLM(), input_batch_size=50)
        judge = RubricJudge(llm=InstantLLM(), input_batch_size=50)
        load >> generate >> judge
    started = time.perf_counter()
    distiset = pipeline.run(use_cache=True)  # the default: a cold cache in an empty dir
    seconds = time.perf_counter() - started
    rows = distiset["default"]["train"]
    return {"seconds": seconds, "records_per_s": records / seconds, "kept": len(rows),
            "scored": sum(r["score"] is not None for r in rows)}


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]), int(sys.argv[2]))))
