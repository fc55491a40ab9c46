"""One dataset reader: split files found, one format rule set for QC and training, rows shaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT
from factory.core.dataset_files import (
    detect,
    preference_rows,
    prompt_answer_rows,
    prompt_completion_rows,
    read_splits,
    text_rows,
)
from factory.core.dataset_writer import write_split
from factory.core.errors import FactoryError
from filters.dataset_io import load_dataset_records

HH_NAME = Path("hh_rlhf") / "harmless-base_test.jsonl.gz"
HH = next((d / HH_NAME for d in (ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data")
           if (d / HH_NAME).exists()), None)  # the main checkout's ../shared, or a worktree's ../../shared


def turn(role: str, content: str) -> list[dict[str, str]]:
    return [{"role": role, "content": content}]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("columns, formats", [
    ({"chosen", "rejected"}, ("preference",)),  # no prompt: still pairs (the old trainer said no)
    ({"prompt", "chosen", "rejected", "id", "lineage"}, ("preference",)),
    ({"messages"}, ("conversation",)),
    ({"conversations", "answer"}, ("conversation", "prompt_answer")),
    ({"instruction", "output"}, ("prompt_completion",)),
    ({"prompt", "completion"}, ("prompt_completion",)),
    ({"question", "answer"}, ("prompt_answer",)),
    ({"text"}, ()),
])
def test_one_rule_set(columns, formats):
    assert detect(columns).formats == formats


def test_qc_and_training_read_pairs_without_a_prompt_alike(tmp_path):
    """chosen + rejected without a prompt column: QC used to accept it and training to refuse it."""
    from trainers.methods import METHODS

    start = "\n\nHuman: How do I boil an egg?\n\nAssistant: "
    data = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": start + "Simmer it for 7 minutes.",
                                                "rejected": start + "Eggs are bad."}])
    qc = load_dataset_records(data)
    assert qc.format == "preference" and qc.records[0].fields["prompt"] == "How do I boil an egg?"
    assert qc.records[0].fields["chosen"] == "Simmer it for 7 minutes."
    _, rows = METHODS["dpo"].rows(data, METHODS["dpo"].config())
    assert rows == [{"prompt": turn("user", "How do I boil an egg?"),
                     "chosen": turn("assistant", "Simmer it for 7 minutes."),
                     "rejected": turn("assistant", "Eggs are bad.")}]
    with pytest.raises(FactoryError, match=r"hh.jsonl: sft needs columns messages"):
        METHODS["sft"].rows(data, METHODS["sft"].config())


@pytest.mark.skipif(HH is None, reason="../shared/data/hh_rlhf is not here")
def test_anthropic_hh_transcripts_become_pairs_with_the_shared_prompt():
    """Real HH-RLHF rows: the prompt is every turn up to the last Human turn both share."""
    split = read_splits(HH)[0]
    layout = detect(split.columns)
    assert layout.format == "preference" and layout.prompt is None
    rows = preference_rows(split, layout)
    assert len(rows) == len(split.rows) == 2312
    for row in rows:
        assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
        assert row["rejected"][0]["role"] == "assistant"
    one_turn = sum(len(r["chosen"]) == len(r["rejected"]) == 1 for r in rows)
    assert one_turn >= 2300  # a handful of rows differ before their last assistant turn
    first = split.rows[0]["chosen"]
    assert first.endswith(rows[0]["chosen"][0]["content"])
    assert f"Human: {rows[0]['prompt'][-1]['content']}\n\nAssistant: {rows[0]['chosen'][0]['content']}" \
        in first
    texts = text_rows(split, layout, "preference")
    assert texts[0]["prompt"] == rows[0]["prompt"][-1]["content"]
    assert texts[0]["response"] == texts[0]["chosen"] == rows[0]["chosen"][0]["content"]


def test_an_implicit_prompt_ends_with_a_user_turn(tmp_path):
    """Conversations that part on a user turn: the shared assistant turn goes to both completions."""
    chosen = turn("user", "u1") + turn("assistant", "a1") + turn("user", "u2") + turn("assistant", "a2")
    rejected = chosen[:2] + turn("user", "other") + turn("assistant", "x")
    split = read_splits(write_jsonl(tmp_path / "m.jsonl", [{"chosen": chosen, "rejected": rejected}]))[0]
    assert preference_rows(split, detect(split.columns)) == [
        {"prompt": chosen[:1], "chosen": chosen[1:], "rejected": rejected[1:]}]


def test_plain_text_pairs_without_a_prompt_are_refused_for_training_only(tmp_path):
    split = read_splits(write_jsonl(tmp_path / "p.jsonl", [{"chosen": "Yes.", "rejected": "No."}]))[0]
    layout = detect(split.columns)
    assert text_rows(split, layout, "preference")[0] == {"prompt": "", "chosen": "Yes.", "rejected": "No.",
                                                          "response": "Yes."}
    with pytest.raises(FactoryError, match=r"p.jsonl: row 1: no prompt: add a 'prompt' column"):
        preference_rows(split, layout)


def test_build_qc_and_hugging_face_folders(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datasets import Dataset, DatasetDict

    built = tmp_path / "built"
    built.mkdir()
    pair = {"id": "a", "prompt": "Q?", "chosen": "A.", "rejected": "B."}
    pq.write_table(pa.Table.from_pylist([pair]), built / "dpo.parquet")
    write_jsonl(built / "dpo.jsonl", [pair, pair])  # the parquet of the same name wins
    write_jsonl(built / "sft.jsonl", [{"messages": [{"from": "human", "value": "Hi"},
                                                    {"from": "gpt", "value": "Hello"}]}])
    write_jsonl(built / "rejects.jsonl", [{"id": "x"}])
    (built / "stats.json").write_text("{}")
    splits = read_splits(built)
    assert [(s.name, Path(s.source).name, len(s.rows)) for s in splits] == [
        ("dpo", "dpo.parquet", 1), ("sft", "sft.jsonl", 1)]
    sft = splits[1]
    assert prompt_completion_rows(sft, detect(sft.columns)) == [  # ShareGPT from/value -> role/content
        {"prompt": turn("user", "Hi"), "completion": turn("assistant", "Hello")}]

    saved = tmp_path / "saved"
    DatasetDict({"train": Dataset.from_list([{"question": "2+2?", "answer": 4}] * 3),
                 "test": Dataset.from_list([{"question": "3+3?", "answer": 6}])}).save_to_disk(str(saved))
    splits = read_splits(saved)
    assert [(s.name, s.source, len(s.rows)) for s in splits] == [
        ("test", f"{saved}[test]", 1), ("train", f"{saved}[train]", 3)]
    assert prompt_answer_rows(splits[0], detect(splits[0].columns)) == [
        {"prompt": [{"role": "user", "content": "3+3?"}], "answer": "6"}]

    hub = tmp_path / "hub"
    (hub / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([pair] * 2), hub / "data" / "train-00000-of-00001.parquet")
    assert [(s.name, len(s.rows)) for s in read_splits(hub)] == [("train", 2)]

    (tmp_path / "empty").mkdir()
    with pytest.raises(FactoryError, match=r"empty: no <split>.parquet or <split>.jsonl here"):
        read_splits(tmp_path / "empty")


def test_bad_rows_name_the_file_and_the_row(tmp_path):
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    split = read_splits(write_jsonl(tmp_path / "c.jsonl", [{"messages": chat}, {"messages": chat[:1]}]))[0]
    with pytest.raises(FactoryError, match=r"c.jsonl: row 2: messages need a user turn then an assistant"):
        prompt_completion_rows(split, detect(split.columns))
    split = read_splits(write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "chosen": 3, "rejected": "b"}]))[0]
    with pytest.raises(FactoryError, match=r"d.jsonl: row 1: 'chosen' and 'rejected' must be text"):
        preference_rows(split, detect(split.columns))
    split = read_splits(write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": None}]))[0]
    with pytest.raises(FactoryError, match=r"g.jsonl: row 1: empty prompt or missing 'answer'"):
        prompt_answer_rows(split, detect(split.columns))


def test_kept_rows_keep_the_input_types_and_an_emptied_split_says_why(tmp_path):
    """write_split keeps the schema read (int stays int); a folder whose splits were all left out
    for having 0 rows names them and the reason instead of guessing at a Hugging Face layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trainers.methods import METHODS

    schema = pa.schema([("prompt", pa.string()), ("answer", pa.int32()), ("lineage", pa.struct(
        [("recipe", pa.string())]))])
    rows = [{"prompt": "2+2?", "answer": 4, "lineage": {"recipe": "r"}}]
    assert write_split(tmp_path, "grpo", rows, schema) == []
    assert pq.read_schema(tmp_path / "grpo.parquet").equals(schema)
    assert read_splits(tmp_path / "grpo.parquet")[0].rows == rows

    empty = tmp_path / "qc"
    empty.mkdir()
    (empty / "qc_stats.json").write_text(json.dumps({"splits": {"dpo": {
        "not_written": "0 rows: QC dropped every row (reward: reward_below_5 13)"}}}))
    with pytest.raises(FactoryError, match=r"qc: no split has rows \(dpo not written: 0 rows: QC dropped"):
        METHODS["dpo"].rows(empty, METHODS["dpo"].config())
    write_split(empty, "sft", [{"messages": turn("user", "q") + turn("assistant", "a")}])
    with pytest.raises(FactoryError, match=r"sft.parquet: dpo needs .*; it has messages \(dpo not written"):
        METHODS["dpo"].rows(empty, METHODS["dpo"].config())


def test_each_method_is_one_object():
    from factory.cli.train_cmd import TrainMethod
    from trainers.methods import METHODS

    assert list(METHODS) == [m.value for m in TrainMethod]
    completion = {"prompt": turn("user", "q"), "completion": turn("assistant", "ab")}
    pair = {"prompt": turn("user", "q"), "chosen": turn("assistant", "c"), "rejected": turn("assistant", "d")}
    assert METHODS["sft"].target_texts([completion]) == ["ab"]  # the completion only, never the prompt
    assert METHODS["dpo"].target_texts([pair]) == METHODS["reward"].target_texts([pair]) == ["c", "d"]
    assert METHODS["grpo"].target_texts([{"prompt": [], "answer": "4"}]) == []  # episodes instead
    assert [m.name for m in METHODS.values() if m.scoring_head] == ["reward"]
