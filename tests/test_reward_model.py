"""One reward-model scorer (factory/llm/reward_model.py): rejection sampling's ``reward_model``
scorer and the QC reward and pairs filters' ``hf`` scorer give the same (prompt, answer) the same
score, on a tiny sequence-classification model built here, with and without a chat template."""

from __future__ import annotations

import asyncio

import pytest

from factory.core.record import Record
from filters.base import Keep, QCContext
from filters.config import HFScorer, PairsBlock, RewardBlock
from filters.pairs import PairsFilter
from filters.reward import RewardFilter

pytest.importorskip("transformers")

MAX_LENGTH = 48  # tokens: the prompt below is longer, so every text is truncated
PROMPT = "Sort these numbers from small to large: " + " ".join(str(n) for n in range(100, 20, -3))
ANSWERS = ["The answer is 0.", "Numbers: 1 2 3 4 5.", "A helpful answer is correct, clear and short."]


def tiny_reward_model(tmp_path, chat_template: bool):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tiny_model import build_tiny_llama

    folder = build_tiny_llama(tmp_path / "lm")
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1).save_pretrained(tmp_path / "rm")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not chat_template:
        tokenizer.chat_template = None
    tokenizer.save_pretrained(tmp_path / "rm")
    return tmp_path / "rm"


@pytest.mark.parametrize("chat_template", [True, False])
def test_step_and_qc_give_a_pair_the_same_reward(tmp_path, chat_template):
    from factory.steps.scorers import RewardModelScorer, RewardModelScoring

    rm = tiny_reward_model(tmp_path, chat_template)
    spec = RewardModelScorer(type="reward_model", path=str(rm), batch_size=2, max_length=MAX_LENGTH)
    step = RewardModelScoring(spec, None)
    in_step = asyncio.run(step.score(PROMPT, ANSWERS, {}, None)).scores  # type: ignore[arg-type]
    tokenizer, _ = step.model.load()
    assert all(len(tokenizer(t).input_ids) > MAX_LENGTH for t in step.model.texts([PROMPT], ANSWERS))
    # Truncation keeps the answers: three answers, three different rewards.
    assert len(set(in_step)) == 3

    scorer = HFScorer(kind="hf", model=str(rm), batch_size=3, max_tokens=MAX_LENGTH)
    records = [Record(f"r{i}", {"prompt": PROMPT, "response": a}, "t") for i, a in enumerate(ANSWERS)]
    RewardFilter(RewardBlock(filter="reward", scorer=scorer)).filter_batch(records, QCContext())
    assert [r.fields["qc_reward"] for r in records] == in_step

    best, worst = in_step.index(max(in_step)), in_step.index(min(in_step))
    pair = Record("p", {"prompt": PROMPT, "chosen": ANSWERS[best], "rejected": ANSWERS[worst]}, "t")
    (verdict,) = PairsFilter(PairsBlock(filter="pairs", scorer=scorer)).filter_batch([pair], QCContext())
    assert isinstance(verdict, Keep) and verdict.score == in_step[best] - in_step[worst]


def test_a_reward_does_not_depend_on_its_batch(tmp_path):
    from factory.llm.reward_model import RewardModel

    rm = tiny_reward_model(tmp_path, chat_template=True)
    together = RewardModel(rm, batch_size=3).score(["Sort: 3 1 2"] * 3, ANSWERS)  # padded rows
    alone = [RewardModel(rm, batch_size=1).score(["Sort: 3 1 2"], [a])[0] for a in ANSWERS]
    assert together == pytest.approx(alone, abs=1e-5)
