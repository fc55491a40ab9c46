"""Decontamination speed and recall: 100,000 records against 10,000 eval prompts.

Eval prompts: real public text from ``../shared/data`` (GSM8K questions, IFEval prompts,
Self-Instruct tasks, MT-Bench turns; GSM8K answers fill up to 10,000). Records: word sequences of
40-120 words drawn from the same vocabulary (clean by construction), 1% of them with a planted copy
of an eval text's words (a 13-30 word window, or a whole eval text of 8-12 words) with case and
punctuation changed. Side by side in one run: ``filters.decontaminate`` (hashed tuple n-grams,
``dict.keys().isdisjoint``) and the plain way (joined n-gram strings in a Python set), on the same
records; their verdicts must agree.

    FACTORY_SHARED_DATA=/path/to/shared/data python bench/qc_decontaminate.py [--records N] [--embedding]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("FACTORY_SHARED_DATA", ROOT.parent / "shared" / "data"))


def eval_prompts(n: int) -> list[str]:
    def jsonl(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.open()]

    texts = [r["question"] for part in ("train", "test") for r in jsonl(DATA / "gsm8k" / f"{part}.jsonl")]
    texts += [r["prompt"] for r in jsonl(DATA / "ifeval" / "input_data.jsonl")]
    texts += [r["instruction"] for r in jsonl(DATA / "self_instruct" / "seed_tasks.jsonl")]
    texts += [r["instruction"] for r in jsonl(DATA / "self_instruct" / "user_oriented_instructions.jsonl")]
    texts += [t for r in jsonl(DATA / "mt_bench" / "question.jsonl") for t in r["turns"]]
    texts += [r["answer"] for r in jsonl(DATA / "gsm8k" / "train.jsonl")]
    return texts[:n]


def make_records(evals: list[str], n: int, planted_share: float, rng: random.Random,
                 n_gram: int, min_words: int) -> tuple[list[str], set[int]]:
    from filters.decontaminate import words

    vocab = sorted({w for t in evals[:3000] for w in words(t)})
    eligible = [t for t in evals if len(words(t)) >= min_words]
    records, planted = [], set()
    for i in range(n):
        body = [rng.choice(vocab) for _ in range(rng.randint(40, 120))]
        if rng.random() < planted_share:
            source = t = words(rng.choice(eligible))
            if len(source) > n_gram:
                start = rng.randrange(len(source) - n_gram + 1)
                t = source[start:start + rng.randint(n_gram, min(30, len(source) - start))]
            # the copy's case and punctuation changed: neither hides it
            marks = ["", "", ",", ";", " -"]
            copy = [(w.upper() if rng.random() < 0.3 else w) + rng.choice(marks) for w in t]
            at = rng.randrange(len(body))
            body = body[:at] + ["--"] + copy + ["!"] + body[at:]
            planted.add(i)
        records.append(" ".join(body))
    return records, planted


def plain_index(evals: list[str], n: int, min_words: int) -> dict[int, set[str]]:
    from filters.decontaminate import words

    by_len: dict[int, set[str]] = {}
    for t in evals:
        w = words(t)
        length = min(n, len(w))
        if length >= min(n, min_words):
            grams = (" ".join(w[i:i + length]) for i in range(len(w) - length + 1))
            by_len.setdefault(length, set()).update(grams)
    return by_len


def plain_match(index: dict[int, set[str]], text: str) -> bool:
    from filters.decontaminate import words

    w = words(text)
    return any(" ".join(w[i:i + length]) in grams for length, grams in index.items()
               for i in range(len(w) - length + 1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--evals", type=int, default=10_000)
    parser.add_argument("--plain", type=int, default=10_000, help="records for the plain way")
    parser.add_argument("--embedding", action="store_true", help="also time the MiniLM pass (2,000 records)")
    args = parser.parse_args()

    from factory.core.record import Record
    from filters.base import Drop, QCContext
    from filters.config import DecontaminateBlock
    from filters.decontaminate import DecontaminateFilter

    rng = random.Random(0)
    evals = eval_prompts(args.evals)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "factory_decon_bench.jsonl"
    tmp.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in evals))
    block = DecontaminateBlock.model_validate({"filter": "decontaminate", "eval_sets": [{"path": str(tmp)}]})
    texts, planted = make_records(evals, args.records, 0.01, rng, block.ngram, block.min_words)
    records = [Record(f"r{i}", {"prompt": t}, "bench") for i, t in enumerate(texts)]

    f = DecontaminateFilter(block)
    started = time.perf_counter()
    verdicts = f.filter_batch(records, QCContext())
    ours_s = time.perf_counter() - started
    flagged = {i for i, v in enumerate(verdicts) if isinstance(v, Drop)}
    started = time.perf_counter()
    plain = plain_index(evals, block.ngram, block.min_words)
    sub = range(min(args.plain, len(texts)))
    plain_flagged = {i for i in sub if plain_match(plain, texts[i])}
    plain_s = time.perf_counter() - started
    agree = plain_flagged == {i for i in flagged if i < len(sub)}

    print(f"{len(evals)} eval prompts ({f.info['eval_ngrams']} indexed n-grams), {len(records)} records, "
          f"{len(planted)} planted copies, n = {block.ngram}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"filters.decontaminate: {len(records) / ours_s:,.0f} records/s ({ours_s:.1f} s incl. index "
          f"{f.info['_index_s']:.1f} s); peak RSS {rss:.0f} MB")
    print(f"plain string n-grams:  {len(sub) / plain_s:,.0f} records/s on the first {len(sub)} "
          f"({plain_s:.1f} s incl. index); speedup {len(records) / ours_s / (len(sub) / plain_s):.1f}x; "
          f"same verdicts: {agree}")
    print(f"recall on planted copies: {len(planted & flagged) / len(planted):.4f}; "
          f"flagged clean records: {len(flagged - planted)}")
    if args.embedding:
        from filters.embed import Embedder

        sub_records = records[:2000]
        eb = DecontaminateBlock.model_validate({"filter": "decontaminate", "eval_sets": [{"path": str(tmp)}],
                                                "embedding": {"threshold": 0.9}})
        fe = DecontaminateFilter(eb, embedder=Embedder(cache_path=None))
        started = time.perf_counter()
        fe.filter_batch(sub_records, QCContext())
        print(f"with the MiniLM pass: {len(sub_records) / (time.perf_counter() - started):,.1f} records/s "
              f"on {len(sub_records)} records (embedding {len(evals)} eval prompts included)")


if __name__ == "__main__":
    main()
