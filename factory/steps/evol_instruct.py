"""``kind: evol_instruct`` — Evol-Instruct (Xu et al. 2023, "WizardLM"): an instruction evolved over
N generations by in-depth rewrites (add constraints, deepen, concretize, increase reasoning steps,
complicate input) or an in-breadth mutation (a new, rarer instruction in the same domain).

Each generation: pick an operation (``ctx.rng(generation)``, weighted), ask the rewrite, answer the
evolved instruction, and run the paper's instruction eliminator. As in the paper, an eliminated
evolution leaves the instruction as it was, to be evolved again next generation ("placed back as
they are, with the hope of upgrading them successfully in the next evolution epoch"); the failure
stays in the record's ``evolution`` chain with its reason.

``emit: last`` (default) keeps one record per seed: its last surviving generation. ``emit: all``
fans out: every surviving generation becomes a child record (the paper pools all generations).
A seed none of whose generations survived is rejected with the last elimination's reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import string
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from factory.core.errors import did_you_mean
from factory.core.record import Rejected
from factory.core.structured import json_object
from factory.core.templates import check_overrides, merged
from factory.llm.request import Completion, Request, SamplingParams
from factory.llm.spec import Params
from factory.steps.base import StepBase, StepContext, StepRunner, render

# The paper's evolving prompts, in our own words; structure kept: the #The Given Prompt# /
# #Rewritten Prompt# markers, the "add only 10 to 20 words" rule, the ban on template words.
DEPTH = """You rewrite prompts. Turn the prompt below into a harder version, one that makes \
well-known AI assistants such as ChatGPT and GPT-4 work more to answer it well.
The rewritten prompt must stay reasonable: a person must be able to understand it and answer it.
Do not leave out the parts of #The Given Prompt# that are not plain text, such as tables or code, \
and do not leave out its input.
Make the prompt harder in this way:
{method}
Keep #Rewritten Prompt# from getting wordy: it may add only 10 to 20 words to #The Given Prompt#.
The words '#The Given Prompt#', '#Rewritten Prompt#', 'given prompt' and 'rewritten prompt' must \
not appear in #Rewritten Prompt#.
#The Given Prompt#:
{instruction}
#Rewritten Prompt#:
"""

BREADTH = """You create prompts. Take #Given Prompt# as inspiration and write a completely new prompt.
The new prompt must belong to the same domain as #Given Prompt# but be about something rarer.
#Created Prompt# should be about as long and as complex as #Given Prompt#.
#Created Prompt# must be reasonable: a person must be able to understand it and answer it.
The words '#Given Prompt#', '#Created Prompt#', 'given prompt' and 'created prompt' must not \
appear in #Created Prompt#.
#Given Prompt#:
{instruction}
#Created Prompt#:
"""

# The paper's elimination check 1: "no information gain", judged by an LLM.
EQUALITY = """Here are two instructions for an AI assistant. Are they equal to each other, that is:
1. they have the same constraints and requirements;
2. they ask with the same depth and breadth?
The First Prompt: {first}
The Second Prompt: {second}
Your judgement (answer only Equal or Not Equal, give no reason):"""

METHODS = {
    "add_constraints": "Add one more constraint or requirement to #The Given Prompt#.",
    "deepen": "If #The Given Prompt# asks about a particular issue, make the inquiry about it "
              "deeper and broader.",
    "concretize": "Replace general concepts in #The Given Prompt# with more specific ones.",
    "increase_reasoning": "If #The Given Prompt# can be solved with only a few simple steps of "
                          "thought, rewrite it so that it explicitly asks for reasoning in several steps.",
    "complicate_input": "Give #The Given Prompt# a harder input to work on: add a short piece of data "
                        "in a format such as a table, JSON, XML, SQL, code or a formula, and make "
                        "the task use it.",
}

TEMPLATES: dict[str, str] = {"depth": DEPTH, "breadth": BREADTH, "equality": EQUALITY,
                             "response": "{instruction}", **METHODS}
PLACEHOLDERS = {"depth": ("method", "instruction"), "breadth": ("instruction",),
                "equality": ("first", "second"), "response": ("instruction",)}
OPERATIONS = (*METHODS, "breadth")
MARKERS = ("#Rewritten Prompt#", "#Created Prompt#")
# The paper's check 4: the rewrite copies words of the evolving prompt.
LEAK_PHRASES = ("#the given prompt#", "#given prompt#", "#rewritten prompt#", "#created prompt#",
                "given prompt", "rewritten prompt", "created prompt")
EQUALITY_SCHEMA = {"type": "object", "properties": {"judgement": {"enum": ["Equal", "Not Equal"]}},
                   "required": ["judgement"], "additionalProperties": False}
# The paper's check 3: a response of only punctuation and stop words. A short English stop list.
STOP_WORDS = frozenset("""a about above after again against all am an and any are as at be because
been before being below between both but by can could did do does doing down during each few for
from further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours out
over own same she should so some such than that the their theirs them then there these they this
those through to too under until up very was we were what when where which while who whom why will
with would you your yours yourself ok okay yes""".split())


class EvolInstructStep(StepBase):
    """Evolve ``reads: [instruction]`` for ``generations`` rounds; writes
    ``[instruction_evolved, response, evolution]``."""

    kind: Literal["evol_instruct"]
    generations: int = Field(3, ge=1, le=16, description="evolution rounds per seed (the paper: 4)")
    operations: dict[str, float] = Field(
        default_factory=lambda: {op: 1.0 for op in OPERATIONS},
        description=f"enabled operations and their weights; known: {', '.join(OPERATIONS)}")
    emit: Literal["last", "all"] = Field(
        "last", description="last: one record per seed; all: one child per surviving generation")
    max_added_words: int = Field(30, ge=1, description="a rewrite longer than its parent by more "
                                 "words is eliminated (the prompt asks for 10-20; 10 of slack)")
    sorry_max_words: int = Field(80, ge=0, description="a response with 'sorry' under this many "
                                 "words means the model could not answer (the paper: 80)")
    leak_phrases: list[str] = Field(default_factory=lambda: list(LEAK_PHRASES))
    templates: dict[str, str] = Field(default_factory=dict, description="override prompt templates "
                                      f"by name: {', '.join(TEMPLATES)}")
    judge_backend: str | None = Field(None, description="backend key for the equality check "
                                      "(default: the step's backend)")
    judge_params: Params = Field(Params(temperature=0, max_tokens=32),
                                 description="sampling for the equality check")
    response_params: Params = Field(Params(), description="sampling for the responses, over the "
                                    "step's params")

    @field_validator("operations")
    @classmethod
    def known_operations(cls, value: dict[str, float]) -> dict[str, float]:
        for op, weight in value.items():
            if op not in OPERATIONS:
                raise ValueError(f"unknown operation {op!r}{did_you_mean(op, OPERATIONS)}; "
                                 f"known: {', '.join(OPERATIONS)}")
            if weight < 0:
                raise ValueError(f"operation {op!r} has a negative weight")
        if not any(w > 0 for w in value.values()):
            raise ValueError("no operation has a positive weight")
        return value

    @field_validator("templates")
    @classmethod
    def known_templates(cls, value: dict[str, str]) -> dict[str, str]:
        check_overrides(value, TEMPLATES, PLACEHOLDERS)
        return value

    @model_validator(mode="after")
    def positional_columns(self) -> "EvolInstructStep":
        self.require_columns("[instruction]", "[instruction_evolved, response, evolution]")
        return self

    def backend_refs(self) -> dict[str, str]:
        refs = {"backend": self.backend}
        if self.judge_backend is not None:
            refs["judge_backend"] = self.judge_backend
        return refs


@dataclasses.dataclass
class Outcome:
    """One generation: the chain entry, and the elimination (None when it survived)."""

    entry: dict[str, Any]
    eliminated: Rejected | None = None


class EvolInstruct(StepRunner):
    def __init__(self, spec: EvolInstructStep, params: SamplingParams) -> None:
        super().__init__(spec, params)
        self.fans_out = spec.emit == "all"
        self.templates = merged(spec.templates, TEMPLATES)
        self.response_sampling = spec.response_params.over(params)

    def judge_sampling(self) -> SamplingParams:
        base = self.backend_params.get(self.spec.judge_backend, self.params) \
            if self.spec.judge_backend else self.params
        return self.spec.judge_params.over(base)

    def pick(self, ctx: StepContext, generation: int) -> str:
        ops = [(op, w) for op, w in self.spec.operations.items() if w > 0]
        return ctx.rng(generation).choices([o for o, _ in ops], [w for _, w in ops])[0]

    def rewrite_prompt(self, operation: str, instruction: str) -> str:
        if operation == "breadth":
            return render(self.templates["breadth"], {"instruction": instruction})
        return render(self.templates["depth"], {"method": self.templates[operation],
                                                "instruction": instruction})

    async def run(self, fields: dict[str, Any], ctx: StepContext) -> Any:
        current = str(fields[self.spec.reads[0]]).strip()
        chain: list[dict[str, Any]] = []
        survivors: list[dict[str, Any]] = []
        last_failure: Rejected | None = None
        for generation in range(1, self.spec.generations + 1):
            operation = self.pick(ctx, generation)
            ctx.count(f"operation.{operation}")
            outcome = await self.evolve(current, operation, generation, ctx)
            chain.append(outcome.entry)
            if outcome.eliminated is not None:
                # Placed back as it was: the next generation evolves the same instruction again.
                ctx.count(f"eliminated.{outcome.eliminated.reason}")
                last_failure = outcome.eliminated
                continue
            ctx.count("evolved")
            current = outcome.entry["instruction"]
            survivors.append(self.columns(outcome.entry, list(chain)))
        if not survivors:
            assert last_failure is not None
            reasons = ", ".join(f"gen {e['generation']}: {e['eliminated']}" for e in chain)
            return Rejected(last_failure.reason, f"no generation survived ({reasons}); last: "
                            f"{last_failure.detail}", raw=chain)
        if self.spec.emit == "all":
            return survivors
        return {**survivors[-1], self.spec.writes[2]: chain}

    def columns(self, entry: dict[str, Any], chain: list[dict[str, Any]]) -> dict[str, Any]:
        evolved, response, evolution = self.spec.writes
        return {evolved: entry["instruction"], response: entry["response"], evolution: chain}

    async def evolve(self, parent: str, operation: str, generation: int, ctx: StepContext) -> Outcome:
        entry: dict[str, Any] = {"generation": generation, "operation": operation}
        # sample_index = generation: a retry of the same parent and operation is a fresh sample.
        (reply,) = await ctx.ask([Request.chat(
            [{"role": "user", "content": self.rewrite_prompt(operation, parent)}], self.params,
            sample_index=generation)])
        rewrite = strip_marker(reply.text)
        entry["instruction"] = rewrite
        failure = self.check_rewrite(parent, rewrite, operation, reply)
        if failure is not None:
            return self.outcome(entry, failure)
        judge_request = Request.chat([{"role": "user", "content": render(
            self.templates["equality"], {"first": parent, "second": rewrite})}],
            self.judge_sampling(), json_schema=EQUALITY_SCHEMA)
        answer_request = Request.chat([{"role": "user", "content": render(
            self.templates["response"], {"instruction": rewrite})}], self.response_sampling)
        # The paper answers every evolved instruction; judge and answer at once.
        (verdict,), (answer,) = await asyncio.gather(
            ctx.ask([judge_request], self.spec.judge_backend), ctx.ask([answer_request]))
        response = answer.text.strip()
        entry["response"] = response
        equal = read_equality(verdict.text)
        if equal is None:
            return self.outcome(entry, Rejected("judge_unparseable", "the equality check said "
                                                  "neither Equal nor Not Equal", verdict.text))
        if equal:
            return self.outcome(entry, Rejected("no_information_gain",
                                                  "judged Equal to its parent", verdict.text))
        return self.outcome(entry, self.check_response(response, answer))

    def outcome(self, entry: dict[str, Any], failure: Rejected | None) -> Outcome:
        if failure is not None:
            entry["eliminated"] = failure.reason
            entry["detail"] = failure.detail
        return Outcome(entry, failure)

    def check_rewrite(self, parent: str, rewrite: str, operation: str,
                      reply: Completion) -> Rejected | None:
        if reply.finish_reason == "length":
            return Rejected("truncated", f"rewrite hit max_tokens={self.params.max_tokens}", reply.text)
        if not rewrite:
            return Rejected("empty_rewrite", f"{operation} gave no text", reply.text)
        lowered = rewrite.lower()
        leaked = [p for p in self.spec.leak_phrases if p.lower() in lowered]
        if leaked:
            return Rejected("template_leak", f"rewrite contains {leaked[0]!r}", reply.text)
        added = len(rewrite.split()) - len(parent.split())
        if added > self.spec.max_added_words:
            return Rejected("rewrite_too_long", f"{added} words added (max "
                            f"{self.spec.max_added_words})", reply.text)
        return None

    def check_response(self, response: str, answer: Completion) -> Rejected | None:
        """The paper's check 2 (a short 'sorry') and 3 (only punctuation and stop words)."""
        if answer.finish_reason == "length":
            return Rejected("truncated", f"response hit max_tokens={self.response_sampling.max_tokens}",
                            answer.text)
        words = [w.strip(string.punctuation).lower() for w in response.split()]
        if not any(w and w not in STOP_WORDS for w in words):
            return Rejected("response_failed", "the response is empty or only punctuation and "
                            "stop words", answer.text)
        if "sorry" in response.lower() and len(words) < self.spec.sorry_max_words:
            return Rejected("response_failed", f"'sorry' in a {len(words)}-word response",
                            answer.text)
        return None


def strip_marker(text: str) -> str:
    """The rewrite without a leading ``#Rewritten Prompt#:`` the model may echo."""
    out = text.strip()
    for marker in MARKERS:
        if out.lower().startswith(marker.lower()):
            out = out[len(marker):].lstrip(" :\n\t")
    return out.strip()


def read_equality(text: str) -> bool | None:
    """True = Equal, False = Not Equal, None = neither (JSON first, then plain words)."""
    data = json_object(text)
    text = str(data.get("judgement", "")) if data is not None else text
    if re.search(r"\bnot\s+equal\b", text, re.I):
        return False
    if re.search(r"\bequal\b", text, re.I):
        return True
    return None
