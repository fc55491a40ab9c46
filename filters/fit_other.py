"""Which other prompts of the data the fit filter puts to the model for an answer (is this an
answer to another request?): those the answer's embedding is nearer to than its own prompt, and
the prompts of the answer's near-copies (the same answer under another prompt: at most one of
them can be what it answers, unless it is boilerplate).

The embedding only picks the candidates (one FAISS search of the answers against the distinct
prompts, MiniLM by default, as dedup uses); the model decides. On the QC benchmark's 427 real
self_instruct rows, a third have another prompt nearer than their own (instructions there are
short and alike), so a cosine cut alone would drop far too many; the model's verdict on those
candidates is what separates them.
"""

from __future__ import annotations

import numpy as np

from filters.embed import Embedder


def nearer_prompts(embedder: Embedder, texts: list[str], own: list[str], prompts: list[str],
                   k: int = 1) -> list[list[int]]:
    """Per text: the indices (into ``prompts``: the first record holding each) of up to ``k``
    prompts its embedding is nearer to than to its ``own`` prompt, nearest first."""
    import faiss

    if not texts:
        return []
    first: dict[str, int] = {}
    for i, prompt in enumerate(prompts):
        first.setdefault(prompt, i)
    distinct = list(first)
    vecs = np.ascontiguousarray(embedder.encode(distinct), dtype=np.float32)
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)
    # k + 1 nearest: the own prompt may be among them, and the ones after it are not nearer
    _, nearest = index.search(np.ascontiguousarray(embedder.encode(texts), dtype=np.float32),
                              min(k + 1, len(distinct)))
    out: list[list[int]] = []
    for row, mine in zip(nearest.tolist(), own):
        found: list[int] = []
        for j in row:
            if j < 0 or distinct[j] == mine or len(found) == k:
                break
            found.append(first[distinct[j]])
        out.append(found)
    return out


def copy_prompts(embedder: Embedder, texts: list[str], prompts: list[str],
                 threshold: float) -> list[list[int]]:
    """Per text: the records holding a near-copy of it (cosine >= ``threshold``) under another
    prompt (the first record of each such prompt)."""
    from filters.dedup import duplicate_pairs

    if len(texts) < 2:
        return [[] for _ in texts]
    pairs, _ = duplicate_pairs(embedder.encode(texts), threshold)
    out: list[dict[str, int]] = [{} for _ in texts]
    for a, b in pairs.tolist():
        if prompts[a] != prompts[b]:
            out[a].setdefault(prompts[b], b)
            out[b].setdefault(prompts[a], a)
    return [sorted(found.values()) for found in out]


def own_cosines(embedder: Embedder, texts: list[str], own: list[str]) -> list[float]:
    """Per text: the cosine of its embedding to its own prompt's."""
    if not texts:
        return []
    return (embedder.encode(texts) * embedder.encode(own)).sum(axis=1).tolist()
