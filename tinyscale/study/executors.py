"""Where trials run: in this process, in local worker processes, or on a Ray cluster.

All executors share one small interface (`Executor`): ``submit`` a `TrialTask`, then
``next_outcome`` blocks until any submitted task finishes and returns its `TrialOutcome`.
Executors only compute; the study driver (`tinyscale.study.driver.run_study`) is the one that
persists results, so a worker that dies never leaves a half-written trial behind.

Each worker loads the data once (kept in a per-process cache keyed by `DataSpec`) and then
trains many recipes; the cores are shared out so that workers x threads = cores.
"""

from __future__ import annotations

import os
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Protocol

EXECUTORS = ("local", "ray")
MAX_POOL_BREAKS = 3


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """One single-threaded worker per core: measured here, one process with 2 intra-op threads
    ran 5-15x slower than with 1 as soon as anything else used a core (OpenMP barriers wait
    on descheduled threads), while 2 x 1 thread degrades gracefully."""
    return available_cores()


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Intra-op threads for each of ``workers`` workers sharing ``cores`` cores (at least 1)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return max(1, (cores or available_cores()) // workers)


@dataclass(frozen=True)
class DataSpec:
    """How a worker loads the study's data (hashable: the per-process cache key)."""

    spec: str
    seed: int = 0
    train_size: int | None = None
    val_size: int | None = None
    decode_size: int = 64

    def load(self):
        from tinyscale.data.cache import cache_root
        from tinyscale.data.datasets import load_data

        # A large folder dataset is decoded once into the decoded cache on disk, which every
        # worker then maps (one copy in the page cache, whatever the number of workers).
        return load_data(self.spec, seed=self.seed, train_size=self.train_size, val_size=self.val_size,
                         decode_size=self.decode_size, decoded_cache=cache_root())


@dataclass(frozen=True)
class TrialTask:
    """Everything a worker needs to train one trial (plain data, picklable)."""

    number: int
    recipe: dict  # Recipe.to_dict()
    seed: int
    data: DataSpec
    train: dict  # TrainConfig fields


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    result: object | None  # a TrainResult, or None when the task raised
    error: str | None = None


_DATA_CACHE: dict[DataSpec, object] = {}


def worker_data(spec: DataSpec):
    """The data for ``spec``, loaded once per process (a large folder dataset: mapped from the
    decoded cache, which the driver's `check_data` builds before any worker starts)."""
    if spec not in _DATA_CACHE:
        _DATA_CACHE.clear()  # one study's data per worker at a time
        _DATA_CACHE[spec] = spec.load()
    return _DATA_CACHE[spec]


def run_task(task: TrialTask) -> TrialOutcome:
    """Train one trial; any exception becomes a failed outcome with its reason (the study goes on)."""
    try:
        from tinyscale.space.recipe import Recipe
        from tinyscale.train.config import TrainConfig
        from tinyscale.train.trainer import train_recipe

        result = train_recipe(Recipe.from_dict(task.recipe), worker_data(task.data), TrainConfig(**task.train),
                              task.seed)
        return TrialOutcome(task.number, result)
    except Exception as exc:  # noqa: BLE001 - a crash of one trial must not end the study
        last = traceback.extract_tb(exc.__traceback__)[-1:] or [None]
        where = f" ({os.path.basename(last[0].filename)}:{last[0].lineno})" if last[0] else ""
        return TrialOutcome(task.number, None, f"{type(exc).__name__}: {exc}{where}")


class Executor(Protocol):
    slots: int  # tasks that may be in flight at once

    def submit(self, task: TrialTask) -> None: ...

    def next_outcome(self) -> TrialOutcome: ...

    def close(self) -> None: ...


class SequentialExecutor:
    """Runs each task in this process when its outcome is asked for."""

    def __init__(self, threads: int | None = None) -> None:
        self.slots = 1
        self.threads = threads or available_cores()
        self._queue: deque[TrialTask] = deque()

    def submit(self, task: TrialTask) -> None:
        self._queue.append(task)

    def next_outcome(self) -> TrialOutcome:
        task = self._queue.popleft()
        return run_task(_with_threads(task, self.threads))

    def close(self) -> None:
        self._queue.clear()


def _with_threads(task: TrialTask, threads: int) -> TrialTask:
    return TrialTask(task.number, task.recipe, task.seed, task.data, {**task.train, "threads": threads})


def _init_process_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class ProcessExecutor:
    """``workers`` spawned processes, each with cores // workers torch threads."""

    def __init__(self, workers: int, threads: int | None = None) -> None:
        self.slots = workers
        self.threads = threads or threads_per_worker(workers)
        self._pool = None
        self._pending: dict = {}
        self._breaks = 0  # pools broken in a row without one successful outcome

    def _ensure_pool(self):
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: a forked child of a process that already ran torch's OpenMP
            # threads can deadlock.
            self._pool = ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_process_worker, initargs=(self.threads,))
        return self._pool

    def submit(self, task: TrialTask) -> None:
        task = _with_threads(task, self.threads)
        self._pending[self._ensure_pool().submit(run_task, task)] = task

    def next_outcome(self) -> TrialOutcome:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(list(self._pending), return_when=FIRST_COMPLETED)
        future = next(iter(done))
        task = self._pending.pop(future)
        try:
            outcome = future.result()
            self._breaks = 0
            return outcome
        except BrokenProcessPool:
            self._breaks += 1
            if self._breaks >= MAX_POOL_BREAKS:
                # Workers that cannot even start (e.g. a script without a __main__ guard
                # under spawn) would otherwise fail every trial of the study one by one.
                self.close()
                raise RuntimeError(
                    f"worker processes died {self._breaks} times in a row; the trials in flight stay "
                    "'running' and are retried on --resume"
                ) from None
            # A worker died (killed, out of memory): every task in flight is lost with it.
            # Start a fresh pool and resubmit the others; this one is reported failed.
            others = list(self._pending.values())
            self._pending.clear()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            for t in others:
                self.submit(t)
            return TrialOutcome(task.number, None, "the worker process died while training this trial")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._pending.clear()


