"""Write datasets/seeds/arithmetic_problems.jsonl: in-house arithmetic word problems with known answers.

Every problem is made here from a small set of sentence patterns and a seeded RNG, and its answer
is computed by the same code that wrote the sentence, so the numeric verifier has ground truth.

    python datasets/make_arithmetic.py [--count 200] [--seed 7] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path

NAMES = ["Ana", "Bilal", "Chen", "Dara", "Emeka", "Freya", "Goran", "Hina", "Ivo", "Jun", "Kemal",
         "Lena", "Mateo", "Nia", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tomas"]
THINGS = ["marbles", "stickers", "pencils", "shells", "stamps", "cards", "buttons", "beads"]
FOODS = ["apples", "oranges", "muffins", "eggs", "lemons", "cookies", "plums", "pears"]

Problem = tuple[str, int, str]  # question, answer, kind


def add_then_give(r: random.Random) -> Problem:
    name, thing = r.choice(NAMES), r.choice(THINGS)
    a, b = r.randint(3, 40), r.randint(2, 30)
    c = r.randint(1, a + b - 1)
    return (f"{name} has {a} {thing}. A friend gives {name} {b} more, and then {name} gives {c} "
            f"away. How many {thing} does {name} have now?", a + b - c, "add_subtract")


def groups(r: random.Random) -> Problem:
    name, food = r.choice(NAMES), r.choice(FOODS)
    boxes, per = r.randint(2, 9), r.randint(2, 12)
    return (f"{name} buys {boxes} bags with {per} {food} in each bag. How many {food} does {name} "
            f"buy in total?", boxes * per, "multiply")


def share(r: random.Random) -> Problem:
    name, thing = r.choice(NAMES), r.choice(THINGS)
    friends, each = r.randint(2, 8), r.randint(2, 11)
    return (f"{name} shares {friends * each} {thing} equally among {friends} friends. How many "
            f"{thing} does each friend get?", each, "divide")


def price(r: random.Random) -> Problem:
    name, food = r.choice(NAMES), r.choice(FOODS)
    count, cost = r.randint(2, 8), r.randint(1, 9)
    paid = count * cost + r.randint(0, 20)
    return (f"{food.capitalize()} cost {cost} dollars each. {name} buys {count} {food} and pays with "
            f"{paid} dollars. How much change does {name} get back, in dollars?", paid - count * cost,
            "multiply_subtract")


def pages(r: random.Random) -> Problem:
    name = r.choice(NAMES)
    per_day, days, left = r.randint(3, 25), r.randint(2, 7), r.randint(0, 60)
    return (f"{name} reads {per_day} pages a day for {days} days and still has {left} pages left to "
            f"read. How many pages does the book have?", per_day * days + left, "multiply_add")


def ages(r: random.Random) -> Problem:
    a, b = r.sample(NAMES, 2)
    age, gap, years = r.randint(5, 30), r.randint(1, 20), r.randint(1, 15)
    return (f"{a} is {age} years old. {b} is {gap} years older than {a}. How old will {b} be in "
            f"{years} years?", age + gap + years, "add_add")


def rows(r: random.Random) -> Problem:
    name = r.choice(NAMES)
    n_rows, per_row = r.randint(2, 10), r.randint(3, 12)
    missing = r.randint(0, per_row - 1)
    return (f"{name} plants {n_rows} rows of tulips with {per_row} tulips in each row, but {missing} "
            f"tulips do not grow. How many tulips grow?", n_rows * per_row - missing, "multiply_subtract")


def temperature(r: random.Random) -> Problem:
    start, drop, rise = r.randint(-5, 20), r.randint(1, 15), r.randint(1, 12)
    return (f"In the morning it is {start} degrees. By noon the temperature rises by {rise} degrees, "
            f"and by night it falls by {drop} degrees from the noon value. What is the temperature at "
            f"night, in degrees?", start + rise - drop, "add_subtract")


PATTERNS: list[Callable[[random.Random], Problem]] = [add_then_give, groups, share, price, pages, ages,
                                                      rows, temperature]


def make(count: int, seed: int) -> list[dict[str, object]]:
    r = random.Random(seed)
    out, seen = [], set()
    while len(out) < count:
        question, answer, kind = r.choice(PATTERNS)(r)
        if question in seen:
            continue
        seen.add(question)
        out.append({"id": f"arith-{len(out):04d}", "question": question, "answer": str(answer),
                    "kind": kind})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).resolve().parent / "seeds" / "arithmetic_problems.jsonl")
    args = parser.parse_args()
    problems = make(args.count, args.seed)
    args.output.write_text("".join(json.dumps(row) + "\n" for row in problems), encoding="utf-8")
    print(f"wrote {len(problems)} problems to {args.output}")


if __name__ == "__main__":
    main()
