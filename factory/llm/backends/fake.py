"""A deterministic, instant LLM for tests, benchmarks and dry runs.

Every reply is a pure function of the request (messages, params, sample index), so a build on the
fake backend is reproducible byte for byte. Options (the recipe's ``backend.options``):

- ``rules``: list of ``{match: REGEX, reply: TEMPLATE}`` or ``{match: REGEX, replies: [..]}``; the
  first rule whose regex matches the prompt text wins; ``replies`` picks one by request hash. A
  rule (or a ``replies`` entry written as ``{reply: TEMPLATE, top_logprobs: ...}``) may script the
  top-k log-probabilities a request with ``top_logprobs`` gets: a dict ``{A: -0.2, B: -1.8}`` for
  the first generated token, or a list with one dict (or null) per generated token. A token is a
  word with the spaces before it; unscripted positions list only the token itself at 0.0.
- ``default``: reply template when no rule matches.
- ``latency``: seconds each call takes (simulates a slow server).
- ``fail_match``: regex; matching requests fail with an error (never cached).
- ``fail_every``: N; about one request in N fails, chosen by request hash.

Templates may use ``{hash}`` (8 hex digits of the request), ``{last}`` (the last user message,
or a raw prompt), ``{sample}`` (sample index) and ``{temperature}``.

Raw prompts (``Request.text``) are matched like chat text; the pre-query prefix is ChatML's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any

from factory.llm.backends.base import Backend, BackendSettings
from factory.llm.backends.chat_prefix import CHATML, cut_at_user_turn, render_jinja
from factory.llm.request import Completion, Request, request_key, top_alternatives

DEFAULT_REPLY = "Answer {hash}: a short reply to '{last:.60}'."


class FakeBackend(Backend):
    name = "fake"
    raw_prompts = True
    gives_top_logprobs = True

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        opts: dict[str, Any] = dict(settings.options)
        self.rules = [(re.compile(r["match"], re.S), r) for r in opts.pop("rules", [])]
        self.default = opts.pop("default", DEFAULT_REPLY)
        self.latency = float(opts.pop("latency", 0.0))
        fail_match = opts.pop("fail_match", None)
        self.fail_match = re.compile(fail_match, re.S) if fail_match else None
        self.fail_every = int(opts.pop("fail_every", 0))
        if opts:
            raise ValueError(f"unknown fake backend option(s): {', '.join(sorted(opts))}")
        self.calls = 0  # requests actually served (tests assert on it)
        # The replies are a function of the rules and the default too: the cache keys them, so a
        # changed script is not answered from the old one's cache (hashed once, not per request).
        script = json.dumps([[r for _, r in self.rules], self.default], sort_keys=True, default=str)
        self._script_hash = hashlib.sha256(script.encode()).hexdigest()[:12]

    @property
    def model_id(self) -> str:
        return self.settings.model or "fake-1"

    @property
    def cache_id(self) -> str:
        return f"{self.model_id}+script:{self._script_hash}"

    def pre_query_prefix(self, system: str | None) -> str:
        return cut_at_user_turn(lambda messages: render_jinja(CHATML, messages), system)

    async def generate(self, requests: list[Request]) -> list[Completion]:
        if self.latency:
            await asyncio.sleep(self.latency)
        self.calls += len(requests)
        return [self._reply(r) for r in requests]

    def _reply(self, request: Request) -> Completion:
        digest = request_key(self.name, self.model_id, request)
        prompt = request.raw if request.raw is not None else \
            "\n".join(content for _, content in request.messages)
        prompt_tokens = self.count_tokens(request.message_dicts()) if request.raw is None \
            else len(prompt.split())
        if (self.fail_match and self.fail_match.search(prompt)) or (
            self.fail_every and int(digest[:8], 16) % self.fail_every == 0
        ):
            return Completion("", "error", prompt_tokens, 0, error="fake backend: scripted failure")
        template, scripted = self.default, None
        for pattern, rule in self.rules:
            if pattern.search(prompt):
                replies = rule.get("replies")
                chosen = replies[int(digest[8:16], 16) % len(replies)] if replies else rule
                if isinstance(chosen, dict):
                    template, scripted = chosen["reply"], chosen.get("top_logprobs")
                else:
                    template, scripted = chosen, rule.get("top_logprobs")
                break
        last_user = request.raw if request.raw is not None else \
            next((c for r, c in reversed(request.messages) if r == "user"), "")
        text = template.format(hash=digest[:8], last=last_user, sample=request.sample_index,
                               temperature=request.params.temperature)
        words = text.split()
        finish = "stop"
        if len(words) > request.params.max_tokens:
            words, finish = words[: request.params.max_tokens], "length"
            text = " ".join(words)
        completion = Completion(text, finish, prompt_tokens, len(words))
        if request.top_logprobs:
            completion.tokens, completion.top_logprobs = _top_logprobs(text, scripted, request.top_logprobs)
        return completion


def _top_logprobs(text: str, scripted: Any, k: int) -> tuple[list[str], list[dict[str, float]]]:
    """Tokens (words with their leading spaces) and the k most likely alternatives at each."""
    tokens = re.findall(r"\s*\S+", text)
    per_token = [scripted] if isinstance(scripted, dict) else list(scripted or [])
    top = []
    for i, token in enumerate(tokens):
        given = per_token[i] if i < len(per_token) and per_token[i] else {token: 0.0}
        top.append(dict(list(top_alternatives((str(t), float(lp)) for t, lp in given.items()).items())[:k]))
    return tokens, top
