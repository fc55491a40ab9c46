"""distilabel tasks as steps on the fake backend: the task's prompt reaches our backend, its parser
reads our reply, and a bad task name is a one-line recipe error."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("distilabel")

from pydantic import ValidationError  # noqa: E402

from conftest import read_jsonl, run_cli  # noqa: E402
from factory.core.record import (
    Record,  # noqa: E402
    Reject,  # noqa: E402
)
from factory.engine.executor import BoundStep, Engine
from factory.llm.backends.base import BackendSettings
from factory.llm.backends.fake import FakeBackend  # noqa: E402
from factory.llm.dispatch import Dispatcher  # noqa: E402
from factory.llm.request import SamplingParams  # noqa: E402
from factory.recipe.graph import Graph  # noqa: E402
from factory.steps.distilabel_task import DistilabelTask, DistilabelTaskStep  # noqa: E402

P = SamplingParams(temperature=0.0, max_tokens=200)


class Recording(FakeBackend):
    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.seen = []

    async def generate(self, requests):
        self.seen.extend(requests)
        return await super().generate(requests)


def step(**kw) -> DistilabelTask:
    spec = DistilabelTaskStep.model_validate({"name": "dl", "kind": "distilabel_task", **kw})
    return DistilabelTask(spec, kw.pop("_params", P))


def run(runner, backend, rows):
    spec = runner.spec
    engine = Engine(Graph([spec], {spec.name: set()}, {}),
                    {spec.name: BoundStep(runner, Dispatcher(backend, None, 4))}, seed=5)
    outs = asyncio.run(engine.run([Record(f"r{i}", dict(r), "t") for i, r in enumerate(rows)]))
    return outs, engine.stats[spec.name].as_dict()


ULTRA_REPLY = ("#### Output for Text 1\nRating: 4\nRationale: Correct and short.\n\n"
               "#### Output for Text 2\nRating: 1\nRationale: Wrong sum.")


def ultrafeedback() -> DistilabelTask:
    return step(task="UltraFeedback", task_args={"aspect": "overall-rating"},
                reads=["prompt", "answers"], inputs={"instruction": "prompt", "generations": "answers"},
                writes=["ratings", "rationales"])


def test_ultrafeedback_prompt_reaches_our_backend_and_its_parser_reads_the_reply():
    backend = Recording(BackendSettings(options={"default": ULTRA_REPLY}))
    (out,), stats = run(ultrafeedback(), backend, [{"prompt": "What is 2+3?", "answers": ["5", "6"]}])
    (request,) = backend.seen
    system, user = request.messages
    assert system == ("system", system[1]) and "evaluate text quality" in system[1]
    assert "2 text outputs" in system[1]
    assert "Instruction: What is 2+3?" in user[1] and "<text 1> 5\n<text 2> 6" in user[1]
    assert out.fields["ratings"] == [4, 1]
    assert out.fields["rationales"] == ["Correct and short.", "Wrong sum."]
    assert stats["figures"] == {"calls": 1}


def test_ultrafeedback_reply_it_cannot_read_is_a_reject():
    backend = FakeBackend(BackendSettings(options={"default": "Both look fine to me."}))
    (out,), _ = run(ultrafeedback(), backend, [{"prompt": "q", "answers": ["a", "b"]}])
    assert isinstance(out, Reject) and out.reason == "task_output_unparseable"
    assert out.raw == ["Both look fine to me."]


def test_truncated_reply_is_a_reject():
    backend = FakeBackend(BackendSettings(options={"default": ULTRA_REPLY}))
    runner = ultrafeedback()
    runner.params = SamplingParams(max_tokens=3)
    (out,), _ = run(runner, backend, [{"prompt": "q", "answers": ["a", "b"]}])
    assert isinstance(out, Reject) and out.reason == "truncated"


def test_evol_quality_runs_its_rounds_through_our_backend():
    backend = Recording(BackendSettings(options={"default": "Improved answer {sample}-{hash}"}))
    runner = step(task="EvolQuality", task_args={"num_evolutions": 2}, reads=["instruction", "response"],
                  writes=["better"], outputs={"evolved_response": "better"})
    rows = [{"instruction": "Explain rain.", "response": "Water falls."},
            {"instruction": "Explain snow.", "response": "Ice falls."}]
    outs, stats = run(runner, backend, rows)
    assert len(backend.seen) == 4 and stats["figures"] == {"calls": 4}
    prompts = [r.messages[-1][1] for r in backend.seen]
    assert all("#Given Prompt#" in p for p in prompts)
    first_round = [p for p in prompts if "Water falls." in p]
    assert len(first_round) == 1 and "Explain rain." in first_round[0]
    # The second round rewrites the first round's reply, which came from our backend.
    second = next(p for p in prompts if "Explain rain." in p and "Water falls." not in p)
    assert "Improved answer 0-" in second
    assert outs[0].fields["better"].startswith("Improved answer 0-")
    # Reproducible: the same build makes the same prompts (per-record seeds, not batch order).
    again = Recording(BackendSettings(options={"default": "Improved answer {sample}-{hash}"}))
    run(step(task="EvolQuality", task_args={"num_evolutions": 2}, reads=["instruction", "response"],
             writes=["better"], outputs={"evolved_response": "better"}), again, rows)
    assert sorted(r.messages for r in again.seen) == sorted(r.messages for r in backend.seen)


def test_num_generations_writes_lists():
    backend = Recording(BackendSettings(options={"default": "Answer {sample}"}))
    runner = step(task="TextGeneration", num_generations=3, reads=["instruction"], writes=["generation"])
    (out,), _ = run(runner, backend, [{"instruction": "Say hi."}])
    assert [r.sample_index for r in backend.seen] == [0, 1, 2]
    assert out.fields["generation"] == ["Answer 0", "Answer 1", "Answer 2"]


@pytest.mark.parametrize("kw,message", [
    ({"task": "UltraFeedbak"}, "did you mean 'UltraFeedback'"),
    ({"task": "UltraFeedback", "task_args": {"aspect": "vibes"}}, "task_args for UltraFeedback"),
    ({"task": "UltraFeedback", "reads": ["prompt"]}, "needs input 'instruction'"),
    ({"task": "UltraFeedback", "writes": ["score"]}, "no output for column 'score'"),
    ({"task": "UltraFeedback", "outputs": {"rating": "r"}}, "did you mean 'ratings'"),
])
def test_spec_errors(kw, message):
    base = {"name": "dl", "kind": "distilabel_task", "reads": ["instruction", "generations"],
            "writes": ["ratings"]}
    with pytest.raises(ValidationError, match=message):
        DistilabelTaskStep.model_validate({**base, **kw})


def test_unknown_task_is_a_one_line_recipe_error(tmp_path, cache_env):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("""name: dl
seeds: {rows: [{instruction: hi, generations: [a, b]}]}
backend: {name: fake}
steps:
  - name: rate
    kind: distilabel_task
    task: UltraFeedbak
    reads: [instruction, generations]
    writes: [ratings]
