"""The same recipes with and without samplers, on the embedded model, at equal record counts:
how varied the generated prompts are (Vendi on MiniLM, distinct-2, mean ROUGE-L) and how many the
QC dedup filter drops, side by side in one run.

    python bench/diversity.py [--rows 300] [--seed 0] [--threads 2]

Four builds of ``--rows`` records each, on SmolLM2-135M-Instruct in llama.cpp:

- ``generate``: one ``generate`` step writes a user question. Without samplers the seed rows
  differ only by their number (``Question {n}``: otherwise every request would be the same
  call); with samplers the same template also carries a topic (a topic tree the model drafts from
  one root), a kind of task (category) and its subcategory, a persona (a file written here) and a
  tone (grid).
- ``magpie``: the Magpie step draws the question from the chat template's pre-query prefix.
  Without samplers the system turn is the template's default; with samplers it names the topic
  and the persona.

Each build runs the QC chain's ``dedup`` filter on the prompt (MiniLM cosine >= 0.95, exact FAISS
search). The figures are computed on the generated prompts before dedup (kept + dropped by it),
with the functions the card uses (``filters.diversity``), on the same number of prompts for every
build: a seeded random N of them, N the fewest any build made (a step rejects a prompt cut off
at max_tokens, so builds of equal records make slightly different numbers of prompts; Vendi and
distinct-n depend on N). Each build uses its own fresh cache. Results: a table, and
bench/results/diversity-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rich.table import Table  # noqa: E402

from report import report  # noqa: E402

PERSONAS = [
    "a retired nurse who grows tomatoes on her balcony",
    "a first-year computer science student on a tight budget",
    "a father of three planning weekday dinners",
    "a small bakery owner who wants more customers",
    "a marathon runner recovering from a knee injury",
    "a high school history teacher preparing a lesson",
    "a software engineer moving to a new country",
    "a nervous first-time traveller flying abroad",
    "a farmer deciding what to plant next season",
    "a teenager learning to play the guitar",
    "an office manager organising a team event",
    "a pensioner trying online banking for the first time",
]

BACKEND = """backend:
  name: llama_cpp
  model: embedded
  concurrency: 8
  params: {{temperature: 0.9, top_k: 40, top_p: 0.95, max_tokens: 100}}
  options: {{n_threads: {threads}}}
"""

SAMPLERS = """samplers:
  count: {rows}
  columns:
    - {{name: topic, type: topic_tree, root: everyday life, depth: 2, branching: 5,
       params: {{temperature: 1.0, max_tokens: 150}}}}
    - name: kind
      type: category
      values: {{explain: 3, advise: 3, compare: 2, plan: 2, list: 1}}
    - name: detail
      type: subcategory
      of: kind
      values:
        explain: [why it works, how it works, a common mistake]
        advise: [a first step, what to avoid, a cheap option]
        compare: [two options, before and after]
        plan: [one day, one week]
        list: [three ideas, five tips]
    - {{name: persona, type: persona, path: personas.txt}}
    - {{name: style, type: grid, mode: sample, axes: {{tone: [casual, formal, worried, curious]}}}}
"""

NUMBERED = """seeds:
  rows:
{rows_yaml}"""

GENERATE_PLAIN = """  - name: ask
    kind: generate
    reads: [n]
    writes: prompt
    system: You write realistic questions that people ask an AI assistant.
    prompt: "Write question {n}: one question a person might ask an AI assistant about everyday life. Reply with the question only."
"""

GENERATE_SAMPLED = """  - name: ask
    kind: generate
    reads: [topic, kind, detail, persona, tone]
    writes: prompt
    system: You write realistic questions that people ask an AI assistant.
    prompt: "Write one question about {topic} that {persona} might ask an AI assistant. The question asks to {kind} ({detail}), in a {tone} tone. Reply with the question only."
"""

MAGPIE_PLAIN = """  - name: ask
    kind: magpie
    writes: [prompt]
"""

MAGPIE_SAMPLED = """  - name: ask
    kind: magpie
    reads: [topic, persona]
    writes: [prompt]
    system: "You are a helpful AI assistant. You are talking with {persona}, who needs help with {topic}."
"""

TAIL = """qc:
  - filter: dedup
    column: prompt
    against_seeds: false
outputs:
  splits:
    prompts: {{format: columns, columns: [prompt]}}
