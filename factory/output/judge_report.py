"""``factory judge-eval``'s files: ``judge_eval.json`` (every figure), ``decisions.jsonl`` (one line
per pair) and ``judge_eval.html``, one self-contained page (inline SVG, no script, no network):
agreement per kind with 95% intervals, what became of the pairs, and the calibration curve."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from factory.steps.judge_measure import headline

GREEN, RED, GREY, BLUE = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0"


def write_report(folder: Path, report: dict[str, Any], decisions: list[dict[str, Any]]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "judge_eval.json", "html": folder / "judge_eval.html",
             "decisions": folder / "decisions.jsonl"}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    paths["decisions"].write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in decisions))
    paths["html"].write_text(render_html(report))
    return paths


def rows_by_kind(figures: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """("all", figures) then one row per kind when there are several."""
    return [("all", figures)] + list(figures.get("by_kind", {}).items())


def render_html(report: dict[str, Any]) -> str:
    figures, judge = report["figures"], report["judge"]
    title = f"judge-eval: {judge['backend']} {judge['model']} ({judge['mode']}) on {report['source']}"
    table = "".join(
        f"<tr><td>{html.escape(kind)}</td><td>{f['agreement']['n']}</td>"
        f"<td>{_cell(f['agreement'])}</td><td>{_cell(f['decided_agreement'])}</td>"
        f"<td>{_cell(f['coverage'])}</td><td>{_cell(f['position_consistency'])}</td>"
        f"<td>{_num(f['kappa']['value'])}</td>"
        f"<td>{html.escape(', '.join(f'{c} {n}' for c, n in f['ties'].items()) or '0')}</td></tr>"
        for kind, f in rows_by_kind(figures))
    calib = figures.get("calibration")
    calib_html = ""
    if calib:
        calib_html = (f"<h2>Calibration</h2><p>Confidence in the picked answer against how often it was "
                      f"right, {calib['points']} pairs; ECE {_num(calib['ece'])} (0 = calibrated), mean "
                      f"confidence {_num(calib['mean_confidence'])}.</p>{_calibration_svg(calib)}")
    verdict = report.get("verdict", "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.verdict{{font-size:1.1em;padding:.6em;background:#f5f5f5}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="verdict">{html.escape(verdict)}</p>
<p>{html.escape(headline(figures))}</p>
<p>Each pair is asked in both orders. Agreement: the judge chose the labelled answer, over all pairs
(a tie counts as a miss) and over the pairs it decided; coverage: the share it decided; position
consistency: both orders named the same answer; kappa: Cohen's kappa between label and pick (a tie
is its own pick). Intervals are 95% (Wilson; kappa by bootstrap).</p>
<h2>Agreement</h2>{_agreement_svg(figures)}
<table><tr><th>pairs</th><th>n</th><th>agreement</th><th>on decided</th><th>coverage</th>
<th>position consistency</th><th>kappa</th><th>ties by cause</th></tr>{table}</table>
<h2>What became of the pairs</h2>{_outcome_svg(figures)}
{calib_html}
<h2>Judge</h2><pre>{html.escape(json.dumps(judge, indent=2))}</pre>
</body></html>
"""


