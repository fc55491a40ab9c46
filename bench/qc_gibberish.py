"""The default QC chain against corrupted answers at 1%, 15% and 40% prevalence, side by side.

Real rows: every (instruction + input, output) instance of ../shared/data/self_instruct (427).
Corrupted rows: ``--per-kind`` answers of each kind in ``factory/core/degrade.py`` (repetition
loops, word salad, character noise, shuffled words, truncation, a language switch, markup debris,
another prompt's answer, an empty reply) plus near-duplicates of real rows (case, punctuation, a
swapped word pair), each under its original prompt. At each prevalence the corrupted rows are
dealt into datasets with enough real rows to make that share, and the chain (``filters/
default.yaml`` unless ``--chain``) runs on each. A row counts as removed when the chain drops it
or cannot score it (failed); a near-duplicate counts when its copy goes.

Every model score is computed once (one scorer, shared by the perplexity and fit filters, and one
embedder for every run), so the three prevalences cost one pass of the model per framing: the
answer under its prompt (token NLLs and the ending log-prob, one forward pass), under an empty
user turn (the fit filter's conditioning gain) and under the other prompt fit puts to it. Beside
the default chain, the same perplexity scores cut at p95 of the data itself show why a percentile
of the data is not a filter: it removes the same share of rows whatever the data holds.

    python bench/qc_gibberish.py [--per-kind 20] [--seed 0] [--chain filters/default.yaml]
                                 [--threads 2] [--scores FILE]

``--seed`` picks other rows to corrupt (and corrupts them differently) and deals other datasets:
the out-of-sample check for cuts chosen on other seeds; the 427 real rows are the same. The model
passes are most of the time: seed 0 from nothing scored 1,320 texts in 465 s on the idle 2-core
machine, model loads and MiniLM included. ``--scores FILE`` keeps the model's scores after each
prevalence and reuses them (a re-run takes ~85 s, most of it langdetect and MiniLM); another seed
on the same file scores only its new texts (~3 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# ../shared/data beside the checkout (CI), or wherever FACTORY_SHARED_DATA points (a worktree).
DATA = Path(os.environ.get("FACTORY_SHARED_DATA", ROOT.parent / "shared" / "data")) / "self_instruct"

from rich.table import Table  # noqa: E402

from bench.report import report  # noqa: E402
from factory.core.degrade import degrade, sanity_pairs  # noqa: E402
from factory.core.record import Record  # noqa: E402
from filters.base import Chain, QCContext  # noqa: E402
from filters.chain import build_chain  # noqa: E402
from filters.config import PerplexityBlock, load_chain_file  # noqa: E402
from filters.fit import FitFilter  # noqa: E402
from filters.perplexity import PerplexityFilter, PerplexityScorer  # noqa: E402

KINDS = ("repetition_loop", "word_salad", "char_noise", "shuffled_words", "truncated", "language_switch",
         "markup_debris", "other_answer", "empty", "near_duplicate")
PREVALENCES = (0.01, 0.15, 0.40)


def real_rows() -> list[tuple[str, str]]:
    rows = []
    for name in ("user_oriented_instructions.jsonl", "seed_tasks.jsonl"):
        for line in (DATA / name).open():
            task = json.loads(line)
            for inst in task["instances"]:
                prompt = task["instruction"] + (f"\n\n{inst['input']}" if inst["input"].strip() else "")
                rows.append((prompt, inst["output"]))
    return rows


def near_copy(text: str, rng: random.Random) -> str:
    words = text.split()
    kind = rng.randrange(3)
    if kind == 0 or len(words) < 3:
        return text.lower() if text.lower() != text else text.upper()
    if kind == 1:
        return text.rstrip(".?!") + rng.choice(["!", " .", "?", " ..."])
    i = rng.randrange(len(words) - 1)
    words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def corrupted_rows(rows: list[tuple[str, str]], per_kind: int,
                   seed: int = 0) -> list[tuple[str, int, str, str]]:
    """(kind, source row, prompt, corrupted answer), ``per_kind`` of each kind."""
    usable = sorted({p.source for p in sanity_pairs(rows, ("empty",))})  # 8+ words and a sentence end
    pool = [rows[i][1] for i in usable]
    out = []
    for kind in KINDS:
        rng = random.Random(f"{seed}/{kind}")
        for i in rng.sample(usable, per_kind):
            prompt, answer = rows[i]
            bad = near_copy(answer, rng) if kind == "near_duplicate" else degrade(kind, answer, rng, pool)
            out.append((kind, i, prompt, bad))
    return out


def datasets(n_real: int, corrupted: list, prevalence: float, seed: int = 0,
             max_real: int = 400) -> list[tuple[list[int], list[int]]]:
    """(real row indices, corrupted row indices) per dataset at this prevalence: up to ``max_real``
    real rows each, and every corrupted row in exactly one dataset (a near-duplicate's source row
    is always in its dataset, before it)."""
    rng = random.Random(f"{seed}/{prevalence}")
    order = list(range(len(corrupted)))
    rng.shuffle(order)
    real_n = min(max_real, int(len(corrupted) * (1 - prevalence) / prevalence))
    per_set = max(1, round(prevalence * real_n / (1 - prevalence)))
    out = []
    for start in range(0, len(order), per_set):
        chunk = order[start:start + per_set]
        must = {corrupted[c][1] for c in chunk if corrupted[c][0] == "near_duplicate"}
        others = [i for i in range(n_real) if i not in must]
        n = min(real_n, max(len(must), round(len(chunk) * (1 - prevalence) / prevalence)))
        real = sorted(must | set(rng.sample(others, n - len(must))))
        out.append((real, chunk))
    return out


SCORES_FORMAT = 2  # 2: the fifth figure is the ending log-prob (turn or line); 1 held end of turn only


def load_scores(scorer: PerplexityScorer, path: Path) -> None:
    """A scores file's token NLLs (and ending log-probs, when it has them) into the memo."""
    saved = json.loads(path.read_text())
    if not isinstance(saved, dict) or saved.get("format") != SCORES_FORMAT:
        sys.exit(f"{path}: scores of an older format (not {SCORES_FORMAT}); delete it to score again")
    for entry in saved["scores"]:
        key = (entry[0], entry[1], entry[2])
        scorer._memo[key] = entry[3]
        if entry[4] is not None:
            scorer._ending[key] = float(entry[4])  # "nan" for a text cut at max_tokens


