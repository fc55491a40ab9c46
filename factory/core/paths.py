"""Where factory keeps its caches: ``$FACTORY_CACHE_DIR`` or ``~/.cache/factory``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("FACTORY_CACHE_DIR") or Path.home() / ".cache" / "factory")


def default_cache_path() -> Path:
    """The request cache (one SQLite file for every LLM call)."""
    return cache_dir() / "requests.sqlite"
