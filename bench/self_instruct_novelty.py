"""Self-Instruct novelty checks/s at a 10,000-instruction pool: brute-force rouge-score vs NoveltyPool.

    python bench/self_instruct_novelty.py [--pool 10000] [--brute 20] [--fast 2000] [--seed 0]

Both answer "is ROUGE-L >= 0.7 with any pooled instruction, and with which?" for the same queries
(half near-copies of pooled instructions, half fresh ones), on one synthetic pool generated here
the way Self-Instruct grows one (only instructions novel against the pool so far are added).
Brute force scores every pooled instruction with rouge-score (the paper's loop); NoveltyPool
bounds ROUGE-L by token overlap (inverted index + numpy) and scores only the shortlist exactly.
The answers are compared on every query both ran. Results: a table, and bench/results/*.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rich.table import Table  # noqa: E402

from factory.steps.novelty import NoveltyPool, brute_force_match, make_scorer  # noqa: E402
from report import report  # noqa: E402

VERBS = ("write explain describe list summarize translate classify identify suggest compare rewrite "
         "create generate find give name sort convert outline predict evaluate plan design choose "
         "recommend tell decide count estimate correct paraphrase").split()
ADJS = ("short simple detailed funny formal polite creative brief clear persuasive scientific "
        "historical personal famous common healthy cheap modern ancient local").split()
NOUNS = ("poem story email letter list recipe summary sentence paragraph review essay plan answer "
         "question joke slogan title speech tweet menu schedule budget argument definition example "
         "reason tip headline riddle song dialogue description argument proverb").split()
TOPICS = ("the ocean a city your friend climate change a job interview a birthday party the moon "
          "healthy eating a new phone the history of rome a football match remote work a vacation "
          "a rainy day online shopping a small business a science fair learning to code a museum "
          "public transport a garden a lost dog a first date time management a chess game").split(" a ")
TAILS = ["", "", "in three sentences", "for a child", "in under 50 words", "using bullet points",
         "without using the letter e", "for a newspaper", "in a formal tone", "step by step",
         "and explain your answer", "with two examples"]

AUDIENCES = ["", "", "", "for a teacher", "for your manager", "for beginners", "for a tourist",
             "for a grandparent", "for a scientist", "for teenagers", "for a small team", "for a blog"]


def instruction(rng: random.Random) -> str:
    words = [rng.choice(VERBS).capitalize(), rng.choice(["a", "the", "three", "two", "one", "some"]),
             rng.choice(ADJS), rng.choice(NOUNS), rng.choice(["about", "for", "on", "describing", "with"]),
             rng.choice(TOPICS).strip(), rng.choice(TAILS), rng.choice(AUDIENCES)]
    return " ".join(w for w in words if w) + rng.choice([".", ".", "?", ""])


def near_copy(text: str, rng: random.Random) -> str:
    """A paraphrase as a model makes them: a word or two dropped, inserted or swapped."""
    words = text.split()
    for _ in range(rng.randint(1, 2)):
        i = rng.randrange(len(words))
        op = rng.random()
        if op < 0.3 and len(words) > 3:
            words.pop(i)
        elif op < 0.6:
            words.insert(i, rng.choice(ADJS))
        else:
            words[i] = rng.choice(NOUNS)
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=int, default=10_000)
    parser.add_argument("--brute", type=int, default=20, help="queries for brute force (slow)")
    parser.add_argument("--fast", type=int, default=2000, help="queries for NoveltyPool")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    # A pool as Self-Instruct leaves it: every instruction novel (ROUGE-L < threshold) against the
    # ones before it. Built with NoveltyPool itself (its answers are checked against brute force).
    started = time.perf_counter()
    pool, proposed = NoveltyPool(args.threshold), 0
    while len(pool) < args.pool:
        text, proposed = instruction(rng), proposed + 1
        if pool.best_match(text) is None:
            pool.add(text)
    build_s = time.perf_counter() - started
    texts = pool.texts
    queries = [near_copy(rng.choice(texts), rng) if i % 2 == 0 else instruction(rng)
               for i in range(max(args.fast, args.brute))]

    started = time.perf_counter()
    fast = [pool.best_match(q) for q in queries[:args.fast]]
    fast_s = time.perf_counter() - started

    scorer = make_scorer()
    started = time.perf_counter()
    brute = [brute_force_match(q, texts, args.threshold, scorer) for q in queries[:args.brute]]
    brute_s = time.perf_counter() - started

    compared = min(args.brute, args.fast)
    agree = sum(a == b for a, b in zip(fast[:compared], brute[:compared]))
    brute_rate, fast_rate = args.brute / brute_s, args.fast / fast_s
    too_similar = sum(m is not None for m in fast) / len(fast)

    table = Table(title=f"Self-Instruct novelty check, pool {args.pool:,}, ROUGE-L >= {args.threshold} "
                        f"(one run, side by side)")
    for col in ("checker", "queries", "seconds", "checks/s"):
        table.add_column(col)
    table.add_row("brute-force rouge-score (the paper's loop)", str(args.brute), f"{brute_s:.2f}",
                  f"{brute_rate:.2f}")
    table.add_row("NoveltyPool (overlap bound + exact rouge-score)", str(args.fast), f"{fast_s:.2f}",
                  f"{fast_rate:.1f}")
    table.add_row("ratio NoveltyPool ÷ brute force", "", "", f"{fast_rate / brute_rate:.0f}x")
    table.add_row(f"same answers on the {compared} shared queries", "", "", f"{agree}/{compared}")
    table.add_row("share of queries too similar", "", "", f"{too_similar:.0%}")
    table.add_row(f"building the pool: {proposed:,} proposed, {args.pool:,} kept", "", f"{build_s:.1f}", "")
    results = {"pool": args.pool, "threshold": args.threshold, "seed": args.seed,
               "brute": {"queries": args.brute, "seconds": brute_s, "checks_per_s": brute_rate},
               "fast": {"queries": args.fast, "seconds": fast_s, "checks_per_s": fast_rate},
               "ratio": fast_rate / brute_rate, "agree": agree, "compared": compared,
               "too_similar_share": too_similar, "pool_build_s": build_s, "pool_proposed": proposed}
    report(table, results, "self_instruct_novelty-")
    if agree != compared:
        raise SystemExit("NoveltyPool disagreed with brute-force rouge-score")


if __name__ == "__main__":
    main()
