"""The one run loop: every command that trains (study, compare, fidelity) hands its runs here.

A caller describes its work with two functions: ``source(free, log)`` gives up to ``free``
`Job`s to start now (an empty list once nothing more is to start), and ``record(job, run)``
stores one finished run, as one transaction of the caller's store, and returns the text the
progress bar shows next. The runner submits jobs to an executor while it has free slots,
collects outcomes in whatever order they finish, turns each into a `RunResult` (the one place
where a worker's outcome becomes a stored result) and passes it to ``record`` straight away,
so an interruption loses at most the runs in flight. On Ctrl-C, a kill of a worker or any
error, ``release(jobs)`` is told which jobs were in flight before the error propagates. While
runs train, the bar also shows how far each has come (the heartbeat a run writes beside its
progress file, `tinyscale.train.checkpoint`), so a half-hour run is seen moving.

Executors only compute; this driver process is the only one that writes (see
`tinyscale.study.executors`).
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tinyscale.space.recipe import Recipe
from tinyscale.storage import PROGRESS_DIR
from tinyscale.study.executors import DataSpec, Executor, TrialOutcome, TrialTask, make_executor


@dataclass(frozen=True)
class Job:
    """One training run to do: ``key`` is the caller's name for it (a trial number, a cell)."""

    key: Hashable
    recipe: Recipe
    seed: int
    train: Any  # a tinyscale.train.TrainConfig
    resume_from: str | None = None  # a shorter run's trunk to continue from (lr_schedule wsd)
    save_trunk: str | None = None  # where to keep this run's trunk
    progress: str | None = None  # where to keep this run's progress (a kill then loses minutes, not the run;
    #                               removed here once the run is recorded)


# What a result row keeps of a trainer result besides its accuracy and state.
MEASURED_FIELDS = ("loss", "steps", "images_seen", "train_seconds", "eval_seconds", "images_per_second", "start_step")


@dataclass(frozen=True)
class RunResult:
    """A finished run as every store records it: ``completed`` with a finite accuracy, or
    ``failed`` with its ``reason`` (the worker raised, or the run diverged). Non-finite
    measurements are None (SQLite has no NaN; a diverged run's NaN loss is in its reason)."""

    state: str
    accuracy: float | None = None
    loss: float | None = None
    steps: int | None = None
    images_seen: int | None = None
    train_seconds: float | None = None
    eval_seconds: float | None = None
    images_per_second: float | None = None
    reason: str | None = None
    device: str | None = None  # where it trained, as the worker saw it (cuda, with its GPU's name)
    start_step: int | None = None  # the trunk's step it continued from; 0 or None = from scratch

    @classmethod
    def failure(cls, reason: str) -> RunResult:
        return cls("failed", reason=reason)

    @classmethod
    def of(cls, result: Any) -> RunResult:
        """A trainer result (any object with the trainer's fields) as a stored result."""
        values = {k: _finite(getattr(result, k, None)) for k in MEASURED_FIELDS}
        accuracy = getattr(result, "accuracy", None)
        reason = getattr(result, "failed", None)
        if reason is None and (accuracy is None or not math.isfinite(accuracy)):
            reason = f"no finite accuracy ({accuracy!r})"
        if reason:
            return cls("failed", None, reason=str(reason), **values)
        return cls("completed", float(accuracy), **values)

    @property
    def completed(self) -> bool:
        return self.state == "completed"


