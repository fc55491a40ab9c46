"""``factory eval``: held-out accuracy with a verifier, and pairwise judge win rate against a base.

Accuracy: one greedy answer per problem, checked by the task family's verifier (the same one
rejection sampling used), with a 95% Wilson interval, split into problems that copying the input
would solve and problems it would not. Win rate: both models answer each prompt greedily; the judge
sees each pair in both orders and a verdict that follows the position is a tie.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from factory.core.verifiers import get_verifier
from factory.llm.dispatch import CallStats, Dispatcher
from factory.llm.pairwise import judge_messages, judge_schema, read_verdict
from factory.llm.request import Completion, Request, SamplingParams
from factory.llm.spec import BackendBlock
from factory.recipe.tasks import FAMILIES, Problem
from factory.teach.ifeval import summary_line as ifeval_line
from factory.teach.stats import share as _share
from factory.teach.stats import wilson as wilson  # re-exported: callers import it from here


def decoder(model: str, adapters: Sequence[Path] = (), batch: int = 32, threads: int | None = None,
            backend: str = "transformers", options: dict[str, Any] | None = None) -> BackendBlock:
    """The decoder every eval of a run uses (base and trained alike): ``model`` with the LoRA
    ``adapters`` in order, ``batch`` problems decoded together. ``transformers`` merges the adapters
    into the weights; ``llama_cpp`` (a GGUF base; ``smollm2`` is the embedded one) applies them as
    GGUF LoRA adapters. A backend block: evals ask an LLM session for it, so their answers are
    cached like a build's (the cache key names the weights and the adapters' hash: a retrained
    adapter or model is never served old answers)."""
    opts: dict[str, Any] = dict(options or {})
    if adapters:
        opts["adapters"] = [str(a) for a in adapters]
    if threads:
        opts["n_threads"] = threads
    return BackendBlock(name=backend, model=model, concurrency=batch, options=opts)


async def ask_all(dispatcher: Dispatcher, requests: list[Request]) -> list[Completion]:
    """Every request through the dispatcher at once (its slots and the backend's batcher batch them)."""
    return list(await asyncio.gather(*(dispatcher.complete(r) for r in requests)))


def greedy(max_tokens: int) -> SamplingParams:
    return SamplingParams(temperature=0.0, top_p=1.0, top_k=0, max_tokens=max_tokens)


def chat(question: str, system: str | None) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + \
        [{"role": "user", "content": question}]


async def accuracy(dispatcher: Dispatcher, problems: list[Problem], max_tokens: int = 64,
                   system: str | None = None) -> dict[str, Any]:
    """Greedy accuracy on ``problems``; every problem is counted (an error or a cut-off answer is
    wrong, and counted as such), so ``correct + wrong == n`` in each part. ``calls``: the model
    calls made and served from the cache for it."""
    if not problems:
        raise ValueError("accuracy needs at least one problem")
    family = problems[0].family
    verifier_name = FAMILIES[family].verifier
    verify = get_verifier(verifier_name)
    params = greedy(max_tokens)
    started = time.perf_counter()
    completions = await ask_all(dispatcher, [Request.chat(chat(p.question, system), params)
                                             for p in problems])
    rows = []
    for problem, completion in zip(problems, completions):
        text = completion.text.strip()
        verdict = verify(text, problem.answer)
        ok = completion.error is None and verdict.passed
        rows.append({"id": problem.id, "copyable": problem.copyable, "answer": problem.answer,
                     "output": text, "correct": ok, "finish": completion.finish_reason,
                     "readable": completion.error is None and verdict.score is not None})
    passes = [r["correct"] for r in rows]
    return {
        "metric": "greedy_accuracy", "task": family, "verifier": verifier_name,
        "model": dispatcher.backend.model_id, **_share(passes),
        "not_copyable": _share([r["correct"] for r in rows if not r["copyable"]]),
        "copyable": _share([r["correct"] for r in rows if r["copyable"]]),
        "unreadable": sum(not r["readable"] for r in rows),
        "truncated": sum(r["finish"] == "length" for r in rows),
        "errors": sum(r["finish"] == "error" for r in rows),
        "seconds": round(time.perf_counter() - started, 2), "calls": dispatcher.stats.as_dict(),
        "rows": rows}


async def win_rate(candidate: Dispatcher, base: Dispatcher, judge: Dispatcher, prompts: list[str],
                   judge_params: SamplingParams, max_tokens: int = 256,
                   criteria: Sequence[str] = ("correctness", "helpfulness", "clarity"),
                   system: str | None = None) -> dict[str, Any]:
    """Candidate vs base on each prompt, judged in both orders: win, loss, or tie (the judge said
    TIE, or its verdict followed the position, or it gave none)."""
    params = greedy(max_tokens)
    asks = [Request.chat(chat(p, system), params) for p in prompts]
    ours, theirs = await ask_all(candidate, asks), await ask_all(base, asks)  # one model at a time
    requests, schema = [], judge_schema(list(criteria))
    for prompt, a, b in zip(prompts, ours, theirs):
        for first, second in ((a.text, b.text), (b.text, a.text)):
            requests.append(Request.chat(judge_messages(prompt, first, second, list(criteria)),
                                         judge_params, json_schema=schema))
    verdicts = await ask_all(judge, requests)
    counts = {"win": 0, "tie": 0, "loss": 0, "inconsistent": 0, "unparseable": 0}
    rows = []
    for i, prompt in enumerate(prompts):
        forward, backward = (read_verdict(c.text, list(criteria)) for c in verdicts[2 * i: 2 * i + 2])
        outcome = _outcome(forward[0] if forward else None, backward[0] if backward else None, counts)
        counts[outcome] += 1
        rows.append({"prompt": prompt, "candidate": ours[i].text, "base": theirs[i].text,
                     "forward": forward[0] if forward else None,
                     "swapped": backward[0] if backward else None, "outcome": outcome})
    n = len(prompts)
    calls = CallStats()
    for dispatcher in (candidate, base, judge):
        calls.add(dispatcher.stats)
    return {"metric": "pairwise_win_rate", "candidate": candidate.backend.model_id,
            "base": base.backend.model_id, "judge": judge.backend.model_id, "n": n,
            "win": counts["win"], "tie": counts["tie"],
            "loss": counts["loss"], "ties_from_inconsistent_orders": counts["inconsistent"],
            "ties_from_unparseable": counts["unparseable"],
            "win_rate": round((counts["win"] + 0.5 * counts["tie"]) / n, 4) if n else 0.0,
            "calls": calls.as_dict(), "rows": rows}


def _outcome(forward: str | None, swapped: str | None, counts: dict[str, int]) -> str:
    """Candidate is A in the forward order and B in the swapped one."""
    if forward is None or swapped is None:
        counts["unparseable"] += 1
        return "tie"
    first = {"A": "win", "B": "loss"}.get(forward, "tie")
    second = {"B": "win", "A": "loss"}.get(swapped, "tie")
    if first != second:
        if "tie" not in (first, second):  # each order preferred whichever answer came first/second
            counts["inconsistent"] += 1
        return "tie"
    return first


def summary_line(result: dict[str, Any]) -> str:
    if result["metric"] == "ifeval":
        return ifeval_line(result)
    if result["metric"] == "greedy_accuracy":
        nc, c = result["not_copyable"], result["copyable"]
        return (f"{result['model']}: {result['correct']}/{result['n']} = {result['accuracy']:.1%} "
                f"(95% CI {result['ci95'][0]:.1%}-{result['ci95'][1]:.1%}); not copyable "
                f"{nc['correct']}/{nc['n']} = {nc['accuracy']:.1%} ({nc['ci95'][0]:.1%}-{nc['ci95'][1]:.1%})"
                f"; copyable {c['correct']}/{c['n']}")
    return (f"{result['candidate']} vs {result['base']} (judge {result['judge']}): win {result['win']}, "
            f"tie {result['tie']}, loss {result['loss']} of {result['n']}; win rate {result['win_rate']:.1%}")


def save_result(result: dict[str, Any], path: Path, card_dir: Path | None = None) -> None:
    """The JSON (rows included) to ``path``; the one-line summary appended to the model card."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if card_dir is not None and card_dir.is_dir():
        card = card_dir / "README.md"
        head = "" if card.exists() else f"# {card_dir.name}\n"
        with card.open("a", encoding="utf-8") as fh:
            fh.write(f"{head}\n## Evaluation: {result['metric']} ({time.strftime('%Y-%m-%d')})\n\n"
                     f"{summary_line(result)}\n\nDetails: `{path}`\n")