def save_scores(scorer: PerplexityScorer, path: Path) -> None:
    ending = {k: (str(v) if v != v else v) for k, v in scorer._ending.items()}  # NaN is not JSON
    path.write_text(json.dumps({"format": SCORES_FORMAT,
                                "scores": [[c, t, chat, nlls, ending.get((c, t, chat))]
                                           for (c, t, chat), nlls in scorer._memo.items()]}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-kind", type=int, default=20)
    ap.add_argument("--chain", default=str(ROOT / "filters" / "default.yaml"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="which rows each kind corrupts and how (another "
                    "seed: other corrupted rows, the same real ones) and how the datasets are dealt")
    ap.add_argument("--scores", type=Path, help="keep the model's token scores in this JSON file: read "
                    "when it exists (no model pass; the figures are the same), written after a pass")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = real_rows()
    bad = corrupted_rows(rows, args.per_kind, args.seed)
    chain = build_chain(load_chain_file(args.chain))
    scorer = None
    embedder = None
    for f in chain.filters:  # one scorer and one embedder for every run: each text is scored once
        if isinstance(f, (PerplexityFilter, FitFilter)):
            scorer = scorer or f.scorer
            f.scorer = scorer
        if hasattr(f, "embedder"):  # dedup's and fit's (MiniLM both, by default)
            from filters.embed import Embedder

            spec = f.block.embedding_model if isinstance(f, FitFilter) else f.block.model
            embedder = embedder if embedder and embedder.spec == spec else Embedder(spec)
            f.embedder = embedder
    if args.scores and args.scores.exists() and isinstance(scorer, PerplexityScorer):
        load_scores(scorer, args.scores)
    known = len(scorer._memo) if isinstance(scorer, PerplexityScorer) else 0
    contrast = None
    for f in chain.filters:
        if isinstance(f, PerplexityFilter):  # the same scores, cut at p95 of the data itself
            block = PerplexityBlock(**{**f.block.model_dump(), "reference": "data", "percentile": 95,
                                       "margin": None})
            contrast = Chain([PerplexityFilter(block, scorer=f.scorer)])
            break
    started = time.perf_counter()
    results: dict = {"chain": args.chain, "per_kind": args.per_kind, "seed": args.seed,
                     "real_rows": len(rows), "prevalences": {}}
    table = Table(title=f"default QC chain ({Path(args.chain).name}) on {len(rows)} real self_instruct "
                        f"answers + {args.per_kind} corrupted answers per kind (seed {args.seed}): "
                        "share removed")
    table.add_column("kind")
    for p in PREVALENCES:
        table.add_column(f"{p:.0%} garbage")
    for p in PREVALENCES:
        table.add_column(f"p95-of-data cut, {p:.0%}")
    removed: dict[float, Counter] = {}
    contrast_removed: dict[float, Counter] = {}
    real_lost: dict[float, tuple[int, int]] = {}
    real_by_filter: dict[float, Counter] = {}
    contrast_lost: dict[float, tuple[int, int]] = {}
    cuts: dict[str, object] = {}
    for p in PREVALENCES:
        removed[p], contrast_removed[p], real_by_filter[p] = Counter(), Counter(), Counter()
        lost = seen = c_lost = 0
        missed: list[str] = []  # corrupted rows kept: "kind/source row", to read what got through
        lost_reasons: Counter = Counter()
        sets = datasets(len(rows), bad, p, args.seed)
        for real, chunk in sets:
            records = [Record(f"real{i}", {"prompt": rows[i][0], "response": rows[i][1]}, "bench")
                       for i in real]
            records += [Record(f"bad{c}", {"prompt": bad[c][2], "response": bad[c][3]}, "bench")
                        for c in chunk]
            result = chain.run(records, QCContext())
            gone = {r.record.id for r in result.rejects}
            lost += sum(f"real{i}" in gone for i in real)
            real_by_filter[p].update(r.step.removeprefix("qc.") for r in result.rejects
                                     if r.record.id.startswith("real"))
            lost_reasons.update(r.reason for r in result.rejects if r.record.id.startswith("real"))
            seen += len(real)
            for c in chunk:
                removed[p][bad[c][0]] += f"bad{c}" in gone
                if f"bad{c}" not in gone:
                    missed.append(f"{bad[c][0]}/{bad[c][1]}")
            cuts = {label: {k: info.get(k) for k in ("cut", "cut_source", "rule") if k in info}
                    for label, info in result.info.items()}
            if contrast is not None:
                c_gone = {r.record.id for r in contrast.run(records, QCContext()).rejects}
                c_lost += sum(f"real{i}" in c_gone for i in real)
                for c in chunk:
                    contrast_removed[p][bad[c][0]] += f"bad{c}" in c_gone
        real_lost[p], contrast_lost[p] = (lost, seen), (c_lost, seen)
        if args.scores and isinstance(scorer, PerplexityScorer) and len(scorer._memo) > known:
            save_scores(scorer, args.scores)  # after each prevalence: a later failure keeps the pass
            known = len(scorer._memo)
        results["prevalences"][f"{p:.2f}"] = {
            "datasets": len(sets),
            "rows_per_dataset": round(sum(len(r) + len(c) for r, c in sets) / len(sets)),
            "removed": {k: removed[p][k] / args.per_kind for k in KINDS}, "real_lost": lost / seen,
            "real_lost_by_filter": {k: v / seen for k, v in sorted(real_by_filter[p].items())},
            "real_lost_by_reason": {k: v / seen for k, v in sorted(lost_reasons.items())},
            "missed": sorted(missed),
            "p95_of_data": {"removed": {k: contrast_removed[p][k] / args.per_kind for k in KINDS},
                            "real_lost": c_lost / seen}}
    for kind in KINDS:
        table.add_row(kind, *[f"{removed[p][kind] / args.per_kind:.0%}" for p in PREVALENCES],
                      *[f"{contrast_removed[p][kind] / args.per_kind:.0%}" for p in PREVALENCES])
    table.add_row("[b]real rows lost[/b]",
                  *[f"{a / b:.1%}" for a, b in (real_lost[p] for p in PREVALENCES)],
                  *[f"{a / b:.1%}" for a, b in (contrast_lost[p] for p in PREVALENCES)])
    for label in sorted({k for c in real_by_filter.values() for k in c}):
        table.add_row(f"  lost to {label}", *[f"{real_by_filter[p][label] / real_lost[p][1]:.1%}"
                                               for p in PREVALENCES], "", "", "")
    elapsed = time.perf_counter() - started
    results["seconds"] = round(elapsed, 1)
    results["cuts"] = cuts
    texts = len(scorer._memo) if isinstance(scorer, PerplexityScorer) else 0
    table.caption = (f"{elapsed:.0f} s, {texts} texts scored once; per prevalence: "
                     + "; ".join(f"{p:.0%}: {results['prevalences'][f'{p:.2f}']['datasets']} datasets of "
                                 f"~{results['prevalences'][f'{p:.2f}']['rows_per_dataset']} rows"
                                 for p in PREVALENCES)
                     + "\ncuts: " + "; ".join(f"{k} {v.get('cut')} ({v.get('cut_source', v.get('rule'))})"
                                              for k, v in cuts.items()))
    report(table, results, "qc_gibberish-")


if __name__ == "__main__":
    main()
