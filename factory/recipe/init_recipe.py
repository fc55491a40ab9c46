"""The recipe ``factory init`` writes: Self-Instruct → Evol-Instruct → pairwise judge → QC → SFT + DPO.

Written as commented YAML text (not dumped from a model) so the user gets a recipe to read and edit.
"""

from __future__ import annotations

import json
from typing import Any

RECIPE = """\
# Written by `factory init`. Review seeds.jsonl first: every task below grows from those seeds,
# and the drift gate compares what is generated against them.
name: {name}
description: >
  {description}
seed: 0

seeds:
  path: seeds.jsonl          # instruction, input, output: edit freely

backend:
  name: {backend}
{model_line}  concurrency: 8
  params: {{temperature: 0.7, top_p: 0.95, top_k: 40, max_tokens: 256}}
{options_line}
steps:
  - name: grow                 # Self-Instruct: the task pool grows from the seeds over rounds
    kind: self_instruct
    reads: [instruction, input, output]
    writes: [task, task_input, task_output, prompt, classification, round]
    target: {target}
    max_rounds: {rounds}
    rouge_threshold: 0.7

  - name: evolve               # Evol-Instruct: harder and rarer variants of each new task
    kind: evol_instruct
    reads: [prompt]
    writes: [instruction_evolved, response, evolution]
    generations: 2
    emit: all

  - name: second_answer        # a second, hotter answer to make a preference pair
    kind: generate
    reads: [instruction_evolved]
    writes: answer_b
    prompt: "{{instruction_evolved}}"
    params: {{temperature: 1.0}}

  - name: judge                # pairwise judge, both orders; disagreement is a tie, not a pair
    kind: judge_pairwise
    reads: [instruction_evolved, response, answer_b]
    writes: [chosen, rejected, judgement]
    params: {{temperature: 0.0, max_tokens: 300}}

qc:
  - filter: pairs              # identical or near-identical chosen/rejected
    prompt_column: instruction_evolved
    margin_column: judgement
  - filter: dedup              # cosine >= 0.95, also against the seeds
    column: chosen
    prompt_column: instruction_evolved
    seed_column: output
  - filter: drift              # stops the build when the grown tasks left the seeds' domain
    column: task               # (before evolution: evolved tasks are meant to move away)
    seed_column: instruction

outputs:
  splits:
    sft: {{format: sft, prompt: instruction_evolved, completion: chosen, columns: [task, evolution]}}
    dpo: {{format: dpo, prompt: instruction_evolved, chosen: chosen, rejected: rejected}}
"""


def render_recipe(name: str, description: str, backend: str, model: str | None,
                  options: dict[str, Any], target: int = 100, rounds: int = 20) -> str:
    safe_name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in name) or "domain"
    text = " ".join(description.split())
    model_line = f"  model: {json.dumps(model)}\n" if model else ""
    options_line = f"  options: {json.dumps(options)}\n" if options else ""
    return RECIPE.format(name=safe_name, description=text, backend=backend, model_line=model_line,
                         options_line=options_line, target=target, rounds=rounds)
