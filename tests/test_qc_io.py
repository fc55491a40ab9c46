"""Datasets for factory qc / audit: formats detected, text columns derived, bad rows named."""

from __future__ import annotations

import json

import pytest

from factory.core.errors import FactoryError
from filters.config import RewardBlock
from filters.dataset_io import load_dataset_records
from filters.reward import RewardFilter


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_detects_dpo_chat_messages(tmp_path):
    rows = [{"id": "a", "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "Q?"}],
             "chosen": [{"role": "assistant", "content": "Good."}],
             "rejected": [{"role": "assistant", "content": "Bad."}]}]
    data = load_dataset_records(write_jsonl(tmp_path / "d.jsonl", rows))
    assert data.format == "preference"
    f = data.records[0].fields
    assert (data.records[0].id, f["prompt"], f["chosen"], f["rejected"], f["response"]) == ("a", "Q?", "Good.", "Bad.", "Good.")


def test_detects_sft_and_columns_and_csv(tmp_path):
    sft = [{"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}]
    data = load_dataset_records(write_jsonl(tmp_path / "s.jsonl", sft))
    assert data.format == "conversation" and data.records[0].fields["prompt"] == "Hi?"
    assert data.records[0].fields["response"] == "Hello."
    csv = tmp_path / "c.csv"
    csv.write_text("instruction,output\nAdd 2 and 2.,4\n")
    data = load_dataset_records(csv)
    assert data.format == "prompt_completion" and data.records[0].fields["response"] == "4"
    assert data.records[0].id == "row1"


def test_factory_build_folder_reads_the_dpo_split(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "built"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([{"id": "x", "prompt": [{"role": "user", "content": "Q"}],
                                          "chosen": [{"role": "assistant", "content": "A"}],
                                          "rejected": [{"role": "assistant", "content": "B"}]}]),
                   folder / "dpo.parquet")
    data = load_dataset_records(folder)
    assert data.format == "preference" and data.records[0].fields["chosen"] == "A"


def test_unknown_columns_and_bad_rows_are_one_line_errors(tmp_path):
    with pytest.raises(FactoryError, match="--prompt-column and --response-column"):
        load_dataset_records(write_jsonl(tmp_path / "x.jsonl", [{"foo": 1}]))
    data = load_dataset_records(write_jsonl(tmp_path / "y.jsonl", [{"foo": "q", "bar": "a"}]),
                                prompt_column="foo", response_column="bar")
    assert data.records[0].fields["prompt"] == "q"
    bad = write_jsonl(tmp_path / "z.jsonl", [{"chosen": "a", "rejected": "b"}, {"chosen": 3, "rejected": "b"}])
    with pytest.raises(FactoryError, match=r"z.jsonl: row 2: 'chosen' and 'rejected' must be text"):
        load_dataset_records(bad)


def test_default_reward_scorer_is_the_embedded_judge_and_says_so():
    f = RewardFilter(RewardBlock(filter="reward"))
    assert "embedded SmolLM2-135M (default scorer; weak judge)" in f.scorer.label
    assert f.scorer.block.name == "llama_cpp" and f.scorer.block.model == "embedded"


def test_hf_sequence_classifier_reward_scorer(tmp_path):
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    from filters.config import HFScorer
    from filters.reward import make_scorer
    from tiny_model import build_tiny_llama

    folder = build_tiny_llama(tmp_path / "lm")
    tok = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    config.num_labels = 1
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    spec = HFScorer(kind="hf", model=str(tmp_path / "rm"), batch_size=3)
    prompts = ["Q?", "Another, much longer question about the weather tomorrow?", "x?"]
    answers = ["A short answer.", "A considerably longer answer, so the others in its batch are padded.",
               "x"]
    batched = make_scorer(spec).score(prompts, answers)
    assert all(why == "" and isinstance(s, float) for s, why in batched)
    alone = [make_scorer(spec).score([p], [a])[0] for p, a in zip(prompts, answers)]  # no padding
    assert [s for s, _ in batched] == pytest.approx([s for s, _ in alone], abs=1e-5)
    assert len({round(s, 4) for s, _ in batched}) == 3  # different texts, different scores
