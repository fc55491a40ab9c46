"""Embedding dedup: cosine >= threshold (default 0.95) is a duplicate; one record per group stays.

Up to ``exact_limit`` texts: exact ``IndexFlatIP`` range search, queried in chunks (recall 1.0).
Beyond: an IVF index, kNN + threshold (approximate). Never HNSW ``range_search``: it aborts the
process on large query sets. Groups are connected components of the duplicate graph; the kept
representative is the earliest record, or the best-scored one with ``keep: best``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from factory.core.record import Record
from factory.core.text import as_text, texts_or_failures
from filters.base import Drop, Failed, Filter, Keep, QCContext, Verdict
from filters.config import DedupBlock

CHUNK = 4096  # queries per range_search call: bounded memory for the result lists
KNN = 16  # neighbours per query on the approximate path


def duplicate_pairs(vecs: np.ndarray, threshold: float, exact_limit: int = 20000) -> tuple[np.ndarray, str]:
    """``(m, 2)`` index pairs i < j with cosine >= threshold (rows of ``vecs`` are unit vectors)."""
    import faiss

    n, d = vecs.shape
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64), "exact"
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    radius = threshold - 1e-6  # IP range search keeps scores strictly above the radius
    found = []
    if n <= exact_limit:
        index = faiss.IndexFlatIP(d)
        index.add(vecs)
        for start in range(0, n, CHUNK):
            lims, dist, ids = index.range_search(vecs[start:start + CHUNK], radius)
            rows = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64))
            found.append(np.stack([rows, ids], axis=1))
        method = "exact"
    else:
        nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))  # faiss wants >= 39 training points a list
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vecs[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)])
        index.add(vecs)
        index.nprobe = min(16, nlist)
        dist, ids = index.search(vecs, KNN + 1)
        rows = np.repeat(np.arange(n), ids.shape[1])
        mask = (dist.reshape(-1) >= radius) & (ids.reshape(-1) >= 0)
        found.append(np.stack([rows[mask], ids.reshape(-1)[mask]], axis=1))
        method = f"ivf(nlist={nlist}, nprobe=16, k={KNN})"
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    return pairs.astype(np.int64), method


def components(n: int, pairs: np.ndarray) -> list[list[int]]:
    """Connected components with more than one member, each sorted, via union-find."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


class DedupFilter(Filter):
    name = "dedup"

    def __init__(self, block: DedupBlock, embedder: Any = None) -> None:
        super().__init__()
        self.block = block
        self.embedder = embedder

    def _embedder(self) -> Any:
        if self.embedder is None:
            from filters.embed import Embedder

            self.embedder = Embedder(self.block.model)
        return self.embedder

    def _text(self, record: Record) -> tuple[str | None, str]:
        b = self.block
        texts, details = texts_or_failures([record], b.column)
        if texts[0] is None or b.prompt_column is None:
            return texts[0], details[0]
        prompt, pdetail = texts_or_failures([record], b.prompt_column)
        if prompt[0] is None:
            return None, pdetail[0]
        return f"{prompt[0]}\n\n{texts[0]}", ""

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        pairs_ = [self._text(r) for r in records]
        verdicts: list[Verdict | None] = [Failed(d) if t is None else None for t, d in pairs_]
        idx = [i for i, (t, _) in enumerate(pairs_) if t is not None]
        texts = [pairs_[i][0] or "" for i in idx]
        emb = self._embedder()
        started = time.perf_counter()
        vecs = emb.encode(texts)
        seeds = self._seed_texts(context) if b.against_seeds else []
        seed_vecs = emb.encode(seeds) if seeds else None
        embed_s = time.perf_counter() - started
        started = time.perf_counter()
        pairs, method = duplicate_pairs(vecs, b.threshold, b.exact_limit)
        groups = components(len(texts), pairs)
        copies = self._seed_copies(vecs, seed_vecs)
        search_s = time.perf_counter() - started
        sims = self._pair_sims(vecs, pairs)
        for local, (sim, seed_i) in copies.items():
            verdicts[idx[local]] = Drop("copies_seed", round(sim, 4), f"cosine {sim:.3f} to seed #{seed_i}")
        report_groups = []
        for group in groups:
            rep = self._representative(group, [records[idx[g]] for g in group])
            for g in group:
                if g == rep or verdicts[idx[g]] is not None:
                    continue
                sim = float(vecs[g] @ vecs[rep])
                reason = "exact_duplicate" if texts[g] == texts[rep] else "near_duplicate"
                verdicts[idx[g]] = Drop(reason, round(sim, 4),
                                        f"duplicate of {records[idx[rep]].id} (cosine {sim:.3f})")
            shown = ([rep] + [x for x in group if x != rep])[:6]  # the kept one first
            report_groups.append({"size": len(group), "kept": records[idx[rep]].id,
                                  "texts": [texts[g][:200] for g in shown],
                                  "ids": [records[idx[g]].id for g in shown]})
        local_of = {orig: local for local, orig in enumerate(idx)}
        for i, v in enumerate(verdicts):
            if v is None:
                verdicts[i] = Keep(sims.get(local_of[i]))
        report_groups.sort(key=lambda g: -g["size"])
        self.info = {"threshold": b.threshold, "method": method, "model": b.model,
                     "groups": len(groups), "pairs": int(len(pairs)), "seed_copies": len(copies),
                     # timings are this run's own: "_" keeps them out of the reproducible stats.json
                     "_embed_s": round(embed_s, 3), "_search_s": round(search_s, 3),
                     "_groups": report_groups[:20]}
        return [v for v in verdicts if v is not None]

    def _seed_texts(self, context: QCContext) -> list[str]:
        col = self.block.seed_column or self.block.column
        return [t for row in context.seeds if (t := as_text(row.get(col))) is not None]

    def _seed_copies(self, vecs: np.ndarray, seed_vecs: np.ndarray | None) -> dict[int, tuple[float, int]]:
        if seed_vecs is None or not len(vecs):
            return {}
        import faiss

        index = faiss.IndexFlatIP(seed_vecs.shape[1])
        index.add(np.ascontiguousarray(seed_vecs))
        dist, ids = index.search(np.ascontiguousarray(vecs), 1)
        return {i: (float(dist[i, 0]), int(ids[i, 0])) for i in range(len(vecs))
                if dist[i, 0] >= self.block.threshold - 1e-6}

    @staticmethod
    def _pair_sims(vecs: np.ndarray, pairs: np.ndarray) -> dict[int, float]:
        """Each record's highest cosine to another record (the dedup figure for the report)."""
        best: dict[int, float] = {}
        for a, b in pairs.tolist():
            s = float(vecs[a] @ vecs[b])
            best[a] = max(best.get(a, -1.0), s)
            best[b] = max(best.get(b, -1.0), s)
        return best

    def _representative(self, group: list[int], recs: list[Record]) -> int:
        col = self.block.score_column or "qc_reward"  # the reward filter's score, when it ran first
        if self.block.keep == "best":
            scored = [(float(r.fields[col]) if _is_number(r.fields.get(col)) else float("-inf"), -g, g)
                      for g, r in zip(group, recs)]
            return max(scored)[2]  # highest score; the earliest among equals
        return group[0]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
