"""Where trials run: in this process, in local worker processes, or on a Ray cluster.

All executors share one small interface (`Executor`): ``submit`` a `TrialTask`, then
``next_outcome`` blocks until any submitted task finishes and returns its `TrialOutcome`.
Executors only compute; the study driver (`tinyscale.study.driver.run_study`) is the one that
persists results, so a worker that dies never leaves a half-written trial behind.

Each worker loads the data once (kept in a per-process cache keyed by `DataSpec`) and then
trains many recipes; the cores are shared out so that workers x threads = cores. On GPUs
(`place_local`, `ray_gpu_share`) each local worker is pinned to one GPU by its own
``CUDA_VISIBLE_DEVICES`` (so it trains on ``cuda``, which is its GPU), K workers per GPU with
``--trials-per-gpu K``; Ray actors reserve 1/K of a GPU each and Ray pins them the same way.
"""

from __future__ import annotations

import os
import traceback
from collections import deque
from dataclasses import dataclass, replace
from typing import Protocol

from tinyscale.study.placement import check_placement, check_ray_device, ray_gpu_share
from tinyscale.train.device import check_device_name

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
    # Under lr_schedule wsd: the file to keep this run's trunk in, and a shorter run's trunk to
    # continue from (`tinyscale.train.checkpoint`); paths the worker can reach, or the run
    # trains from scratch (same result, more steps).
    resume_from: str | None = None
    save_trunk: str | None = None
    # A file to keep the run's progress in (`tinyscale.train.checkpoint`): the same task started
    # again after a kill continues from it.
    progress: str | None = None


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    result: object | None  # a TrainResult, or None when the task raised
    error: str | None = None
    device: str | None = None  # the device the trial was given (cpu, cuda, cuda:N)
    visible_devices: str | None = None  # the worker's CUDA_VISIBLE_DEVICES (None: unset), naming its GPU


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
    where = {"device": task.train.get("device", "cpu"), "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        from tinyscale.space.recipe import Recipe
        from tinyscale.train.config import TrainConfig
        from tinyscale.train.trainer import train_recipe

        result = train_recipe(Recipe.from_dict(task.recipe), worker_data(task.data), TrainConfig(**task.train),
                              task.seed, resume_from=task.resume_from, save_trunk=task.save_trunk,
                              progress=task.progress)
        return TrialOutcome(task.number, result, **where)
    except Exception as exc:  # noqa: BLE001 - a crash of one trial must not end the study
        reason = failure_reason(exc)
    if reason.startswith(OUT_OF_GPU_MEMORY):
        _release_gpu_memory()  # the failed trial's tensors are gone with its frames: the next trial starts clean
    return TrialOutcome(task.number, None, reason, **where)


OUT_OF_GPU_MEMORY = "out of GPU memory"


def failure_reason(exc: BaseException) -> str:
    """One line saying why a trial raised ``exc``: out of GPU memory as such (torch's message is
    a paragraph; its first sentences say how much was asked and free), anything else as its type,
    message and the line that raised it."""
    import sys

    torch = sys.modules.get("torch")
    oom = torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)
    if oom or "CUDA out of memory" in str(exc):
        sentences = " ".join(str(exc).split()).split(". ")
        return (f"{OUT_OF_GPU_MEMORY}: {'. '.join(sentences[:3]).rstrip('.')}; give fewer --trials-per-gpu "
                "or a smaller --batch-size, and --resume --retry-failed trains it again")
    last = traceback.extract_tb(exc.__traceback__)[-1:] or [None]
    where = f" ({os.path.basename(last[0].filename)}:{last[0].lineno})" if last[0] else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _release_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Executor(Protocol):
    slots: int  # tasks that may be in flight at once

    def submit(self, task: TrialTask) -> None: ...

    def next_outcome(self) -> TrialOutcome: ...

    def close(self) -> None: ...


class SequentialExecutor:
    """Runs each task in this process when its outcome is asked for, on ``device``."""

    def __init__(self, threads: int | None = None, device: str = "cpu") -> None:
        self.slots = 1
        self.threads = threads or available_cores()
        self.device = check_device_name(device)
        self._queue: deque[TrialTask] = deque()

    def submit(self, task: TrialTask) -> None:
        self._queue.append(task)

    def next_outcome(self) -> TrialOutcome:
        task = self._queue.popleft()
        return run_task(_placed(task, self.threads, self.device))

    def close(self) -> None:
        self._queue.clear()


def _placed(task: TrialTask, threads: int, device: str) -> TrialTask:
    """``task`` with the worker's runtime settings (they change speed, not results)."""
    return replace(task, train={**task.train, "threads": threads, "device": device})


def end_with_parent(parent_pid: int | None) -> bool:
    """Ask Linux to SIGKILL this process when ``parent_pid``, the process that started it, ends
    (``prctl(PR_SET_PDEATHSIG)``). Without it a study or compare stopped by SIGTERM or kill -9
    leaves its workers training on, orphaned, until their current run ends (measured: two
    3,600-step runs kept both cores busy after their compare was killed). The study loses
    nothing either way: a run in flight is retrained on --resume. Returns whether the request
    was made; on other systems (or ``parent_pid`` None) it does nothing."""
    import sys

    if parent_pid is None or not sys.platform.startswith("linux"):
        return False
    import ctypes
    import signal

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:  # the parent ended before the request was made
        os._exit(1)
    return True


def init_worker(threads: int, gpu_queue=None, parent_pid: int | None = None) -> None:
    """A worker process starts: it ends with ``parent_pid`` (`end_with_parent`), sets its torch
    threads, and with ``gpu_queue`` its GPU, the next CUDA_VISIBLE_DEVICES value in the queue
    (set before CUDA starts in this process)."""
    end_with_parent(parent_pid)
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_queue.get(timeout=60)
    import torch

    torch.set_num_threads(threads)


