"""Running the fidelity check on a study directory: `measure` (the full check; on a study in rungs,
of its longest runs by default, `checked_rung`) and `measure_noise` (the seed noise alone, of the
study's rung-0 trials: what a one-rung fit of a uniform study can be fixed at).

Both retrain through the one run loop (`tinyscale.study.runner.run_jobs`) with the study's data
and trainer settings, store each finished run in ``DIR/fidelity/fidelity.sqlite`` as soon as it
arrives (so an interrupted check resumes without retraining anything), and write their result
file atomically once every run is in. The runs of `measure_noise` are the ones `measure` plans
(same trials, seeds and store), so a later full check reuses them.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from tinyscale.evaluate.fidelity.persist import save_fidelity, save_noise
from tinyscale.evaluate.fidelity.plan import (DEFAULT_FACTOR, DEFAULT_NOISE_TRIALS, DEFAULT_RECIPES,
                                              DEFAULT_REPLICATES, Task, plan_runs)
from tinyscale.evaluate.fidelity.records import Fidelity, Run, SeedNoise
from tinyscale.evaluate.fidelity.stats import MIN_TRIALS, pooled_noise
from tinyscale.evaluate.fidelity.store import STORE_NAME, FidelityStore, fidelity_dir
from tinyscale.evaluate.fidelity.summary import summarize
from tinyscale.evaluate.store import study_forecast, trainer_budget
from tinyscale.storage import FIDELITY_LOCK, PROGRESS_DIR, exclusive_folder
from tinyscale.study.plan import StudyPlan
from tinyscale.study.runner import Job, RunResult, queue_of, run_jobs


def _checkable(study_dir: Path, rung: int | None = 0):
    """(config, trainer, the completed runs checked, every trial, their rung, their steps) of a
    study the check can retrain; ``rung`` as `checked_rung` takes it."""
    from tinyscale.study.store import Study

    with Study.open(study_dir) as study:
        config = study.config
        everything = study.trials()
        rung, steps, completed = checked_rung(study, rung)
        # Replicates must train exactly as the study's trials did (the study records its resolved
        # trainer settings when it starts; a hand-made study has none to check).
        plan = StudyPlan.resolve(config, space=False, load=False)
        plan.check_trainer(study.get_meta("trainer"), f"the study at {study.directory}",
                           "its brief accuracies cannot be replicated by this version")
    if len(completed) < MIN_TRIALS:
        raise ValueError(f"the study at {study_dir} has {len(completed)} completed trial(s); the fidelity check "
                         f"needs at least {MIN_TRIALS} (run more trials with `tinyscale study --resume`)")
    return config, plan.train, completed, everything, rung, steps


def checked_rung(study, rung: int | None) -> tuple[int, int, list]:
    """(rung, its steps, its completed runs with a finite accuracy): the runs a check of
    ``study`` retrains. A uniform study has rung 0 only. A study in rungs: ``rung``, or with None
    the highest rung holding at least `MIN_TRIALS` completed recipes (rung 0 when none does):
    the longest runs, the ones a fit across rungs reads its ridge at and that no longer run of
    the study has checked (its stop rule compares each rung with the next one up). ValueError
    for a rung the study does not train, or one with too few completed recipes."""
    from tinyscale.study.halving import longest_rung, rung_steps

    config = study.config
    runs = [t for t in study.runs("completed") if t.accuracy is not None and math.isfinite(t.accuracy)]
    by_rung: dict[int, list] = {}
    for t in runs:
        by_rung.setdefault(t.rung, []).append(t)
    top = study.top_rung if config.schedule == "halving" else 0
    if rung is None:
        longest = longest_rung(study.rung_summary(), MIN_TRIALS) if config.schedule == "halving" else None
        rung = 0 if longest is None else longest.rung
    elif isinstance(rung, bool) or not isinstance(rung, int) or not 0 <= rung <= top:
        trains = "trains every recipe at rung 0 only" if top == 0 else f"trains rungs 0 to {top}"
        raise ValueError(f"rung {rung!r}: the study at {study.directory} {trains}")
    elif rung > 0 and len(by_rung.get(rung, ())) < MIN_TRIALS:
        raise ValueError(f"rung {rung} of the study at {study.directory} holds {len(by_rung.get(rung, ()))} "
                         f"completed recipe(s); the fidelity check needs at least {MIN_TRIALS}: check a lower "
                         f"rung, or resume the study")
    return rung, rung_steps(config.steps, config.eta, rung), by_rung.get(rung, [])


@contextlib.contextmanager
def _exclusive(study_dir: Path) -> Iterator[None]:
    """The check's exclusive hold on ``DIR/fidelity/`` (a `FileLock`): a second check of one
    study is refused, naming the holder, rather than training every run a second time."""
    with exclusive_folder(fidelity_dir(study_dir), STORE_NAME, FIDELITY_LOCK, f"the fidelity check of {study_dir}"):
        yield


def _retrain(study_dir: Path, config, train, tasks: Sequence[Task], by_number: Mapping, *, executor, threads,
             restart: bool, progress: bool, desc: str) -> dict:
    """Train the ``tasks`` not stored yet (resuming), each stored as soon as it finishes;
    returns every stored run: (kind, number, seed, steps) -> (run, recipe JSON)."""
    with FidelityStore.open(study_dir, trainer_budget(config, train, steps=False), restart=restart) as store:
        stored = store.runs()
        todo = []
        for task in tasks:
            hit = stored.get((task.kind, task.number, task.seed, task.steps))
            if hit is None:
                todo.append(task)
            elif hit[1] != by_number[task.number].recipe.to_json():
                raise ValueError(f"{store.path} holds a run of trial {task.number} with another recipe "
                                 f"(was the study recreated?); pass --restart to retrain")
        if todo:
            plan = StudyPlan.resolve(config, space=False)  # a missing dataset: one clear error before any worker starts

            def record(job: Job, run: RunResult) -> str:
                task = job.key
                stored_run = Run(task.kind, task.number, task.seed, task.steps, run.state, run.accuracy,
                                 run.train_seconds, run.reason)
                store.put(stored_run, job.recipe.to_json(), run.loss if run.completed else None)
                acc = "failed" if run.accuracy is None else f"{100 * run.accuracy:.2f} %"
                return f"last: {task.kind} #{task.number} {task.steps} steps {acc}"

            # Each retraining keeps its progress every few minutes: a killed check resumes mid-run.
            saved = fidelity_dir(study_dir) / PROGRESS_DIR
            if restart:
                shutil.rmtree(saved, ignore_errors=True)
            jobs = [Job(task, by_number[task.number].recipe, task.seed, train.with_(steps=task.steps),
                        progress=str(saved / f"{task.kind}_{task.number}_{task.seed}_{task.steps}.pt"))
                    for task in todo]
            run_jobs(queue_of(jobs), record, data=plan.data, executor=executor, threads=threads, progress=progress,
                     desc=desc, total=len(tasks), initial=len(tasks) - len(todo),
                     forecast=study_forecast(study_dir, jobs, executor) if progress else None)
        return store.runs()


def _replicate_groups(runs: Sequence[Run], brief: Mapping[int, float]) -> dict[int, list[float]]:
    """Trial number -> its accuracies at the study's steps: the study's own run, then replicates."""
    groups: dict[int, list[float]] = {}
    for r in runs:
        if r.kind == "replicate" and r.state == "completed":
            groups.setdefault(r.number, [brief[r.number]]).append(r.accuracy)
    return groups


def measure(
    study_dir: str | os.PathLike,
    *,
    recipes: int = DEFAULT_RECIPES,
    factor: float = DEFAULT_FACTOR,
    replicates: int = DEFAULT_REPLICATES,
    noise_trials: int = DEFAULT_NOISE_TRIALS,
    executor=None,
    threads: int | None = None,
    restart: bool = False,
    progress: bool = True,
    rung: int | None = None,
) -> Fidelity:
    """Retrain what the check needs (resuming: finished runs are never retrained), summarize,
    and write ``DIR/fidelity.json``. Returns the `Fidelity`.

    Training goes through `tinyscale.study.executors` (``executor``; by default one in-process worker
    with ``threads`` torch threads) with the study's data and trainer settings; this process
    stores each run in ``DIR/fidelity/fidelity.sqlite`` as soon as it finishes. ``restart``
    discards stored runs first. ``rung``: which runs of a study in rungs are checked
    (`checked_rung`; None: its longest runs). ValueError for a directory without a study, too
    few completed trials, bad settings, or a study trained under other trainer settings.
    """
    study_dir = Path(study_dir)
    config, train, completed, everything, rung, steps = _checkable(study_dir, rung)
    tasks, settings = plan_runs(completed, config, recipes=recipes, factor=factor, replicates=replicates,
                                noise_trials=noise_trials, all_numbers=[t.number for t in everything],
                                rung=rung, steps=steps)
    by_number = {t.number: t for t in completed}
    with _exclusive(study_dir):
        stored = _retrain(study_dir, config, train, tasks, by_number, executor=executor, threads=threads,
                          restart=restart, progress=progress, desc="fidelity")
        runs = tuple(stored[(t.kind, t.number, t.seed, t.steps)][0] for t in tasks)
        brief = {t.number: float(t.accuracy) for t in completed}
        c = {t.number: float(t.ratio) for t in completed}
        long = {r.number: r.accuracy for r in runs if r.kind == "long" and r.state == "completed"}
        failed = [r for r in runs if r.state == "failed"]
        try:
            result = summarize(brief, long, _replicate_groups(runs, brief), c)
        except ValueError as exc:
            if failed:
                raise ValueError(f"{exc} ({len(failed)} of {len(runs)} retrainings failed, e.g. trial "
                                 f"{failed[0].number}: {failed[0].reason})") from None
            raise
        result = replace(result, settings=settings, runs=runs, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        save_fidelity(result, study_dir)
    return result


def measure_noise(
    study_dir: str | os.PathLike,
    *,
    replicates: int = DEFAULT_REPLICATES,
    noise_trials: int = DEFAULT_NOISE_TRIALS,
    executor=None,
    threads: int | None = None,
    progress: bool = True,
) -> SeedNoise:
    """The seed-noise part of the check alone: ``noise_trials`` trials spread over c retrained
    ``replicates`` times at the study's steps; writes ``DIR/seed-noise.json``. The runs are the
    ones `measure` plans for rung 0 (same trials, seeds and store), so a later full check of
    rung 0 reuses them."""
    study_dir = Path(study_dir)
    config, train, completed, everything, _, _ = _checkable(study_dir)
    tasks, _ = plan_runs(completed, config, recipes=DEFAULT_RECIPES, factor=DEFAULT_FACTOR, replicates=replicates,
                         noise_trials=noise_trials, all_numbers=[t.number for t in everything])
    tasks = [t for t in tasks if t.kind == "replicate"]
    by_number = {t.number: t for t in completed}
    with _exclusive(study_dir):
        stored = _retrain(study_dir, config, train, tasks, by_number, executor=executor, threads=threads,
                          restart=False, progress=progress, desc="seed noise")
        runs = [stored[(t.kind, t.number, t.seed, t.steps)][0] for t in tasks]
        brief = {t.number: float(t.accuracy) for t in completed}
        sigma, df, groups = pooled_noise(_replicate_groups(runs, brief),
                                         {t.number: float(t.ratio) for t in completed})
        noise = SeedNoise(sigma, df, groups, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        save_noise(noise, study_dir)
    return noise