outputs: {splits: {all: {format: columns, columns: [ratings]}}}
""")
    result = run_cli("build", str(recipe), env=cache_env)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and f"{recipe}:7: steps[0].task: unknown distilabel task" in line
    assert "did you mean 'UltraFeedback'" in line


def test_build_through_the_cli(tmp_path, cache_env):
    recipe = tmp_path / "r.yaml"
    reply = ULTRA_REPLY.replace("\n", "\\n")
    recipe.write_text(f"""name: dl
seeds: {{rows: [{{instruction: "2+3?", generations: ["5", "6"]}}]}}
backend: {{name: fake, options: {{default: "{reply}"}}}}
steps:
  - name: rate
    kind: distilabel_task
    task: UltraFeedback
    reads: [instruction, generations]
    writes: [ratings]
outputs: {{splits: {{all: {{format: columns, columns: [ratings]}}}}}}
""")
    out = tmp_path / "out"
    first = run_cli("build", str(recipe), "--output", str(out), env=cache_env)
    assert first.returncode == 0, first.stderr
    assert read_jsonl(out / "all.jsonl")[0]["ratings"] == [4, 1]
    again = run_cli("build", str(recipe), "--output", str(tmp_path / "again"), env=cache_env)
    assert "1 from cache" in again.stdout