class ProcessExecutor:
    """``workers`` spawned processes, each with cores // workers torch threads; with
    ``visible_devices`` (one CUDA_VISIBLE_DEVICES value per worker), each on its GPU as ``cuda``."""

    def __init__(self, workers: int, threads: int | None = None, *,
                 visible_devices: tuple[str, ...] | None = None, end_with_parent: bool = True) -> None:
        if visible_devices is not None and len(visible_devices) != workers:
            raise ValueError(f"one GPU per worker: {workers} workers, {len(visible_devices)} GPUs given")
        self.slots = workers
        self.threads = threads or threads_per_worker(workers)
        self.visible_devices = visible_devices
        self.device = "cpu" if visible_devices is None else "cuda"
        self.end_with_parent = end_with_parent  # workers end when this process does (`end_with_parent`)
        self._pool = None
        self._pending: dict = {}
        self._breaks = 0  # pools broken in a row without one successful outcome

    def _ensure_pool(self):
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: a forked child of a process that already ran torch's OpenMP
            # threads can deadlock.
            context = multiprocessing.get_context("spawn")
            gpu_queue = None
            if self.visible_devices is not None:
                # The pool starts at most `slots` processes and never replaces one (a broken pool
                # is replaced whole, with a new queue): each takes one value, one GPU per worker.
                gpu_queue = context.Queue()
                for value in self.visible_devices:
                    gpu_queue.put(value)
            # The kernel's parent-death signal follows the *thread* that started a worker: ask
            # for it only when that is the main thread (a helper thread may end before we do).
            import threading

            main = threading.current_thread() is threading.main_thread()
            parent = os.getpid() if self.end_with_parent and main else None
            self._pool = ProcessPoolExecutor(self.slots, mp_context=context, initializer=init_worker,
                                             initargs=(self.threads, gpu_queue, parent))
        return self._pool

    def submit(self, task: TrialTask) -> None:
        task = _placed(task, self.threads, self.device)
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
    cluster this machine belongs to, "ray://host:10001" connects a client). On GPUs
    (`ray_gpu_share`) each actor reserves 1/``trials_per_gpu`` of one, and ``workers=None`` is
    the cluster's GPUs x ``trials_per_gpu`` (on CPUs: one per core here).
    """

    def __init__(self, workers: int | None, threads: int | None = None, address: str | None = None,
                 init_kwargs: dict | None = None, *, device: str = "cpu", trials_per_gpu: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("the Ray executor needs Ray: pip install 'tinyscale[ray]'") from None
        self._ray = ray
        check_ray_device(device, trials_per_gpu)  # before Ray starts
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, **(init_kwargs or {}))
            self._owns_ray = True
        else:
            self._owns_ray = False
        resources = ray.cluster_resources()
        try:
            self.device, gpu_share = ray_gpu_share(device, trials_per_gpu, resources.get("GPU", 0))
        except ValueError:
            self._actors = []
            self.close()
            raise
        if workers is None:
            workers = round(resources["GPU"] / gpu_share) if gpu_share else default_workers()
        self.slots = workers
        if threads is None:
            threads = threads_per_worker(workers, int(resources.get("CPU", available_cores())))
        self.threads = threads
        self._actor_class = ray.remote(num_cpus=threads, num_gpus=gpu_share)(_RayWorker)
        self._actors = [self._actor_class.remote(threads) for _ in range(workers)]
        self._idle = list(self._actors)
        self._pending: dict = {}

    def worker_devices(self) -> list[str | None]:
        """Each actor's CUDA_VISIBLE_DEVICES as Ray set it (None: unset), waiting for them to start."""
        return self._ray.get([actor.visible_devices.remote() for actor in self._actors])

    def submit(self, task: TrialTask) -> None:
        if not self._idle:
            raise RuntimeError("no idle Ray worker: wait for an outcome before submitting more than `slots` tasks")
        actor = self._idle.pop()
        ref = actor.run.remote(_placed(task, self.threads, self.device))
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
            replacement = self._actor_class.remote(self.threads)
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
        init_worker(threads)

    def run(self, task: TrialTask) -> TrialOutcome:
        return run_task(task)

    def visible_devices(self) -> str | None:
        return os.environ.get("CUDA_VISIBLE_DEVICES")


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
                  threads: int | None = None, device: str = "cpu", gpus: tuple[int, ...] | None = None,
                  trials_per_gpu: int | None = None) -> Executor:
    """The executor for ``--executor``/``--workers``/``--threads``/``--address`` and
    ``--device/--gpus/--trials-per-gpu`` (validated by `check_execution` and `check_placement`;
    ``workers=None`` is one per core, or on GPUs one per GPU and trial slot)."""
    placement = check_placement(kind, workers, device, gpus, trials_per_gpu)
    if kind == "ray":
        check_execution(kind, workers, threads, address)
        return RayExecutor(workers, threads, address, device=device, trials_per_gpu=trials_per_gpu)
    if placement.gpus:
        workers = len(placement.gpus)
    workers = check_execution(kind, workers, threads, address)
    if not placement.gpus:
        return SequentialExecutor(threads) if workers == 1 else ProcessExecutor(workers, threads)
    if workers == 1:  # in this process, where CUDA may already run: the GPU by its index
        return SequentialExecutor(threads, device=f"cuda:{placement.gpus[0]}")
    return ProcessExecutor(workers, threads,
                           visible_devices=placement.visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES")))
