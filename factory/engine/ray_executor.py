"""``factory build --executor ray``: the same graph, its per-record stages sharded over Ray actors.

The driver keeps the graph, the set-level (barrier) steps, the stats and the output writing. Each
run of per-record stages is fed chunks of consecutive records, pulled from the seed stream a few
chunks ahead; every chunk goes to one of the workers (a Ray actor per worker, each with its own
backend instances: one vLLM engine per GPU, one HTTP client per worker). A chunk comes back as one
outcome list per input record and is put back in input order, so the dataset is byte-identical to
the local executor's whatever the worker count: randomness is already per (seed, record id, step),
never per process.

Cache: every worker opens the SAME SQLite request cache and commits each call the moment it
returns, exactly like the local executor. A killed worker loses only its in-flight calls; Ray
restarts it and retries its chunk, which is then served from the cache. On several nodes the cache
path (``--cache`` / ``$FACTORY_CACHE_DIR``) must be on a file system all nodes share.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack
from dataclasses import replace
from itertools import islice
from typing import TYPE_CHECKING, Any

from factory.core.errors import FactoryError
from factory.core.record import Record, Reject
from factory.engine.executor import BoundStep, Engine, ProgressHook, Stage
from factory.llm.backends.base import Backend
from factory.llm.request import Completion, Request
from factory.steps import SetRunner

if TYPE_CHECKING:
    from factory.engine.plan import BuildOptions, Plan
    from factory.llm.session import LLMSession

RETRIES = 3  # actor restarts / chunk retries before the build gives up (the cache keeps the work)
GPU_BACKENDS = {"vllm", "transformers"}


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FactoryError("--executor ray needs Ray: pip install 'factory[ray]'") from None
    return ray


def connect(address: str | None) -> Any:
    """Join the cluster at ``address`` (host:port of `ray start --head`), or start a local one."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    if address and address != "auto":
        host, _, port = address.rpartition(":")
        try:  # ray.init would retry for minutes against a dead address: fail in seconds instead
            socket.create_connection((host or address, int(port or 6379)), timeout=5).close()
        except (OSError, ValueError) as exc:
            raise FactoryError(f"--address {address}: no Ray cluster reachable ({exc})") from None
    try:
        if address:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        else:
            ray.init(logging_level="ERROR", log_to_driver=False, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise FactoryError(f"--executor ray: cannot connect to {address or 'a local Ray'}: {exc}") from None
    return ray


class StageWorker:
    """One worker: its own backends and dispatchers, the shared cache, an engine per chunk."""

    def __init__(self, plan: Plan, options: BuildOptions) -> None:
        from factory.engine.wiring import bind_steps, open_backends, open_session

        # Its own session: its own backends, the shared SQLite cache, no budget (refused with Ray).
        self.llm = open_session(options)
        self.backends = open_backends(plan, self.llm)
        self.plan = plan
        self.bound = bind_steps(plan, self.backends, self.llm)
        concurrency = sum(plan.recipe.backend_block(k).concurrency for k in self.backends)
        self.window = max(64, 4 * concurrency)

    def identity(self) -> dict[str, tuple[str, str]]:
        """Backend name and model id per recipe key: the driver's lineage and stats use them."""
        return {k: (b.name, b.model_id) for k, b in self.backends.items()}

    def counters(self) -> dict[str, dict[str, Any]]:
        return {k: b.counters() for k, b in self.backends.items()}

    async def walk(self, part_index: int, records: list[Record]) -> tuple[list, dict, dict]:
        # Fresh dispatcher views per chunk: slots, cache and in-flight calls are shared, the
        # counts are the chunk's own (a retried chunk must not count a dead worker's calls twice).
        bound = {n: BoundStep(b.runner, b.dispatcher.for_step(),
                              {k: d.for_step() for k, d in b.others.items()}) for n, b in self.bound.items()}
        engine = Engine(self.plan.graph, bound, window=self.window, seed=self.plan.seed)
        outs = await engine.walk_records(engine.parts[part_index], records)
        stats = {n: {k: v for k, v in vars(s).items() if k != "rates"} for n, s in engine.stats.items()}
        calls = {n: (b.dispatcher.stats, {k: d.stats for k, d in b.others.items()}) for n, b in bound.items()}
        return outs, stats, calls


class RemoteBackend(Backend):
    """Stands in on the driver for a backend that only the workers open (no model on the driver)."""

    def __init__(self, name: str, model_id: str) -> None:
        self.name = name  # type: ignore[misc]  # per instance: it mirrors whichever backend it stands for
        self._model_id = model_id
        self.summed: dict[str, Any] = {}

    @property
    def model_id(self) -> str:
        return self._model_id

    async def generate(self, requests: list[Request]) -> list[Completion]:
        raise RuntimeError(f"{self.name}: this backend runs on the Ray workers")

    def counters(self) -> dict[str, Any]:
        return self.summed


class RayEngine(Engine):
    """The local engine with ``walk`` sharded over the workers; set stages stay here."""

    def __init__(self, *args: Any, actors: list[Any], chunk: int | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.actors = actors
        self.chunk = chunk
        self.backends: dict[str, Backend] = {}

    async def stream(self, records: Iterable[Record],
                     count: int | None = None) -> AsyncIterator[Record | Reject]:
        try:
            async for outcome in super().stream(records, count):
                yield outcome
        finally:  # counters for run.json, then free the workers' CPUs/GPUs for the QC chain
            await _sum_counters(_ray(), self.actors, self.backends)
            for actor in self.actors:
                _ray().kill(actor)

    async def walk(self, stages: list[Stage], records: Iterable[Record],
                   count: int | None = None) -> AsyncIterator[list[Record | Reject]]:
        """Chunks of consecutive records to the workers (two in flight per worker), results back in
        input order; at most a few chunks per worker are pulled from ``records`` ahead."""
        ray = _ray()
        index = self.parts.index(stages)
        per_actor = 4 * len(self.actors)
        size = self.chunk or (max(1, min(256, math.ceil(count / per_actor))) if count else 256)
        source = iter(records)
        slots: asyncio.Queue[Any] = asyncio.Queue()
        for actor in self.actors * 2:  # two pullers per actor keep every worker busy
            slots.put_nowait(actor)

        async def run_chunk(chunk: list[Record]) -> list[list[Record | Reject]]:
            actor = await slots.get()
            try:
                outs, stats, calls = await actor.walk.remote(index, chunk)
            except ray.exceptions.RayTaskError as exc:  # the chunk raised: not retried
                raise FactoryError(f"Ray worker: {str(exc).strip().splitlines()[-1]}") from None
            except ray.exceptions.RayError as exc:  # the worker died more than RETRIES times
                raise FactoryError(f"a Ray worker died ({type(exc).__name__}: {_cause(exc)}); "
                                   "finished calls are cached: rerun to resume") from None
            finally:
                slots.put_nowait(actor)
            self._merge(stages, stats, calls)
            return outs

        queue: deque[asyncio.Task[list[list[Record | Reject]]]] = deque()
        try:
            while True:
                while len(queue) < per_actor and (chunk := list(islice(source, size))):
                    queue.append(asyncio.ensure_future(run_chunk(chunk)))
                if not queue:
                    return
                for outs in await queue.popleft():
                    yield outs
        finally:
            for task in queue:
                task.cancel()

    def _merge(self, stages: list[Stage], stats: dict[str, dict], calls: dict[str, tuple]) -> None:
        for name, part in stats.items():
            mine = self.stats[name]
            for key, value in part.items():
                if isinstance(value, dict):
                    getattr(mine, key).update(value)
                else:
                    setattr(mine, key, getattr(mine, key) + value)
        for name, (own, others) in calls.items():
            self.steps[name].dispatcher.stats.add(own)
            for key, st in others.items():
                self.steps[name].others[key].stats.add(st)
        for step in (s for stage in stages for s in stage.steps):  # progress: a tick per record
            for _ in range(stats[step.name]["entered"] + stats[step.name]["skipped"]):
                self.on_step_done(step.name)


def worker_count(ray: Any, plan: Plan, workers: int | None) -> tuple[int, dict[str, float]]:
    """Workers and each one's resources: a GPU each for GPU backends when the cluster has GPUs."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    names = {plan.recipe.backend_block(k).name for s in plan.recipe.steps for k in s.backends_used()}
    if gpus and names & GPU_BACKENDS:
        return workers or gpus, {"num_gpus": 1, "num_cpus": 1}
    return workers or max(1, int(resources.get("CPU", 1))), {"num_cpus": 1}


async def open_ray_engine(plan: Plan, options: BuildOptions, llm: LLMSession, stack: AsyncExitStack,
                          on_step_done: ProgressHook | None = None) -> tuple[RayEngine, dict[str, Backend]]:
    """Start the workers and build the driver's engine; the stack kills the workers at its end.
    The driver's dispatcher views (in the build's session ``llm``) sum the workers' counts."""
    from factory.engine.wiring import bind_steps, open_backends

    if options.budget_usd is not None:
        raise FactoryError("--budget-usd is not supported with --executor ray (each worker would "
                           "count its own spend); run the paid build with the local executor")
    from factory.core.paths import default_cache_path

    ray = connect(options.address)
    # Workers do not share the driver's environment or cwd: resolve the cache path here.
    options = replace(options, cache_path=(options.cache_path or default_cache_path()).resolve())
    count, resources = worker_count(ray, plan, options.workers)
    remote = ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES, **resources)(StageWorker)
    actors = [remote.remote(plan, options) for _ in range(count)]  # the plan holds no seed rows
    stack.callback(lambda: [ray.kill(a) for a in actors])  # also on errors before the run
    try:
        identity = await actors[0].identity.remote()
    except ray.exceptions.RayError as exc:
        raise FactoryError(f"Ray worker failed to start: {str(exc).strip().splitlines()[-1]}") from None
    # Only backends a set step uses are opened on the driver; the rest are stand-ins.
    set_keys = {k for s in plan.recipe.steps if _is_set(s) for k in s.backends_used()}
    driver_plan = replace(plan, loaded=_only_steps(plan, set_keys))
    backends: dict[str, Backend] = open_backends(driver_plan, llm) if set_keys else {}
    for key, (name, model_id) in identity.items():  # stand-ins: never handed to a QC judge
        backends.setdefault(key, RemoteBackend(name, model_id))
    bound = bind_steps(plan, backends, llm)
    concurrency = sum(plan.recipe.backend_block(k).concurrency for k in backends)
    engine = RayEngine(plan.graph, bound, window=max(64, 4 * concurrency), on_step_done=on_step_done,
                       seed=plan.seed, actors=actors)
    if any(stage.prepared for stage in engine.stages):  # the gate's calls would run on the driver
        raise FactoryError("a judge_gate is not supported with --executor ray yet: the gate measures "
                           "the judge on the driver, which holds no model; run the build locally")
    engine.backends = backends
    return engine, backends


