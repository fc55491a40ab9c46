"""llama.cpp sampler chains for the embedded backend: a JSON-schema grammar first (later samplers
see only legal tokens), then greedy, or top-k → top-p → temperature → a draw seeded by the request
itself, so a text never depends on what else shares the batch."""

from __future__ import annotations

from typing import Any

import llama_cpp as L
import numpy as np
from llama_cpp.llama_grammar import json_schema_to_gbnf

from factory.llm.backends.chat_prefix import CHATML  # noqa: F401  (GGUFs without a template: llama_cpp)
from factory.llm.request import Request


class Samplers:
    """Builds one sampler chain per request for a model's vocabulary; grammars are converted once."""

    def __init__(self, vocab: Any) -> None:
        self.vocab = vocab
        self._grammars: dict[str, bytes] = {}  # JSON schema -> GBNF

    def chain(self, request: Request, seed: int) -> Any:
        """A new llama.cpp sampler chain for ``request`` (free it with ``llama_sampler_free``)."""
        p = request.params
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        if request.json_schema is not None:  # constrain first: later samplers only see legal tokens
            grammar = L.llama_sampler_init_grammar(self.vocab, self._gbnf(request.json_schema), b"root")
            if not grammar:
                L.llama_sampler_free(chain)
                raise ValueError("llama.cpp rejected the grammar made from the JSON schema")
            L.llama_sampler_chain_add(chain, grammar)
        if p.temperature <= 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
            return chain
        seed = seed if seed != 0xFFFFFFFF else 0  # 0xFFFFFFFF means "random seed" to llama.cpp
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(p.top_k))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(p.top_p, 1))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(p.temperature))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed))
        return chain

    def _gbnf(self, schema: str) -> bytes:
        if schema not in self._grammars:
            self._grammars[schema] = json_schema_to_gbnf(schema).encode()
        return self._grammars[schema]


def position_logprobs(logits: np.ndarray, token: int, k: int) -> tuple[float, list[tuple[int, float]]]:
    """Log-softmax of one position's raw logits (temperature 1, before any grammar or top-k/top-p):
    the chosen token's log-probability and the ``k`` most likely tokens as (id, log-probability),
    most likely first."""
    top = float(logits.max())
    lse = top + float(np.log(np.exp(logits - top, dtype=np.float64).sum()))
    if k <= 0:
        return float(logits[token]) - lse, []
    ids = np.argpartition(logits, -k)[-k:]
    ids = ids[np.argsort(-logits[ids], kind="stable")]
    return float(logits[token]) - lse, [(int(i), float(logits[i]) - lse) for i in ids]
