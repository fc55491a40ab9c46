"""The dataset card (README.md with a Hugging Face YAML header): provenance, backend, counts.

Only the backend's name, model and sampling params are written: backend ``options`` can hold
URLs or credentials and never reach the card.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from factory import __version__
from factory.output.diversity_card import diversity_section, samplers_section
from factory.recipe.graph import Graph
from factory.recipe.spec import Recipe

# The Hub's size_categories values (a card with any other value fails its metadata check).
SIZE_CATEGORIES = ("n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M",
                   "100M<n<1B", "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T")


def size_category(rows: int) -> str:
    for i, bound in enumerate((10**3, 10**4, 10**5, 10**6, 10**7, 10**8, 10**9, 10**10, 10**11, 10**12)):
        if rows < bound:
            return SIZE_CATEGORIES[i]
    return SIZE_CATEGORIES[-1]


def render_card(recipe: Recipe, recipe_path: Path, graph: Graph, stats: dict[str, Any],
                models: dict[str, str], sections: list[str] | None = None) -> str:
    """Card text; ``{split_configs}`` and ``{split_table}`` are filled in by the writer once split
    sizes are known (a split with no rows has no file, so no config). ``sections``: markdown the
    steps add (``StepRunner.card_section``), after the counts."""
    size = size_category(stats["totals"]["kept"])
    digest = hashlib.sha256(recipe_path.read_bytes()).hexdigest()[:12]
    backends = [("default", recipe.backend)] + list(recipe.backends.items())
    backend_lines = "\n".join(
        f"- `{key}`: backend `{block.name}`, model `{models[key]}`, params "
        f"`{json.dumps(block.params.model_dump(exclude_none=True))}`"
        for key, block in backends)
    for key, rules in stats.get("sampling_not_sent", {}).items():
        why = "; ".join(sorted(set(rules.values())))
        backend_lines += (f"\n  - `{key}` does not send {', '.join(rules)} ({why}): the provider's "
                          "defaults apply, whatever the params above say")
    reasons = "\n".join(f"| {step} | {reason} | {n} |"
                        for step, counts in stats["totals"]["dropped_by_step"].items()
                        for reason, n in counts.items()) or "| - | - | 0 |"
    steps = "\n".join(f"- {line}" for line in graph.describe())
    t = stats["totals"]
    return f"""---
{{split_configs}}
tags:
- synthetic
- factory
size_categories:
- {size}
---

# {recipe.name}

{recipe.description.strip() or 'Synthetic data made by factory.'}

Made by factory {__version__} from recipe `{recipe_path.name}` (sha256 `{digest}`), global seed
{stats['seed']}.

## Splits

{{split_table}}

Every split row carries `id` and `lineage` (recipe, parent ids, and per step: backend, model and
the hash of each prompt). Load one with
`datasets.load_dataset("parquet", data_files="<this folder>/<split>.parquet")`.

## Backends

{backend_lines}

## Steps

{steps}

{judge_card(stats.get("judges", {}))}## Counts

{t['input']} seed records: {t['kept']} kept, {t['rejected']} rejected, {t['failed']} failed
(`rejects.jsonl` holds every dropped record with its step and reason; `stats.json` the counts).

