"""Best-of-N on the fake backend: prompts sent, scoring, pairs, pass@k, and each reject reason."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from math import comb
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, read_jsonl, run_cli
from factory.core.errors import RecipeError
from factory.core.record import Record, Reject
from factory.engine.executor import BoundStep, Engine
from factory.llm.backends.base import BackendSettings
from factory.llm.backends.fake import FakeBackend
from factory.llm.dispatch import Dispatcher
from factory.llm.request import SamplingParams
from factory.recipe.graph import Graph
from factory.recipe.loader import load_recipe
from factory.steps.rejection_sampling import RejectionSampling, RejectionSamplingStep, pass_at_k

P = SamplingParams(temperature=0.8, max_tokens=50)
RECIPE = ROOT / "recipes" / "rejection_sampling.yaml"


class Recording(FakeBackend):
    """The fake backend, keeping every request it was sent (tests assert on the prompts)."""

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.seen = []

    async def generate(self, requests):
        self.seen.extend(requests)
        return await super().generate(requests)


def fake(**options) -> Recording:
    return Recording(BackendSettings(options=options))


def spec(**kw) -> RejectionSamplingStep:
    base = {"name": "bon", "kind": "rejection_sampling", "reads": ["question", "answer"],
            "writes": ["best", "worst", "scores", "pass_at_k"], "prompt": "Solve: {question}",
            "system": "Think, then write Answer: N.", "n": 5, "k": [1, 2, 5],
            "scorer": {"type": "verifier", "verifier": "numeric", "answer": "answer"}}
    return RejectionSamplingStep.model_validate({**base, **kw})


def run(step: RejectionSamplingStep, backend: FakeBackend, rows: list[dict], others=None,
        params: SamplingParams = P):
    runner = RejectionSampling(step, params)
    others = others or {}
    runner.backend_params = {k: SamplingParams(temperature=0.0) for k in others}
    bound = BoundStep(runner, Dispatcher(backend, None, 4),
                      {k: Dispatcher(b, None, 4) for k, b in others.items()})
    engine = Engine(Graph([step], {step.name: set()}, {}), {step.name: bound}, seed=1)
    records = [Record(f"r{i}", dict(row), "t") for i, row in enumerate(rows)]
    outcomes = asyncio.run(engine.run(records))
    return outcomes, engine.stats[step.name].as_dict()


# Sample i answers i: with answer "3" and n = 5, exactly one sample (index 3) is right.
COUNTING = {"default": "Let me count. Answer: {sample}"}


def test_pass_at_k_matches_the_papers_estimator():
    def chen(n, c, k):  # the numerically stable product form from Chen et al. 2021
        if n - c < k:
            return 1.0
        prod = 1.0
        for i in range(n - c + 1, n + 1):
            prod *= 1.0 - k / i
        return 1.0 - prod

    for n in (1, 5, 16):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(chen(n, c, k))
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
    assert pass_at_k(5, 1, 1) == pytest.approx(0.2) and pass_at_k(5, 0, 5) == 0.0
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_n_samples_of_the_rendered_prompt_best_and_worst_and_pass_at_k():
    backend = fake(**COUNTING)
    (out,), stats = run(spec(), backend, [{"question": "2 + 1?", "answer": "3"}])
    # N requests of the same chat, told apart only by their sample index.
    assert [r.sample_index for r in backend.seen] == [0, 1, 2, 3, 4]
    assert {r.messages for r in backend.seen} == {
        (("system", "Think, then write Answer: N."), ("user", "Solve: 2 + 1?"))}
    assert all(r.params.temperature == 0.8 for r in backend.seen)
    f = out.fields
    assert f["best"] == "Let me count. Answer: 3" and f["worst"] == "Let me count. Answer: 0"
    assert f["scores"]["scores"] == [0.0, 0.0, 0.0, 1.0, 0.0] and f["scores"]["pair"] == "ok"
    assert f["scores"]["best"] == 3 and f["scores"]["margin"] == 1.0
    assert f["pass_at_k"] == {"n": 5, "c": 1, "pass@1": 0.2, "pass@2": 0.4, "pass@5": 1.0}
    assert stats["figures"]["prompts_passing_1_of_5"] == 1 and stats["figures"]["pairs"] == 1
    assert stats["rates"] == {"pass@1": 0.2, "pass@2": 0.4, "pass@5": 1.0, "sample_pass_rate": 0.2}


def test_few_shot_examples_are_earlier_turns_of_every_sample():
    backend = fake(**COUNTING)
    examples = [{"user": "Solve: 1 + 1?", "assistant": "Answer: 2"}, {"user": "Solve: 4 - 1?",
                                                                      "assistant": "Answer: 3"}]
    (out,), _ = run(spec(examples=examples), backend, [{"question": "2 + 1?", "answer": "3"}])
    assert {r.messages for r in backend.seen} == {(
        ("system", "Think, then write Answer: N."), ("user", "Solve: 1 + 1?"), ("assistant", "Answer: 2"),
        ("user", "Solve: 4 - 1?"), ("assistant", "Answer: 3"), ("user", "Solve: 2 + 1?"))}
    assert out.fields["best"] == "Let me count. Answer: 3"  # the record keeps only its own answer


def test_pass_at_k_over_the_set_counts_rejected_prompts_too():
    rows = [{"question": "a", "answer": "3"}, {"question": "b", "answer": "99"}]
    outs, stats = run(spec(), fake(**COUNTING), rows)
    assert isinstance(outs[0], Record) and isinstance(outs[1], Reject)
    assert stats["rates"]["pass@1"] == pytest.approx((0.2 + 0.0) / 2)
    assert stats["rejected"] == {"no_passing_sample": 1}


def test_no_passing_sample_keeps_samples_and_scores():
    (out,), _ = run(spec(), fake(**COUNTING), [{"question": "q", "answer": "42"}])
    assert isinstance(out, Reject) and out.reason == "no_passing_sample"
    assert out.raw["scores"] == [0.0] * 5 and len(out.raw["samples"]) == 5


def test_all_samples_failed_to_parse():
    (out,), _ = run(spec(), fake(default="I am not sure, sorry."), [{"question": "q", "answer": "3"}])
    assert isinstance(out, Reject) and out.reason == "all_samples_failed_to_parse"
    assert out.raw["scores"] == [None] * 5


def test_truncated_samples_are_never_candidates():
    long = "one two three four five six seven eight nine ten Answer: 3"
    (out,), stats = run(spec(), fake(default=long), [{"question": "q", "answer": "3"}],
                        params=SamplingParams(max_tokens=5))
    assert isinstance(out, Reject) and out.reason == "truncated"
    assert stats["figures"]["samples_truncated"] == 5


def test_low_margin_keeps_the_best_for_sft_with_no_pair():
    (out,), stats = run(spec(), fake(default="Answer: 3"), [{"question": "q", "answer": "3"}])
    assert out.fields["best"] == "Answer: 3" and out.fields["worst"] is None
    assert out.fields["scores"]["pair"] == "low_margin" and stats["figures"]["low_margin"] == 1


def test_low_margin_is_a_reject_when_a_pair_is_required():
    (out,), _ = run(spec(require_pair=True), fake(default="Answer: 3"), [{"question": "q", "answer": "3"}])
    assert isinstance(out, Reject) and out.reason == "low_margin"


def reply(data: dict) -> str:
    """A fake-backend reply template holding JSON (its braces escaped from str.format)."""
    return json.dumps(data).replace("{", "{{").replace("}", "}}")


def test_judge_scorer_asks_the_rubric_on_its_own_backend():
    sampler = fake(default="Answer: {sample}")
    # The judge likes the answer "Answer: 2" and dislikes the rest; one sample gets prose it can't read.
    judge = fake(rules=[
        {"match": r"\[Answer\]\nAnswer: 2\n", "reply": reply(
            {"reasoning": "right", "correctness": 5, "helpfulness": 4, "clarity": 5})},
        {"match": r"\[Answer\]\nAnswer: 4\n", "reply": "hard to say"},
        {"match": "Rate the answer", "reply": reply(
            {"reasoning": "wrong", "correctness": 1, "helpfulness": 1, "clarity": 1})}])
    step = spec(scorer={"type": "judge", "backend": "judge", "threshold": 4})
    assert step.backend_refs() == {"backend": "default", "scorer.backend": "judge"}
    (out,), stats = run(step, sampler, [{"question": "1 + 1?", "answer": "2"}], others={"judge": judge})
    assert len(sampler.seen) == 5 and len(judge.seen) == 5
    asked = judge.seen[2].messages[-1][1]
    assert "[Request]\nSolve: 1 + 1?" in asked and "[Answer]\nAnswer: 2" in asked
    assert judge.seen[0].json_schema is not None and judge.seen[0].params.temperature == 0.0
    assert out.fields["best"] == "Answer: 2" and out.fields["scores"]["scores"][4] is None
    assert out.fields["scores"]["margin"] == pytest.approx(14 / 3 - 1, abs=1e-3)
    assert stats["figures"]["judge_unparseable"] == 1


def test_json_schema_verifier_scores_structured_answers():
    schema = {"type": "object", "properties": {"total": {"type": "integer", "maximum": 1}},
              "required": ["total"]}
    backend = fake(rules=[], default='Here: {{"total": {sample}}}')
    step = spec(scorer={"type": "verifier", "verifier": "json_schema", "answer": "answer"}, n=3, k=[1])
    (out,), _ = run(step, backend, [{"question": "q", "answer": schema}])
    assert out.fields["scores"]["scores"] == [1.0, 1.0, 0.0]
    assert out.fields["best"] == 'Here: {"total": 0}' and out.fields["worst"] == 'Here: {"total": 2}'


def test_reward_model_scorer_batches_a_tiny_model(tmp_path):
    pytest.importorskip("transformers")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tiny_model import build_tiny_llama

    folder = build_tiny_llama(tmp_path / "lm")
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1).save_pretrained(tmp_path / "rm")
    AutoTokenizer.from_pretrained(folder).save_pretrained(tmp_path / "rm")
    step = spec(scorer={"type": "reward_model", "path": str(tmp_path / "rm"), "batch_size": 2}, n=3,
                k=[1])
    (out,), _ = run(step, fake(default="The answer is {sample}."), [{"question": "q", "answer": "1"}])
    scores = out.fields["scores"]["scores"]
    assert len(scores) == 3 and all(isinstance(s, float) for s in scores)
    assert out.fields["best"] == f"The answer is {scores.index(max(scores))}."
    # The same numbers as one direct forward pass of the model on the chat-formatted text.
    tok = AutoTokenizer.from_pretrained(tmp_path / "rm")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
    text = tok.apply_chat_template([{"role": "user", "content": "Solve: q"},
                                    {"role": "assistant", "content": "The answer is 0."}], tokenize=False)
    with torch.no_grad():
        direct = float(model(**tok(text, return_tensors="pt")).logits[0, 0])
    assert scores[0] == pytest.approx(direct, abs=1e-4)


def recipe_with(tmp_path: Path, scorer: dict, **step) -> Path:
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["seeds"] = {"rows": [{"question": "2 + 1?", "answer": "3"}, {"question": "5 - 5?", "answer": "0"}]}
    recipe["backend"] = {"name": "fake", "options": {"default": "Answer: {sample}"}}
    recipe["steps"][0].update({"scorer": scorer, "n": 4, "k": [1, 4], **step})
    recipe["outputs"]["splits"]["sft"]["columns"] = []
    recipe["outputs"]["splits"]["dpo"]["columns"] = []
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_user_verifier_needs_trust_code(tmp_path, cache_env):
    (tmp_path / "my_checks.py").write_text(
        "def even(text, answer):\n    return 1.0 if text.strip().endswith(('0', '2')) else 0.0\n")
    path = recipe_with(tmp_path, {"type": "verifier", "verifier": "my_checks:even", "answer": "answer"})
    refused = run_cli("build", str(path), "--output", str(tmp_path / "out"), env=cache_env)
    assert refused.returncode == 2 and not (tmp_path / "out").exists()
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and "--trust-code" in line
    assert f"{path}:" in line and "steps[0].scorer.verifier" in line
    ok = run_cli("build", str(path), "--output", str(tmp_path / "out"), "--trust-code", env=cache_env)
    assert ok.returncode == 0, ok.stderr
    rows = read_jsonl(tmp_path / "out" / "sft.jsonl")
    assert [r["messages"][-1]["content"] for r in rows] == ["Answer: 0", "Answer: 0"]


@pytest.mark.parametrize("scorer,step,message", [
    ({"type": "verifier", "verifier": "numerc", "answer": "answer"}, {}, "did you mean 'numeric'"),
    ({"type": "verifier", "verifier": "numeric", "answer": "solution"}, {}, "must be listed in 'reads'"),
    ({"type": "verifier", "verifier": "numeric", "answer": "answer"}, {"k": [1, 9]}, "1 <= k <= n"),
    ({"type": "judge", "templates": {"promt": "x"}}, {}, "did you mean 'prompt'"),
    ({"type": "judge", "templates": {"prompt": "{question} {colour}"}}, {}, "{colour}"),
    ({"type": "rubric"}, {}, "'rubric'"),
])
def test_recipe_errors_name_the_line(tmp_path, scorer, step, message):
    path = recipe_with(tmp_path, scorer, **step)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert message in str(err.value) and err.value.line is not None
    assert str(err.value).startswith(f"{path}:")


def test_fake_build_writes_sft_and_dpo_splits_with_accounting(tmp_path, cache_env):
    path = recipe_with(tmp_path, {"type": "verifier", "verifier": "numeric", "answer": "answer"})
    result = run_cli("build", str(path), "--output", str(tmp_path / "out"), env=cache_env)
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["totals"]["kept"] == 2 and stats["splits"]["sft"]["rows"] == 2
    assert stats["splits"]["dpo"]["rows"] == 2
    dpo = read_jsonl(tmp_path / "out" / "dpo.jsonl")
    assert dpo[0]["chosen"][0]["content"] == "Answer: 3" and dpo[0]["rejected"][0]["content"] == "Answer: 0"
    assert stats["steps"]["best_of_n"]["rates"]["pass@1"] == 0.25
    assert "pass@1 0.25" in result.stdout


def test_shipped_seeds_are_what_the_generator_writes(tmp_path):
    script = ROOT / "datasets" / "make_arithmetic.py"
    spec_ = importlib.util.spec_from_file_location("make_arithmetic", script)
    module = importlib.util.module_from_spec(spec_)
    sys.modules["make_arithmetic"] = module
    spec_.loader.exec_module(module)
    rows = read_jsonl(ROOT / "datasets" / "seeds" / "arithmetic_problems.jsonl")
    assert rows == module.make(len(rows), 7)
    for row in rows:  # the answer is right for the numbers in the question, where easy to recheck
        if row["kind"] == "multiply":
            bags, per = [int(w) for w in row["question"].split() if w.isdigit()][:2]
            assert int(row["answer"]) == bags * per
