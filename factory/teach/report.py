"""The self-teaching loop's report: ``report.md`` (tables) and ``report.html`` (the same tables plus
plots: held-out accuracy with 95% intervals, pass@k per round, training loss curves)."""

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


def rounds_table(summary: dict[str, Any]) -> str:
    lines = ["| round | dataset rows | sampling rates | best stage | gain (not copyable) |",
             "|---|---|---|---|---|"]
    for e in summary["rounds"]:
        rates = "; ".join(f"{k}: " + ", ".join(f"{m} {v:.3f}" for m, v in r.items())
                          for k, r in e["rates"].items() if r)
        rows = ", ".join(f"{k} {v}" for k, v in e["splits"].items())
        lines.append(f"| {e['round']} | {rows} | {rates} | {e.get('best_stage', '-')} | "
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
    md = [f"# Self-teaching report: {summary['recipe']}", "",
          f"Base model `{summary['model']}`; {test['n']} held-out problems ({test['not_copyable']} not "
          f"solvable by copying the input, {test['copyable']} copyable). Greedy decoding, one "
          "transformers decoder for every model.", "", "## Held-out accuracy", "",
          accuracy_table(summary), "", "## Rounds", "", rounds_table(summary), "", "## Training", ""]
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
    if rows:
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
