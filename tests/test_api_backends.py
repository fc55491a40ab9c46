"""The anthropic and openai_compatible backends, through the real SDKs, against the fake servers of
factory/fake_api.py on 127.0.0.1: faults, retries, budget cap and resume, batches, key hygiene."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SEEDS, read_jsonl, run_cli
from factory.llm.backends import backend_class
from factory.llm.backends.base import BackendSettings
from factory.llm.backends.fake_api import FakeServer, Faults
from factory.llm.request import Request, SamplingParams

KEY = "sk-ant-test-DO-NOT-LEAK-7f3a9c"
N_SEEDS = 48  # dpo_prompts.jsonl

RECIPE = """name: api
seeds: {{path: {seeds}}}
backend:
  name: {backend}
  model: {model}
  concurrency: {concurrency}
  params: {{max_tokens: 20}}
  options: {options}
steps:
  - {{name: answer, kind: generate, reads: [prompt], writes: answer, prompt: "{{prompt}}"}}
  - {{name: critique, kind: generate, reads: [answer], writes: critique, prompt: "Critique: {{answer}}"}}
outputs:
  splits:
    sft: {{format: sft, completion: answer}}
"""


def recipe(tmp_path: Path, server: FakeServer, backend: str = "anthropic", concurrency: int = 8,
           **options) -> Path:
    base = server.base_url + ("/v1" if backend == "openai_compatible" else "")
    opts = {"base_url": base, "timeout": 1.0, "backoff_s": 0.02, **options}
    model = "claude-haiku-4-5" if backend == "anthropic" else "served-model"
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(seeds=SEEDS, backend=backend, model=model, concurrency=concurrency,
                                  options=json.dumps(opts)))
    return path


def env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "FACTORY_CACHE_DIR": str(tmp_path / "cache"),
            "ANTHROPIC_API_KEY": KEY, "OPENAI_API_KEY": KEY}


def cache_rows(tmp_path: Path) -> list[dict]:
    with sqlite3.connect(tmp_path / "cache" / "requests.sqlite") as db:
        return [json.loads(c) for (c,) in db.execute("SELECT completion FROM calls")]


@pytest.mark.parametrize("backend", ["anthropic", "openai_compatible"])
def test_faults_every_record_accounted_retries_counted_errors_never_cached(tmp_path, backend):
    # 20% faults (429, 500, 529, stalls past the 1 s timeout, cut-off bodies) + 5% malformed JSON.
    with FakeServer(Faults.uniform(0.20, 0.05, stall=3.0, seed=1), api_key=KEY) as server:
        path = recipe(tmp_path, server, backend, max_attempts=2)  # 2 tries: some calls must fail
        first = run_cli("build", str(path), "--output", str(tmp_path / "out"), env=env(tmp_path))
        assert first.returncode == 5, first.stderr  # written, but records failed: a rerun retries them
        assert "record(s) failed (answer: backend_error" in first.stderr
        out = tmp_path / "out"
        stats = json.loads((out / "stats.json").read_text())["totals"]
        rejects = read_jsonl(out / "rejects.jsonl")
        kept = read_jsonl(out / "sft.jsonl")
        assert stats["input"] == N_SEEDS == len(kept) + len(rejects)
        assert stats["failed"] == len(rejects) > 0
        assert {r["reason"] for r in rejects} == {"backend_error"}
        calls = json.loads((out / "run.json").read_text())["calls"]["default"]
        assert calls["retries"] > 0 and calls["throttled"] > 0 and calls["timeouts"] > 0
        assert calls["malformed"] > 0 and calls["server_errors"] > 0
        assert calls["failed"] > 0
        assert all(row["error"] is None for row in cache_rows(tmp_path))
        assert len(cache_rows(tmp_path)) == calls["made"] - calls["failed"]
        assert server.counts["fault_truncated"] and server.counts["fault_timeout"]

        path = recipe(tmp_path, server, backend, max_attempts=8)
        again = run_cli("build", str(path), "--output", str(out), env=env(tmp_path))
        assert again.returncode == 0, again.stderr
        assert len(read_jsonl(out / "sft.jsonl")) == N_SEEDS  # the failures were retried
        assert read_jsonl(out / "rejects.jsonl") == []
        calls2 = json.loads((out / "run.json").read_text())["calls"]["default"]
        assert calls2["cached"] == calls["made"] - calls["failed"]


def test_budget_stops_cleanly_and_rerun_resumes(tmp_path):
    # A price that makes each call cost about a cent: 96 calls would be ~$1.
    price = {"input": 1000.0, "output": 100.0}
    with FakeServer(Faults(seed=2), api_key=KEY) as server:
        path = recipe(tmp_path, server, price=price)
        stopped = run_cli("build", str(path), "--output", str(tmp_path / "out"), "--budget-usd", "0.3",
                          env=env(tmp_path))
        assert stopped.returncode == 4, stopped.stderr
        message = [line for line in stopped.stderr.splitlines() if line.strip()]
        assert len(message) == 1 and "budget reached" in message[0], stopped.stderr
        assert "Traceback" not in stopped.stderr
        assert not (tmp_path / "out").exists()
        done = len(cache_rows(tmp_path))
        spent = sum(price["input"] * r["prompt_tokens"] + price["output"] * r["completion_tokens"]
                    for r in cache_rows(tmp_path)) / 1e6
        assert 0 < done < 2 * N_SEEDS and spent <= 0.3
        made_before = server.counts["ok"]

        resumed = run_cli("build", str(path), "--output", str(tmp_path / "out"), "--budget-usd", "10",
                          env=env(tmp_path))
        assert resumed.returncode == 0, resumed.stderr
        calls = json.loads((tmp_path / "out" / "run.json").read_text())["calls"]["default"]
        assert calls["cached"] == done and calls["made"] == 2 * N_SEEDS - done
        assert server.counts["ok"] - made_before == 2 * N_SEEDS - done
        assert calls["cost_usd"] > 0
        steps = json.loads((tmp_path / "out" / "run.json").read_text())["step_calls"]
        assert set(steps) == {"answer", "critique"}
        assert sum(s["made"] for s in steps.values()) == calls["made"]


def test_api_key_never_written_or_logged(tmp_path):
    faults = Faults.uniform(0.2, 0.05, stall=3.0, seed=3, batch_expire_rate=0.1, batch_seconds=0.1)
    with FakeServer(faults, api_key=KEY) as server:
        logs = []
        for options in ({"max_attempts": 2}, {"batch": True, "batch_wait_s": 0.05, "poll_s": 0.05}):
            path = recipe(tmp_path, server, **options)
            for extra in ([], ["--budget-usd", "0.0001"]):
                run = run_cli("build", str(path), "--output", str(tmp_path / "out"), *extra,
                              env={**env(tmp_path), "FACTORY_DEBUG": "1"})
                logs += [run.stdout, run.stderr]
        wrong = run_cli("build", str(path), "--output", str(tmp_path / "out2"),
                        env={**env(tmp_path), "ANTHROPIC_API_KEY": KEY + "x"})
        logs += [wrong.stdout, wrong.stderr]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "rejects.jsonl" for p in files) and any(p.suffix == ".sqlite" for p in files)
    for p in files:
        assert KEY.encode() not in p.read_bytes(), p
    for text in logs:
        assert KEY not in text


def test_missing_key_is_one_line(tmp_path):
    with FakeServer() as server:
        path = recipe(tmp_path, server)
        run = run_cli("build", str(path), env={"PATH": "/usr/bin:/bin",
                                               "FACTORY_CACHE_DIR": str(tmp_path / "c")})
    assert run.returncode != 0
    assert run.stderr.strip().count("\n") == 0 and "ANTHROPIC_API_KEY is not set" in run.stderr


def test_batches_resubmit_expired_and_resume_after_kill(tmp_path):
    faults = Faults(batch_seconds=4.0, batch_expire_rate=0.15, batch_error_rate=0.05, seed=4)
    with FakeServer(faults, api_key=KEY) as server:
        # 20% of entries come back expired or errored per try. Which entries get which fault
        # depends on how the calls fell into batches (timing), and with the default 3 resubmits
        # one of the 96 entries fails all 4 tries in ~1 run of 7: a fresh-clone CI run hit it.
        # 8 resubmits make that ~1 in 20,000; the resume and accounting checks are unchanged.
        opts = {"batch": True, "batch_wait_s": 0.2, "poll_s": 0.1, "max_resubmits": 8}
        path = recipe(tmp_path, server, concurrency=200, **opts)
        state = tmp_path / "cache" / "anthropic_batches.sqlite"
        proc = subprocess.Popen([sys.executable, "-m", "factory.cli", "build", str(path), "--output",
                                 str(tmp_path / "out")], env=env(tmp_path), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while server.counts["batches"] < 1 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the state row is written right after the create call returns
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with sqlite3.connect(state) as db:
            pending = db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
        assert 0 < pending <= N_SEEDS  # the first step's batch(es) were submitted and recorded
        entries_before = server.counts["batch_entries"]

        run = run_cli("build", str(path), "--output", str(tmp_path / "out"), env=env(tmp_path))
        assert run.returncode == 0, run.stderr
        assert len(read_jsonl(tmp_path / "out" / "sft.jsonl")) == N_SEEDS
        calls = json.loads((tmp_path / "out" / "run.json").read_text())["calls"]["default"]
        assert calls["batch_resumed"] == pending  # waited on the old batch, did not pay again
        assert calls["batch_resubmitted"] > 0  # expired/errored entries went out again
        # Only what was not yet recorded, the second step and the resubmissions went out after it.
        assert server.counts["batch_entries"] - entries_before == \
            (N_SEEDS - pending) + N_SEEDS + calls["batch_resubmitted"]
        with sqlite3.connect(state) as db:
            assert db.execute("SELECT COUNT(*) FROM pending").fetchone()[0] == 0
        # Batch price is half: haiku-4-5 at $1/$5 per Mtok.
        tokens = calls["prompt_tokens"] * 1.0 + calls["completion_tokens"] * 5.0
        assert calls["cost_usd"] == pytest.approx(tokens / 1e6 / 2, rel=1e-3)


def test_retry_after_is_honored():
    async def one(url: str) -> tuple[float, dict]:
        backend = backend_class("openai_compatible")(BackendSettings(
            "m", 1, {"base_url": url + "/v1", "backoff_s": 0.0, "max_attempts": 10}))
        start = time.perf_counter()
        (c,) = await backend.generate([Request.chat([{"role": "user", "content": "hi"}], SamplingParams())])
        await backend.close()
        assert c.error is None
        return time.perf_counter() - start, backend.counters()

    with FakeServer(Faults(rate_429=1.0, retry_after=0.25, seed=5)) as server:
        elapsed, counters = asyncio.run(_flip_after_two(server, one))  # 429, 429, then ok
    assert counters["retries"] >= 1 and counters["throttled"] >= 1
    assert elapsed >= 0.25 * counters["retries"]


async def _flip_after_two(server: FakeServer, one):
    async def flip() -> None:
        while server.counts["fault_429"] < 2:
            await asyncio.sleep(0.01)
        server.faults.rate_429 = 0.0

    flipper = asyncio.create_task(flip())
    result = await one(server.base_url)
    await flipper
    return result


def test_adaptive_limiter_converges_below_a_hidden_limit(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "unused")
    async def run(url: str):
        backend = backend_class("anthropic")(BackendSettings(
            "claude-haiku-4-5", 64, {"base_url": url, "backoff_s": 0.05}))
        requests = [Request.chat([{"role": "user", "content": f"q{i}"}], SamplingParams(max_tokens=5))
                    for i in range(300)]
        out = await backend.generate(requests)
        await backend.close()
        return out, backend.limiter

    # 200 ms replies: the server's limit, not this process's CPU, is what binds.
    with FakeServer(Faults(latency=0.2, concurrency_limit=12, retry_after=0.05)) as server:
        out, limiter = asyncio.run(run(server.base_url))
    assert all(c.error is None for c in out)
    late = [limit for t, limit, _ in limiter.trace[len(limiter.trace) // 2:]]
    assert late and 6 <= sum(late) / len(late) <= 16, limiter.trace[-20:]
    assert server.max_in_flight <= 12


def test_dry_run_shows_dollars_per_step(tmp_path):
    with FakeServer(api_key=KEY) as server:
        path = recipe(tmp_path, server)  # claude-haiku-4-5: $1 / $5 per Mtok; max_tokens 20
        run = run_cli("build", str(path), "--dry-run", env=env(tmp_path))
        assert server.counts["requests"] == 0
    assert run.returncode == 0, run.stderr
    assert "≤ USD" in run.stdout
    answer = next(line for line in run.stdout.splitlines() if line.startswith("│ answer"))
    usd = float(answer.split("│")[-2])
    assert usd >= N_SEEDS * 20 * 5 / 1e6  # at least the worst-case output of every call


QC_JUDGE_RECIPE = """name: api_qc
seeds: {{path: {seeds}}}
backend: {{name: fake}}
steps:
  - {{name: answer, kind: generate, reads: [prompt], writes: answer, prompt: "{{prompt}}"}}
