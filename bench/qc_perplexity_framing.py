"""Which perplexity statistic and framing separates real answers from corrupted ones best?

160 real self_instruct answers (instruction + input as the prompt) and 10 corrupted answers of each
kind perplexity is meant to catch (``factory/core/degrade.py``: character noise, word salad,
shuffled words, a language switch, markup debris), scored by the embedded SmolLM2 under three
framings of the prompt (none; ``prompt + newline``; the model's chat template, prompt as the user
turn) and three statistics (per token, per character, the worst 8-token window). Prints, per
combination, the ROC AUC real vs corrupted (mean and worst kind) and the share of corrupted
answers above the 97th percentile of the real ones. Answers are cut at 192 tokens and prompts at
their last 128 (390 s on 2 cores at load ~1.5; about 13 minutes when busy).

    python bench/qc_perplexity_framing.py
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("FACTORY_SHARED_DATA", ROOT.parent / "shared" / "data")) / "self_instruct"

from rich.table import Table  # noqa: E402

from bench.report import report  # noqa: E402
from factory.core.degrade import degrade  # noqa: E402
from filters.perplexity import _scored_logprobs, load_scorer, statistic  # noqa: E402

KINDS = ("char_noise", "word_salad", "shuffled_words", "language_switch", "markup_debris")


def items() -> list[tuple[str, str, str]]:
    rows = []
    for name in ("user_oriented_instructions.jsonl", "seed_tasks.jsonl"):
        for line in (DATA / name).open():
            task = json.loads(line)
            for inst in task["instances"]:
                rows.append((task["instruction"] + ("\n\n" + inst["input"] if inst["input"].strip() else ""),
                             inst["output"]))
    usable = [i for i, (_, a) in enumerate(rows) if len(a.split()) >= 8 and re.search(r"[.!?]", a)]
    pool = [rows[i][1] for i in usable]
    out = [("real", p, a) for p, a in random.Random(5).sample(rows, 160)]
    rng = random.Random(0)
    for kind in KINDS:
        out += [(kind, rows[i][0], degrade(kind, rows[i][1], rng, pool)) for i in rng.sample(usable, 10)]
    return out


def token_nlls(model, contexts: list[list[int]], bodies: list[list[int]],
               batch_size: int = 16) -> list[list[float]]:
    import torch

    order = sorted(range(len(bodies)), key=lambda i: len(contexts[i]) + len(bodies[i]))
    out: list[list[float]] = [[] for _ in bodies]
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = max(len(contexts[i]) + len(bodies[i]) for i in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        attn = torch.zeros_like(ids)
        scored = torch.zeros((len(batch), width), dtype=torch.bool)
        for row, i in enumerate(batch):
            n = len(contexts[i]) + len(bodies[i])
            ids[row, :n] = torch.tensor(contexts[i] + bodies[i])
            attn[row, :n] = 1
            scored[row, len(contexts[i]):n] = True
        with torch.inference_mode():
            lp, _ = _scored_logprobs(model, ids, attn, scored[:, 1:])
        at = 0
        for row, i in enumerate(batch):
            out[i] = [-v for v in lp[at:at + len(bodies[i])].tolist()]
            at += len(bodies[i])
    return out


def main() -> None:
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(2)
    data = items()
    model, tok = load_scorer("smollm2")

    def chat(prompt: str) -> str:
        return tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                       tokenize=False)

    framings = {"none": lambda p: chat(""), "plain": lambda p: p + "\n", "chat": chat}
    bodies = [tok(a, add_special_tokens=False)["input_ids"][:192] for _, _, a in data]
    started = time.perf_counter()
    table = Table(title="perplexity framing × statistic on 160 real self_instruct answers vs 10 of each of "
                        + ", ".join(KINDS) + " (SmolLM2-135M)")
    for col in ("framing", "statistic", "AUC mean", "AUC worst kind", "caught above real p97 (mean)",
                "worst kind"):
        table.add_column(col)
    figures: dict = {}
    real = [i for i, (k, _, _) in enumerate(data) if k == "real"]
    for name, frame in framings.items():
        contexts = [tok(frame(p), add_special_tokens=False)["input_ids"][-128:] for _, p, _ in data]
        nlls = token_nlls(model, contexts, bodies)
        for per in ("token", "char", "window"):
            values = np.log([statistic(n, a, per, 8) for n, (_, _, a) in zip(nlls, data)])
            cut = np.percentile(values[real], 97)
            aucs, caught = [], []
            for kind in KINDS:
                idx = [i for i, (k, _, _) in enumerate(data) if k == kind]
                aucs.append(roc_auc_score([0] * len(real) + [1] * len(idx), np.r_[values[real], values[idx]]))
                caught.append(float(np.mean(values[idx] > cut)))
            figures[f"{name}/{per}"] = {"auc": dict(zip(KINDS, aucs)),
                                        "caught_at_real_p97": dict(zip(KINDS, caught))}
            table.add_row(name, per, f"{np.mean(aucs):.3f}", f"{min(aucs):.3f}", f"{np.mean(caught):.0%}",
                          f"{min(caught):.0%}")
    table.caption = f"{time.perf_counter() - started:.0f} s"
    report(table, figures, "qc_perplexity_framing-")


if __name__ == "__main__":
    main()
