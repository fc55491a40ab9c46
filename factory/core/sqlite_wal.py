"""Opening one SQLite file from several processes at once (the build, Ray workers, a rerun).

Every write waits up to 30 s for a lock (``busy_timeout``, set before anything else). Switching a
new file to WAL needs the file to itself, and SQLite refuses that at once ("database is locked")
instead of waiting when another process is switching it or creating a table at the same moment:
two Ray workers opening a fresh cache together hit this. So the switch and the table creation are
retried until the 30 s are up.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

BUSY_S = 30.0


def open_wal(path: str | Path, *create: str) -> sqlite3.Connection:
    """An autocommit connection to ``path`` in WAL mode, with the ``create`` statements run."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_S)
    db.execute(f"PRAGMA busy_timeout={int(BUSY_S * 1000)}")
    deadline = time.monotonic() + BUSY_S
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            for statement in create:
                db.execute(statement)
            return db
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
