"""``factory eval``: held-out accuracy of a model (+ LoRA adapters), and its judge win rate."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Optional, TypeVar

import typer

from factory.cli.common import CacheOption, NoCacheOption, guard, out
from factory.core.errors import FactoryError
from factory.llm.session import LLMSession

T = TypeVar("T")


def problems_for(task: str, count: int, skip: int, seed: int) -> list[Any]:
    """``task``: a recipe with a ``task:`` section (its held-out set) or a generator family name
    (``count`` problems after the first ``skip`` distinct ones of the ``seed`` stream)."""
    from factory.recipe.tasks import FAMILIES, generate_split

    if task.endswith((".yaml", ".yml")):
        from factory.recipe.loader import load_recipe
        from factory.recipe.seeds import task_problems

        loaded = load_recipe(task)
        if loaded.recipe.task is None:
            raise FactoryError(f"{task}: no task: section to take held-out problems from")
        return task_problems(loaded)[1]
    if task not in FAMILIES:
        from factory.core.errors import did_you_mean

        raise FactoryError(f"--task {task}: not a recipe file or a task family{did_you_mean(task, FAMILIES)}"
                           f" ({', '.join(f for f, s in FAMILIES.items() if s.make)})")
    return generate_split(task, skip, count, seed)[1]


def eval_command(
    model: str = typer.Argument(..., help="base model: smollm2 (embedded), an HF folder or a .gguf file"),
    adapter: list[Path] = typer.Option([], "--adapter", help="LoRA adapter folder, merged in order "
                                       "(repeat: --adapter sft --adapter dpo)"),
    task: Optional[str] = typer.Option(None, "--task", help="recipe with a task: section (its held-out "
                                       "set), a task family (sort_numbers, add_numbers, ...) or "
                                       "ifeval (with --data)"),
    data: Optional[Path] = typer.Option(None, "--data", help="--task ifeval: an IFEval-format jsonl "
                                        "(key, prompt, instruction_id_list, kwargs)"),
    backend: str = typer.Option("transformers", "--backend", help="decoder: transformers, llama_cpp "
                                "(GGUF; adapters as GGUF LoRA), vllm, anthropic, openai_compatible"),
    backend_options: list[str] = typer.Option([], "--option", help="decoder backend option key=value "
                                              "(e.g. dtype=float32, base_url=...)"),
    system: Optional[str] = typer.Option(None, "--system", help="system message for every prompt"),
    versus: Optional[Path] = typer.Option(None, "--versus", help="--task ifeval: another model's "
                                          "result JSON on the same prompts: paired difference, "
                                          "McNemar p-value"),
    count: int = typer.Option(200, "--count", min=1, help="family: number of problems"),
    skip: int = typer.Option(0, "--skip", min=0, help="family: skip the first N problems of the stream"),
    seed: int = typer.Option(0, "--seed", help="family: generator seed"),
    max_tokens: int = typer.Option(32, "--max-tokens", min=1, help="greedy answer length"),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="problems decoded together"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
    judge_prompts: Optional[Path] = typer.Option(None, "--judge-prompts", help="jsonl with a 'prompt' "
                                                 "column: judge win rate against --base"),
    base: Optional[str] = typer.Option(None, "--base", help="win-rate opponent (default: MODEL "
                                       "without adapters)"),
    judge_backend: str = typer.Option("llama_cpp", "--judge-backend", help="backend for the judge"),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="judge model (default: "
                                              "the backend's; 'embedded' for llama_cpp)"),
    judge_options: list[str] = typer.Option([], "--judge-option", help="judge backend option key=value "
                                            "(e.g. base_url=http://127.0.0.1:8000/v1)"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="use the first N judge prompts "
                                        "(or IFEval prompts)"),
    output: Optional[Path] = typer.Option(None, "--output", help="JSON results file (default: beside "
                                          "the last adapter, else ./eval/)"),
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
) -> None:
    """Greedy held-out accuracy (95% CI, copyable vs not), IFEval (the four figures with intervals,
    per instruction type) and/or judge win rate; JSON + model card. Answers and verdicts are cached
    like a build's calls (keyed by model weights and adapters)."""
    from factory.teach.evaluate import accuracy, decoder, save_result, summary_line, win_rate

    def body() -> None:
        if task is None and judge_prompts is None:
            raise FactoryError("nothing to evaluate: give --task and/or --judge-prompts")
        if (task == "ifeval") != (data is not None):
            raise FactoryError("--data is the IFEval prompts file: give it with --task ifeval")
        card = adapter[-1] if adapter else None
        folder = card or Path("eval")
        tag = "+".join([Path(model).stem] + [a.name for a in adapter])
        results = []
        if task == "ifeval":
            assert data is not None
            result, path = _ifeval(model, adapter, data, limit, system, max_tokens, batch_size, threads,
                                   backend, _options(backend_options, "--option"), versus, output or
                                   folder / f"ifeval_{tag}.json", cache, not no_cache)
            save_result(result, path, card)
            results.append((result, path))
        elif task is not None:
            problems = problems_for(task, count, skip, seed)
            block = decoder(model, adapter, batch_size, threads, backend,
                            _options(backend_options, "--option"))
            result = run_session(lambda llm: accuracy(llm.dispatcher_for(block, "eval"), problems,
                                                      max_tokens, system), cache, not no_cache)
            path = output or folder / f"eval_{Path(task).stem}.json"
            save_result(result, path, card)
            results.append((result, path))
        if judge_prompts is not None:
            prompts = _prompts(judge_prompts, limit)
            opts = _options(judge_options, "--judge-option")
            judge_spec = (judge_backend, judge_model, opts)
            result = run_session(lambda llm: _judged(llm, model, adapter, base, prompts, judge_spec,
                                                     batch_size, threads, max_tokens, win_rate),
                                 cache, not no_cache)
            path = (output.with_name(output.stem + "_winrate.json") if output
                    else folder / f"winrate_{tag}.json")
            save_result(result, path, card)
            results.append((result, path))
        for result, path in results:
            out.print(summary_line(result), markup=False, highlight=False)
            calls = result["calls"]
            out.print(f"  calls: {calls['made']} made, {calls['cached']} from cache, {calls['failed']} "
                      f"failed -> {path}", markup=False, highlight=False)

    guard(body)


