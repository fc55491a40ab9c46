"""A fake Hugging Face Hub on 127.0.0.1: just the endpoints ``huggingface_hub`` calls to create a
repo and commit files to it (``create_repo`` + ``create_commit``), so ``factory push`` is tested
with nothing leaving the machine.

- ``POST /api/repos/create``: the repo, with its visibility; 409 when it exists
- ``POST /api/validate-yaml``: the README's YAML header, checked as the Hub checks a dataset card's
  keys that factory writes (configs, size_categories, tags); 400 with the errors
- ``POST /api/datasets/OWNER/NAME/preupload/REV``: parquet files go by LFS, the rest inline
- ``POST /datasets/OWNER/NAME.git/info/lfs/objects/batch`` + ``PUT /lfs/OID``: LFS basic transfer
  (the sha256 is checked)
- ``POST /api/datasets/OWNER/NAME/commit/REV``: ndjson operations; the README is checked again

Every API call must carry ``Authorization: Bearer <token>``; the headers seen are kept so a test can
check the token went nowhere else. Set ``HF_HUB_DISABLE_XET=1`` in the client: with ``hf_xet``
installed the client would otherwise upload through a Xet storage server this fake does not have.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

SIZES = {"n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B",
         "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T"}


def card_errors(readme: str) -> list[str]:
    match = re.match(r"^---\n(.*?)\n---\n", readme, re.S)
    if match is None:
        return []  # a card without metadata is allowed (the Hub only warns)
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        return [f"YAML does not parse: {exc}"]
    if not isinstance(meta, dict):
        return ["metadata must be a mapping"]
    errors = []
    for config in meta.get("configs", []) or []:
        files = config.get("data_files") if isinstance(config, dict) else None
        if not isinstance(config, dict) or not isinstance(config.get("config_name"), str):
            errors.append('"configs" items need a "config_name"')
        elif not (isinstance(files, str) or isinstance(files, list) and all(
                isinstance(f, str) or isinstance(f, dict) and {"split", "path"} <= f.keys() for f in files)):
            name = config["config_name"]
            errors.append(f'"configs.{name}.data_files" must be paths or {{split, path}} items')
    for size in meta.get("size_categories", []) or []:
        if size not in SIZES:
            errors.append(f'"size_categories" must be one of the Hub\'s values, not {size!r}')
    if not all(isinstance(t, str) for t in meta.get("tags", []) or []):
        errors.append('"tags" must be strings')
    return errors


@dataclass
class Repo:
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


class FakeHub:
    def __init__(self, token: str) -> None:
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "FakeHub":
        self._thread = threading.Thread(target=self._serve, name="fake-hub", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("fake hub did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application(middlewares=[self._auth], client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/repos/create", self._create)
        app.router.add_post("/api/validate-yaml", self._validate)
        app.router.add_post("/api/datasets/{owner}/{name}/preupload/{rev}", self._preupload)
        app.router.add_post("/datasets/{owner}/{name}.git/info/lfs/objects/batch", self._lfs_batch)
        app.router.add_put("/lfs/{oid}", self._lfs_put)
        app.router.add_post("/api/datasets/{owner}/{name}/commit/{rev}", self._commit)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.seen.append((request.method, request.path, dict(request.headers)))
        if request.path.startswith("/lfs/"):  # a presigned storage URL: no Hub token
            return await handler(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "Invalid credentials in Authorization header"}, status=401)
        return await handler(request)

    def _repo(self, request: web.Request) -> tuple[str, Repo | None]:
        repo_id = f"{request.match_info['owner']}/{request.match_info['name']}"
        return repo_id, self.repos.get(repo_id)

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("type") != "dataset":
            return web.json_response({"error": "this fake holds datasets only"}, status=400)
        repo_id = f"{body['organization']}/{body['name']}"
        url = f"{self.url}/datasets/{repo_id}"
        if repo_id in self.repos:
            return web.json_response({"error": "You already created this dataset repo", "url": url},
                                     status=409)
        self.repos[repo_id] = Repo(private=body.get("visibility") == "private")
        return web.json_response({"url": url, "name": repo_id})

    async def _validate(self, request: web.Request) -> web.Response:
        body = await request.json()
        errors = card_errors(body.get("content", ""))
        return web.json_response({"errors": [{"message": e} for e in errors], "warnings": []},
                                 status=400 if errors else 200)

    async def _preupload(self, request: web.Request) -> web.Response:
        _, repo = self._repo(request)
        if repo is None:
            return web.json_response({"error": "Repository not found"}, status=404)
        files = (await request.json())["files"]
        return web.json_response({"files": [
            {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(".parquet") else "regular",
             "shouldIgnore": False, "oid": None} for f in files]})

    async def _lfs_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        objects = []
        for obj in body["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.blobs:
                entry["actions"] = {"upload": {"href": f"{self.url}/lfs/{obj['oid']}"}}
            objects.append(entry)
        return web.json_response({"transfer": "basic", "objects": objects})

    async def _lfs_put(self, request: web.Request) -> web.Response:
        data = await request.read()
        if hashlib.sha256(data).hexdigest() != request.match_info["oid"]:
            return web.json_response({"error": "sha256 mismatch"}, status=400)
        self.blobs[request.match_info["oid"]] = data
        return web.Response(status=200)

    async def _commit(self, request: web.Request) -> web.Response:
        repo_id, repo = self._repo(request)
        if repo is None:
            return web.json_response({"error": "Repository not found"}, status=404)
        lines = [json.loads(line) for line in (await request.read()).decode().splitlines() if line.strip()]
        staged: dict[str, bytes] = {}
        for item in lines:
            value = item["value"]
            if item["key"] == "file":
                staged[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                blob = self.blobs.get(value["oid"])
                if blob is None or len(blob) != value["size"]:
                    return web.json_response({"error": f"LFS object {value['oid']} was not uploaded"},
                                             status=400)
                staged[value["path"]] = blob
        if "README.md" in staged and (errors := card_errors(staged["README.md"].decode())):
            return web.json_response({"error": "Invalid metadata in README.md: " + "; ".join(errors)},
                                     status=400)
        repo.files.update(staged)
        oid = hashlib.sha1(json.dumps(sorted(staged)).encode() + str(len(repo.commits)).encode()).hexdigest()
        repo.commits.append(lines[0]["value"]["summary"])
        return web.json_response({"commitUrl": f"{self.url}/datasets/{repo_id}/commit/{oid}",
                                  "commitOid": oid, "pullRequestUrl": None})
