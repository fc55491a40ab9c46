"""The review app: an aiohttp server on 127.0.0.1 serving one page and a small JSON API.

- ``GET /``: the page (``page.html``, self-contained: no CDN, works offline)
- ``GET /api/queue``: the rows to review, their texts and figures
- ``GET /api/verdicts?reviewer=NAME``: that reviewer's latest verdicts, and everyone's counts
- ``POST /api/verdict``: one verdict; answered only once it is fsync'd in ``reviews.jsonl``

It listens on loopback only and has no login, so it refuses requests whose Host is not its own
(DNS rebinding) and POSTs that are not JSON from its own origin (another site's form or script).
"""

from __future__ import annotations

import asyncio
import errno
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from factory.core.errors import UsageError
from factory.review.session import ReviewSession
from filters.review_store import (
    HumanVerdict,
    append_verdict,
    check_reviewer,
    latest,
    now,
    read_queue,
    read_verdicts,
)

PAGE = Path(__file__).with_name("page.html")
HOST = "127.0.0.1"
NO_STORE = {"Cache-Control": "no-store"}


class ReviewServer:
    def __init__(self, session: ReviewSession, reviewer: str | None = None) -> None:
        self.session = session
        self.reviewer = reviewer
        self.port = 0
        self.lock = asyncio.Lock()
        self.rows = {row["id"]: row for row in session.queue["rows"]}
        self._stamp = _stamp(session.queue_path)

    def _reload(self) -> None:
        """A build that ran while the app was open may have rewritten the queue: serve the new one."""
        stamp = _stamp(self.session.queue_path)
        if stamp != self._stamp:
            queue = read_queue(self.session.queue_path)
            if queue is not None and queue["rows"]:
                self.session.queue = queue
                self.rows = {row["id"]: row for row in queue["rows"]}
            self._stamp = stamp

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=4 * 1024 * 1024)
        app.router.add_get("/", self.page)
        app.router.add_get("/api/queue", self.queue)
        app.router.add_get("/api/verdicts", self.verdicts)
        app.router.add_post("/api/verdict", self.save)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        own = {f"{HOST}:{self.port}", f"localhost:{self.port}"}
        if request.host not in own:
            return _error(403, "this app answers only on its own address")
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin is not None and origin.removeprefix("http://") not in own:
                return _error(403, "cross-site request refused")
            if request.content_type != "application/json":
                return _error(415, "send JSON")
        return await handler(request)

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(encoding="utf-8"), content_type="text/html", headers=NO_STORE)

    async def queue(self, request: web.Request) -> web.Response:
        self._reload()
        q = self.session.queue
        return web.json_response({
            "dataset": q.get("dataset") or self.session.dataset.name, "path": str(self.session.dataset),
            "format": q.get("format"), "roles": q.get("roles", {}), "editable": q.get("editable", []),
            "made_by": q.get("made_by"), "reviewer": self.reviewer, "rows": q["rows"],
            "reviews_file": str(self.session.reviews_path)}, headers=NO_STORE)

    async def verdicts(self, request: web.Request) -> web.Response:
        everyone = latest(await asyncio.to_thread(read_verdicts, self.session.reviews_path))
        name = request.query.get("reviewer", "")
        mine = everyone.get(name.strip(), {})
        counts = {who: sum(rid in self.rows for rid in rows) for who, rows in everyone.items()}
        return web.json_response({"reviewer": name, "verdicts": {rid: v.as_row() for rid, v in mine.items()
                                                                  if rid in self.rows},
                                  "reviewers": counts}, headers=NO_STORE)

    async def save(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("send one verdict object")
            verdict = HumanVerdict.from_row({**body, "at": now()})
            self._reload()
            self._check(verdict)
        except ValueError as exc:
            return _error(400, str(exc))
        async with self.lock:  # one writer per server; O_APPEND keeps several servers' lines whole
            await asyncio.to_thread(append_verdict, self.session.reviews_path, verdict)
        return web.json_response({"saved": verdict.as_row()}, headers=NO_STORE)

    def _check(self, v: HumanVerdict) -> None:
        row = self.rows.get(v.id)
        if row is None:
            raise ValueError(f"row {v.id!r} is not in this review queue")
        editable = set(self.session.queue.get("editable", []))
        for role, text in v.edits.items():
            if role not in editable:
                raise ValueError(f"{role!r} cannot be edited here (editable: {', '.join(sorted(editable))})")
        if v.verdict == "edit" and all(row["texts"].get(k) == t for k, t in v.edits.items()):
            raise ValueError("the edit changes nothing: keep the row instead")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=NO_STORE)


async def serve(server: ReviewServer, port: int, on_ready: Callable[[str], None]) -> None:
    """Listen on 127.0.0.1:port (0: any free port) until cancelled (Ctrl+C)."""
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} is in use: pass --port N (--port 0 picks a free one)") from exc
        raise
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    on_ready(f"http://{HOST}:{server.port}/")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def progress(session: ReviewSession) -> dict[str, int]:
    """Rows of the queue each reviewer has judged (for the console line when the app stops)."""
    everyone = latest(read_verdicts(session.reviews_path))
    ids = session.ids
    return dict(Counter({who: sum(rid in ids for rid in rows) for who, rows in everyone.items()}))


def reviewer_name(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return check_reviewer(name)
    except ValueError as exc:
        raise UsageError(f"--reviewer: {exc}") from exc
