"""``factory qc`` and ``factory audit``: the chain on any dataset, enforcing or report-only.

The audit writes one self-contained HTML page (plotly.js inlined once, no CDN): counts and
reasons, diversity figures (distinct-n, mean ROUGE-L, Vendi; the seeds beside them with --seeds),
length histograms, perplexity and reward histograms with their cut lines, the drift
scatter with AUC/MMD, the largest duplicate groups, pair-QC figures, a random 5% sample (at least
20 rows) with keep/drop buttons and an export, and, once people have reviewed rows with
``factory review`` (``reviews.jsonl``), how far they agree with the chain and with each other.
"""

from __future__ import annotations

import html
import math
import random
from pathlib import Path
from typing import Any

from filters.agreement import agreement
from filters.base import QCContext, QCResult, figures_note
from filters.chain import build_chain
from filters.config import load_chain_file
from filters.dataset_io import LoadedDataset, default_chain_path, load_dataset_records
from filters.review_sample import qc_labels
from filters.review_store import latest, read_verdicts, review_paths


def run_dataset_chain(dataset: LoadedDataset, chain_path: Path | None, seeds_path: Path | None,
                      report_only: bool) -> tuple[QCResult, Path]:
    from factory.core.rows import read_rows
    from factory.llm.session import run_blocking

    chain_path = chain_path or default_chain_path(dataset.format)
    blocks = load_chain_file(chain_path)
    seeds = read_rows(seeds_path) if seeds_path else []
    chain = build_chain(blocks)
    # A judge scorer calls its model through the session (the default request cache).
    result = run_blocking(lambda llm: chain.run(dataset.records, QCContext(seeds, report_only, llm)))
    return result, chain_path


