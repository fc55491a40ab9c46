"""What a model is asked and what it answers: sampling params, a request, a completion, and the
cache key that identifies a request whatever the batching.

A request is chat messages + sampling params + a sample index. The sample index lets a step ask
for several independent samples of the same prompt; it is part of the cache key and of the
per-request random seed, so sample 3 is the same text whether it was made alone or in a batch.

A raw request (``Request.text``) carries a prompt string instead of chat messages: the model
continues that text as it stands, no chat template applied (Magpie sends the template's pre-query
prefix this way). Only backends with ``raw_prompts`` take one.

Log-probabilities: ``logprobs`` asks for the chosen token's log-probability at each generated
position; ``top_logprobs=k`` for the k most likely tokens there (text -> log-probability of the
model's raw distribution, before any grammar or top-k/top-p), with each generated token's text, so
a judge can read P("A") vs P("B") where it wrote its verdict.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int = 0  # the build's global seed; per-request seeds derive from it

    def as_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "max_tokens": self.max_tokens, "stop": list(self.stop), "seed": self.seed}

    @cached_property
    def canonical(self) -> str:
        """Sorted-key JSON, computed once: it goes into every cache key."""
        return json.dumps(self.as_dict(), sort_keys=True)


@dataclass(frozen=True)
class Request:
    messages: tuple[tuple[str, str], ...]  # (role, content) pairs: hashable and ordered
    params: SamplingParams
    sample_index: int = 0
    logprobs: bool = False
    # A JSON schema (as canonical JSON text) the answer must follow. Backends that can constrain
    # decoding (llama.cpp grammars, structured outputs) enforce it; others may only be asked.
    json_schema: str | None = None
    top_logprobs: int = 0  # k alternatives per generated position (0: none)
    raw: str | None = None  # a raw text prompt, sent as is (then ``messages`` is empty)

    @classmethod
    def text(cls, prompt: str, params: SamplingParams, sample_index: int = 0) -> "Request":
        """A raw prompt: the model continues ``prompt``; no chat template is applied."""
        return cls((), params, sample_index, raw=prompt)

    @classmethod
    def chat(cls, messages: list[dict[str, str]], params: SamplingParams, sample_index: int = 0,
             logprobs: bool = False, json_schema: dict[str, Any] | None = None,
             top_logprobs: int = 0) -> "Request":
        # Key order is kept: it is the order a constrained decoder writes the fields in.
        schema = json.dumps(json_schema) if json_schema is not None else None
        return cls(tuple((m["role"], m["content"]) for m in messages), params, sample_index,
                   logprobs, schema, top_logprobs)

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def prompt_hash(self) -> str:
        """Hash of the prompt alone (messages, or the raw prompt), recorded in lineage."""
        prompt = self.messages if self.raw is None else self.raw
        return hashlib.sha256(json.dumps(prompt).encode()).hexdigest()[:16]

    @cached_property
    def canonical(self) -> str:
        """Everything about the request that changes its answer, as stable JSON. (A chat request's
        key is what it was before raw prompts and top-k existed: caches made then still answer.)"""
        parts: list = [self.params.canonical, self.messages, self.sample_index, self.logprobs,
                       self.json_schema]
        if self.top_logprobs:  # only when asked
            parts.append(self.top_logprobs)
        if self.raw is not None:
            parts.append({"raw": self.raw})
        return json.dumps(parts)

    def sampling_seed(self, backend: str, model: str) -> int:
        """Deterministic per-request seed: same request -> same seed, whatever the batching. Asking
        for top-k alternatives does not move it: the same sample, with its probabilities."""
        plain = replace(self, top_logprobs=0) if self.top_logprobs else self
        return int(request_key(backend, model, plain)[:8], 16)


@dataclass
class Completion:
    text: str
    finish_reason: str = "stop"  # stop | length | error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[float] | None = None  # per generated token, where the backend has them
    error: str | None = None  # set when the call failed; failed calls are never cached
    # With Request.top_logprobs: per generated token, its text and its top-k alternatives
    # (token text -> log-probability, most likely first).
    tokens: list[str] | None = None
    top_logprobs: list[dict[str, float]] | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = {"text": self.text, "finish_reason": self.finish_reason,
                                "prompt_tokens": self.prompt_tokens,
                                "completion_tokens": self.completion_tokens, "logprobs": self.logprobs,
                                "error": self.error}
        if self.top_logprobs is not None:
            data.update(tokens=self.tokens, top_logprobs=self.top_logprobs)
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Completion":
        data = json.loads(text)
        if data.get("top_logprobs"):  # stored with sorted keys: most likely first again
            data["top_logprobs"] = [dict(sorted(d.items(), key=lambda kv: -kv[1]))
                                    for d in data["top_logprobs"]]
        return cls(**data)


def top_alternatives(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    """A position's alternatives as ``Completion.top_logprobs`` holds them: token text ->
    log-probability, most likely first. Tokens that decode to the same text add up; byte fragments
    (U+FFFD: different bytes, not the same text) keep the likeliest."""
    out: dict[str, float] = {}
    for text, logprob in pairs:
        if text in out and "\ufffd" in text:
            logprob = max(out[text], logprob)
        elif text in out:
            high, low = max(out[text], logprob), min(out[text], logprob)
            logprob = high + math.log1p(math.exp(low - high))
        out[text] = float(logprob)
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def request_key(backend: str, model: str, request: Request) -> str:
    """Cache key: backend, model, sampling params, messages, sample index — nothing about batching."""
    payload = json.dumps([backend, model, request.canonical])
    return hashlib.sha256(payload.encode()).hexdigest()
