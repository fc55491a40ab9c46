"""Decontamination: drop records that share an n-gram with an evaluation set (or embed next to one).

Text is lowercased and split into word characters (punctuation and spacing do not hide a copy).
A record is ``contaminated`` when any checked column shares an ``ngram``-word sequence (13 by
default, as in GPT-3's and Tülu 3's checks) with an eval text; an eval text shorter than ``ngram``
words (but at least ``min_words``) must appear whole. With ``embedding:``, a record whose text has
cosine >= threshold to an eval text (MiniLM, exact FAISS search) is contaminated too. The detail
names the eval set, the row and the matched n-gram.

Speed: words become integer ids (the eval vocabulary; a word no eval text has can be in no shared
n-gram), records are concatenated in batches, and every window's 64-bit polynomial hash is computed
with numpy over the whole batch at once, then looked up in the sorted eval hashes; only a hit is
confirmed word by word. ``python bench/qc_decontaminate.py`` measures it.
"""

from __future__ import annotations

import re
import time
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from factory.core.errors import FactoryError
from factory.core.record import Record
from factory.core.text import as_text
from filters.base import Drop, Failed, Filter, Keep, QCContext, Verdict
from filters.config import DecontaminateBlock

_WORD = re.compile(r"\w+")
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the rolling hash
BATCH = 4096  # records hashed together (bounded memory)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def window_hashes(ids: np.ndarray, length: int) -> np.ndarray:
    """Hash of every ``length``-word window of ``ids`` (uint64, wrapping: mod 2^64)."""
    m = len(ids) - length + 1
    h = np.zeros(max(m, 0), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(length):
            h = h * _MULT + (ids[j:j + m].astype(np.uint64) + np.uint64(1))
    return h


def clean_windows(ids: np.ndarray, length: int) -> np.ndarray:
    """Windows with no unknown word and no record boundary (both are id -1)."""
    bad = np.concatenate([[0], np.cumsum(ids < 0)])
    return (bad[length:] - bad[:-length]) == 0


SEP = "zzqsepqzz"  # joins a batch's texts: a "word" no eval text has, with its own id


def batch_ids(texts: list[str], vocab: dict[str, int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """All words of ``texts`` in one list, their ids (-1: not in ``vocab``, -2: between texts) and
    each text's first word position. One regex pass and one C-level ``map`` for the whole batch."""
    tokens = _WORD.findall(f" {SEP} ".join(texts).lower())
    ids = np.fromiter(map(vocab.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))
    ids[ids == vocab.get(SEP, -3)] = -2
    starts = np.concatenate([[0], np.flatnonzero(ids == -2) + 1])
    return tokens, ids, starts


class NgramIndex:
    """Eval texts' n-grams (and whole short texts) as sorted hashes pointing back at their source."""

    def __init__(self, n: int, min_words: int) -> None:
        self.n, self.min_words = n, min_words
        self.vocab: dict[str, int] = {SEP: -2}
        self.sets: list[tuple[str, list[str]]] = []  # (name, texts)
        self._parts: dict[int, list[np.ndarray]] = {}  # length -> rows of (hash, set, row, pos)
        self.tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # length -> (hashes, sources)
        self.bits: dict[int, np.ndarray] = {}

    def add(self, name: str, texts: list[str]) -> None:
        set_i = len(self.sets)
        self.sets.append((name, texts))
        for word in _WORD.findall(" ".join(texts).lower()):
            self.vocab.setdefault(word, len(self.vocab) - 1)
        _, ids, starts = batch_ids(texts, self.vocab)
        ends = np.concatenate([starts[1:] - 1, [len(ids)]])
        sizes, rows = ends - starts, np.arange(len(texts))
        short = min(self.n, self.min_words)
        for length in (self.n, short) if short < self.n else (self.n,):
            h = window_hashes(ids, length)
            if length == self.n:  # every n-word window inside a text of n+ words
                pos = np.flatnonzero(clean_windows(ids, length))
            else:  # a text of short..n-1 words: its first words, the rest is compared on a hit
                pos = starts[(sizes >= short) & (sizes < self.n)]
            row = rows[np.searchsorted(starts, pos, side="right") - 1]
            src = np.column_stack([np.full(len(pos), set_i), row, pos - starts[row]])
            self._parts.setdefault(length, []).append(np.column_stack([h[pos].view(np.int64), src]))

    def finish(self) -> "NgramIndex":
        """Sort the hashes (call after the last ``add``)."""
        for length, parts in self._parts.items():
            rows = np.concatenate(parts)
            if not len(rows):
                continue
            order = np.argsort(rows[:, 0].view(np.uint64), kind="stable")  # first source wins
            rows = rows[order]
            hashes = rows[:, 0].view(np.uint64)
            # Any source of a shared n-gram will do; short texts keep all theirs (two may share
            # their first words, and only one may follow whole).
            first = np.concatenate([[True], hashes[1:] != hashes[:-1]]) if length == self.n else \
                np.ones(len(hashes), dtype=bool)
            self.tables[length] = (hashes[first].copy(), rows[first, 1:].copy())
            # A 2^24-bit presence map of the top hash bits: most record windows are ruled out by
            # one gather, and only the rest are looked up in the sorted hashes.
            bits = np.zeros(1 << 24, dtype=bool)
            bits[(self.tables[length][0] >> np.uint64(40)).astype(np.int64)] = True
            self.bits[length] = bits
        self._parts = {}
        return self

    @property
    def size(self) -> int:
        return sum(len(h) for h, _ in self.tables.values())

    def match_many(self, texts: list[str]) -> list[tuple[str, int, str] | None]:
        """Per text: (eval set name, row, matched words) for its first shared n-gram, or None."""
        out: list[tuple[str, int, str] | None] = [None] * len(texts)
        for start in range(0, len(texts), BATCH):
            self._match_batch(texts[start:start + BATCH], out, start)
        return out

    def _match_batch(self, texts: list[str], out: list[Any], offset: int) -> None:
        tokens, ids, starts = batch_ids(texts, self.vocab)
        for length in sorted(self.tables, reverse=True):  # the longest shared sequence first
            hashes, sources = self.tables[length]
            if len(ids) < length:
                continue
            h = window_hashes(ids, length)
            maybe = np.flatnonzero(self.bits[length][(h >> np.uint64(40)).astype(np.int64)])
            slot = np.minimum(np.searchsorted(hashes, h[maybe]), len(hashes) - 1)
            found = maybe[(hashes[slot] == h[maybe]) & clean_windows(ids, length)[maybe]]
            for pos, first in zip(found.tolist(), slot[hashes[slot] == h[maybe]].tolist()):
                k = int(np.searchsorted(starts, pos, side="right")) - 1
                last = int(np.searchsorted(hashes, hashes[first], side="right"))
                for i in range(first, last):  # every source with this hash (one, but for short texts)
                    if out[offset + k] is None:
                        out[offset + k] = self._confirm(tokens, pos, starts, k, sources[i].tolist(), length)


    def _confirm(self, tokens: list[str], pos: int, starts: np.ndarray, k: int, src: list[int],
                 length: int) -> tuple[str, int, str] | None:
        """The match, if the words are really there (a hash collision is not a copy); a short eval
        text matched on its first words must follow whole, inside the same record."""
        set_i, row, at = src
        source = words(self.sets[set_i][1][row])
        if length < self.n:
            at, length = 0, len(source)
        end = starts[k + 1] - 1 if k + 1 < len(starts) else len(tokens)
        gram = tokens[pos:min(pos + length, end)]
        return (self.sets[set_i][0], row, " ".join(gram)) if source[at:at + length] == gram else None


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
            self._index = index.finish()
        return self._index

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        started = time.perf_counter()
        index = self.index()
        built_s = time.perf_counter() - started
        out: list[Verdict | None] = [None] * len(records)
        texts: list[tuple[int, str, str]] = []  # (record index, column, text) for the embedding pass
        started = time.perf_counter()
        for column in b.columns:
            todo = [(i, as_text(r.fields.get(column))) for i, r in enumerate(records) if out[i] is None]
            for i, text in todo:
                if text is None:
                    out[i] = Failed(f"record {records[i].id}: no text in column {column!r}")
            todo = [(i, t) for i, t in todo if t is not None]
            hits = index.match_many([t for _, t in todo])
            for (i, text), hit in zip(todo, hits):
                if hit is None:
                    texts.append((i, column, text))
                    continue
                name, row, gram = hit
                out[i] = Drop("contaminated", 1.0, f"{len(gram.split())}-gram \"{gram}\" in eval set "
                              f"{name} (row {row + 1}), column {column}")
        out = [v if v is not None else Keep() for v in out]
        match_s = time.perf_counter() - started
        if b.embedding is not None and self.loaded:
            self._embedding_pass(records, texts, out)
        rows = sum(self.loaded.values())
        # timings are this run's own: "_" keeps them out of the reproducible stats.json
        self.info = {"ngram": b.ngram, "eval_sets": dict(self.loaded), "skipped": self.skipped,
                     "eval_ngrams": index.size, "_index_s": round(built_s, 3), "_match_s": round(match_s, 3),
                     "rule": f"shares a {b.ngram}-word sequence with an eval set"
                             + (f" or cosine >= {b.embedding.threshold}" if b.embedding else ""),
                     "method": (f"{b.ngram}-gram vs {', '.join(self.loaded)} ({rows} rows)" if self.loaded
                                else "not run: no eval set found") +
                               (f"; skipped {', '.join(self.skipped)}" if self.skipped else "")}
        return out

    def _embedding_pass(self, records: list[Record], texts: list[tuple[int, str, str]],
                        out: list[Verdict]) -> None:
        import faiss

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