def _finite(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def settle(outcome: TrialOutcome) -> RunResult:
    """An executor's outcome as a stored result (a task that raised fails with its error), with
    the device it ran on (a GPU named by the worker's CUDA_VISIBLE_DEVICES)."""
    run = RunResult.failure(outcome.error or "unknown error") if outcome.result is None else RunResult.of(outcome.result)
    device = getattr(outcome, "device", None)
    visible = getattr(outcome, "visible_devices", None)
    if device and visible and device.startswith("cuda"):
        device = f"{device} (CUDA_VISIBLE_DEVICES={visible})"
    return replace(run, device=device)


# Seconds between looks at the heartbeats of the runs in flight: on a terminal, and when the bar
# goes to a file or a pipe (a log, where every look is a line).
WATCH_EVERY = 2.0
WATCH_EVERY_LOGGED = 60.0
SHOWN_IN_FLIGHT = 3  # runs named one by one in the bar; more are counted


def in_flight_text(jobs: Sequence[Job]) -> str:
    """How far the runs in flight have trained, from their heartbeats ("" when none says):
    e.g. "training 1,240/3,600 and 800/3,600 steps"."""
    from tinyscale.train.heartbeat import heartbeat_path, read_heartbeat

    beats = [read_heartbeat(heartbeat_path(job.progress)) for job in jobs if job.progress]
    shown = [f"{step:,}/{steps:,}" for step, steps in filter(None, beats)]
    if not shown:
        return ""
    more = len(shown) - SHOWN_IN_FLIGHT
    if more > 0:
        shown = shown[:SHOWN_IN_FLIGHT] + [f"{more} more"]
    return "training " + (", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else shown[0]) + " steps"


def _on_terminal() -> bool:
    with contextlib.suppress(AttributeError, ValueError):
        return sys.stderr.isatty()
    return False


def queue_of(jobs: Sequence[Job]) -> Callable[[int, Callable[[str], None]], list[Job]]:
    """A ``source`` that hands out a fixed list of jobs in order."""
    pending = list(jobs)

    def source(free: int, log: Callable[[str], None]) -> list[Job]:
        taken, pending[:] = pending[:free], pending[free:]
        return taken

    return source


def run_jobs(
    source: Callable[[int, Callable[[str], None]], Sequence[Job]],
    record: Callable[[Job, RunResult], str | None],
    *,
    data: DataSpec,
    executor: Executor | None = None,
    threads: int | None = None,
    release: Callable[[list[Job]], None] | None = None,
    progress: bool = True,
    desc: str,
    unit: str = "run",
    total: int | None = None,
    initial: int = 0,
    postfix: str | None = None,
    forecast=None,
) -> None:
    """Train what ``source`` gives until it gives nothing and no run is in flight.

    ``executor`` defaults to one in-process worker with ``threads`` torch threads (closed here;
    a given executor is left open). ``total``/``initial``/``postfix`` set up the progress bar;
    a ``forecast`` (`tinyscale.study.timing.Forecast` of the runs to train) has the bar say
    about how long they take before they start and how long is left after each one.
    """
    from tqdm.auto import tqdm

    from tinyscale.train.heartbeat import heartbeat_path

    own_executor = executor is None
    executor = executor or make_executor("local", 1, threads=threads)
    in_flight: dict[int, Job] = {}
    submitted = 0
    bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)
    shown = {"recorded": postfix or ""}  # the caller's text after its last record

    def show(refresh: bool) -> None:
        text = "; ".join(filter(None, (shown["recorded"], in_flight_text(list(in_flight.values())))))
        bar.set_postfix_str(text, refresh=refresh)

    if postfix:
        show(refresh=False)
    if progress and forecast is not None and forecast.upfront():
        n = len(forecast.predicted)
        bar.write(f"{desc}: {n} run{'s' if n != 1 else ''} to train, {forecast.upfront()} at the speed of the "
                  "study's own runs", file=sys.stderr)  # stdout may be a command's JSON
    stop_watching = threading.Event()
    if progress:
        interval = WATCH_EVERY if _on_terminal() else WATCH_EVERY_LOGGED

        def watch() -> None:  # the main thread waits on the executor; this one keeps the bar moving
            while not stop_watching.wait(interval):
                with contextlib.suppress(Exception):  # a bar is never worth a failed run
                    show(refresh=True)

        threading.Thread(target=watch, name="tinyscale-progress", daemon=True).start()
    try:
        while True:
            free = executor.slots - len(in_flight)
            for job in source(free, bar.write) if free > 0 else ():
                in_flight[submitted] = job
                executor.submit(TrialTask(submitted, job.recipe.to_dict(), job.seed, data, asdict(job.train),
                                          job.resume_from, job.save_trunk, job.progress))
                submitted += 1
            if not in_flight:
                break
            outcome = executor.next_outcome()
            job = in_flight[outcome.number]
            run = settle(outcome)
            text = record(job, run)
            if forecast is not None:
                forecast.finished(job.key, None if run.train_seconds is None else run.train_seconds
                                  + (run.eval_seconds or 0.0))
                text = "; ".join(filter(None, (text, forecast.words())))
            if job.progress:  # stored: the run's saved progress and heartbeat are of no more use
                for done in (Path(job.progress), heartbeat_path(job.progress)):
                    with contextlib.suppress(OSError):  # gone or unreachable: nothing to free
                        done.unlink()
                folder = Path(job.progress).parent
                if folder.name == PROGRESS_DIR:  # the callers' folder for it: gone once empty (a run
                    with contextlib.suppress(OSError):  # that saves again makes it anew)
                        folder.rmdir()
            del in_flight[outcome.number]
            if text:
                shown["recorded"] = text
            show(refresh=False)
            bar.update(1)
    except BaseException:
        # Interrupted (Ctrl-C) or failed: the caller hears which runs were in flight, so none is
        # left looking as if it were still running.
        if release is not None and in_flight:
            release(list(in_flight.values()))
        raise
    finally:
        stop_watching.set()
        bar.close()
        if own_executor:
            executor.close()
