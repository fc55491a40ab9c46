"""``kind: self_instruct`` — Self-Instruct (Wang et al. 2022): grow a task pool from seed tasks.

Each round sends ``prompts_per_round`` prompts, each listing ``seed_examples`` seed instructions and
``generated_examples`` machine ones (drawn with ``ctx.rng(round, i)``, shuffled) as "Task 1..8:" and
leaving "Task 9:" open. Every instruction the model continues with goes through the paper's filters:
rules (length, keywords a text model cannot serve, "Write a program", punctuation or non-English
start), duplicates within the round, and ROUGE-L < threshold against every pooled instruction.
Survivors join the pool, are classified (classification task or not, few-shot yes/no) and get
instances — input-first for open tasks, output-first for classification. The step stops when
``target`` new tasks have instances or after ``max_rounds``. Every dropped candidate is a reject.

``reads``: [instruction, input?, output?, is_classification?] of the seed records (input/output
and is_classification only matter with ``keep_seeds``); ``writes``: [instruction, input, output,
prompt, is_classification, round] — prompt is instruction + blank line + input, for the sft split.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from random import Random
from typing import Literal

from pydantic import Field, field_validator, model_validator

from factory.core.record import Record, Rejected
from factory.core.templates import check_overrides
from factory.llm.request import Completion, Request
from factory.llm.spec import Params
from factory.steps import self_instruct_parse as parse
from factory.steps.base import SetOutcome, SetRunner, StepBase, StepContext, child_id
from factory.steps.novelty import NoveltyPool
from factory.steps.self_instruct_templates import BLOCKED_WORDS, PLACEHOLDERS, TEMPLATES

YES_NO_SCHEMA = {"enum": ["Yes", "No"]}
WRITE_ROLES = ["instruction", "input", "output", "prompt", "is_classification", "round"]


class SelfInstructStep(StepBase):
    """Self-Instruct task-pool growth from seed tasks (a set-level step: sees every seed)."""

    kind: Literal["self_instruct"]
    target: int = Field(100, ge=1, description="stop once this many new tasks have instances")
    max_rounds: int = Field(20, ge=1, description="stop after this many rounds in any case")
    prompts_per_round: int = Field(8, ge=1, le=1024, description="instruction prompts sent per round")
    seed_examples: int = Field(6, ge=0, description="seed tasks shown in each prompt")
    generated_examples: int = Field(2, ge=0, description="machine tasks shown in each prompt "
                                                         "(seed tasks fill in while there are fewer)")
    rouge_threshold: float = Field(0.7, gt=0, le=1, description="drop at ROUGE-L >= this vs the pool")
    min_words: int = Field(4, ge=1, description="fewer words: too_short (the paper drops <= 3)")
    max_words: int = Field(150, ge=1, description="more words: too_long")
    blocked_words: list[str] = Field(default_factory=lambda: list(BLOCKED_WORDS),
                                     description="words marking tasks a text model cannot do")
    max_instances: int = Field(3, ge=1, description="instances kept per task (one record each)")
    keep_seeds: bool = Field(False, description="seed tasks go on as records too (else consumed)")
    system: str | None = Field(None, description="system message for every prompt")
    templates: dict[str, str] = Field(default_factory=dict, description="override prompts by name: "
                                      + ", ".join(TEMPLATES))
    classify_params: Params = Field(Params(temperature=0, max_tokens=5),
                                    description="sampling for the yes/no classification question")
    instance_params: Params = Field(Params(temperature=0), description="sampling for instances "
                                    "(the paper: greedy)")

    @field_validator("templates")
    @classmethod
    def known_templates(cls, value: dict[str, str]) -> dict[str, str]:
        return check_overrides(value, TEMPLATES, PLACEHOLDERS)

    @model_validator(mode="after")
    def columns(self) -> "SelfInstructStep":
        if not 1 <= len(self.reads) <= 4:
            raise ValueError("self_instruct reads [instruction] or [instruction, input, output, "
                             "is_classification] (seed columns, in that order)")
        if len(self.writes) != len(WRITE_ROLES):
            raise ValueError(f"self_instruct writes {len(WRITE_ROLES)} columns, in this order: "
                             f"[{', '.join(WRITE_ROLES)}]")
        if self.seed_examples + self.generated_examples < 1:
            raise ValueError("seed_examples + generated_examples must be at least 1")
        if self.min_words > self.max_words:
            raise ValueError("min_words is larger than max_words")
        return self


@dataclass
class Task:
    id: str  # the id of its first record (kept or rejected): lineage points here
    instruction: str
    round: int


class SelfInstruct(SetRunner):
    def template(self, name: str) -> str:
        return self.spec.templates.get(name, TEMPLATES[name])

    def chat(self, text: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.spec.system}] if self.spec.system else []
        return system + [{"role": "user", "content": text}]

    # ---- prompts ---------------------------------------------------------------------------------
    def examples(self, seeds: list[Task], machine: list[Task], rng: Random) -> list[Task]:
        """The paper's mix: up to ``generated_examples`` machine tasks, seeds for the rest, shuffled."""
        spec = self.spec
        chosen = rng.sample(machine, min(spec.generated_examples, len(machine)))
        wanted = spec.seed_examples + spec.generated_examples - len(chosen)
        chosen += rng.sample(seeds, min(wanted, len(seeds)))
        rng.shuffle(chosen)
        return chosen

    def instruction_request(self, examples: list[Task]) -> Request:
        lines = [f"Task {i}: {t.instruction.rstrip(':')}" for i, t in enumerate(examples, 1)]
        text = self.template("instructions").format(tasks="\n".join(lines), next=len(examples) + 1)
        # The paper asks for tasks up to number 16 (8 shown + 8 new).
        params = dataclasses.replace(self.params, stop=(*self.params.stop, f"Task {2 * len(examples) + 1}:"))
        return Request.chat(self.chat(text), params)

    def classify_request(self, instruction: str) -> Request:
        text = self.template("is_classification").format(instruction=instruction)
        # Constrained backends (llama.cpp grammars) can then only answer "Yes" or "No".
        return Request.chat(self.chat(text), self.spec.classify_params.over(self.params),
                            json_schema=YES_NO_SCHEMA)

    def instance_request(self, instruction: str, classification: bool) -> Request:
        name = "instances_output_first" if classification else "instances_input_first"
        params = self.spec.instance_params.over(self.params)
        stop = ("Task:",) if classification else ("Task:", f"Example {self.spec.max_instances + 1}")
        params = dataclasses.replace(params, stop=(*params.stop, *stop))
        return Request.chat(self.chat(self.template(name).format(instruction=instruction)), params)

    # ---- the rounds ------------------------------------------------------------------------------
    async def run_set(self, records: list[Record], ctx: StepContext) -> SetOutcome:
        if not records:
            return SetOutcome([])
        spec, col = self.spec, dict(zip(WRITE_ROLES, self.spec.writes))
        recipe = records[0].recipe
        seeds = [Task(r.id, parse.collapse(str(r.fields.get(spec.reads[0]) or "")), 0) for r in records]
        pool = NoveltyPool(spec.rouge_threshold)
        for seed in seeds:
            pool.add(seed.instruction)
        # Seeds only serve as examples (consumed) unless keep_seeds passes them on.
        out = SetOutcome(self.seed_records(records), [], []) if spec.keep_seeds else \
            SetOutcome([], [], list(records))

        def reject(task: Task, parents: list[str], why: Rejected) -> None:
            fields = {col["instruction"]: task.instruction, col["round"]: task.round}
            out.rejects.append((Record(task.id, fields, recipe, parents), why))

        machine: list[Task] = []
        made = 0  # new tasks that have at least one kept instance
        for rnd in range(1, spec.max_rounds + 1):
            if made >= spec.target:
                break
            ctx.count("rounds")
            shown = [self.examples(seeds, machine, ctx.rng(rnd, i)) for i in range(spec.prompts_per_round)]
            replies = await ctx.ask([self.instruction_request(ex) for ex in shown])

            accepted: list[tuple[Task, list[str]]] = []
            seen: set[str] = set()
            for i, (examples, reply) in enumerate(zip(shown, replies)):
                parents = [t.id for t in examples]
                texts, preamble = parse.parse_tasks(reply.text)
                if preamble is not None:
                    task = Task(child_id(f"round{rnd}/prompt{i}", self.name, -1), preamble, rnd)
                    reject(task, parents, Rejected("chat_preamble", "lead-in before the list", reply.text))
                for j, text in enumerate(texts):
                    ctx.count("candidates")
                    text = text[0].upper() + text[1:]
                    task = Task(child_id(f"round{rnd}/prompt{i}", self.name, j), text, rnd)
                    truncated = reply.finish_reason == "length" and j == len(texts) - 1
                    why = self.screen(task.instruction, truncated, seen, pool)
                    if why is None and len(accepted) >= spec.target - made:
                        why = Rejected("over_target", f"target {spec.target} reached this round")
                    if why is not None:
                        why.raw = reply.text
                        reject(task, parents, why)
                        continue
                    ctx.count("passed_filters")
                    pool.add(task.instruction)
                    accepted.append((task, parents))
            machine += [t for t, _ in accepted]
            made += await self.instances(accepted, ctx, col, recipe, out)
        ctx.count("new_tasks", made)
        return out

    def screen(self, instruction: str, truncated: bool, seen: set[str], pool: NoveltyPool) -> Rejected | None:
        """The paper's filters, in order; the first that fails names the reason."""
        spec = self.spec
        if truncated:
            return Rejected("truncated", f"the reply hit max_tokens={self.params.max_tokens}")
        failed = parse.word_filter(instruction, spec.min_words, spec.max_words, spec.blocked_words)
        if failed is not None:
            return Rejected(*failed)
        key = instruction.lower()
        if key in seen:
            return Rejected("duplicate_in_round", "the same instruction came earlier this round")
        seen.add(key)
        match = pool.best_match(instruction)
        if match is not None:
            return Rejected("too_similar", f"ROUGE-L {match.score:.3f} >= {spec.rouge_threshold} with "
                                           f"{match.text!r}")
        return None

    async def instances(self, accepted: list[tuple[Task, list[str]]], ctx: StepContext,
                        col: dict[str, str], recipe: str, out: SetOutcome) -> int:
        """Classify, then ask for instances; returns how many tasks got at least one kept record."""
        if not accepted:
            return 0
        verdicts = await ctx.ask([self.classify_request(t.instruction) for t, _ in accepted])
        is_clf = []
        for reply in verdicts:
            answer = parse.read_yes_no(reply.text)
            ctx.count({True: "classification_yes", False: "classification_no",
                       None: "classification_unclear"}[answer])
            is_clf.append(answer is True)  # the paper: anything but "yes" is not classification
        replies = await ctx.ask([self.instance_request(t.instruction, c)
                                 for (t, _), c in zip(accepted, is_clf)])
        results = [self.task_records(t, parents, c, reply, col, recipe)
                   for (t, parents), c, reply in zip(accepted, is_clf, replies)]
        made = 0
        for kept, rejects in results:
            out.records += kept
            out.rejects += rejects
            made += bool(kept)
            ctx.count("instances_kept", len(kept))
        return made

    def task_records(self, task: Task, parents: list[str], classification: bool, reply: Completion,
                     col: dict[str, str], recipe: str) -> tuple[list[Record], list[tuple[Record, Rejected]]]:
        items = (parse.parse_output_first if classification else parse.parse_input_first)(reply.text)
        kept: list[Record] = []
        rejects: list[tuple[Record, Rejected]] = []
        seen: set[tuple[str, str]] = set()

        def record(k: int, given: str, answer: str) -> Record:
            rid = task.id if k == 0 else child_id(task.id, self.name, k)  # the first carries the task id
            prompt = f"{task.instruction}\n\n{given}" if given else task.instruction
            fields = {col["instruction"]: task.instruction, col["input"]: given, col["output"]: answer,
                      col["prompt"]: prompt, col["is_classification"]: classification,
                      col["round"]: task.round}
            return Record(rid, fields, recipe, parents)

        if not items:
            return [], [(record(0, "", ""), Rejected("instance_unparseable", "empty reply", reply.text))]
        for k, item in enumerate(items):
            if isinstance(item, str):
                marker = "'Class label:'" if classification else "'Output:'"
                why = Rejected("instance_unparseable", f"no {marker}", reply.text)
                rejects.append((record(k, "", ""), why))
                continue
            given, answer = (re.sub(r"[ \t]+\n", "\n", s).strip() for s in item)
            rec = record(k, given, answer)
            if reply.finish_reason == "length" and k == len(items) - 1:
                # A cut-off output teaches the model to stop mid-sentence.
                why = Rejected("instance_truncated", f"the reply hit max_tokens={reply.completion_tokens}",
                               reply.text)
            elif not answer:
                why = Rejected("empty_output", "the instance has no output", reply.text)
            elif given and given == answer:
                why = Rejected("output_copies_input", "output is the input", reply.text)
            elif (given, answer) in seen:
                why = Rejected("duplicate_instance", "same input and output as an earlier instance",
                               reply.text)
            elif len(kept) >= self.spec.max_instances:
                why = Rejected("too_many_instances", f"max_instances={self.spec.max_instances}", reply.text)
            else:
                seen.add((given, answer))
                kept.append(rec)
                continue
            rejects.append((rec, why))
        return kept, rejects

    def seed_records(self, records: list[Record]) -> list[Record]:
        """With keep_seeds, seeds go on with the step's columns filled from their own."""
        reads = dict(zip(["instruction", "input", "output", "is_classification"], self.spec.reads))
        col = dict(zip(WRITE_ROLES, self.spec.writes))
        for r in records:
            get = {role: r.fields.get(name) for role, name in reads.items()}
            instruction, given = str(get["instruction"] or "").strip(), str(get.get("input") or "").strip()
            r.fields.update({col["instruction"]: instruction, col["input"]: given,
                             col["output"]: str(get.get("output") or "").strip(),
                             col["prompt"]: f"{instruction}\n\n{given}" if given else instruction,
                             col["is_classification"]: bool(get.get("is_classification")),
                             col["round"]: 0})
        return list(records)
