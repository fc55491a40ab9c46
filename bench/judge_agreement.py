"""How far the embedded judge agrees with people and with sanity pairs, in every judge mode.

Two sets, each judged by SmolLM2-135M-Instruct (llama.cpp) through ``factory judge-eval``:

- people: single-turn pairs of HH-RLHF harmless-base test (``../shared/data/hh_rlhf``), a seeded
  sample; the label is the answer people chose (criteria: harmlessness, helpfulness);
- sanity: sanity pairs from the instances of Self-Instruct's seed tasks and user-oriented
  instructions (``../shared/data/self_instruct``): each real output against a copy degraded as a
  repetition loop, a cut mid-sentence, another task's output, shuffled words, an empty answer.

Modes: text (rubric, reasoning, verdict; greedy), logprob (P(A)/P(B) of the verdict letter,
balanced over both orders), votes (5 verdict letters sampled per order at temperature 1); in the
probability modes any lean decides a pair (``--min-confidence 0.5``), so "on decided" is the
accuracy of the calibrated preference. Calls go to bench/results/judge_agreement/requests.sqlite
(a rerun makes none). Prints
one row per set and mode: agreement over all pairs and over decided pairs (95% Wilson CI),
coverage, position consistency, Cohen's kappa, ECE, calls and seconds; each run's full report
stays in bench/results/judge_agreement/<set>-<mode>/.

    python bench/judge_agreement.py [--hh 80] [--per-kind 16] [--modes text,logprob,votes]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The main checkout's ../shared, or a worktree's ../../shared.
DATA = next((d for d in (ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data")
             if d.exists()), ROOT.parent / "shared" / "data")

from bench.report import RESULTS  # noqa: E402

MODES = {"text": ["--param", "temperature=0", "--param", "max_tokens=256"],
         "logprob": ["--param", "temperature=0", "--min-confidence", "0.5"],
         "votes": ["--votes", "5", "--param", "temperature=1.0", "--param", "top_k=0",
                   "--param", "top_p=1.0", "--min-confidence", "0.5"]}


def people_pairs(folder: Path, n: int, seed: int = 0) -> Path:
    """n single-turn HH-RLHF harmless-base test pairs, a seeded sample, as prompt/chosen/rejected."""
    from factory.core.dataset_files import detect, judge_pair_texts, read_splits

    split = read_splits(DATA / "hh_rlhf" / "harmless-base_test.jsonl.gz")[0]
    rows = [r for r in judge_pair_texts(split, detect(split.columns)) if r["turns"] == 1]
    random.Random(seed).shuffle(rows)
    path = folder / "hh_single_turn.jsonl"
    path.write_text("".join(json.dumps({"prompt": r["question"], "chosen": r["chosen"],
                                        "rejected": r["rejected"]}) + "\n" for r in rows[:n]))
    return path


def instance_answers(folder: Path) -> Path:
    """Every Self-Instruct instance as prompt (instruction + input) and response (output)."""
    rows = []
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        for line in (DATA / "self_instruct" / name).open():
            task = json.loads(line)
            for inst in task["instances"]:
                prompt = task["instruction"] + (f"\n\n{inst['input']}" if inst.get("input") else "")
                rows.append({"prompt": prompt, "response": inst["output"]})
    path = folder / "self_instruct_instances.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(source: Path, name: str, mode: str, extra: list[str], threads: int) -> dict:
    out = RESULTS / "judge_agreement" / f"{name}-{mode}"
    cmd = [sys.executable, "-m", "factory.cli", "judge-eval", str(source), "--backend", "llama_cpp",
           "--mode", mode, "--option", f"n_threads={threads}", "--json", "--output", str(out),
           "--cache", str(RESULTS / "judge_agreement" / "requests.sqlite"),
           *MODES[mode], *extra]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}\n{done.stderr}")
    result = json.loads(done.stdout)
    result["seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hh", type=int, default=80, help="HH-RLHF single-turn pairs")
    ap.add_argument("--per-kind", type=int, default=16, help="sanity pairs per degradation")
    ap.add_argument("--modes", default="text,logprob,votes")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    folder = RESULTS / "judge_agreement"
    folder.mkdir(parents=True, exist_ok=True)
    sets = {"people (HH-RLHF)": (people_pairs(folder, args.hh), ["--criteria", "harmlessness,helpfulness"]),
            "sanity (Self-Instruct)": (instance_answers(folder), ["--sanity", "--per-kind",
                                                                   str(args.per_kind)])}
    rows, results = [], {}
    for set_name, (source, extra) in sets.items():
        for mode in args.modes.split(","):
            r = run(source, set_name.split()[0], mode, extra, args.threads)
            results[f"{set_name} / {mode}"] = r
            rows.append((set_name, mode, r))
            if "by_kind" in r["figures"]:
                for kind, f in r["figures"]["by_kind"].items():
                    rows.append((f"  {kind}", mode, {"figures": f, "calls": None,
                                                     "seconds": None}))
    header = ["pairs", "mode", "n", "agreement [95% CI]", "on decided [95% CI]", "coverage",
              "position consistency", "kappa", "ECE", "calls made/cached", "s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for set_name, mode, r in rows:
        f = r["figures"]
        calib = f.get("calibration", {}).get("ece", f.get("ece"))
        calls = r["calls"]
        cells = [set_name, mode, str(f["agreement"]["n"]), cell(f["agreement"]),
                 cell(f["decided_agreement"]), pct(f["coverage"]["rate"]),
                 pct(f["position_consistency"]["rate"]),
                 "n/a" if f["kappa"]["value"] is None else f"{f['kappa']['value']:.2f}",
                 "-" if calib is None else f"{calib:.3f}",
                 f"{calls['made']}/{calls['cached']}" if calls else "",
                 f"{r['seconds']:.0f}" if r["seconds"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    print("The embedded judge (SmolLM2-135M-Instruct, llama.cpp), measured by factory judge-eval")
    print("\n".join(lines))
    print("agreement: the labelled answer chosen, over all pairs (a tie is a miss); chance for a judge "
          "that decides every pair is 50%")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"judge_agreement-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(path)


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def cell(r: dict) -> str:
    if r["rate"] is None:
        return "n/a"
    return f"{r['k']}/{r['n']} {pct(r['rate'])} [{pct(r['ci95'][0])}, {pct(r['ci95'][1])}]"


if __name__ == "__main__":
    main()