def _cause(exc: BaseException) -> str:
    """Ray's own words on why an actor died, in one line (its messages run over many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    said = [line for line in lines if "because" in line or "Error" in line] or lines or ["no reason given"]
    return said[0][:300]


def _is_set(step: Any) -> bool:
    """Steps the driver runs itself: set steps, and a step's ``prepare`` (a judge's gate)."""
    from factory.steps import STEP_KINDS

    return issubclass(STEP_KINDS[step.kind], SetRunner) or step.needs_all_inputs()


def _only_steps(plan: Plan, keys: set[str]) -> Any:
    """The loaded recipe with only the steps whose backends the driver must open itself."""
    recipe = plan.recipe.model_copy(update={"steps": [s for s in plan.recipe.steps if _is_set(s)]})
    return replace(plan.loaded, recipe=recipe)


async def _sum_counters(ray: Any, actors: list[Any], backends: dict[str, Backend]) -> None:
    """Backend counters (retries, throttles) summed over the live workers, for run.json."""
    try:
        parts = await asyncio.gather(*(a.counters.remote() for a in actors))
    except ray.exceptions.RayError:
        return
    for part in parts:
        for key, counts in part.items():
            target = backends[key]
            if isinstance(target, RemoteBackend):
                for name, value in counts.items():
                    if isinstance(value, (int, float)):
                        target.summed[name] = target.summed.get(name, 0) + value


def encode_remote(spec: str, texts: list[str], batch: int = 512) -> Any:
    """Embed ``texts`` as Ray tasks of ``batch`` texts each (the model loads once per worker
    process); the vectors come back in order for the driver's single-node FAISS search."""
    import numpy as np

    ray = _ray()
    task = ray.remote(num_cpus=1)(_embed_batch)
    refs = [task.remote(spec, texts[i:i + batch]) for i in range(0, len(texts), batch)]
    parts = ray.get(refs)
    return np.concatenate(parts) if parts else np.zeros((0, 384), dtype=np.float32)


def _embed_batch(spec: str, texts: list[str]) -> Any:
    import numpy as np

    from filters.embed import load_embedder

    model = load_embedder(spec)
    vecs = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False)
    return np.asarray(vecs, dtype=np.float32)
