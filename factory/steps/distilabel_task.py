"""``kind: distilabel_task`` — run a distilabel Task (UltraFeedback, EvolQuality, ...) as a step.

distilabel's task catalogue without its pipeline runtime: the Task is built with an adapter LLM
whose ``generate`` sends every chat through ``ctx.ask``, so our backends, cache, coalescing and
concurrency apply. Each record runs ``task.process([row])`` in a worker thread (distilabel's task
code is synchronous); the adapter hands the calls back to the event loop and waits for them.

Tasks that override ``process`` (the Evol* family) seed numpy's global RNG inside it, so they run one
record at a time, each with a seed drawn from the record's own RNG (reproducible, and different per
record). Needs ``pip install 'factory[distilabel]'`` (distilabel 1.5.3 + requests, which it uses
without declaring it).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import warnings
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from factory.core.errors import did_you_mean
from factory.core.record import Rejected
from factory.llm.request import Completion, Request
from factory.steps.base import StepBase, StepContext, StepRunner

MODEL_NAME = "factory"  # what the task sees as llm.model_name; lineage records the real model


def _distilabel() -> Any:
    try:
        logging.getLogger("distilabel").setLevel(logging.ERROR)  # "no pipeline" warnings: expected
        with warnings.catch_warnings():  # its pydantic models warn on import; not ours to fix
            warnings.simplefilter("ignore")
            return importlib.import_module("distilabel.steps.tasks")
    except ImportError as exc:
        raise ValueError("distilabel_task needs distilabel: pip install 'factory[distilabel]' "
                         f"({exc})") from None


def task_class(name: str) -> type:
    """A Task class by catalogue name (``UltraFeedback``) or dotted path (``pkg.module.MyTask``)."""
    tasks = _distilabel()
    if "." in name:
        module_name, _, attr = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), attr, None)
        except ImportError as exc:
            raise ValueError(f"cannot import {module_name}: {exc}") from None
    else:
        cls = getattr(tasks, name, None)
    if not (isinstance(cls, type) and issubclass(cls, tasks.Task)):
        known = sorted({n for n in tasks.__all__ if isinstance(getattr(tasks, n, None), type)
                        and issubclass(getattr(tasks, n), tasks.Task) and n != "Task"})
        raise ValueError(f"unknown distilabel task {name!r}{did_you_mean(name, known)}; "
                         f"e.g. {', '.join(known[:8])}, ... or a dotted path")
    return cls


def make_adapter() -> Any:
    """A distilabel LLM that forwards to the step's backend (class made on first use: lazy import)."""
    from distilabel.models.llms.base import LLM

    class FactoryLLM(LLM):
        """Never called by a distilabel pipeline: our step calls ``task.process`` itself."""

        _local: Any = PrivateAttr(default_factory=threading.local)

        @property
        def model_name(self) -> str:
            return MODEL_NAME

        def bind(self, runner: "DistilabelTask", ctx: StepContext, loop: asyncio.AbstractEventLoop) -> None:
            self._local.target = (runner, ctx, loop)
            self._local.completions = []

        def completions(self) -> list[Completion]:
            return self._local.completions

        def generate(self, inputs: list[Any], num_generations: int = 1, **kwargs: Any) -> list[Any]:
            runner, ctx, loop = self._local.target
            requests = [Request.chat(list(chat), runner.params, sample_index=g)
                        for chat in inputs for g in range(num_generations)]
            done = asyncio.run_coroutine_threadsafe(ctx.ask(requests), loop).result()
            self._local.completions.extend(done)
            out = []
            for i in range(len(inputs)):
                mine = done[i * num_generations:(i + 1) * num_generations]
                out.append({"generations": [c.text for c in mine], "statistics": {
                    "input_tokens": [c.prompt_tokens for c in mine],
                    "output_tokens": [c.completion_tokens for c in mine]}})
            return out

    return FactoryLLM()