def _prompts(path: Path, limit: int | None) -> list[str]:
    if not path.exists():
        raise FactoryError(f"{path}: file not found")
    prompts = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            prompts.append(str(json.loads(line)["prompt"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise FactoryError(f"{path}:{line_no}: expected a JSON object with a 'prompt' field") from None
    return prompts[:limit] if limit else prompts


def _options(items: list[str], flag: str) -> dict[str, Any]:
    from ruamel.yaml import YAML

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise FactoryError(f"{flag} {item}: expected key=value")
        out[key.strip()] = YAML(typ="safe").load(raw) if raw else None
    return out


def _ifeval(model: str, adapters: list[Path], data: Path, limit: int | None, system: str | None,
            max_tokens: int, batch: int, threads: int | None, backend: str, options: dict[str, Any],
            versus: Path | None, path: Path, cache: Path | None,
            use_cache: bool) -> tuple[dict[str, Any], Path]:
    """IFEval on ``data`` through the chosen decoder; the per-type table goes to ``<path>.md``."""
    from factory.llm.backends import BACKENDS
    from factory.teach.evaluate import decoder
    from factory.teach.ifeval import compare, ifeval, markdown, read_ifeval

    if backend not in BACKENDS:
        from factory.core.errors import did_you_mean

        raise FactoryError(f"--backend {backend}: unknown{did_you_mean(backend, BACKENDS)}; known: "
                           f"{', '.join(BACKENDS)}")
    items = read_ifeval(data, limit)
    other = _read_result(versus) if versus else None
    block = decoder(model, adapters, batch, threads, backend, options)

    async def run(llm: LLMSession) -> dict[str, Any]:
        try:
            dispatcher = llm.dispatcher_for(block, "eval")
        except (KeyError, ValueError, RuntimeError, OSError) as exc:
            raise FactoryError(f"--backend {backend}: {exc}") from None
        return await ifeval(dispatcher, items, max_tokens, system, str(data))

    result = run_session(run, cache, use_cache)
    if other is not None:
        result["versus"] = {"model": other.get("model"), "file": str(versus), **compare(other, result)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    return result, path


def _read_result(path: Path) -> dict[str, Any]:
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FactoryError(f"--versus {path}: not a readable result JSON ({exc})") from None
    if not isinstance(result, dict) or result.get("metric") != "ifeval" or "rows" not in result:
        raise FactoryError(f"--versus {path}: not an IFEval result written by factory eval")
    return result


def run_session(fn: Callable[[LLMSession], Awaitable[T]], cache: Path | None, use_cache: bool) -> T:
    """``fn(session)`` on a fresh LLM session (the request cache unless ``--no-cache``)."""

    async def main() -> T:
        async with LLMSession.open(cache, use_cache) as llm:
            return await fn(llm)

    return asyncio.run(main())


async def _judged(llm: LLMSession, model: str, adapters: list[Path], base: str | None, prompts: list[str],
                  judge_spec: tuple[str, str | None, dict[str, Any]], batch: int, threads: int | None,
                  max_tokens: int, win_rate: Any) -> dict[str, Any]:
    from factory.llm.spec import BackendBlock
    from factory.teach.evaluate import decoder, greedy

    candidate = llm.dispatcher_for(decoder(model, adapters, batch, threads), "eval.candidate")
    opponent = llm.dispatcher_for(decoder(base or model, [], batch, threads), "eval.base")
    judge_name, judge_model, judge_options = judge_spec
    model_name = judge_model or ("embedded" if judge_name == "llama_cpp" else None)
    try:
        block = BackendBlock(name=judge_name, model=model_name, concurrency=8, options=judge_options)
        judge = llm.dispatcher_for(block, "eval.judge")
    except (KeyError, ValueError, RuntimeError, OSError) as exc:
        raise FactoryError(f"--judge-backend {judge_name}: {exc}") from None
    return await win_rate(candidate, opponent, judge, prompts, greedy(400), max_tokens)
