"""KV cells reused across the llama.cpp backend's sequences, without changing any text.

Two reuses: the n samples of one prompt copy its cells from a sibling that has computed them, and
prompts that open with the same earlier turns (few-shot examples, a shared system prompt plus
examples) copy those turns' cells, from a running sequence or from one extra KV stream that holds
the last such prefix. A copied cell must equal the cell the sequence would have computed itself,
and llama.cpp's float rounding depends on how a prompt is cut into decode calls, so every prompt
is cut at places that depend on that prompt alone: ``prefix_cut`` (where its last message starts)
and multiples of n_batch (see ``LlamaCppBackend._step``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import llama_cpp as L


class SharedSeq(Protocol):
    slot: int
    prompt: list[int]
    cut: int
    n_past: int


def prefix_cut(messages: list[dict[str, str]], prompt: list[int],
               tokens_of: Callable[[list[dict[str, str]]], list[int]]) -> int:
    """Tokens of ``prompt`` that its earlier turns fix (0 when there are none to share).

    The earlier turns are rendered on their own and compared token by token with the whole
    prompt: the common run is the prefix (the template's generation header after them is not)."""
    earlier = messages[:-1]
    if not any(m["role"] != "system" for m in earlier):
        return 0  # a system prompt alone is too short to be worth a fixed cut
    head = tokens_of(earlier)
    n = 0
    for a, b in zip(head, prompt):
        if a != b:
            break
        n += 1
    return n if 0 < n < len(prompt) - 1 else 0


class PromptSharing:
    """Finds donors for a sequence's prompt cells and keeps the last shared prefix in ``holder``."""

    def __init__(self, memory: Any, holder: int) -> None:
        self.memory, self.holder = memory, holder
        self.held: list[int] | None = None  # the prefix the holder stream holds (its length: the cut)
        self.shared_tokens = 0  # prompt tokens copied, not computed

    def reset(self) -> None:
        """The cache was cleared (after a decode error): the holder holds nothing."""
        self.held = None

    def share(self, seq: SharedSeq, active: Sequence[SharedSeq]) -> None:
        """Copy what another sequence has of ``seq``'s prompt: all but its last token from a
        sibling with the same prompt, else the prefix of its earlier turns."""
        whole = len(seq.prompt) - 1
        if seq.n_past >= whole:
            return
        donor = next((d for d in active if d is not seq and d.prompt == seq.prompt
                      and d.cut == seq.cut and d.n_past >= whole), None)
        if donor is not None:
            return self._copy(donor.slot, seq, whole)
        if not seq.cut or seq.n_past >= seq.cut:
            return
        prefix = seq.prompt[:seq.cut]
        if self.held == prefix:
            return self._copy(self.holder, seq, seq.cut)
        donor = next((d for d in active if d is not seq and d.cut == seq.cut and d.n_past >= seq.cut
                      and d.prompt[:seq.cut] == prefix), None)
        if donor is not None:
            self._copy(donor.slot, seq, seq.cut)

    def keep_prefix(self, seq: SharedSeq) -> None:
        """After ``seq`` computed its prefix: hold it for prompts that come after ``seq`` ends."""
        if not seq.cut or seq.n_past != seq.cut:
            return
        prefix = seq.prompt[:seq.cut]
        if self.held == prefix:
            return
        self._copy_stream(seq.slot, self.holder, seq.cut)
        self.held = prefix

    def _copy(self, source: int, seq: SharedSeq, upto: int) -> None:
        self._copy_stream(source, seq.slot, upto)
        self.shared_tokens += upto - seq.n_past
        seq.n_past = upto

    def _copy_stream(self, source: int, target: int, upto: int) -> None:
        # Streams are separate (kv_unified off), so llama.cpp copies a whole stream; the source's
        # cells from ``upto`` on (the rest of its prompt, its generated tokens) are then removed.
        L.llama_memory_seq_rm(self.memory, target, -1, -1)
        L.llama_memory_seq_cp(self.memory, source, target, -1, -1)
        L.llama_memory_seq_rm(self.memory, target, upto, -1)