class DistilabelTaskStep(StepBase):
    """``task: UltraFeedback``; ``inputs``/``outputs`` map task field names to our columns."""

    kind: Literal["distilabel_task"]
    task: str = Field(description="a distilabel.steps.tasks class name or a dotted path to a Task")
    task_args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the Task")
    num_generations: int = Field(1, ge=1, le=64, description=">1: each output column holds a list")
    inputs: dict[str, str] = Field(default_factory=dict, description="task input -> column "
                                   "(default: the same name)")
    outputs: dict[str, str] = Field(default_factory=dict, description="task output -> column "
                                    "(default: the same name)")

    @field_validator("task")
    @classmethod
    def known_task(cls, value: str) -> str:
        task_class(value)
        return value

    @model_validator(mode="after")
    def task_fits(self) -> "DistilabelTaskStep":
        task = self.build_task()
        needed = list(task.get_inputs())
        required = [n for n, req in task.get_inputs().items() if req]
        for name in required:
            column = self.inputs.get(name, name)
            if column not in self.reads:
                raise ValueError(f"task {self.task} needs input {name!r}: list column {column!r} in "
                                 f"'reads' or map it with inputs: {{{name}: <column>}}")
        for name in self.inputs:
            if name not in needed:
                raise ValueError(f"inputs: {name!r} is not an input of {self.task}"
                                 f"{did_you_mean(name, needed)}; it reads {needed}")
        produced = {self.outputs.get(n, n): n for n in task.get_outputs()}
        for name in self.outputs:
            if name not in task.get_outputs():
                raise ValueError(f"outputs: {name!r} is not an output of {self.task}"
                                 f"{did_you_mean(name, list(task.get_outputs()))}; it writes "
                                 f"{list(task.get_outputs())}")
        for column in self.writes:
            if column not in produced:
                raise ValueError(f"writes: {self.task} has no output for column {column!r}"
                                 f"{did_you_mean(column, list(produced))}; it writes {list(produced)} "
                                 "(map others with outputs: {task_output: column})")
        return self

    def build_task(self) -> Any:
        cls = task_class(self.task)
        args = {**self.task_args, "num_generations": self.num_generations,
                "group_generations": self.num_generations > 1}
        try:
            return cls(llm=make_adapter(), **args)
        except Exception as exc:  # pydantic's ValidationError or the task's own checks
            first = str(exc).strip().splitlines()
            raise ValueError(f"task_args for {self.task}: {' '.join(first[:3])}") from None


class DistilabelTask(StepRunner):
    spec: DistilabelTaskStep

    def __init__(self, spec: DistilabelTaskStep, params: Any) -> None:
        super().__init__(spec, params)
        self.task = spec.build_task()
        self.task.load()
        tasks = _distilabel()
        # Evol* tasks run several rounds inside process() and seed numpy's global RNG there.
        self._serial = threading.Lock() if type(self.task).process is not tasks.Task.process else None

    def _process(self, row: dict[str, Any], ctx: StepContext,
                 loop: asyncio.AbstractEventLoop) -> tuple[list[dict[str, Any]], list[Completion]]:
        llm = self.task.llm
        llm.bind(self, ctx, loop)
        if self._serial is None:
            return list(next(self.task.process([row]))), llm.completions()
        with self._serial:
            if "seed" in type(self.task).model_fields:
                self.task.seed = ctx.rng("seed").randrange(2**31)
            return list(next(self.task.process([row]))), llm.completions()

    async def run(self, fields: dict[str, Any], ctx: StepContext) -> dict[str, Any] | Rejected:
        row = {name: fields[self.spec.inputs.get(name, name)] for name in self.task.get_inputs()
               if self.spec.inputs.get(name, name) in fields}
        out, completions = await asyncio.to_thread(self._process, row, ctx, asyncio.get_running_loop())
        raw = [c.text for c in completions]
        ctx.count("calls", len(completions))
        if any(c.finish_reason == "length" for c in completions):
            return Rejected("truncated", f"a reply hit max_tokens={self.params.max_tokens}", raw)
        result = out[0]
        produced = {self.spec.outputs.get(n, n): n for n in self.task.get_outputs()}
        values = {column: result.get(produced[column]) for column in self.spec.writes}
        parsed = [v for c, v in values.items() if produced[c] != "model_name"]
        if parsed and all(_empty(v) for v in parsed):
            # distilabel sets every output to None when format_output cannot read the reply.
            return Rejected("task_output_unparseable", f"{self.spec.task} could not read the reply", raw)
        return values


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(_empty(v) for v in value))
