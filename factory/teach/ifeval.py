"""IFEval (Zhou et al. 2023): one greedy answer per prompt, scored by lm-eval's IFEval checker.

The data is IFEval's own format, one JSON object a line: ``key``, ``prompt``, ``instruction_id_list``
and ``kwargs`` (one mapping per instruction). Each prompt is sent as one user turn, greedy, with
the same token cap for every model, through a dispatcher (any backend, cached like a build's
calls). Each answer is scored by lm-eval's reference functions ``test_instruction_following_strict``
/ ``_loose`` (``lm_eval.tasks.ifeval.utils``, run offline: ``factory.core.constraints``), and the
four IFEval figures are reported: prompt-level (every instruction of the prompt followed) and
instruction-level, strict and loose, each with a 95% interval (Wilson for prompts; a bootstrap
over prompts for instructions), plus accuracy per instruction type.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.llm.dispatch import Dispatcher
from factory.llm.request import Request, SamplingParams
from factory.teach.stats import clustered_share, paired, share

LEVELS = ("prompt_level_strict", "prompt_level_loose", "inst_level_strict", "inst_level_loose")


@dataclass(frozen=True)
class IFEvalPrompt:
    key: str
    prompt: str
    instruction_id_list: list[str]
    kwargs: list[dict[str, Any]] = field(default_factory=list)


def read_ifeval(path: Path, limit: int | None = None) -> list[IFEvalPrompt]:
    """IFEval-format rows; a bad line is one error naming the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FactoryError(f"{path}: file not found")
    from factory.core.constraints.lm_eval_bridge import registry

    known = registry()
    items: list[IFEvalPrompt] = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FactoryError(f"{where}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise FactoryError(f"{where}: expected a JSON object")
        prompt, ids, kwargs = row.get("prompt"), row.get("instruction_id_list"), row.get("kwargs")
        if not isinstance(prompt, str) or not prompt.strip():
            raise FactoryError(f"{where}: prompt: expected non-empty text")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise FactoryError(f"{where}: instruction_id_list: expected a non-empty list of ids")
        for i in ids:
            if i not in known:
                raise FactoryError(f"{where}: instruction_id_list: unknown IFEval instruction {i!r}")
        kwargs = [{} for _ in ids] if kwargs is None else kwargs
        if not isinstance(kwargs, list) or len(kwargs) != len(ids) or \
                not all(isinstance(k, dict) for k in kwargs):
            raise FactoryError(f"{where}: kwargs: expected a list of {len(ids)} mapping(s), one per "
                               "instruction")
        items.append(IFEvalPrompt(str(row.get("key", line_no)), prompt, list(ids), list(kwargs)))
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise FactoryError(f"{path}: no prompts")
    return items


def score(item: IFEvalPrompt, response: str) -> dict[str, list[bool]]:
    """lm-eval's strict and loose verdicts, one per instruction. A checker built without one of
    its parameters draws it from ``random`` (two IFEval prompts ask for the letter '#'), so the
    global RNG is seeded from the prompt's key for the call and restored after: same verdict on
    every run."""
    from factory.core.constraints.lm_eval_bridge import registry

    registry()  # offline punkt_tab and a seeded langdetect before lm-eval's module loads
    from lm_eval.tasks.ifeval.utils import (
        InputExample,
        test_instruction_following_loose,
        test_instruction_following_strict,
    )

    example = InputExample(key=item.key, instruction_id_list=item.instruction_id_list,  # type: ignore[arg-type]
                           prompt=item.prompt, kwargs=item.kwargs)
    state = random.getstate()
    try:
        random.seed(f"ifeval:{item.key}")
        strict = test_instruction_following_strict(example, response).follow_instruction_list
        random.seed(f"ifeval:{item.key}")
        loose = test_instruction_following_loose(example, response).follow_instruction_list
    finally:
        random.setstate(state)
    return {"strict": list(strict), "loose": list(loose)}


def chat(prompt: str, system: str | None) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


async def ifeval(dispatcher: Dispatcher, items: list[IFEvalPrompt], max_tokens: int,
                 system: str | None = None, data: str = "") -> dict[str, Any]:
    """Greedy answers to every prompt, scored; an error or an empty answer follows nothing and is
    counted (``errors``), so every prompt and instruction is in the totals."""
    import asyncio

    params = SamplingParams(temperature=0.0, top_p=1.0, top_k=0, max_tokens=max_tokens)
    started = time.perf_counter()
    completions = await asyncio.gather(*(dispatcher.complete(Request.chat(chat(i.prompt, system), params))
                                         for i in items))
    seconds = time.perf_counter() - started
    rows = []
    for item, completion in zip(items, completions):
        text = "" if completion.error else completion.text
        verdicts = score(item, text)
        rows.append({"key": item.key, "instruction_id_list": item.instruction_id_list,
                     "output": text, "finish": completion.finish_reason,
                     "tokens": completion.completion_tokens, **verdicts})
    return {"metric": "ifeval", "task": "ifeval", "data": data, "model": dispatcher.backend.model_id,
            "backend": dispatcher.backend.name, "max_tokens": max_tokens, "system": system,
            **summarize(rows), "seconds": round(seconds, 2), "calls": dispatcher.stats.as_dict(),
            "rows": rows}


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The four IFEval figures with 95% intervals, accuracy per instruction type, and how answers
    ended. ``rows`` hold ``instruction_id_list`` and per-instruction ``strict`` / ``loose`` lists."""
    out: dict[str, Any] = {"n": len(rows)}
    for mode in ("strict", "loose"):
        out[f"prompt_level_{mode}"] = share([all(r[mode]) for r in rows])
        out[f"inst_level_{mode}"] = clustered_share([r[mode] for r in rows])
    per_type: dict[str, dict[str, list[bool]]] = {}
    for r in rows:
        for i, iid in enumerate(r["instruction_id_list"]):
            slot = per_type.setdefault(iid, {"strict": [], "loose": []})
            slot["strict"].append(r["strict"][i])
            slot["loose"].append(r["loose"][i])
    out["per_type"] = {iid: {"n": len(v["strict"]), "strict": share(v["strict"]),
                             "loose": share(v["loose"])} for iid, v in sorted(per_type.items())}
    out["truncated"] = sum(r.get("finish") == "length" for r in rows)
    out["errors"] = sum(r.get("finish") == "error" for r in rows)
    tokens = sorted(int(r.get("tokens") or 0) for r in rows)
    out["median_tokens"] = tokens[len(tokens) // 2] if tokens else 0
    return out


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``after`` vs ``before`` on the same prompts: per figure, the difference with a paired 95%
    bootstrap interval; for the prompt-level figures, McNemar's exact p-value too."""
    a = {r["key"]: r for r in before["rows"]}
    b = {r["key"]: r for r in after["rows"]}
    if set(a) != set(b):
        raise FactoryError("IFEval comparison needs the same prompts in both results")
    keys = sorted(a)
    out: dict[str, Any] = {}
    for mode in ("strict", "loose"):
        out[f"prompt_level_{mode}"] = paired([all(a[k][mode]) for k in keys], [all(b[k][mode]) for k in keys])
        flat_a = [x for k in keys for x in a[k][mode]]
        flat_b = [x for k in keys for x in b[k][mode]]
        out[f"inst_level_{mode}"] = paired(flat_a, flat_b)  # McNemar on instructions: indicative only
    return out


def summary_line(result: dict[str, Any]) -> str:
    parts = [f"{name.replace('_level_', '-').replace('_', ' ')} {result[name]['accuracy']:.1%} "
             f"[{result[name]['ci95'][0]:.1%}, {result[name]['ci95'][1]:.1%}]" for name in LEVELS]
    return (f"{result['model']}: IFEval {result['n']} prompts, " + "; ".join(parts) +
            f"; {result['truncated']} answers hit the {result['max_tokens']}-token cap")


def _pct(part: dict[str, Any]) -> str:
    return f"{part['accuracy']:.1%} [{part['ci95'][0]:.1%}, {part['ci95'][1]:.1%}]"


def versus_table(comparison: dict[str, Any]) -> str:
    lines = ["| figure | before | after | difference (95% CI) | gained / lost | McNemar p |",
             "|---|---|---|---|---|---|"]
    for name in LEVELS:
        c = comparison[name]
        lines.append(f"| {name} | {c['before']:.1%} | {c['after']:.1%} | {c['difference']:+.1%} "
                     f"[{c['ci95'][0]:+.1%}, {c['ci95'][1]:+.1%}] | {c['gained']} / {c['lost']} | "
                     f"{c['mcnemar_p']:.3g} |")
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    """The figures, the per-type table and (with ``versus``) the paired comparison."""
    lines = [f"# IFEval: {result['model']}", "",
             f"{result['n']} prompts from `{result['data']}`, backend `{result['backend']}`, greedy, "
             f"{result['max_tokens']}-token cap ({result['truncated']} answers reached it; median "
             f"answer {result['median_tokens']} tokens); scored by lm-eval's IFEval checker. "
             "95% intervals: Wilson for prompts, a bootstrap over prompts for instructions.", "",
             "| figure | accuracy [95% CI] | followed / n |", "|---|---|---|"]
    lines += [f"| {name} | {_pct(result[name])} | {result[name]['correct']} / {result[name]['n']} |"
              for name in LEVELS]
    lines += ["", "## Per instruction type", "", "| instruction | n | strict [95% CI] | loose [95% CI] |",
              "|---|---|---|---|"]
    lines += [f"| `{iid}` | {t['n']} | {_pct(t['strict'])} | {_pct(t['loose'])} |"
              for iid, t in result["per_type"].items()]
    if "versus" in result:
        lines += ["", f"## Versus `{result['versus']['model']}` (same prompts)", "",
                  versus_table(result["versus"])]
    return "\n".join(lines) + "\n"
