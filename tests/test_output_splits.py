"""Every split file a build writes loads in Hugging Face `datasets`; an empty split is left out and
the card and stats say why (a 0-row parquet does not load: "BatchSize must be greater than 0")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import FAKE_RECIPE, SEEDS, fake_recipe_text, read_jsonl, run_cli

datasets = pytest.importorskip("datasets")

TIE_RULE = """
      - match: "Compare two answers"
        reply: "They are equal. Verdict: [[TIE]]"
"""


def build(tmp_path: Path, text: str, name: str) -> Path:
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(text)
    out = tmp_path / name
    env = {"FACTORY_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    result = run_cli("build", str(recipe), "--limit", "6", "--output", str(out), env=env)
    assert result.returncode == 0, result.stderr
    return out


def load_every_split_file(folder: Path) -> dict[str, int]:
    """Rows per data file, each loaded the way the README says to load it."""
    rows = {}
    for file in sorted(folder.glob("*.parquet")) + sorted(folder.glob("*.jsonl")):
        if file.name == "rejects.jsonl":
            continue
        kind = "parquet" if file.suffix == ".parquet" else "json"
        rows[file.name] = len(datasets.load_dataset(kind, data_files=str(file), split="train"))
    return rows


def card_header(folder: Path) -> dict:
    text = (folder / "README.md").read_text()
    return yaml.safe_load(text.split("---")[1])


def test_empty_splits_are_left_out_with_the_reason_and_the_rest_loads(tmp_path):
    text = FAKE_RECIPE.format(seeds=SEEDS, concurrency=8, latency=0.0, judge_rule=TIE_RULE)
    out = build(tmp_path, text, "ties")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["totals"]["kept"] == 0 and stats["totals"]["rejected"] == 6
    for split in ("dpo", "sft"):
        counts = stats["splits"][split]
        assert counts["rows"] == 0
        assert counts["not_written"].startswith("0 rows: no record was kept")
        assert "judge: judge_tie 6" in counts["not_written"]
        assert not (out / f"{split}.parquet").exists() and not (out / f"{split}.jsonl").exists()
    assert load_every_split_file(out) == {}
    card = (out / "README.md").read_text()
    assert "| dpo | 0 | not written: 0 rows: no record was kept" in card
    assert "configs" not in card_header(out)  # no config may name a file that is not there
    assert len(read_jsonl(out / "rejects.jsonl")) == 6


def test_written_splits_load_by_file_and_by_config_name(tmp_path):
    out = build(tmp_path, fake_recipe_text(SEEDS), "pairs")
    stats = json.loads((out / "stats.json").read_text())
    kept = stats["totals"]["kept"]
    assert kept > 0  # the scripted judge decides some pairs
    assert load_every_split_file(out) == {"dpo.parquet": kept, "sft.parquet": kept,
                                         "dpo.jsonl": kept, "sft.jsonl": kept}
    assert [c["config_name"] for c in card_header(out)["configs"]] == ["dpo", "sft"]
    for name in ("dpo", "sft"):
        assert len(datasets.load_dataset(str(out), name, split="train")) == kept
        assert "not_written" not in stats["splits"][name]


def test_a_split_whose_columns_are_never_text_is_left_out_with_that_reason(tmp_path):
    recipe = yaml.safe_load(fake_recipe_text(SEEDS))
    recipe["outputs"]["splits"]["judged"] = {"format": "sft", "completion": "judgement"}
    out = build(tmp_path, yaml.safe_dump(recipe, sort_keys=False), "mixed")
    counts = json.loads((out / "stats.json").read_text())["splits"]["judged"]
    assert counts["rows"] == 0 and counts["skipped"] == {"not_text:judgement": counts["skipped"]
                                                           ["not_text:judgement"]}
    assert "lacked a text column this split needs (not_text:judgement" in counts["not_written"]
    assert not (out / "judged.parquet").exists()
    assert "judged.parquet" not in load_every_split_file(out)
