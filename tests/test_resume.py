"""kill -9 a real build mid-run, rerun: only missing calls are made, output is byte-identical."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import fake_recipe_text, read_jsonl, run_cli

FILES = ("dpo.jsonl", "sft.jsonl", "dpo.parquet", "sft.parquet", "rejects.jsonl", "stats.json",
         "README.md")


def same_dataset(a: Path, b: Path) -> None:
    """The same files (a 0-row split has none) with the same bytes; run.json is this run's own."""
    names = sorted(p.name for p in a.iterdir() if p.name != "run.json")
    assert names == sorted(p.name for p in b.iterdir() if p.name != "run.json")
    assert set(FILES) & set(names) >= {"rejects.jsonl", "stats.json", "README.md"}
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def cached_calls(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_sigkill_then_resume_is_identical(write_recipe, tmp_path):
    recipe = write_recipe(fake_recipe_text(concurrency=4, latency=0.01))
    total_calls = 48 * 4
    # Reference: one uninterrupted build with its own cache.
    ref_env = {"FACTORY_CACHE_DIR": str(tmp_path / "ref_cache"), "PATH": "/usr/bin:/bin"}
    ref = run_cli("build", str(recipe), "--output", str(tmp_path / "ref"), env=ref_env)
    assert ref.returncode == 0, ref.stderr

    env = {"FACTORY_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    db = tmp_path / "cache" / "requests.sqlite"
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "factory.cli", "build", str(recipe), "--output",
                             str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while cached_calls(db) < total_calls // 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    done_before = cached_calls(db)
    assert 0 < done_before < total_calls
    assert not out.exists()  # nothing half-written where the dataset belongs

    again = run_cli("build", str(recipe), "--output", str(out), env=env)
    assert again.returncode == 0, again.stderr
    calls = json.loads((out / "run.json").read_text())["calls"]["default"]
    assert calls["cached"] == done_before
    assert calls["made"] == total_calls - done_before
    same_dataset(out, tmp_path / "ref")
    ids = [r["id"] for r in read_jsonl(out / "dpo.jsonl")] + \
          [r["id"] for r in read_jsonl(out / "rejects.jsonl")]
    assert len(ids) == len(set(ids)) == 48
    assert not list(tmp_path.glob(".out.*"))  # no temporary folders left behind
