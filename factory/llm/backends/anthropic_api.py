"""Anthropic's Messages API through the official ``anthropic`` async client.

The key comes from ``ANTHROPIC_API_KEY`` only. Retries, the adaptive limiter, the hard timeout and
cost are ``http_common.ApiBackend``'s; the SDK's own retries are off so that each attempt is seen
(counted, throttled, timed). Sampling: ``max_tokens`` and stop sequences are always sent;
temperature, top_p and top_k only with ``options.send_sampling: true`` (recent Claude models refuse
temperature and top_p together, so by default the model's own defaults apply). A recipe that sets
one of them without ``send_sampling`` is refused before any call, and the card says which are not
sent; a temperature above the API's 1.0 is refused, not clamped.

Options, besides the common ones: ``batch`` (true: Message Batches, half price, see
``anthropic_batches``), ``batch_wait_s``, ``batch_max``, ``poll_s``, ``batch_state`` (file),
``max_resubmits``, ``send_sampling``.
"""

from __future__ import annotations

from typing import Any

import anthropic

from factory.llm.backends.anthropic_batches import BatchRunner, to_completion
from factory.llm.backends.base import BackendSettings, pop_flag
from factory.llm.backends.http_common import ApiBackend, split_system
from factory.llm.pricing import ANTHROPIC_PRICES, BATCH_DISCOUNT
from factory.llm.request import Completion, Request, SamplingParams

KEY_ENV = "ANTHROPIC_API_KEY"

class AnthropicBackend(ApiBackend):
    name = "anthropic"
    prices = ANTHROPIC_PRICES
    key_env = KEY_ENV

    def __init__(self, settings: BackendSettings) -> None:
        if not settings.model:
            raise ValueError("the anthropic backend needs a model (e.g. model: claude-haiku-4-5)")
        super().__init__(settings)
        self.batch = pop_flag(self.opts, "batch", False)
        self.send_sampling = pop_flag(self.opts, "send_sampling", False)
        batch_opts = {k: self.opts.pop(k) for k in ("batch_wait_s", "batch_max", "poll_s", "batch_state",
                                                      "max_resubmits") if k in self.opts}
        self.check_options()
        if self.price is None:  # a paid API with unknown cost would make --budget-usd a no-op
            raise ValueError(f"no price known for {self.model_id}: set backend.options.price: "
                             "{input: USD per Mtok, output: USD per Mtok}")
        self.client = anthropic.AsyncAnthropic(api_key=self.api_key(KEY_ENV), base_url=self.base_url,
                                               max_retries=0, timeout=self.timeout)
        self.batcher = None
        if self.batch:
            self.batcher = BatchRunner(self, **batch_opts)
        elif batch_opts:
            raise ValueError(f"{', '.join(sorted(batch_opts))}: only with options.batch: true")

    @property
    def model_id(self) -> str:
        return self.settings.model or ""

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        full = super().cost(prompt_tokens, completion_tokens)
        return full * BATCH_DISCOUNT if self.batch else full

    def counters(self) -> dict[str, Any]:
        out = super().counters()
        if self.batcher is not None:
            out.update({f"batch_{k}": v for k, v in sorted(self.batcher.counts.items())})
        return out

    def unsent_params(self) -> dict[str, str]:
        if self.send_sampling:
            return {}
        rule = "the anthropic backend sends it only with options.send_sampling: true"
        return {"temperature": rule, "top_p": rule, "top_k": rule}

    def params_problem(self, params: SamplingParams) -> str | None:
        if self.send_sampling and params.temperature > 1.0:
            return f"temperature {params.temperature:g}: Anthropic's API accepts 0 to 1"
        return None

    def params(self, request: Request) -> dict[str, Any]:
        """The Messages API body for one request (also one entry of a batch)."""
        p = request.params
        system, messages = split_system(request)
        body: dict[str, Any] = {"model": self.model_id, "messages": messages, "max_tokens": p.max_tokens}
        if system:
            body["system"] = system
        if p.stop:
            body["stop_sequences"] = list(p.stop)
        if self.send_sampling:
            body["temperature"] = p.temperature
            body["top_p"] = p.top_p
            if p.top_k:
                body["top_k"] = p.top_k
        return body

    async def _call(self, request: Request) -> Completion:
        body = self.params(request)
        extra = {k: body.pop(k) for k in ("temperature", "top_p", "top_k") if k in body}
        message = await self.client.messages.create(**body, extra_body=extra or None)
        return to_completion(message)

    async def generate(self, requests: list[Request]) -> list[Completion]:
        if self.batcher is not None:
            return await self.batcher.generate(requests)
        return await super().generate(requests)

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        await self.client.close()