| step | reason | records |
|---|---|---|
{reasons}
""" + "".join(f"\n{section.strip()}\n" for section in sections or []) \
        + samplers_section(stats.get("samplers")) + diversity_section(stats.get("diversity"))


def review_card(review: dict[str, Any]) -> str:
    """The card's human review section: what people saw, what they decided, how far they agree
    with the QC chain, the judges and each other (Cohen's kappa; n/a when one label only)."""
    status = {"passed": "passed", "pending": "**pending**: this dataset has not been reviewed yet",
              "failed": "**failed**: people kept too few sampled rows; do not use this dataset"}
    people = ", ".join(review["reviewers"])
    decided = ", ".join(f"{n} {k}" for k, n in review["decisions"].items())
    lines = ["", "## Human review", "",
             f"Status: {status.get(review['status'], review['status'])}. {review['queue_rows']} rows are "
             f"in the review queue (`review_queue.json`): a stratified random sample of "
             f"{review['sample_rows']} kept rows and {review['borderline_rows']} borderline rows (nearest "
             "a QC cut line, or with the lowest judge margin).",
             "", f"{review['reviewed_rows']} reviewed by {people} ({decided}); verdicts in `reviews.jsonl`."
             if people else "No verdicts yet: run `factory review` on this folder.", ""]
    applied = review.get("applied")
    if applied:
        lines += [f"{applied['dropped']} rows people dropped are in `rejects.jsonl` (step `review`, reason "
                  f"`human_review`); {applied['edited']} edited rows carry a lineage step `review` (backend "
                  "`human`, model `reviewer:<name>`).", ""]
    if review["keep_rate"] is not None:
        border = review.get("borderline_keep_rate")
        lines += [f"People kept {review['keep_rate']:.0%} of the sampled rows (minimum "
                  f"{review['min_keep_rate']:.0%})" + (f" and {border:.0%} of the borderline rows." if border
                                                        is not None else "."), ""]
    table = review["agreement"]["machine"] + review["agreement"]["reviewers"]
    if table:
        lines += ["| reviewer | compared with | rows | agreement | Cohen's kappa |", "|---|---|---|---|---|"]
        for row in table:
            agree = "n/a" if row["agreement"] is None else f"{row['agreement']:.0%}"
            kappa = "n/a" if row["kappa"] is None else f"{row['kappa']:.2f}"
            lines.append(f"| {row['reviewer']} | {row['rater']} | {row['rows']} | {agree} | {kappa} |")
        lines += ["", "A keep or an edit counts as keep. Kappa is n/a when both sides gave every row the "
                  "same label."]
    return "\n".join(lines) + "\n"


def judge_card(judges: dict[str, Any]) -> str:
    """The card's judge section: each judge's mode and how far it agreed with sanity pairs before
    it decided any pair (its ``judge_gate``), or that nobody measured it."""
    if not judges:
        return ""
    lines = ["## Judges", "",
             "| step | mode | measured on | agreement (95% CI) | on decided pairs | coverage | "
             "position consistency | verdict |", "|---|---|---|---|---|---|---|---|"]
    notes = []
    for name, j in judges.items():
        if not j.get("measured"):
            why = j.get("why", "no judge_gate")
            lines.append(f"| {name} | {j['mode']} | not measured ({why}) | - | - | - | - | "
                         "**unmeasured**: it may be at chance |")
            continue
        a = j["agreement"]
        ci = f" [{_pct(a['ci95'][0])}, {_pct(a['ci95'][1])}]" if a["ci95"] else ""
        verdict = (f"passed the gate ({_pct(j['min_agreement'])})" if j["passed"] else
                   f"**below the gate's {_pct(j['min_agreement'])}: not fit to decide pairs**")
        lines.append(f"| {name} | {j['mode']} | {a['n']} sanity pairs from this build's answers | "
                     f"{a['k']}/{a['n']} = {_pct(a['rate'])}{ci} | {_pct(j['decided_agreement']['rate'])} | "
                     f"{_pct(j['coverage']['rate'])} | {_pct(j['position_consistency']['rate'])} | "
                     f"{verdict} |")
        kinds = j.get("by_kind", {})
        if kinds:
            notes.append(f"`{name}` by degradation: " + ", ".join(
                f"{k} {f['agreement']['k']}/{f['agreement']['n']}" for k, f in kinds.items()) + ".")
    notes.append("Sanity pairs: an answer from this build against a copy degraded in a way any "
                 "competent judge catches (a repetition loop, a cut mid-sentence, another question's "
                 "answer, shuffled words, an empty answer); a tie counts as a miss. An unmeasured "
                 "judge can be measured with `factory judge-eval` or a recipe `judge_gate:`.")
    return "\n".join(lines + [""] + notes) + "\n\n"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
