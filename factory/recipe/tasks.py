"""Task families for the self-teaching loop: problems with known answers, made by code or read from
a file, split into train and test sets that are disjoint by construction.

A family turns a seeded RNG into problems (``make``) or reads them (``load``). Every problem has a
``payload`` (the input a lazy model could echo back) and a verifier name from
``factory/verifiers.py``. A problem is *copyable* when echoing its payload already passes the
verifier (a sorting problem whose numbers are already in order): accuracy is reported on both
kinds separately, because a model that copies its input scores on copyable problems for free.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.verifiers import get_verifier


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str
    payload: str  # what copying the input would answer
    family: str
    copyable: bool = False

    def row(self) -> dict[str, Any]:
        return asdict(self)


Maker = Callable[[random.Random, dict[str, Any]], tuple[str, str, str]]  # question, answer, payload


def _ints(options: dict[str, Any], count_default: int) -> tuple[int, int, int]:
    count = int(options.get("count", count_default))
    low, high = int(options.get("low", 1)), int(options.get("high", 99))
    if count < 2 or high - low + 1 < count:
        raise FactoryError(f"task options: need count >= 2 distinct numbers in [{low}, {high}]")
    return count, low, high


def sort_numbers(rng: random.Random, options: dict[str, Any]) -> tuple[str, str, str]:
    """Sort a few distinct integers ascending; the answer is the list, nothing else."""
    count, low, high = _ints(options, 3)
    numbers = rng.sample(range(low, high + 1), count)
    shown = ", ".join(map(str, numbers))
    question = (f"Sort these numbers from smallest to largest: {shown}. Answer with just the sorted "
                "numbers separated by commas.")
    return question, ", ".join(map(str, sorted(numbers))), shown


def add_numbers(rng: random.Random, options: dict[str, Any]) -> tuple[str, str, str]:
    """The sum of a few integers; the answer is one number and the reply must hold only it."""
    count, low, high = _ints(options, 2)
    numbers = [rng.randint(low, high) for _ in range(count)]
    question = f"What is {' + '.join(map(str, numbers))}? Answer with just the number."
    return question, str(sum(numbers)), ", ".join(map(str, numbers))


def largest_number(rng: random.Random, options: dict[str, Any]) -> tuple[str, str, str]:
    """Pick the largest of a few distinct integers (copying the first one is right 1 time in n)."""
    count, low, high = _ints(options, 4)
    numbers = rng.sample(range(low, high + 1), count)
    shown = ", ".join(map(str, numbers))
    question = f"Which is the largest of these numbers: {shown}? Answer with just that number."
    return question, str(max(numbers)), str(numbers[0])


@dataclass(frozen=True)
class Family:
    make: Maker | None  # None: problems come from files (``load_file_problems``)
    verifier: str
    about: str


FAMILIES: dict[str, Family] = {
    "sort_numbers": Family(sort_numbers, "number_list", "sort 3 distinct integers ascending"),
    "add_numbers": Family(add_numbers, "number_list", "sum of 2 integers; the reply holds only it"),
    "largest_number": Family(largest_number, "number_list", "the largest of 4 distinct integers"),
    "gsm8k": Family(None, "numeric", "grade-school word problems from a file (question, answer with "
                                     "'#### N'); train_path and test_path in options"),
}


def generate_split(family: str, train: int, test: int, seed: int,
                   options: dict[str, Any] | None = None) -> tuple[list[Problem], list[Problem]]:
    """``train`` + ``test`` distinct problems from one seeded stream; the first distinct ones go to
    train, the rest to test, so no question is in both (disjoint by construction)."""
    spec = FAMILIES[family]
    if spec.make is None:
        raise FactoryError(f"task {family}: problems come from files, not a generator")
    options = dict(options or {})
    rng, seen, made = random.Random(seed), set(), []
    attempts = 0
    while len(made) < train + test:
        attempts += 1
        if attempts > 50 * (train + test) + 1000:
            raise FactoryError(f"task {family}: only {len(made)} distinct problems in this number "
                               f"range; ask for fewer than {train}+{test} or widen it")
        question, answer, payload = spec.make(rng, options)
        if question in seen:
            continue
        seen.add(question)
        made.append((question, answer, payload))
    return _problems(family, made[:train], "train"), _problems(family, made[train:], "test")


def load_file_problems(family: str, path: Path, limit: int | None, part: str) -> list[Problem]:
    """GSM8K-style rows: ``question`` and an ``answer`` whose last line is ``#### N``."""
    if not path.exists():
        raise FactoryError(f"task {family}: {path}: file not found")
    rows = []
    for line_no, line in enumerate(path.open(encoding="utf-8"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            final = re.search(r"####\s*(-?[\d,.]+)\s*$", row["answer"].strip())
            rows.append((row["question"].strip(), final.group(1).replace(",", ""), row["question"]))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise FactoryError(f"{path}:{line_no}: expected JSON with question and an answer ending "
                               "in '#### <number>'") from None
        if limit is not None and len(rows) >= limit:
            break
    return _problems(family, rows, part)


def task_split(family: str, train: int, test: int, seed: int, options: dict[str, Any],
               base_dir: Path) -> tuple[list[Problem], list[Problem]]:
    """Both sets for a family; file families read ``train_path`` / ``test_path`` (relative to
    ``base_dir``). Raises if any question appears in both."""
    if FAMILIES[family].make is None:
        paths = {k: options.get(k) for k in ("train_path", "test_path")}
        if not all(paths.values()):
            raise FactoryError(f"task {family}: options need train_path and test_path")
        train_set = load_file_problems(family, base_dir / paths["train_path"], train, "train")
        test_set = load_file_problems(family, base_dir / paths["test_path"], test, "test")
    else:
        train_set, test_set = generate_split(family, train, test, seed, options)
    overlap = {p.question for p in train_set} & {p.question for p in test_set}
    if overlap:
        raise FactoryError(f"task {family}: {len(overlap)} question(s) in both train and test, "
                           f"e.g. {sorted(overlap)[0]!r}")
    return train_set, test_set


def _problems(family: str, rows: list[tuple[str, str, str]], part: str) -> list[Problem]:
    verify = get_verifier(FAMILIES[family].verifier)
    return [Problem(f"{family}-{part}-{i:05d}", q, a, payload, family, verify(payload, a).passed)
            for i, (q, a, payload) in enumerate(rows)]