def _cell(r: dict[str, Any]) -> str:
    if r["rate"] is None:
        return "n/a"
    ci = f" [{100 * r['ci95'][0]:.0f}, {100 * r['ci95'][1]:.0f}]" if r["ci95"] else ""
    return f"{r['k']}/{r['n']} = {100 * r['rate']:.1f}%{ci}"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _agreement_svg(figures: dict[str, Any]) -> str:
    """One bar per kind: agreement over all pairs with its interval, and a line at chance (50%)."""
    rows = rows_by_kind(figures)
    width, bar, left = 720, 26, 170
    height = len(rows) * (bar + 10) + 40
    scale = (width - left - 20) / 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for i, (kind, f) in enumerate(rows):
        y = 10 + i * (bar + 10)
        a = f["agreement"]
        value = a["rate"] or 0.0
        parts.append(f'<text x="{left - 8}" y="{y + bar * 0.7}" text-anchor="end" font-size="13">'
                     f"{html.escape(kind)}</text>")
        parts.append(f'<rect x="{left}" y="{y}" width="{value * scale:.1f}" height="{bar}" '
                     f'fill="{GREEN if value >= 0.8 else BLUE if value > 0.6 else RED}"/>')
        if a["ci95"]:
            lo, hi = (left + c * scale for c in a["ci95"])
            mid = y + bar / 2
            parts.append(f'<line x1="{lo:.1f}" x2="{hi:.1f}" y1="{mid}" y2="{mid}" stroke="#000"/>')
        parts.append(f'<text x="{left + value * scale + 6:.1f}" y="{y + bar * 0.7}" font-size="12">'
                     f"{100 * value:.0f}%</text>")
    chance = left + 0.5 * scale
    parts.append(f'<line x1="{chance}" x2="{chance}" y1="0" y2="{height - 25}" stroke="{GREY}" '
                 'stroke-dasharray="4"/>')
    parts.append(f'<text x="{chance}" y="{height - 8}" text-anchor="middle" font-size="12">50% '
                 "(chance for a judge that always decides)</text></svg>")
    return "".join(parts)


def _outcome_svg(figures: dict[str, Any]) -> str:
    """Per kind, one stacked bar: right, wrong, then each tie cause."""
    rows = rows_by_kind(figures)
    causes = sorted({c for _, f in rows for c in f["ties"]})
    colors = [GREEN, RED] + ["#ffb300", "#8e24aa", "#6d4c41", "#00838f", "#546e7a", "#c0ca33"][:len(causes)]
    width, bar, left = 720, 22, 170
    height = len(rows) * (bar + 8) + 40
    span = width - left - 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for i, (kind, f) in enumerate(rows):
        y = 8 + i * (bar + 8)
        n = f["agreement"]["n"] or 1
        right = f["agreement"]["k"]
        wrong = f["coverage"]["k"] - right
        x = float(left)
        parts.append(f'<text x="{left - 8}" y="{y + bar * 0.7}" text-anchor="end" font-size="13">'
                     f"{html.escape(kind)}</text>")
        for count, color in zip([right, wrong] + [f["ties"].get(c, 0) for c in causes], colors):
            w = span * count / n
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{color}"/>')
            x += w
    legend = ["right", "wrong"] + [f"tie: {c}" for c in causes]
    x = left
    for label, color in zip(legend, colors):
        parts.append(f'<rect x="{x}" y="{height - 20}" width="12" height="12" fill="{color}"/>'
                     f'<text x="{x + 16}" y="{height - 10}" font-size="12">{html.escape(label)}</text>')
        x += 20 + 7 * len(label)
    return "".join(parts) + "</svg>"


def _calibration_svg(calib: dict[str, Any]) -> str:
    """Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration."""
    size, pad = 340, 40

    def px(conf: float, acc: float) -> tuple[float, float]:
        return pad + (conf - 0.5) / 0.5 * (size - 2 * pad), size - pad - acc * (size - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" role="img">',
             f'<rect x="{pad}" y="{pad}" width="{size - 2 * pad}" height="{size - 2 * pad}" fill="none" '
             'stroke="#ccc"/>']
    (x0, y0), (x1, y1) = px(0.5, 0.5), px(1.0, 1.0)
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="{GREY}" stroke-dasharray="4"/>')
    points = [px(b["confidence"], b["accuracy"]) for b in calib["bins"] if b["n"]]
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{BLUE}" stroke-width="2"/>')
    for b in calib["bins"]:
        if b["n"]:
            x, y = px(b["confidence"], b["accuracy"])
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{3 + min(8, b["n"] ** 0.5)}" '
                         f'fill="{BLUE}" fill-opacity="0.5"><title>{b["n"]} pairs</title></circle>')
    parts.append(f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle" font-size="12">confidence '
                 "(0.5 to 1)</text>")
    parts.append(f'<text x="12" y="{size / 2}" font-size="12" transform="rotate(-90 12 {size / 2})" '
                 'text-anchor="middle">accuracy (0 to 1)</text></svg>')
    return "".join(parts)