qc:
  - filter: reward
    column: answer
    gate: null   # unmeasured cut: these tests count the scoring calls alone (the gate's have their own tests)
    scorer:
      kind: judge
      backend: {{name: anthropic, model: claude-haiku-4-5, options: {options}}}
outputs:
  splits:
    sft: {{format: sft, completion: answer}}
"""


def test_budget_caps_a_qc_judge_and_rerun_resumes_from_the_cache(tmp_path):
    # Free steps (fake backend), a paid QC judge: each judge call reserves ~$0.1 (its prompt at
    # $1000/Mtok plus 300 tokens of room at $100/Mtok), so $0.5 allows a few of the 48.
    price = {"input": 1000.0, "output": 100.0}
    options = {"base_url": None, "timeout": 1.0, "backoff_s": 0.02, "price": price}
    with FakeServer(Faults(seed=6), api_key=KEY) as server:
        path = tmp_path / "recipe.yaml"
        path.write_text(QC_JUDGE_RECIPE.format(seeds=SEEDS, options=json.dumps(
            {**options, "base_url": server.base_url})))
        stopped = run_cli("build", str(path), "--output", str(tmp_path / "out"), "--budget-usd", "0.5",
                          env=env(tmp_path))
        assert stopped.returncode == 4, stopped.stdout + stopped.stderr
        message = [line for line in stopped.stderr.splitlines() if line.strip()]
        assert len(message) == 1 and "budget reached" in message[0], stopped.stderr
        made = server.counts["ok"]
        assert server.counts["requests"] == made  # a refused call never reaches the server
        assert 0 < made < N_SEEDS and f"{N_SEEDS - made} call(s) not made" in message[0], message[0]
        spent = float(message[0].split("$")[1].split()[0])
        assert 0 < spent <= 0.5
        assert not (tmp_path / "out").exists()

        resumed = run_cli("build", str(path), "--output", str(tmp_path / "out"), "--budget-usd", "100",
                          env=env(tmp_path))
        # The fake server's replies are no rubric, so every record fails as unscored (exit 5, the
        # dataset written): what matters here is which calls were made.
        assert resumed.returncode == 5 and "48 record(s) failed (qc)" in resumed.stderr, resumed.stderr
        judge = json.loads((tmp_path / "out" / "run.json").read_text())["calls"]["qc.reward"]
        assert judge["cached"] == made and judge["made"] == N_SEEDS - made and judge["not_made_budget"] == 0
        assert server.counts["ok"] == N_SEEDS and judge["cost_usd"] > 0


def test_qc_judge_refused_by_the_budget_fails_records_as_budget_exhausted(tmp_path, monkeypatch):
    from factory.core.record import Record
    from factory.llm.session import run_blocking
    from filters.base import Chain, QCContext
    from filters.config import RewardBlock
    from filters.reward import RewardFilter

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeServer(api_key=KEY) as server:
        block = RewardBlock.model_validate({"filter": "reward", "scorer": {"kind": "judge", "backend": {
            "name": "anthropic", "model": "claude-haiku-4-5",
            "options": {"base_url": server.base_url, "price": {"input": 1000.0, "output": 100.0}}}}})
        records = [Record(f"r{i}", {"prompt": f"Question {i}?", "response": "An answer."}, "t")
                   for i in range(4)]

        def qc(llm):
            return Chain([RewardFilter(block)]).run(records, QCContext(llm=llm)), llm.budget, llm.calls()

        result, budget, calls = run_blocking(qc, tmp_path / "c.sqlite", budget_usd=0.0)
        assert server.counts["requests"] == 0
    assert [(r.reason, r.failed) for r in result.rejects] == [("budget_exhausted", True)] * 4
    assert budget.refused == 4 and calls["qc.reward"]["not_made_budget"] == 4
    with sqlite3.connect(tmp_path / "c.sqlite") as db:  # a refused call is never cached
        assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 0
