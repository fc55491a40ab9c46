"""The fit filter's embedding side: which other prompts of the data it puts to the model for an
answer (is this an answer to another request?), and how near each answer is to its own prompt.

Candidates are the prompts the answer's embedding is nearer to than its own prompt, and the
prompts of the answer's near-copies (the same answer under another prompt: at most one of them
can be what it answers, unless it is boilerplate). The embedding only picks them (MiniLM by
default, as dedup uses); the model decides. On the QC benchmark's 427 real self_instruct rows, a
third have another prompt nearer than their own (instructions there are short and alike), so a
cosine cut alone would drop far too many.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from filters.embed import Embedder


@dataclass
class Embedded:
    """Each text encoded once: the answers judged, and every distinct prompt of the data."""

    answers: np.ndarray  # a unit vector per judged answer
    distinct: list[str]  # the data's distinct prompts, first seen first
    first: dict[str, int]  # prompt -> the index (into the data's prompts) of the first record holding it
    prompts: np.ndarray  # a unit vector per distinct prompt

    @classmethod
    def of(cls, embedder: Embedder, answers: list[str], prompts: list[str]) -> Embedded:
        first: dict[str, int] = {}
        for i, prompt in enumerate(prompts):
            first.setdefault(prompt, i)
        distinct = list(first)
        return cls(np.ascontiguousarray(embedder.encode(answers), dtype=np.float32), distinct, first,
                   np.ascontiguousarray(embedder.encode(distinct), dtype=np.float32))

    def own_cosines(self, own: list[str]) -> list[float]:
        """Per answer: the cosine of its embedding to its own prompt's (``own``, one of the data's)."""
        where = {p: i for i, p in enumerate(self.distinct)}
        return (self.answers * self.prompts[[where[p] for p in own]]).sum(axis=1).tolist()

    def nearer_prompts(self, own: list[str], k: int = 1) -> list[list[int]]:
        """Per answer: the indices (into the data's prompts: the first record holding each) of up
        to ``k`` prompts its embedding is nearer to than to its ``own`` prompt, nearest first."""
        import faiss

        if not len(self.answers):
            return []
        index = faiss.IndexFlatIP(self.prompts.shape[1])
        index.add(self.prompts)
        # k + 1 nearest: the own prompt may be among them, and the ones after it are not nearer
        _, nearest = index.search(self.answers, min(k + 1, len(self.distinct)))
        out: list[list[int]] = []
        for row, mine in zip(nearest.tolist(), own):
            found: list[int] = []
            for j in row:
                if j < 0 or self.distinct[j] == mine or len(found) == k:
                    break
                found.append(self.first[self.distinct[j]])
            out.append(found)
        return out

    def copies(self, own: list[str], threshold: float) -> list[list[int]]:
        """Per answer: the answers (their indices here) that are near-copies of it (cosine >=
        ``threshold``) under another prompt, one per such prompt."""
        from filters.dedup import duplicate_pairs

        if len(self.answers) < 2:
            return [[] for _ in own]
        pairs, _ = duplicate_pairs(self.answers, threshold)
        out: list[dict[str, int]] = [{} for _ in own]
        for a, b in pairs.tolist():
            if own[a] != own[b]:
                out[a].setdefault(own[b], b)
                out[b].setdefault(own[a], a)
        return [sorted(found.values()) for found in out]
