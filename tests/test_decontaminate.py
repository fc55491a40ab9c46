"""Decontamination: records sharing a 13-word sequence with an eval set (or a whole short eval text)
are dropped as ``contaminated`` with the n-gram and the set's name; eval sets from files, HF folders
and chain files; a missing optional set is skipped and said so."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, read_jsonl, run_cli
from factory.core.errors import FactoryError
from factory.core.record import Record
from filters.base import Drop, Failed, Keep, QCContext
from filters.config import DecontaminateBlock
from filters.decontaminate import DecontaminateFilter

EVAL = [
    {"prompt": "Write a letter to a friend in which you describe the last time you went camping in the mountains during winter."},
    {"prompt": "List three facts about otters."},  # 5 words: shorter than min_words, never matched
    {"prompt": "Explain how a bicycle gear works to a ten year old child."},  # 12 words: matched whole
]


def block(tmp_path, **kw) -> DecontaminateBlock:
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in EVAL))
    spec = {"filter": "decontaminate", "eval_sets": [{"path": str(path), "name": "myeval"}], **kw}
    return DecontaminateBlock.model_validate(spec)


def run(f: DecontaminateFilter, texts: list[str], column: str = "prompt"):
    records = [Record(f"r{i}", {column: t}, "t") for i, t in enumerate(texts)]
    return f.filter_batch(records, QCContext())


def test_a_shared_13_gram_drops_the_record_with_the_ngram_and_the_set_name(tmp_path):
    f = DecontaminateFilter(block(tmp_path))
    out = run(f, [
        "Please, WRITE a letter to a friend in which you describe the last time you went camping!",
        "Send a letter to a friend in which you describe the last time we met.",  # 12 words shared
        "Can you explain how a bicycle gear works to a ten-year-old child? Thanks.",  # whole short text
        "List three facts about otters.",  # the 5-word eval text is too short to count as a copy
        "Describe camping in the mountains.",
    ])
    assert isinstance(out[0], Drop) and out[0].reason == "contaminated"
    assert out[0].detail == ('13-gram "write a letter to a friend in which you describe the last time" '
                             "in eval set myeval (row 1), column prompt")
    assert isinstance(out[1], Keep)
    assert isinstance(out[2], Drop) and "12-gram" in out[2].detail and "(row 3)" in out[2].detail
    assert isinstance(out[3], Keep) and isinstance(out[4], Keep)
    assert f.info["eval_sets"] == {"myeval": 3} and f.info["ngram"] == 13


def test_ngram_length_and_columns_are_configurable(tmp_path):
    f = DecontaminateFilter(block(tmp_path, ngram=6, columns=["prompt", "response"]))
    records = [Record("a", {"prompt": "Tell me a story.", "response": "the last time you went camping"}, "t"),
               Record("b", {"prompt": "Tell me a story."}, "t")]
    out = f.filter_batch(records, QCContext())
    assert isinstance(out[0], Drop) and "6-gram" in out[0].detail and "column response" in out[0].detail
    assert isinstance(out[1], Failed)  # no text to check: counted as failed, never passed silently


def test_missing_eval_sets_optional_is_skipped_and_said_required_is_an_error(tmp_path):
    spec = {"filter": "decontaminate",
            "eval_sets": [{"path": str(tmp_path / "absent.jsonl"), "name": "gone", "optional": True}]}
    f = DecontaminateFilter(DecontaminateBlock.model_validate(spec))
    assert isinstance(run(f, ["anything at all"])[0], Keep)
    assert f.info["skipped"] and "not run: no eval set found" in f.info["method"]
    spec["eval_sets"][0]["optional"] = False
    with pytest.raises(FactoryError, match="eval set gone: .*absent.jsonl not found"):
        run(DecontaminateFilter(DecontaminateBlock.model_validate(spec)), ["x"])


def test_eval_set_from_a_hugging_face_dataset_folder(tmp_path):
    from datasets import Dataset

    Dataset.from_list(EVAL).save_to_disk(str(tmp_path / "hf_eval"))
    spec = {"filter": "decontaminate", "eval_sets": [{"path": str(tmp_path / "hf_eval")}]}
    f = DecontaminateFilter(DecontaminateBlock.model_validate(spec))
    out = run(f, ["You describe the last time you went camping in the mountains during winter, ok?"])
    assert isinstance(out[0], Drop) and "eval set hf_eval" in out[0].detail


def test_embedding_near_duplicate_is_contaminated_too(tmp_path):
    pytest.importorskip("sentence_transformers")
    f = DecontaminateFilter(block(tmp_path, embedding={"threshold": 0.85}))
    out = run(f, ["Write a letter to a friend describing your last winter camping trip in the mountains.",
                  "What is the boiling point of water at sea level?"])
    assert isinstance(out[0], Drop) and out[0].detail.startswith("embedding cosine")
    assert isinstance(out[1], Keep)


def test_factory_qc_with_a_chain_file_resolves_eval_paths_next_to_it(tmp_path):
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in EVAL))
    chain = tmp_path / "chain.yaml"
    chain.write_text("filters:\n  - filter: decontaminate\n    eval_sets:\n      - {path: evals/bench.jsonl}\n")
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"prompt": EVAL[0]["prompt"], "response": "ok"}) + "\n"
                    + json.dumps({"prompt": "A fresh question.", "response": "ok"}) + "\n")
    result = run_cli("qc", str(data), "--chain", str(chain), "--output", str(tmp_path / "out"), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rejects = read_jsonl(tmp_path / "out" / "rejects.jsonl")
    assert [(r["reason"], r["row"]) for r in rejects] == [("contaminated", 1)]
    assert "eval set bench (row 1)" in rejects[0]["detail"]
    # stats.json must be the same bytes on a rebuild: this run's timings stay out of it
    info = json.loads((tmp_path / "out" / "qc_stats.json").read_text())["splits"]["data"]["filters"]["decontaminate"]
    assert info["eval_ngrams"] > 0 and not [k for k in info if k.endswith("_s")]


def test_bad_block_is_a_one_line_error_with_file_and_line(tmp_path):
    chain = tmp_path / "chain.yaml"
    chain.write_text("filters:\n  - filter: decontaminate\n    ngram: 2\n    eval_sets: [{path: x.jsonl}]\n")
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"prompt": "A question.", "response": "ok"}) + "\n")
    result = run_cli("qc", str(data), "--chain", str(chain), cwd=ROOT)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{chain}:3: filters[0].ngram:" in result.stderr


def test_two_short_eval_texts_with_the_same_first_words_are_both_found(tmp_path):
    evals = [{"prompt": "Describe the water cycle for a class of young pupils today."},
             {"prompt": "Describe the water cycle for a class of adult learners please."}]
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in evals))
    f = DecontaminateFilter(DecontaminateBlock.model_validate(
        {"filter": "decontaminate", "eval_sets": [{"path": str(path)}]}))
    out = run(f, ["Hi! Describe the water cycle for a class of adult learners, please.",
                  "Describe the water cycle for a class of young pupils today!",
                  "Describe the water cycle for a class of children."])
    assert isinstance(out[0], Drop) and "(row 2)" in out[0].detail
    assert isinstance(out[1], Drop) and "(row 1)" in out[1].detail
    assert isinstance(out[2], Keep)
