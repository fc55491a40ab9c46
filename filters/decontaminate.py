"""Decontamination: drop records that share an n-gram with an evaluation set (or embed next to one).

Text is lowercased and split into word characters (punctuation and spacing do not hide a copy).
A record is ``contaminated`` when any checked column shares an ``ngram``-word sequence (13 by
default, as in GPT-3's and Tülu 3's checks) with an eval text; an eval text shorter than ``ngram``
words (but at least ``min_words``) must appear whole. With ``embedding:``, a record whose text has
cosine >= threshold to an eval text (MiniLM, exact FAISS search) is contaminated too. The detail
names the eval set, the row and the matched n-gram.

Speed: every eval n-gram is hashed once into a dict (hash -> eval set, row, position); a record's
n-grams are hashed as tuples and tested with ``dict.keys().isdisjoint`` (one C loop per record);
only a hit is confirmed word by word. ``python bench/qc_decontaminate.py`` measures it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.record import Record
from factory.core.text import as_text
from filters.base import Drop, Failed, Filter, Keep, QCContext, Verdict
from filters.config import DecontaminateBlock

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def grams(tokens: list[str], n: int) -> zip:
    return zip(*(tokens[i:] for i in range(n)))


class NgramIndex:
    """Eval texts' n-grams (and whole short texts) by hash, each pointing back at its source."""

    def __init__(self, n: int, min_words: int) -> None:
        self.n, self.min_words = n, min_words
        self.sets: list[tuple[str, list[str]]] = []  # (name, texts)
        self.by_length: dict[int, dict[int, tuple[int, int, int]]] = {}  # gram length -> hash -> src

    def add(self, name: str, texts: list[str]) -> None:
        set_i = len(self.sets)
        self.sets.append((name, texts))
        for row, text in enumerate(texts):
            tokens = words(text)
            length = min(self.n, len(tokens))
            if length < min(self.n, self.min_words):
                continue  # too short to tell a copy from a common phrase
            table = self.by_length.setdefault(length, {})
            for pos, gram in enumerate(grams(tokens, length)):
                table.setdefault(hash(gram), (set_i, row, pos))

    @property
    def size(self) -> int:
        return sum(len(t) for t in self.by_length.values())

    def match(self, text: str) -> tuple[str, int, str] | None:
        """(eval set name, row, matched words) for the first shared n-gram, or None."""
        tokens = words(text)
        for length, table in self.by_length.items():
            if len(tokens) < length or table.keys().isdisjoint(map(hash, grams(tokens, length))):
                continue
            for gram in grams(tokens, length):
                src = table.get(hash(gram))
                if src is not None and self._confirm(gram, src, length):
                    return self.sets[src[0]][0], src[1], " ".join(gram)
        return None

    def _confirm(self, gram: tuple[str, ...], src: tuple[int, int, int], length: int) -> bool:
        set_i, row, pos = src  # a hash collision is not a copy: compare the words themselves
        return tuple(words(self.sets[set_i][1][row])[pos:pos + length]) == gram


def load_eval_texts(spec: Any) -> list[str] | None:
    """The eval set's texts, or None when an optional set's file is missing."""
    from factory.core.rows import read_rows

    path = Path(spec.path)
    if not path.exists():
        if spec.optional:
            return None
        raise FactoryError(f"decontaminate: eval set {spec.label}: {path} not found")
    rows = read_rows(path, spec.split)
    texts = []
    for i, row in enumerate(rows):
        text = as_text(row.get(spec.column))
        if text is None:
            raise FactoryError(f"decontaminate: eval set {spec.label}: {path}: row {i + 1} has no "
                               f"text in column {spec.column!r}")
        texts.append(text)
    return texts


class DecontaminateFilter(Filter):
    name = "decontaminate"

    def __init__(self, block: DecontaminateBlock, embedder: Any = None) -> None:
        super().__init__()
        self.block = block
        self.embedder = embedder
        self._index: NgramIndex | None = None
        self.loaded: dict[str, int] = {}  # eval set -> rows
        self.skipped: list[str] = []

    def index(self) -> NgramIndex:
        if self._index is None:
            index = NgramIndex(self.block.ngram, self.block.min_words)
            for spec in self.block.eval_sets:
                texts = load_eval_texts(spec)
                if texts is None:
                    self.skipped.append(f"{spec.label} ({spec.path} not found; optional)")
                    continue
                index.add(spec.label, texts)
                self.loaded[spec.label] = len(texts)
            self._index = index
        return self._index

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        started = time.perf_counter()
        index = self.index()
        built_s = time.perf_counter() - started
        out: list[Verdict] = []
        texts: list[tuple[int, str, str]] = []  # (record index, column, text) for the embedding pass
        started = time.perf_counter()
        for i, record in enumerate(records):
            verdict: Verdict | None = None
            for column in b.columns:
                text = as_text(record.fields.get(column))
                if text is None:
                    verdict = Failed(f"record {record.id}: no text in column {column!r}")
                    break
                hit = index.match(text) if index.by_length else None
                if hit is not None:
                    name, row, gram = hit
                    verdict = Drop("contaminated", 1.0, f"{len(gram.split())}-gram \"{gram}\" in eval "
                                   f"set {name} (row {row + 1}), column {column}")
                    break
                texts.append((i, column, text))
            out.append(verdict if verdict is not None else Keep())
        match_s = time.perf_counter() - started
        if b.embedding is not None and self.loaded:
            self._embedding_pass(records, texts, out)
        rows = sum(self.loaded.values())
        self.info = {"ngram": b.ngram, "eval_sets": dict(self.loaded), "skipped": self.skipped,
                     "eval_ngrams": index.size, "index_s": round(built_s, 3), "match_s": round(match_s, 3),
                     "rule": f"shares a {b.ngram}-word sequence with an eval set"
                             + (f" or cosine >= {b.embedding.threshold}" if b.embedding else ""),
                     "method": (f"{b.ngram}-gram vs {', '.join(self.loaded)} ({rows} rows)" if self.loaded
                                else "not run: no eval set found") +
                               (f"; skipped {', '.join(self.skipped)}" if self.skipped else "")}
        return out

    def _embedding_pass(self, records: list[Record], texts: list[tuple[int, str, str]],
                        out: list[Verdict]) -> None:
        import faiss
        import numpy as np

        if self.embedder is None:
            from filters.embed import Embedder

            self.embedder = Embedder(self.block.embedding.model)
        alive = [(i, col, t) for i, col, t in texts if isinstance(out[i], Keep)]
        if not alive:
            return
        eval_texts = [(name, row, t) for name, ts in self.index().sets for row, t in enumerate(ts)]
        eval_vecs = self.embedder.encode([t for _, _, t in eval_texts])
        index = faiss.IndexFlatIP(eval_vecs.shape[1])
        index.add(np.ascontiguousarray(eval_vecs))
        vecs = self.embedder.encode([t for _, _, t in alive])
        sims, ids = index.search(np.ascontiguousarray(vecs), 1)
        threshold = self.block.embedding.threshold
        for (i, column, _), sim, j in zip(alive, sims[:, 0], ids[:, 0]):
            if sim >= threshold - 1e-6 and isinstance(out[i], Keep):
                name, row, _ = eval_texts[int(j)]
                out[i] = Drop("contaminated", round(float(sim), 4), f"embedding cosine {sim:.3f} to "
                              f"eval set {name} (row {row + 1}), column {column}")
