"""The request cache: every finished LLM call, committed the moment it returns.

SQLite in WAL mode with one row per call. Autocommit makes each result durable against a killed
process (kill -9) before the next call starts, so a rerun makes only the calls that are missing.
"""

from __future__ import annotations

from pathlib import Path

from factory.core.sqlite_wal import open_wal
from factory.llm.request import Completion


class RequestCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = open_wal(self.path, "CREATE TABLE IF NOT EXISTS calls "
                                      "(key TEXT PRIMARY KEY, completion TEXT NOT NULL)")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durable across process death, cheap

    def get(self, key: str) -> Completion | None:
        row = self.db.execute("SELECT completion FROM calls WHERE key = ?", (key,)).fetchone()
        return Completion.from_json(row[0]) if row else None

    def __contains__(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM calls WHERE key = ?", (key,)).fetchone() is not None

    def put(self, key: str, completion: Completion) -> None:
        if completion.error is not None:
            return  # a failure is retried on the next run, never replayed
        self.db.execute("INSERT OR REPLACE INTO calls (key, completion) VALUES (?, ?)",
                        (key, completion.to_json()))

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        self.db.close()
