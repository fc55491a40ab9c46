"""People's verdicts on dataset rows: ``reviews.jsonl`` (append-only) and ``review_queue.json``.

One verdict per line: ``{id, reviewer, verdict: keep|drop|edit, reason, edits: {role: text}, at}``.
A line is appended with one ``write`` and fsync'd before the review app reports it saved, so a
killed server or a closed tab loses no verdict the page showed as saved; a line torn by a crash
mid-write is skipped when read. A reviewer who changes their mind appends a new line: the latest
line per (reviewer, row) counts. Several reviewers (and several servers) may append to one file.

Combining reviewers (``decide``): a row any reviewer dropped is dropped; otherwise the latest edit
wins; otherwise it is kept.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

VERDICTS = ("keep", "drop", "edit")
QUEUE_FILE = "review_queue.json"
REVIEWS_FILE = "reviews.jsonl"
MAX_NAME = 64


@dataclass(frozen=True)
class HumanVerdict:
    id: str
    reviewer: str
    verdict: str  # keep | drop | edit
    reason: str = ""
    edits: dict[str, str] = field(default_factory=dict)  # role (prompt, chosen, response) -> new text
    at: str = ""  # UTC time the server saved it

    @property
    def label(self) -> str:
        """keep or drop: an edited row stays in the dataset."""
        return "drop" if self.verdict == "drop" else "keep"

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "reviewer": self.reviewer, "verdict": self.verdict,
                               "reason": self.reason}
        if self.edits:
            row["edits"] = dict(self.edits)
        row["at"] = self.at
        return row

    @classmethod
    def from_row(cls, row: Any) -> "HumanVerdict":
        """Checked: a ValueError says what is wrong (the app answers it with a 400)."""
        if not isinstance(row, dict):
            raise ValueError("a verdict is a JSON object")
        rid, reviewer, verdict = row.get("id"), row.get("reviewer"), row.get("verdict")
        reason, edits = row.get("reason") or "", row.get("edits") or {}
        if not isinstance(rid, str) or not rid:
            raise ValueError("'id' must be a row id")
        check_reviewer(reviewer)
        if verdict not in VERDICTS:
            raise ValueError(f"'verdict' must be one of {', '.join(VERDICTS)}")
        if not isinstance(reason, str):
            raise ValueError("'reason' must be text")
        if not isinstance(edits, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in edits.items()):
            raise ValueError("'edits' must map a field to its new text")
        if verdict == "edit" and not edits:
            raise ValueError("an edit needs the edited text")
        if verdict != "edit" and edits:
            raise ValueError("only an edit carries edited text")
        if verdict == "drop" and not reason.strip():
            raise ValueError("a drop needs a reason")
        return cls(rid, reviewer.strip(), verdict, reason.strip(), dict(edits), str(row.get("at") or ""))


def check_reviewer(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("'reviewer' must be a name")
    if len(name) > MAX_NAME or any(not c.isprintable() for c in name):
        raise ValueError(f"'reviewer' must be printable and at most {MAX_NAME} characters")
    return name.strip()


def review_paths(dataset: Path) -> tuple[Path, Path]:
    """(queue, reviews) for a dataset folder, or beside a dataset file (``x.review_queue.json``)."""
    if dataset.is_dir():
        return dataset / QUEUE_FILE, dataset / REVIEWS_FILE
    stem = dataset.stem
    return dataset.with_name(f"{stem}.{QUEUE_FILE}"), dataset.with_name(f"{stem}.{REVIEWS_FILE}")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def append_verdict(path: Path, verdict: HumanVerdict) -> None:
    """Append one line durably: O_APPEND, one write, fsync (and the folder's entry when new)."""
    line = (json.dumps(verdict.as_row(), ensure_ascii=False) + "\n").encode("utf-8")
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn line from a crash: start afresh
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)


def read_verdicts(path: Path) -> list[HumanVerdict]:
    """Every well-formed verdict in file order; a torn or hand-broken line is skipped."""
    return load_verdicts(path)[0]


def load_verdicts(path: Path) -> tuple[list[HumanVerdict], int]:
    """(verdicts, how many non-blank lines were not a valid verdict)."""
    if not path.exists():
        return [], 0
    out, skipped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            out.append(HumanVerdict.from_row(json.loads(line)))
        except ValueError:  # json.JSONDecodeError is a ValueError too
            skipped += 1
    return out, skipped


def latest(verdicts: list[HumanVerdict]) -> dict[str, dict[str, HumanVerdict]]:
    """reviewer -> row id -> that reviewer's last verdict on the row."""
    out: dict[str, dict[str, HumanVerdict]] = {}
    for v in verdicts:
        out.setdefault(v.reviewer, {})[v.id] = v
    return out


@dataclass
class Decision:
    """What the reviewers' verdicts on one row add up to."""

    verdict: str  # keep | drop | edit
    by: dict[str, str]  # reviewer -> their verdict
    reason: str = ""  # the drop reasons, "alice: too vague; bob: wrong"
    edits: dict[str, str] = field(default_factory=dict)
    editor: str = ""


def decide(verdicts: list[HumanVerdict]) -> dict[str, Decision]:
    """Row id -> decision over every reviewer's latest verdict (any drop drops; latest edit wins)."""
    last = latest(verdicts)
    order = {(v.reviewer, v.id): i for i, v in enumerate(verdicts)}
    rows: dict[str, list[HumanVerdict]] = {}
    for per_row in last.values():
        for v in per_row.values():
            rows.setdefault(v.id, []).append(v)
    out = {}
    for rid, vs in rows.items():
        vs.sort(key=lambda v: order[(v.reviewer, v.id)])
        by = {v.reviewer: v.verdict for v in sorted(vs, key=lambda v: v.reviewer)}
        drops = [v for v in vs if v.verdict == "drop"]
        edits = [v for v in vs if v.verdict == "edit"]
        if drops:
            reason = "; ".join(f"{v.reviewer}: {v.reason}" for v in sorted(drops, key=lambda v: v.reviewer))
            out[rid] = Decision("drop", by, reason)
        elif edits:
            out[rid] = Decision("edit", by, edits[-1].reason, dict(edits[-1].edits), edits[-1].reviewer)
        else:
            out[rid] = Decision("keep", by)
    return out


def write_queue(path: Path, queue: dict[str, Any]) -> None:
    """Atomically: a temporary file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(queue_text(queue), encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def queue_text(queue: dict[str, Any]) -> str:
    return json.dumps(queue, indent=1, ensure_ascii=False) + "\n"


def read_queue(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    queue = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(queue, dict) or not isinstance(queue.get("rows"), list):
        raise ValueError(f"{path}: not a review queue (no 'rows')")
    return queue


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
