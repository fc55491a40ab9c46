"""The method-step contract.

Simple steps implement ``requests(fields)`` to ask and ``parse(fields, completions)`` to read.
Multi-turn steps (critique→revise, evolution chains, best-of-N with a judge) override
``run(fields, ctx)`` and call ``ctx.ask`` as often as they need. A step may return a list of
field dicts to fan out: each becomes a child record that walks the rest of the graph.
Set-level steps (a task pool that grows over rounds) subclass ``SetRunner`` and see all records.

A step never raises on bad model output: it returns ``Rejected(reason)`` and the raw text travels
with the reject. The engine owns concurrency, caching, lineage and bookkeeping.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr, field_validator

from factory.core.record import Record, Rejected
from factory.core.schema import IDENTIFIER, Strict
from factory.llm.backends.base import Backend
from factory.llm.request import Completion, Request, SamplingParams
from factory.llm.spec import Params

StepOutput = dict[str, Any] | list[dict[str, Any]] | Rejected


class BackendFailure(Exception):
    """A call came back with an error: the record fails (retried next run), it is not rejected."""


AskFn = Callable[[list[Request], str | None], Awaitable[list[Completion]]]


@dataclass
class StepContext:
    """What a step's ``run`` may use besides the record's fields."""

    record_id: str
    step: str
    seed: int
    _ask: AskFn
    prompt_hashes: list[str] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)

    async def ask(self, requests: list[Request], backend: str | None = None) -> list[Completion]:
        """Completions in request order (cached, coalesced). Raises BackendFailure on any error.

        ``backend``: a key of the recipe's backends for steps with a separate judge/scorer.
        """
        self.prompt_hashes.extend(r.prompt_hash() for r in requests)
        completions = await self._ask(requests, backend)
        errors = [c.error for c in completions if c.error is not None]
        if errors:
            raise BackendFailure(errors[0])
        return completions

    def rng(self, *salt: Any) -> random.Random:
        """A private RNG for this (build seed, record, step, salt): same draws on every run."""
        key = repr((self.seed, self.record_id, self.step, salt)).encode()
        return random.Random(int(hashlib.sha256(key).hexdigest()[:16], 16))

    def count(self, key: str, n: int = 1) -> None:
        """A step-specific figure for stats.json (e.g. the judge's consistent orders)."""
        self.counters[key] += n


class StepRunner:
    """Per-record step. Override ``requests`` + ``parse``, or ``run`` for multi-call logic."""

    def __init__(self, spec: Any, params: SamplingParams) -> None:
        self.spec = spec
        self.params = params  # the backend's params with the step's overrides applied
        self.backend_params: dict[str, SamplingParams] = {}  # other backends' params, by recipe key
        self.backend: Backend | None = None  # the step's own backend (set by bind_steps), for
        # what only the backend knows (Magpie's chat-template prefix); calls go through ctx.ask

    @property
    def name(self) -> str:
        return self.spec.name

    fans_out: bool = False  # True when ``run`` may return a list of child field dicts
    local: bool = False  # True when the step calls no model (code only): the dry run runs it too

    def rates(self, figures: Counter) -> dict[str, float]:
        """Rates derived from the step's summed figures once the build is done (e.g. pass@k)."""
        return {}

    def card_section(self, figures: Counter) -> str:
        """Markdown the dataset card adds for this step (e.g. the constraints attached); '' for none."""
        return ""

    def needs_all_inputs(self) -> bool:
        """True: ``prepare`` sees every record that reaches the step before it runs on any."""
        return False

    async def prepare(self, records: list[Record], ctx: StepContext) -> None:
        """Called once, before the step runs on any record, with every record that reaches it,
        when ``needs_all_inputs()`` (a judge's gate measures the judge here)."""

    def measurement(self) -> dict[str, Any] | None:
        """What the step measured about itself, for stats.json and the card (a judge's agreement)."""
        return None

    def requests(self, fields: dict[str, Any]) -> list[Request] | Rejected:
        """The LLM calls this record needs (or a rejection that needs no call)."""
        raise NotImplementedError

    def parse(self, fields: dict[str, Any], completions: list[Completion]) -> StepOutput:
        """New columns from the completions, one per request in order."""
        raise NotImplementedError

    async def run(self, fields: dict[str, Any], ctx: StepContext) -> StepOutput:
        requests = self.requests(fields)
        if isinstance(requests, Rejected):
            return requests
        return self.parse(fields, await ctx.ask(requests))


@dataclass
class SetOutcome:
    """What a set-level step made of all its input records.

    ``records``: the records that go on (new ones and/or kept inputs); ``rejects``: (record,
    Rejected) for every candidate dropped with its reason; ``consumed``: input records that do not
    go on because the step used them up (e.g. seed tasks that only served as examples).
    """

    records: list[Record]
    rejects: list[tuple[Record, Rejected]] = field(default_factory=list)
    consumed: list[Record] = field(default_factory=list)


class SetRunner(StepRunner):
    """A step that needs every record at once (a barrier in the graph), e.g. a growing task pool."""

    async def run_set(self, records: list[Record], ctx: StepContext) -> SetOutcome:
        raise NotImplementedError


def render(template: str, fields: dict[str, Any]) -> str:
    return template.format_map({k: v if isinstance(v, str) else str(v) for k, v in fields.items()})


def template_chat(system: str | None, prompt: str, fields: dict[str, Any],
                  examples: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """A system (optional) + user chat rendered from a step's templates; ``examples`` (user,
    assistant) pairs go before the prompt as earlier turns (few-shot)."""
    chat = [{"role": "system", "content": render(system, fields)}] if system else []
    for user, assistant in examples:
        chat += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return chat + [{"role": "user", "content": render(prompt, fields)}]


def child_id(parent_id: str, step: str, index: int) -> str:
    """Stable id for a record a step made from ``parent_id`` (fan-out) or from a set step."""
    return hashlib.sha256(f"{parent_id}/{step}/{index}".encode()).hexdigest()[:16]


class StepBase(Strict):
    name: str = Field(pattern=IDENTIFIER)
    reads: list[str] = Field(default_factory=list, description="columns this step reads")
    writes: list[str] = Field(description="columns this step writes")
    backend: str = Field("default", description="'default' or a key of the recipe's 'backends'")
    params: Params = Params()
    # The recipe's folder (set when the recipe is planned): files a step names are relative to it.
    _recipe_dir: Path | None = PrivateAttr(None)
    # True: the step sends raw text prompts (Request.raw), so its backend must take them.
    needs_raw_prompts: ClassVar[bool] = False

    @field_validator("writes", mode="before")
    @classmethod
    def one_name_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def require_columns(self, reads: str | None, writes: str | None) -> None:
        """For steps whose columns have fixed roles: ``reads``/``writes`` name them, e.g. "[a, b]"."""
        for which, roles in (("reads", reads), ("writes", writes)):
            if roles is not None and len(getattr(self, which)) != roles.count(",") + 1:
                raise ValueError(f"{self.kind} {which} exactly {roles}")

    def backend_refs(self) -> dict[str, str]:
        """Backend keys this step calls, by field path (a step with a separate judge adds its own)."""
        return {"backend": self.backend}

    def needs_all_inputs(self) -> bool:
        """True: the runner's ``prepare`` sees every record that reaches the step before it runs
        on any (the engine waits for them: a barrier before the step)."""
        return False

    def logprob_refs(self) -> dict[str, str]:
        """Backend keys that must give top-k log-probabilities, by field path (a judge in logprob
        mode); a backend without them is refused before any call."""
        return {}

    def code_refs(self) -> dict[str, str]:
        """User code (``module:function``) this step imports, by field path: needs --trust-code."""
        return {}

    def backends_used(self) -> list[str]:
        return list(dict.fromkeys(self.backend_refs().values()))
