"""The card's "Samplers" and "Diversity" sections, from stats.json's ``samplers`` and ``diversity``."""

from __future__ import annotations

from typing import Any

TOP_VALUES = 12  # values listed per axis; the rest are summed


def samplers_section(samplers: dict[str, Any] | None) -> str:
    if not samplers:
        return ""
    lines = ["", "## Samplers", "",
             f"{samplers['rows']} seed rows drew these columns from the recipe's `samplers:` axes "
             "(deterministic per global seed and row index).", "",
             "| column | values drawn | of possible | most drawn (rows) |", "|---|---|---|---|"]
    for col, axis in samplers["axes"].items():
        if axis["kind"] == "number":
            lines.append(f"| {col} | numbers | - | min {axis['min']}, mean {axis['mean']}, "
                         f"max {axis['max']} |")
            continue
        items = list(axis["counts"].items())
        shown = ", ".join(f"{_cell(v)} {n}" for v, n in items[:TOP_VALUES])
        if len(items) > TOP_VALUES:
            shown += f", … {len(items) - TOP_VALUES} more ({sum(n for _, n in items[TOP_VALUES:])} rows)"
        lines.append(f"| {col} | {axis['drawn']} | {axis['possible']} | {shown} |")
    for name, report in samplers.get("drafted", {}).items():
        what = (f"a topic tree of {report['leaves']} leaves (depth {report['depth']}, up to "
                f"{report['branching']} subtopics a node; {report['unexpanded']} node(s) the model did not "
                "expand)" if "leaves" in report else f"{report['values']} personas "
                f"({report['unreadable']} replies unusable)")
        lines.append(f"\n`{name}`: {what}, drafted by the backend in {report['calls']} cached call(s).")
    return "\n".join(lines) + "\n"


def diversity_section(diversity: dict[str, Any] | None) -> str:
    if not diversity:
        return ""
    sample = diversity["sample"]
    lines = ["", "## Diversity", "",
             f"Seed texts and the kept records' texts side by side, each set sampled to at most "
             f"{sample['texts']} texts (ROUGE-L over at most {sample['pairs']} pairs). distinct-n: share of "
             "distinct word n-grams (higher: more varied; it falls as a set grows, so compare at equal "
             "size). Mean ROUGE-L: how much two texts share in order (lower: more varied). Vendi: the "
             "effective number of distinct texts on MiniLM embeddings (1 to the number of texts).", "",
             "| side | column | rows | sampled | distinct-1 | distinct-2 | mean ROUGE-L | Vendi |",
             "|---|---|---|---|---|---|---|---|"]
    for s in diversity["sets"]:
        vendi = s.get("vendi", "n/a")
        lines.append(f"| {s['side']} | {s['column']} | {s['rows']} | {s['texts']} | {_f(s['distinct_1'])} | "
                     f"{_f(s['distinct_2'])} | {_f(s['rouge_l_mean'])} | {_f(vendi)} |")
    if not diversity["sets"]:
        lines.append("| - | - | 0 | 0 | - | - | - | - |")
    for name, why in diversity.get("missing", {}).items():
        lines.append(f"\n{name}: {why}.")
    axes = diversity.get("axes") or {}
    if axes:
        lines += ["", "Coverage per sampler axis (distinct values present):", "",
                  "| axis | possible | in the seed rows | in the kept records |", "|---|---|---|---|"]
        for axis, c in axes.items():
            possible = "-" if c["possible"] is None else c["possible"]
            seeds = "-" if c["seeds"] is None else c["seeds"]
            kept = "-" if c["possible"] is None else c["kept"]
            lines.append(f"| {axis} | {possible} | {seeds} | {kept} |")
    return "\n".join(lines) + "\n"


def _f(value: Any) -> str:
    if value is None or value == "n/a":
        return "n/a"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _cell(value: str) -> str:
    text = value.replace("|", "\\|").replace("\n", " ")
    return f"`{text[:40]}`" + ("…" if len(text) > 40 else "")
