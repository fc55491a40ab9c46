"""The one contract every LLM backend implements: ``generate(requests) -> completions``
(requests and completions are in ``factory.llm.request``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from factory.llm.request import Completion, Request, SamplingParams


@dataclass
class BackendSettings:
    """What a recipe's backend block hands to a backend's constructor."""

    model: str | None = None
    concurrency: int = 8
    options: dict[str, Any] = field(default_factory=dict)


def pop_flag(options: dict[str, Any], name: str, default: bool) -> bool:
    """Take the true/false option ``name`` out of ``options``; a string like "no" is an error, not True."""
    value = options.pop(name, default)
    if not isinstance(value, bool):
        raise ValueError(f"option {name} must be true or false, not {value!r}")
    return value


class Backend(ABC):
    """An LLM behind one narrow async method. Subclasses set ``name`` and implement ``generate``."""

    name: ClassVar[str]
    # True: ``generate`` takes requests with a raw text prompt (``Request.raw``), and
    # ``pre_query_prefix`` renders the model's chat template up to a user turn's content (Magpie).
    raw_prompts: ClassVar[bool] = False
    # Whether completions can carry top-k log-probabilities (``Request.top_logprobs``): judges in
    # ``logprob`` mode need them; a backend without them is refused before any call.
    gives_top_logprobs: ClassVar[bool] = False

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings

    @property
    def model_id(self) -> str:
        """Identifies the model in cache keys and lineage."""
        return self.settings.model or "default"

    @property
    def cache_id(self) -> str:
        """Identifies the model in the request cache. ``model_id`` by default; a backend whose
        model_id names weights that can change under the same name adds a fingerprint here (not
        in model_id: per-request sampling seeds derive from model_id and must stay put)."""
        return self.model_id

    @abstractmethod
    async def generate(self, requests: list[Request]) -> list[Completion]:
        """One completion per request, in order. A failed call is a Completion with ``error`` set."""

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        """Prompt tokens for a chat; backends with a tokenizer override this rough count."""
        return sum(len(m["content"].split()) + 4 for m in messages)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for a call of this size; local backends are free."""
        return 0.0

    def estimate_cost(self, request: Request) -> float:
        """Worst-case USD for a request before it is made (the budget reserves this much)."""
        return 0.0

    def counters(self) -> dict[str, Any]:
        """Backend-specific counts for stats (retries, throttles, dollars); none by default."""
        return {}

    def unsent_params(self) -> dict[str, str]:
        """Sampling parameters this backend, with its options, does not send, each with the rule.

        A recipe that sets one of them is refused before any call (it would silently not apply);
        the defaults it does not send are listed in the dataset card. Local backends send all.
        """
        return {}

    def params_problem(self, params: SamplingParams) -> str | None:
        """Why this backend cannot honour ``params`` as given (e.g. a value outside the API's
        range), or None. Checked for every step before any call; never clamped silently."""
        return None

    def pre_query_prefix(self, system: str | None) -> str:
        """The chat template rendered up to where a user turn's text would start (Magpie's
        prompt); backends with raw prompts and a known template override this."""
        raise NotImplementedError(f"the {self.name} backend cannot render its model's chat template")

    async def close(self) -> None:
        """Release model memory, threads and connections."""
