"""Any server that speaks OpenAI chat completions (vLLM server, llama.cpp server, Ollama, TGI, OpenAI).

``options.base_url`` picks the server (default: ``$OPENAI_BASE_URL`` or OpenAI). The key comes from
the environment variable named by ``options.api_key_env`` (default ``OPENAI_API_KEY``); local
servers usually need none, so a missing key is sent as a placeholder. Same limiter, retries, hard
timeout and cost rules as the anthropic backend (``http_common``). Prices: OpenAI's table for its
model names; anything else costs 0 unless ``options.price`` says otherwise.

Options, besides the common ones: ``api_key_env``, ``send_top_k`` (vLLM/llama.cpp servers accept
``top_k`` as an extra body field; OpenAI refuses it), ``send_seed`` (default true),
``chat_template`` (the served model's Jinja chat template, text or a file path: Magpie renders its
pre-query prefix from it; the API does not expose it).

A raw prompt (``Request.text``) goes to ``/v1/completions`` (vLLM, llama.cpp server, TGI and
Ollama serve it; OpenAI's chat models do not).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import openai

from factory.llm.backends.base import BackendSettings, pop_flag
from factory.llm.backends.chat_prefix import cut_at_user_turn, render_jinja
from factory.llm.backends.http_common import MALFORMED, ApiBackend, CallFailed
from factory.llm.pricing import OPENAI_PRICES
from factory.llm.request import Completion, Request, top_alternatives

FINISH = {"stop": "stop", "length": "length", "content_filter": "stop", "tool_calls": "stop"}


class OpenAICompatibleBackend(ApiBackend):
    name = "openai_compatible"
    gives_top_logprobs = True  # where the server gives them (OpenAI, vLLM, llama.cpp servers do)
    prices = OPENAI_PRICES
    raw_prompts = True

    def __init__(self, settings: BackendSettings) -> None:
        if not settings.model:
            raise ValueError("the openai_compatible backend needs a model (the server's model name)")
        super().__init__(settings)
        self.key_env = str(self.opts.pop("api_key_env", "OPENAI_API_KEY"))
        self.send_top_k = pop_flag(self.opts, "send_top_k", False)
        self.send_seed = pop_flag(self.opts, "send_seed", True)
        template = self.opts.pop("chat_template", None)
        if template is not None and "{" not in str(template):  # a path, not template text
            path = Path(str(template)).expanduser()
            if not path.is_file():
                raise ValueError(f"option chat_template: file not found: {path}")
            template = path.read_text(encoding="utf-8")
        self.chat_template: str | None = template
        self.check_options()
        key = self.api_key(self.key_env, required=False) or "none"  # local servers ignore it
        self.client = openai.AsyncOpenAI(api_key=key, base_url=self.base_url or os.environ.get(
            "OPENAI_BASE_URL"), max_retries=0, timeout=self.timeout)

    @property
    def model_id(self) -> str:
        return self.settings.model or ""

    def unsent_params(self) -> dict[str, str]:
        if self.send_top_k:
            return {}
        return {"top_k": "the openai_compatible backend sends it only with options.send_top_k: true "
                         "(vLLM and llama.cpp servers accept it; OpenAI refuses it)"}

    def pre_query_prefix(self, system: str | None) -> str:
        if self.chat_template is None:
            raise NotImplementedError("the openai_compatible backend cannot see the served model's chat "
                                      "template: set options.chat_template")
        template = self.chat_template
        return cut_at_user_turn(lambda messages: render_jinja(template, messages), system)

    def body(self, request: Request) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {"model": self.model_id, "max_tokens": p.max_tokens,
                                "temperature": p.temperature, "top_p": p.top_p}
        if request.raw is not None:
            body["prompt"] = request.raw
        else:
            body["messages"] = request.message_dicts()
        if p.stop:
            body["stop"] = list(p.stop)
        if self.send_seed:  # the request's own seed: same request, same sample, on servers that honor it
            body["seed"] = request.sampling_seed(self.name, self.model_id) & 0x7FFFFFFF
        if request.raw is not None:
            if request.logprobs:  # completions: logprobs is a top-n count (top-k alternatives: chat only)
                body["logprobs"] = 1
        else:
            if request.logprobs or request.top_logprobs:
                body["logprobs"] = True
            if request.top_logprobs:  # OpenAI allows up to 20; vLLM and llama.cpp servers more
                body["top_logprobs"] = request.top_logprobs
        if self.send_top_k and p.top_k:
            body["extra_body"] = {"top_k": p.top_k}
        return body

    async def _call(self, request: Request) -> Completion:
        if request.raw is not None:
            return await self._complete_raw(request)
        reply = await self.client.chat.completions.create(**self.body(request))
        try:
            choice = reply.choices[0]
            logprobs = None
            if request.logprobs and choice.logprobs is not None and choice.logprobs.content:
                logprobs = [float(t.logprob) for t in choice.logprobs.content]
            usage = reply.usage
            completion = Completion(choice.message.content or "",
                                    FINISH.get(choice.finish_reason or "", "stop"),
                                    int(usage.prompt_tokens) if usage else 0,
                                    int(usage.completion_tokens) if usage else 0, logprobs)
            content = choice.logprobs.content if choice.logprobs is not None else None
            if request.top_logprobs and content:  # a server that gives none leaves them None
                completion.tokens = [t.token for t in content]
                completion.top_logprobs = [
                    top_alternatives((a.token, float(a.logprob)) for a in t.top_logprobs or [])
                    for t in content]
            return completion
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise CallFailed(MALFORMED, f"unexpected reply shape: {exc}") from None

    async def _complete_raw(self, request: Request) -> Completion:
        reply = await self.client.completions.create(**self.body(request))
        try:
            choice = reply.choices[0]
            logprobs = None
            if request.logprobs and choice.logprobs is not None and choice.logprobs.token_logprobs:
                logprobs = [float(x) for x in choice.logprobs.token_logprobs if x is not None]
            usage = reply.usage
            return Completion(choice.text or "", FINISH.get(choice.finish_reason or "", "stop"),
                              int(usage.prompt_tokens) if usage else 0,
                              int(usage.completion_tokens) if usage else 0, logprobs)
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise CallFailed(MALFORMED, f"unexpected reply shape: {exc}") from None

    async def close(self) -> None:
        await self.client.close()
