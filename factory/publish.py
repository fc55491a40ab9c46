"""``factory push``: a built dataset folder to the Hugging Face Hub, through ``huggingface_hub``.

What goes up: ``README.md`` (the card; its YAML header names one config per split), each split's
parquet file, ``stats.json``, and with ``rejects`` the ``rejects.jsonl``. The token is read from
``HF_TOKEN`` only (never from a stored login) and handed to the client in memory: nothing writes it
anywhere, and it is scrubbed from any error text. ``HF_ENDPOINT`` points the client elsewhere (the
tests' fake Hub on loopback).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError, UsageError
from factory.output.card import SIZE_CATEGORIES

TOKEN_ENV = "HF_TOKEN"
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclass
class Pushed:
    url: str
    commit: str
    files: list[str]
    bytes: int
    visibility: str  # private | public | "existing repo" (its visibility is left as it was)


def check_repo_id(repo: str) -> str:
    if not REPO_ID.match(repo) or ".." in repo or "--" in repo or repo.endswith((".", "-", ".git")):
        raise UsageError(f"--repo {repo!r}: give OWNER/NAME (letters, digits, '-', '_', '.'), "
                         "e.g. my-org/my-dataset")
    return repo


def token_from_env() -> str:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise UsageError(f"no Hugging Face token: set {TOKEN_ENV} in the environment (a write token from "
                         "https://huggingface.co/settings/tokens); it is never read from or written to disk")
    return token


def card_header(text: str) -> dict[str, Any]:
    """The card's YAML header as a dict; a FactoryError if it is missing or not YAML."""
    from ruamel.yaml import YAML, YAMLError

    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    if match is None:
        raise FactoryError("README.md has no YAML header (--- ... ---)")
    try:
        header = YAML(typ="safe").load(match.group(1))
    except YAMLError as exc:
        raise FactoryError(f"README.md: the YAML header does not parse: {exc}") from exc
    if not isinstance(header, dict):
        raise FactoryError("README.md: the YAML header is not a mapping")
    return header


def files_to_push(folder: Path, rejects: bool) -> list[str]:
    """The card, the parquet file of every config the card names, stats.json, optionally rejects."""
    readme = folder / "README.md"
    if not folder.is_dir() or not readme.exists():
        raise UsageError(f"{folder}: not a dataset folder written by factory build (no README.md)")
    header = card_header(readme.read_text(encoding="utf-8"))
    problems = check_header(header)
    files = ["README.md"]
    for config in header.get("configs") or []:
        for entry in config.get("data_files") or []:
            path = entry.get("path") if isinstance(entry, dict) else entry
            if not isinstance(path, str) or not (folder / path).is_file():
                problems.append(f"config {config.get('config_name')!r}: data file {path!r} is missing")
            elif path not in files:
                files.append(path)
    if problems:
        raise FactoryError(f"{readme}: the card's header would fail the Hub's check: {'; '.join(problems)}")
    _check_review(folder)
    files += [name for name in ("stats.json",) if (folder / name).exists()]
    if rejects:
        if not (folder / "rejects.jsonl").exists():
            raise UsageError(f"{folder}: --rejects, but there is no rejects.jsonl")
        files.append("rejects.jsonl")
    return files


def check_header(header: dict[str, Any]) -> list[str]:
    """The parts of the Hub's dataset-card metadata check that a factory card uses."""
    problems = []
    configs = header.get("configs")
    if not isinstance(configs, list) or not configs:
        problems.append("'configs' must list the splits")
    for config in configs if isinstance(configs, list) else []:
        if not isinstance(config, dict) or not isinstance(config.get("config_name"), str):
            problems.append("every config needs a config_name")
        elif not isinstance(config.get("data_files"), (list, str)):
            problems.append(f"config {config['config_name']!r} needs data_files")
    for value in header.get("size_categories") or []:
        if value not in SIZE_CATEGORIES:
            problems.append(f"size_categories: {value!r} is not one of the Hub's values")
    if not all(isinstance(t, str) for t in header.get("tags") or []):
        problems.append("tags must be strings")
    return problems


def _check_review(folder: Path) -> None:
    stats_path = folder / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    status = (stats.get("review") or {}).get("status")
    if status in ("pending", "failed"):
        raise UsageError(f"{folder}: its human review is {status}; finish the review (factory review) "
                         "and build again before pushing")


def push_dataset(folder: Path, repo: str, private: bool = False, rejects: bool = False) -> Pushed:
    """Create the dataset repo (an existing one keeps its visibility) and upload the files in one commit."""
    check_repo_id(repo)
    token = token_from_env()
    files = files_to_push(folder, rejects)
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    api = HfApi(token=token)
    try:
        try:
            url, visibility = str(api.create_repo(repo, repo_type="dataset", private=private)), \
                "private" if private else "public"
        except HfHubHTTPError as exc:
            if exc.response is None or exc.response.status_code != 409:
                raise
            url, visibility = f"{api.endpoint}/datasets/{repo}", "existing repo"
        ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in files]
        commit = api.create_commit(repo, ops, commit_message=f"factory push: {folder.name}",
                                   repo_type="dataset")
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        hint = " (is HF_TOKEN a write token for this owner?)" if status in (401, 403) else ""
        message = f"the Hub refused the push ({status}): {_first_line(exc)}{hint}"
        raise FactoryError(_scrub(message, token)) from None
    except (OSError, ValueError) as exc:  # connection errors, a card the Hub's metadata check refused
        message = f"push to {repo} failed: {type(exc).__name__}: {_first_line(exc)}"
        raise FactoryError(_scrub(message, token)) from None
    size = sum((folder / name).stat().st_size for name in files)
    return Pushed(url, commit.oid, files, size, visibility)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3]) if lines else type(exc).__name__


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "<HF_TOKEN>") if token else text