class RayExecutor:
    """``workers`` Ray actors, each reserving ``threads`` CPUs, loading the data once.

    ``address`` is passed to ``ray.init`` (None starts a local Ray instance, "auto" joins the
    cluster this machine belongs to, "ray://host:10001" connects a client).
    """

    def __init__(self, workers: int, threads: int | None = None, address: str | None = None,
                 init_kwargs: dict | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("the Ray executor needs Ray: pip install 'tinyscale[ray]'") from None
        self._ray = ray
        self.slots = workers
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, **(init_kwargs or {}))
            self._owns_ray = True
        else:
            self._owns_ray = False
        if threads is None:
            threads = threads_per_worker(workers, int(ray.cluster_resources().get("CPU", available_cores())))
        self.threads = threads
        actor = ray.remote(num_cpus=threads)(_RayWorker)
        self._actors = [actor.remote(threads) for _ in range(workers)]
        self._idle = list(self._actors)
        self._pending: dict = {}

    def submit(self, task: TrialTask) -> None:
        if not self._idle:
            raise RuntimeError("no idle Ray worker: wait for an outcome before submitting more than `slots` tasks")
        actor = self._idle.pop()
        ref = actor.run.remote(_with_threads(task, self.threads))
        self._pending[ref] = (actor, task)

    def next_outcome(self) -> TrialOutcome:
        ray = self._ray
        [ref], _ = ray.wait(list(self._pending), num_returns=1)
        actor, task = self._pending.pop(ref)
        try:
            outcome = ray.get(ref)
            self._idle.append(actor)
            return outcome
        except ray.exceptions.RayError as exc:
            # The actor (or its node) died: replace it and report this trial as failed.
            replacement = ray.remote(num_cpus=self.threads)(_RayWorker).remote(self.threads)
            self._actors = [a for a in self._actors if a is not actor] + [replacement]
            self._idle.append(replacement)
            return TrialOutcome(task.number, None, f"Ray worker failed: {type(exc).__name__}")

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors, self._idle, self._pending = [], [], {}
        if self._owns_ray:
            self._ray.shutdown()


class _RayWorker:
    def __init__(self, threads: int) -> None:
        _init_process_worker(threads)

    def run(self, task: TrialTask) -> TrialOutcome:
        return run_task(task)


MAX_WORKERS_PER_CORE = 4  # local processes beyond this only thrash


def check_execution(kind: str, workers: int | None, threads: int | None, address: str | None = None) -> int:
    """Validate ``--executor/--workers/--threads/--address`` before anything runs; returns the
    number of workers (None: `default_workers`). Local threads are bounded by the cores this
    process may use (more only oversubscribes them); Ray's by the cluster, which Ray checks."""
    if kind not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {kind!r}")
    cores = available_cores()
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if kind == "ray":
        return workers
    if address is not None:
        raise ValueError("--address is for the Ray executor (--executor ray)")
    if threads is not None and threads > cores:
        raise ValueError(f"threads must be at most the {cores} core(s) available here, got {threads}")
    if workers > MAX_WORKERS_PER_CORE * cores:
        raise ValueError(f"workers must be at most {MAX_WORKERS_PER_CORE} per core ({MAX_WORKERS_PER_CORE * cores} "
                         f"here), got {workers}")
    return workers


def make_executor(kind: str = "local", workers: int | None = 1, *, address: str | None = None,
                  threads: int | None = None) -> Executor:
    """The executor for ``--executor``/``--workers``/``--threads``/``--address`` (validated by
    `check_execution`; ``workers=None`` is one per core)."""
    workers = check_execution(kind, workers, threads, address)
    if kind == "ray":
        return RayExecutor(workers, threads, address)
    if workers == 1:
        return SequentialExecutor(threads)
    return ProcessExecutor(workers, threads)