"""


def recipe(name: str, rows: int, threads: int, sampled: bool, step: str) -> str:
    if sampled:
        seeds = SAMPLERS.format(rows=rows)
    else:
        seeds = NUMBERED.format(rows_yaml="".join(f"    - {{n: {i + 1}}}\n" for i in range(rows)))
    if step == "magpie" and not sampled:
        seeds = f"samplers:\n  count: {rows}\n"  # Magpie needs no seed column: rows are empty
    body = {("generate", False): GENERATE_PLAIN, ("generate", True): GENERATE_SAMPLED,
            ("magpie", False): MAGPIE_PLAIN, ("magpie", True): MAGPIE_SAMPLED}[(step, sampled)]
    return (f"name: {name}\nseed: 0\n{seeds}{BACKEND.format(threads=threads)}steps:\n{body}"
            + TAIL.format())


def build(folder: Path, name: str, text: str, seed: int) -> dict:
    from factory.build import run_build
    from factory.engine.plan import BuildOptions, plan_build

    path = folder / f"{name}.yaml"
    path.write_text(text)
    options = BuildOptions(output=folder / name, cache_path=folder / f"{name}.sqlite", seed=seed)
    started = time.perf_counter()
    result = asyncio.run(run_build(plan_build(path, options), options))
    elapsed = time.perf_counter() - started
    kept = [json.loads(x)["prompt"] for x in (folder / name / "prompts.jsonl").read_text().splitlines()]
    rejects = [json.loads(x) for x in (folder / name / "rejects.jsonl").read_text().splitlines()]
    deduped = [r["fields"]["prompt"] for r in rejects if r["step"].startswith("qc.dedup")]
    other = [r for r in rejects if not r["step"].startswith("qc.dedup")]
    prompts = kept + deduped
    return {"name": name, "records": len(prompts) + len(other), "prompts_made": len(prompts),
            "rejected_by_step": len(other), "dedup_dropped": len(deduped),
            "dedup_share": round(len(deduped) / len(prompts), 4) if prompts else None,
            "exact_duplicates": len(prompts) - len(set(prompts)),
            "calls": result.calls, "build_s": round(elapsed, 1),
            "card_diversity": result.stats["diversity"], "samplers": result.stats.get("samplers"),
            "all_prompts": prompts}


def figures(run: dict, n: int, seed: int) -> None:
    from filters.diversity import distinct_n, mean_pairwise_rouge_l, minilm_embed, vendi_score

    embed, missing = minilm_embed()
    assert embed is not None, missing
    prompts = random.Random(seed).sample(run["all_prompts"], n)
    rouge, pairs = mean_pairwise_rouge_l(prompts, 2000, seed)
    run.update(measured=n, vendi=round(vendi_score(embed(prompts)), 2),
               distinct_2=round(distinct_n(prompts, 2) or 0, 4), rouge_l_mean=round(rouge or 0, 4),
               rouge_l_pairs=pairs, examples=prompts[:5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["generate", "magpie"], default=None)
    args = parser.parse_args()
    os.environ.pop("FACTORY_DIVERSITY_EMBEDDINGS", None)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "personas.txt").write_text("\n".join(PERSONAS) + "\n")
        for step in ("generate", "magpie"):
            if args.only and step != args.only:
                continue
            for sampled in (False, True):
                name = f"{step}_{'samplers' if sampled else 'plain'}"
                runs.append(build(folder, name, recipe(name, args.rows, args.threads, sampled, step),
                                  args.seed))
                print(json.dumps({k: v for k, v in runs[-1].items() if k not in
                                  ("calls", "card_diversity", "samplers", "all_prompts")}), flush=True)
    n = min(r["prompts_made"] for r in runs)
    for r in runs:
        figures(r, n, args.seed)
    table = Table(title=f"{args.rows} records per build, SmolLM2-135M (llama.cpp), seed {args.seed}")
    for col in ("build", "prompts made", "measured", "Vendi (MiniLM)", "distinct-2", "mean ROUGE-L",
                "dedup dropped", "exact dups", "build s"):
        table.add_column(col, justify="left" if col == "build" else "right")
    for r in runs:
        table.add_row(r["name"], str(r["prompts_made"]), str(r["measured"]), f"{r['vendi']:.1f}", f"{r['distinct_2']:.3f}",
                      f"{r['rouge_l_mean']:.3f}", f"{r['dedup_dropped']} ({r['dedup_share']:.1%})",
                      str(r["exact_duplicates"]), f"{r['build_s']:.0f}")
    for step in ("generate", "magpie"):
        pair = {r["name"].split("_")[1]: r for r in runs if r["name"].startswith(step)}
        if len(pair) == 2 and pair["plain"]["vendi"]:
            table.caption = (table.caption or "") + (
                f"{step}: Vendi x{pair['samplers']['vendi'] / pair['plain']['vendi']:.2f} with samplers. ")
    for r in runs:
        del r["all_prompts"]
    report(table, {"rows": args.rows, "seed": args.seed, "runs": runs}, prefix="diversity-")


if __name__ == "__main__":
    main()
