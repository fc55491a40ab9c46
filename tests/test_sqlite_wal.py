"""Several processes opening one fresh SQLite file at the same moment (Ray workers on a new cache):
none may fail with "database is locked"."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from factory.llm.cache import RequestCache
from factory.llm.request import Completion


def _open_and_write(path: str, barrier, index: int) -> None:
    barrier.wait()
    cache = RequestCache(path)
    cache.put(f"k{index}", Completion(text=str(index)))


def test_processes_opening_a_fresh_cache_together_all_succeed(tmp_path: Path):
    ctx = mp.get_context("fork")
    for round_ in range(15):
        path = str(tmp_path / f"r{round_}" / "requests.sqlite")
        barrier = ctx.Barrier(6)
        procs = [ctx.Process(target=_open_and_write, args=(path, barrier, i)) for i in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 6, f"round {round_}: a process failed to open the cache"
        assert len(RequestCache(path)) == 6