def audit(dataset_path: Path, output: Path | None = None, chain_path: Path | None = None,
          seeds_path: Path | None = None, fmt: str | None = None, prompt_column: str | None = None,
          response_column: str | None = None, sample_fraction: float = 0.05,
          seed: int = 0, split: str | None = None) -> tuple[Path, dict[str, Any]]:
    dataset = load_dataset_records(dataset_path, fmt, prompt_column, response_column, split)
    result, chain_path = run_dataset_chain(dataset, chain_path, seeds_path, report_only=True)
    summary = result.summary(len(dataset.records))
    from factory.core.rows import read_rows

    summary["diversity"] = dataset_diversity(dataset, read_rows(seeds_path) if seeds_path else [], seed)
    people = latest(read_verdicts(review_paths(dataset_path)[1]))
    if people:
        summary["agreement"] = agreement(qc_labels(dataset.records, result), people)
    output = output or (dataset_path / "audit.html" if dataset_path.is_dir()
                        else dataset_path.with_name(dataset_path.stem + ".audit.html"))
    page = render_report(dataset, result, summary, chain_path, sample_fraction, seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output, summary


def dataset_diversity(dataset: LoadedDataset, seeds: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """filters.diversity's figures for the split's prompt and answer texts (and the seed rows'
    text columns, when given)."""
    from filters.diversity import DiversityTally, diversity_stats

    columns = _text_columns(dataset)[:2]  # prompt and response, or prompt and chosen
    generated = DiversityTally(columns, [], seed)
    for record in dataset.records:
        generated.add(record.fields)
    tally = None
    if seeds:
        tally = DiversityTally(None, [], seed)
        for row in seeds:
            tally.add(row)
    return diversity_stats(tally, generated, {}, seed)


# ---------------------------------------------------------------------------------------- report


def _diversity_table(diversity: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{s['side']}</td><td>{html.escape(s['column'])}</td><td>{s['rows']}</td><td>{s['texts']}</td>"
        + "".join(f"<td>{'n/a' if s.get(k) is None else s[k]}</td>"
                  for k in ("distinct_1", "distinct_2", "rouge_l_mean", "vendi")) + "</tr>"
        for s in diversity["sets"])
    missing = "".join(f"<p>{html.escape(k)}: {html.escape(v)}.</p>"
                      for k, v in diversity.get("missing", {}).items())
    sample = diversity["sample"]
    return (f"<p>Each set sampled to at most {sample['texts']} texts (ROUGE-L over at most "
            f"{sample['pairs']} pairs). distinct-n: share of distinct word n-grams (higher: more varied). "
            "Mean ROUGE-L: overlap of two texts (lower: more varied). Vendi: the effective number of "
            "distinct texts on MiniLM embeddings.</p><table><tr><th>side</th><th>column</th><th>rows</th>"
            "<th>sampled</th><th>distinct-1</th><th>distinct-2</th><th>mean ROUGE-L</th><th>Vendi</th></tr>"
            + rows + "</table>" + missing)


def _text_columns(dataset: LoadedDataset) -> list[str]:
    return ["prompt", "chosen", "rejected"] if dataset.format == "preference" else ["prompt", "response"]


def _figures(dataset: LoadedDataset, result: QCResult) -> list[tuple[str, Any, str]]:
    """(section title, plotly figure or None, note) in page order."""
    import plotly.graph_objects as go

    out: list[tuple[str, Any, str]] = []
    recs = dataset.records
    length_cols = _text_columns(dataset)
    fig = go.Figure()
    for col in length_cols:
        fig.add_histogram(x=[len(str(r.fields.get(col) or "")) for r in recs], name=col, opacity=0.6)
    fig.update_layout(barmode="overlay", xaxis_title="characters", yaxis_title="records")
    out.append(("Lengths", fig, ""))
    for label, info in result.info.items():
        kind = label.split("#")[0]
        scores = [float(s) for s in result.stats[label].scores
                  if isinstance(s, (int, float)) and math.isfinite(s)]
        if kind in ("perplexity", "reward", "repetition") and scores:
            out.append((f"{label}: histogram", score_histogram(kind, scores, info), _score_note(kind, info)))
        elif kind == "fit":
            for signal, key, none in (("conditioning gain", "gain", "no record was scored"),
                                      ("ending", "ending", "no answer stops on a word in prose"),
                                      ("another prompt fits better", "other_prompt",
                                       "no answer has another prompt nearer than its own"),
                                      ("answer-prompt cosine", "cosine", "no answer was embedded")):
                values = info.get(f"_{key}") or []
                cut = {"cut": info.get(f"{key}_cut"), "cut_source": info.get("cut_source")}
                figure = score_histogram(f"fit_{key}", values, cut) if values else None
                out.append((f"{label}: {signal}", figure,
                            f"{_score_note(kind, info)}; {len(values)} records" if values else none))
        elif kind == "drift":
            scatter = info.get("_scatter")
            if not scatter:
                out.append((f"{label}: drift", None, info.get("message", "not measured")))
                continue
            fig = go.Figure()  # SVG, not WebGL: at most 2 × max_samples points, and drawn without a GPU
            for side in ("seed", "synthetic"):
                xy = scatter[side]
                fig.add_scatter(x=[p[0] for p in xy], y=[p[1] for p in xy], mode="markers", name=side,
                                  text=scatter[f"{side}_text"], marker={"size": 5, "opacity": 0.6})
            title = (f"AUC {info['auc']:.3f} · MMD² {info['mmd2']:.4f} (p {info['mmd_p']:.3f}) · "
                     f"{info['gate']}")
            fig.update_layout(title=title, xaxis_title="PC 1", yaxis_title="PC 2")
            out.append((f"{label}: seeds vs synthetic (PCA of embeddings)", fig, info["message"]))
        elif kind == "pairs":
            longer = info.get("chosen_longer")
            note = (f"chosen is longer in {longer:.1%} of {info['pairs']} pairs (length bias: far from 50% "
                    f"means a model can learn 'longer wins'); margin source: {info['margin_source']}"
                    if longer is not None else "no pairs")
            out.append((f"{label}: pair QC", None, note))
    return out


def score_histogram(kind: str, scores: list[float], info: dict[str, Any]) -> Any:
    """A histogram of one filter's scores with its cut line. Perplexity spans orders of magnitude,
    so it is binned on log10 values on a linear axis labelled in perplexity: plotly's histogram on
    a log axis put every record outside its bins and drew no bars."""
    import plotly.graph_objects as go

    cut = info.get("cut")
    cut = float(cut) if isinstance(cut, (int, float)) and math.isfinite(cut) else None
    log = kind == "perplexity" and min(scores) > 0 and (cut is None or cut > 0)
    xs = [math.log10(v) for v in scores] if log else scores
    fig = go.Figure(go.Histogram(x=xs, nbinsx=40, name=kind, hovertemplate="%{y} records<extra></extra>"))
    if cut is not None:
        fig.add_vline(x=math.log10(cut) if log else cut, line_dash="dash", line_color="red",
                      annotation_text=f"cut {cut:g} ({info.get('cut_source') or info.get('rule', '')})")
    if log:
        span = xs + ([math.log10(cut)] if cut is not None else [])
        ticks = [e + math.log10(m) for e in range(math.floor(min(span)), math.ceil(max(span)) + 1)
                 for m in (1, 2, 5)]
        per = " per character" if info.get("per") == "char" else ""
        fig.update_xaxes(tickvals=ticks, ticktext=[f"{10 ** t:.3g}" for t in ticks],
                         title=f"perplexity{per} (log scale)")
    else:
        fig.update_xaxes(title={"reward": "reward", "repetition": "worst rule figure ÷ its threshold "
                                "(above 1 = dropped)",
                                "fit_gain": "conditioning gain, nats per token (below the cut = dropped)",
                                "fit_ending": "log-prob that the turn or line ends, answers that stop on "
                                "a word (below the cut = dropped)",
                                "fit_other_prompt": "nats per token the nearest other prompt adds over its "
                                "own (above the cut = dropped)",
                                "fit_cosine": "answer-prompt embedding cosine (below the cut and gain under "
                                "unrelated_gain = dropped)"}.get(kind, kind))
    fig.update_yaxes(title="records")
    return fig


def _score_note(kind: str, info: dict[str, Any]) -> str:
    parts = [f"model: {info.get('model')}" if kind in ("perplexity", "fit") else
             f"scorer: {info.get('scorer')}" if kind == "reward" else str(info.get("rule", ""))]
    if info.get("cut_source"):
        parts.append(f"cut {info.get('cut')}: {info['cut_source']}")
    if info.get("message"):
        parts.append(str(info["message"]))
    return "; ".join(parts)


def _counts_table(summary: dict[str, Any]) -> str:
    rows = []
    for name, f in summary["filters"].items():
        reasons = {**f["dropped"], **{f"{k} (failed)": v for k, v in f["failed"].items()}}
        text = "<br>".join(f"{html.escape(k)}: {v}" for k, v in reasons.items()) or "—"
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{f['in']}</td><td>{f['kept']}</td>"
                    f"<td>{text}</td><td>{html.escape(figures_note(f) or str(f.get('gate', '')))}</td></tr>")
    head = ("<tr><th>filter</th><th>in</th><th>kept</th><th>would drop (reason: n)</th>"
            "<th>rule, cut and its source</th></tr>")
    return "<table>" + head + "".join(rows) + "</table>"


def _dup_groups(result: QCResult) -> str:
    parts = []
    for label, info in result.info.items():
        for g in info.get("_groups", [])[:10]:
            items = "".join(f"<li>{'<b>kept</b> ' if i == 0 else ''}<code>{html.escape(rid)}</code> "
                            f"{html.escape(t)}</li>" for i, (rid, t) in enumerate(zip(g["ids"], g["texts"])))
            parts.append(f"<div class='group'><b>{label}: group of {g['size']}</b><ul>{items}</ul></div>")
    return "".join(parts) or "<p>No duplicate groups.</p>"


def _sample(dataset: LoadedDataset, result: QCResult, fraction: float, seed: int) -> str:
    recs = dataset.records
    n = min(len(recs), max(20, round(fraction * len(recs))))
    picked = sorted(random.Random(seed).sample(range(len(recs)), n))
    flags: dict[int, list[str]] = {}
    for rej in result.rejects:
        flags.setdefault(id(rej.record), []).append(f"{rej.step.removeprefix('qc.')}: {rej.reason}")
    cols = _text_columns(dataset)
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = []
    for i in picked:
        r = recs[i]
        cells = "".join(f"<td><div class='cell'>{html.escape(str(r.fields.get(c) or ''))[:2000]}</div></td>"
                        for c in cols)
        flag = html.escape("; ".join(flags.get(id(r), [])) or "—")
        body.append(f"<tr data-id='{html.escape(r.id)}' data-row='{i + 1}'><td>{i + 1}</td>{cells}"
                    f"<td>{flag}</td>"
                    "<td><label><input type='radio' name='v" + str(i) + "' value='keep'>keep</label> "
                    "<label><input type='radio' name='v" + str(i) + "' value='drop'>drop</label><br>"
                    "<input type='text' class='note' placeholder='note'></td></tr>")
    return (f"<p>{n} of {len(recs)} rows, drawn at random (seed {seed}). To review rows with the keyboard, "
            "with verdicts saved as you go and read back by builds and by this page, run "
            f"<code>factory review {html.escape(str(dataset.path))}</code>.</p>"
            "<button id='export'>Export verdicts (JSON)</button>"
            f"<table id='sample'><tr><th>row</th>{head}<th>chain flags</th><th>verdict</th></tr>"
            + "".join(body) + "</table>")


EXPORT_JS = """
document.getElementById('export').addEventListener('click', function () {
  var rows = document.querySelectorAll('#sample tr[data-id]');
  var out = [];
  rows.forEach(function (tr) {
    var checked = tr.querySelector('input[type=radio]:checked');
    out.push({id: tr.dataset.id, row: Number(tr.dataset.row), verdict: checked ? checked.value : null,
              note: tr.querySelector('.note').value});
  });
  var blob = new Blob([JSON.stringify(out, null, 2)], {type: 'application/json'});
  var a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = 'review_verdicts.json';
  document.body.appendChild(a); a.click(); a.remove();
  window.lastExport = out;
});
"""

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;
margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
.cell{max-height:8em;overflow:auto;white-space:pre-wrap}.group{margin:.5em 0}.note{width:10em}"""


def _agreement_table(summary: dict[str, Any]) -> str:
    table = summary.get("agreement")
    if not table:
        return ("<p>No reviews yet: <code>factory review DATASET</code> writes people's verdicts to "
                "<code>reviews.jsonl</code>, and this section compares them with the chain.</p>")
    rows = "".join(
        f"<tr><td>{html.escape(r['reviewer'])}</td><td>{html.escape(r['rater'])}</td><td>{r['rows']}</td>"
        f"<td>{'n/a' if r['agreement'] is None else format(r['agreement'], '.0%')}</td>"
        f"<td>{'n/a' if r['kappa'] is None else format(r['kappa'], '.2f')}</td></tr>"
        for r in table["machine"] + table["reviewers"])
    return ("<p>People's verdicts (<code>reviews.jsonl</code>; keep and edit count as keep) against the "
            "chain's would-keep/would-drop on the same rows, and against each other. Kappa is n/a when "
            "both sides gave every row the same label.</p><table><tr><th>reviewer</th><th>compared with</th>"
            "<th>rows</th><th>agreement</th><th>Cohen's kappa</th></tr>" + rows + "</table>")


def render_report(dataset: LoadedDataset, result: QCResult, summary: dict[str, Any], chain_path: Path,
                  sample_fraction: float = 0.05, seed: int = 0) -> str:
    sections = []
    first = True
    for title, fig, note in _figures(dataset, result):
        body = ""
        if fig is not None:
            fig.update_layout(height=380, margin={"t": 50, "b": 40})
            # plotly.js is inlined once (the first figure); later figures reuse it.
            body = fig.to_html(full_html=False, include_plotlyjs=True if first else False)
            first = False
        sections.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(note)}</p>{body}")
    would = sum(1 for _ in {id(r.record) for r in result.rejects})
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>factory audit: {html.escape(dataset.split.source)}</title>
<style>{STYLE}</style></head><body>
<h1>Audit of {html.escape(dataset.split.source)}</h1>
<p>Format <b>{dataset.format}</b>, {len(dataset.records)} records;
chain <code>{html.escape(str(chain_path))}</code>
run in report-only mode (every filter sees every record; nothing is removed).
{would} records would be dropped by at least one filter.</p>
<h2>Counts and reasons</h2>{_counts_table(summary)}
<h2>Diversity</h2>{_diversity_table(summary["diversity"])}
{''.join(sections)}
<h2>Largest duplicate groups</h2>{_dup_groups(result)}
<h2>Agreement with people</h2>{_agreement_table(summary)}
<h2>Sample for manual review</h2>{_sample(dataset, result, sample_fraction, seed)}
<script>{EXPORT_JS}</script>
</body></html>
"""
