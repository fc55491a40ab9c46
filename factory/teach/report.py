"""The self-teaching loop's report: ``report.md`` (tables) and ``report.html`` (the same tables plus
plots: held-out accuracy with 95% intervals, pass@k per round, training loss curves). On IFEval the
accuracy table holds the four figures, each trained model gets its paired comparison with the base
model, and accuracy per instruction type is shown for every model, with intervals."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any


def _rows(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = [("base", summary["base"])] if summary.get("base") else []
    for entry in summary["rounds"]:
        for stage, result in (entry.get("eval") or {}).items():
            if result:
                rows.append((f"round {entry['round']} {stage.replace('_', '+')}", result))
    return rows


def _pct(part: dict[str, Any]) -> str:
    return (f"{part['correct']}/{part['n']} = {part['accuracy']:.1%} "
            f"[{part['ci95'][0]:.1%}, {part['ci95'][1]:.1%}]")


def accuracy_table(summary: dict[str, Any]) -> str:
    lines = ["| model | not copyable (95% CI) | copyable | all (95% CI) |", "|---|---|---|---|"]
    for name, r in _rows(summary):
        lines.append(f"| {name} | {_pct(r['not_copyable'])} | {r['copyable']['correct']}/"
                     f"{r['copyable']['n']} | {_pct(r)} |")
    return "\n".join(lines)


def _ifeval(summary: dict[str, Any]) -> bool:
    return summary["test"].get("benchmark") == "ifeval"


def ifeval_tables(summary: dict[str, Any]) -> list[str]:
    """The four IFEval figures per model, each trained model vs the base model on the same prompts
    (paired difference, McNemar p), and loose accuracy per instruction type per model."""
    from factory.teach.ifeval import LEVELS, versus_table

    rows = _rows(summary)
    out = ["| model | " + " | ".join(f"{n} (95% CI)" for n in LEVELS) + " | answers at the cap |",
           "|---" * (len(LEVELS) + 2) + "|"]
    out += [f"| {name} | " + " | ".join(_pct(r[n]) for n in LEVELS) + f" | {r['truncated']}/{r['n']} |"
            for name, r in rows]
    for name, r in rows:
        if r.get("vs_base"):
            out += ["", f"### {name} vs base (same prompts)", "", versus_table(r["vs_base"])]
    types = sorted({t for _, r in rows for t in r.get("per_type", {})})
    out += ["", "### Per instruction type (loose accuracy, 95% Wilson CI)", "",
            "| instruction | n | " + " | ".join(name for name, _ in rows) + " |",
            "|---" * (len(rows) + 2) + "|"]
    for t in types:
        cells = [_pct(r["per_type"][t]["loose"]) if t in r.get("per_type", {}) else "-" for _, r in rows]
        n = next(r["per_type"][t]["n"] for _, r in rows if t in r.get("per_type", {}))
        out.append(f"| `{t}` | {n} | " + " | ".join(cells) + " |")
    return out


def rounds_table(summary: dict[str, Any]) -> str:
    gain = "gain (prompt-level loose)" if _ifeval(summary) else "gain (not copyable)"
    lines = [f"| round | dataset rows | sampling rates | answers: sampled pass / repaired / unrepairable "
             f"| best stage | {gain} |", "|---|---|---|---|---|---|"]
    for e in summary["rounds"]:
        rates = "; ".join(f"{k}: " + ", ".join(f"{m} {v:.3f}" for m, v in r.items())
                          for k, r in e["rates"].items() if r)
        rows = ", ".join(f"{k} {v}" for k, v in e["splits"].items())
        src = e.get("sources") or {}
        sources = " / ".join(str(src.get(k, 0)) for k in ("sampled_pass", "repaired", "unrepairable")) \
            if src else "no repair"
        lines.append(f"| {e['round']} | {rows} | {rates} | {sources} | {e.get('best_stage', '-')} | "
                     f"{e.get('gain', 0):+.3f} |")
    return "\n".join(lines)


def _losses(metrics: Path) -> list[tuple[int, float]]:
    if not metrics.exists():
        return []
    out = []
    for line in metrics.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if "loss" in entry and "step" in entry:
            out.append((entry["step"], entry["loss"]))
    return out


def write_report(summary: dict[str, Any], folder: Path) -> Path:
    test = summary["test"]
    decoder = summary.get("decoder", {})
    same = (f"Greedy decoding, one decoder for every model ({decoder.get('backend', 'transformers')}, "
            f"{decoder.get('max_tokens', '?')}-token cap).")
    if _ifeval(summary):
        head = [f"Base model `{summary['model']}`; {test['n']} IFEval prompts ({test['instructions']} "
                f"instructions) from `{test['data']}`, scored by lm-eval's IFEval checker. {same}", "",
                "## IFEval", "", *ifeval_tables(summary)]
    else:
        head = [f"Base model `{summary['model']}`; {test['n']} held-out problems ({test['not_copyable']} not "
                f"solvable by copying the input, {test['copyable']} copyable). {same}", "",
                "## Held-out accuracy", "", accuracy_table(summary)]
    md = [f"# Self-teaching report: {summary['recipe']}", "", *head, "", "## Rounds", "",
          rounds_table(summary), "", "## Training", ""]
    for e in summary["rounds"]:
        for stage, path in e.get("metrics", {}).items():
            losses = _losses(Path(path))
            if losses:
                md.append(f"- round {e['round']} {stage}: {len(losses)} steps, loss {losses[0][1]:.4f} -> "
                          f"{losses[-1][1]:.4f} (`{path}`)")
    (folder / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    page = folder / "report.html"
    page.write_text(_html(summary, "\n".join(md)), encoding="utf-8")
    return page


def _html(summary: dict[str, Any], markdown: str) -> str:
    import plotly.graph_objects as go

    figures = []
    rows = _rows(summary)
    if rows and _ifeval(summary):
        figures += _ifeval_figures(rows)
    elif rows:
        fig = go.Figure()
        for part, label in (("not_copyable", "not copyable"), ("copyable", "copyable")):
            acc = [r[part]["accuracy"] for _, r in rows]
            fig.add_bar(name=label, x=[n for n, _ in rows], y=acc, error_y=dict(
                type="data", symmetric=False, array=[r[part]["ci95"][1] - a for (_, r), a in zip(rows, acc)],
                arrayminus=[a - r[part]["ci95"][0] for (_, r), a in zip(rows, acc)]))
        fig.update_layout(title="Held-out greedy accuracy (95% Wilson intervals)", yaxis_range=[0, 1])
        figures.append(fig)
    passk = [(e["round"], k, v) for e in summary["rounds"] for r in e["rates"].values()
             for k, v in r.items() if k.startswith("pass@")]
    if passk:
        fig = go.Figure()
        for k in sorted({k for _, k, _ in passk}, key=lambda s: int(s[5:])):
            points = [(r, v) for r, kk, v in passk if kk == k]
            fig.add_scatter(name=k, x=[r for r, _ in points], y=[v for _, v in points], mode="lines+markers")
        fig.update_layout(title="pass@k on the train problems, per round", xaxis_title="round")
        figures.append(fig)
    curves = go.Figure()
    for e in summary["rounds"]:
        for stage, path in e.get("metrics", {}).items():
            losses = _losses(Path(path))
            curves.add_scatter(name=f"round {e['round']} {stage}", x=[s for s, _ in losses],
                               y=[v for _, v in losses], mode="lines")
    curves.update_layout(title="Training loss", xaxis_title="step")
    figures.append(curves)
    body = "".join(f.to_html(full_html=False, include_plotlyjs=i == 0) for i, f in enumerate(figures))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(summary['recipe'])}"
            f"</title></head><body>{body}<pre>{html.escape(markdown)}</pre></body></html>")


def _bars(fig: Any, name: str, labels: list[str], parts: list[dict[str, Any]]) -> None:
    """Accuracy bars with their asymmetric 95% intervals as error bars."""
    acc = [p["accuracy"] for p in parts]
    fig.add_bar(name=name, x=labels, y=acc, error_y=dict(
        type="data", symmetric=False, array=[p["ci95"][1] - a for p, a in zip(parts, acc)],
        arrayminus=[a - p["ci95"][0] for p, a in zip(parts, acc)]))


def _ifeval_figures(rows: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """The four figures per model, and loose accuracy per instruction type before/after."""
    import plotly.graph_objects as go

    from factory.teach.ifeval import LEVELS

    levels = go.Figure()
    for name, r in rows:
        _bars(levels, name, list(LEVELS), [r[n] for n in LEVELS])
    levels.update_layout(title="IFEval (95% intervals: Wilson for prompts, bootstrap over prompts for "
                         "instructions)", yaxis_range=[0, 1], barmode="group")
    types = sorted({t for _, r in rows for t in r.get("per_type", {})})
    per_type = go.Figure()
    for name, r in rows:
        have = [t for t in types if t in r.get("per_type", {})]
        _bars(per_type, name, [f"{t} (n={r['per_type'][t]['n']})" for t in have],
              [r["per_type"][t]["loose"] for t in have])
    per_type.update_layout(title="IFEval loose accuracy per instruction type (95% Wilson intervals)",
                           yaxis_range=[0, 1], barmode="group", height=600)
    return [levels, per_type]
