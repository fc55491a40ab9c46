"""Seeds load from inline rows and from every supported file kind, with the same records."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from conftest import fake_recipe_text
from factory.core.record import seed_record_id
from factory.engine.plan import BuildOptions, plan_build

ROWS = [{"prompt": "What is 2 + 2?", "category": "math"},
        {"prompt": "Name a colour.", "category": "facts"},
        {"prompt": "Say hi.", "category": "writing"}]


def seed_file(tmp_path, kind: str):
    path = tmp_path / f"seeds.{kind}"
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif kind == "json":
        path.write_text(json.dumps(ROWS))
    elif kind == "csv":
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["prompt", "category"])
            writer.writeheader()
            writer.writerows(ROWS)
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path)
    elif kind == "hf":
        datasets = pytest.importorskip("datasets")
        path = tmp_path / "hf_folder"
        datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(path))
    return path


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "parquet", "hf"])
def test_seed_files(tmp_path, write_recipe, kind):
    recipe = write_recipe(fake_recipe_text(seeds=seed_file(tmp_path, kind)))
    plan = plan_build(recipe, BuildOptions())
    records = list(plan.seed_records())
    assert [r.fields for r in records] == ROWS and plan.seed_count == 3
    assert len({r.id for r in records}) == 3


def test_inline_rows_and_limit(write_recipe):
    text = fake_recipe_text().replace("seeds:\n  path: ", "seeds:\n  limit: 2\n  rows:\n"
        + "".join(f"    - {json.dumps(r)}\n" for r in ROWS) + "  #")
    plan = plan_build(write_recipe(text), BuildOptions())
    assert [r.fields for r in plan.seed_records()] == ROWS[:2] and plan.seed_count == 2
    limited = plan_build(write_recipe(text), BuildOptions(limit=1))
    assert len(list(limited.seed_records())) == limited.seed_count == 1


def _ids_in_a_fresh_process(recipe, hash_seed: str) -> list[str]:
    code = ("import sys; from factory.engine.plan import BuildOptions, plan_build; "
            "print(' '.join(r.id for r in plan_build(sys.argv[1], BuildOptions()).seed_records()))")
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", code, str(recipe)], capture_output=True, text=True,
                          env=env, check=True)
    return done.stdout.split()


def test_ids_are_stable_across_runs(tmp_path, write_recipe):
    """Two processes with different hash seeds (set and dict order, str hashes) give the same ids,
    and the ids are the documented function of (recipe, index, row), key order aside."""
    recipe = write_recipe(fake_recipe_text(seeds=seed_file(tmp_path, "jsonl")))
    first = _ids_in_a_fresh_process(recipe, "1")
    assert first == _ids_in_a_fresh_process(recipe, "2") and len(set(first)) == len(ROWS)
    assert seed_record_id("pairs", 0, {"prompt": "Name a fruit.", "category": "food"}) == "336756378f62e509"
    assert seed_record_id("pairs", 1, {"category": "food", "prompt": "Name a fruit."}) == "f243c63ad7cbb1e2"


def test_unsupported_file_kind(tmp_path, write_recipe):
    path = tmp_path / "seeds.txt"
    path.write_text("hello\n")
    from factory.core.errors import RecipeError

    with pytest.raises(RecipeError, match=r"seeds.txt: unsupported seed file type '.txt'"):
        plan_build(write_recipe(fake_recipe_text(seeds=path)), BuildOptions())
