"""Running a study: `run_study` opens (or resumes) the study under its lock, asks its sampler
for recipes whenever workers are free, and hands the training to the one run loop
(`tinyscale.study.runner`); each result is stored as one transaction as soon as it arrives.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

from tinyscale.limits import MAX_TRIALS
from tinyscale.storage import SQLITE_SIDE_FILES, TRIALS_FILE, progress_path, trunk_path
from tinyscale.study.halving import (MAX_RUNGS, MIN_PAIRS, SETTLED_RHO, Promotion, by_rung, choose_rungs,
                                     promotions, rung_steps, settled_rung)
from tinyscale.study.ordering import CLOCK_META, StepClock, unfinished
from tinyscale.study.plan import StudyPlan, resolve_data, trial_seed
from tinyscale.study.runner import Job, RunResult, run_jobs
from tinyscale.study.store import (CHOSEN_RUNGS, CONFIG_FILE, LOCK_FILE, Study, StudyLock, StudyProgress,
                                   config_differences)
from tinyscale.study.timing import WORKERS_META, RunCost, duration, study_budget_left, timed_runs
from tinyscale.study.trial import StudyConfig, box_widening


def open_or_create(directory: str | os.PathLike, config: StudyConfig | None, *, resume: bool) -> Study:
    """The study to run: a new one, or (``resume``) the existing one, whose config must equal
    ``config`` when one is given (ValueError listing the differing fields otherwise)."""
    directory = Path(directory)
    exists = (directory / CONFIG_FILE).exists()
    if exists and not resume:
        raise ValueError(f"{directory} already holds a study; pass --resume to continue it")
    if not exists:
        if config is None:
            raise ValueError(f"no study at {directory} to resume")
        return Study.create(directory, replace(config, data=resolve_data(config.data)))
    study = Study.open(directory)
    if config is not None and config.data != study.config.data and resolve_data(config.data) == resolve_data(
            study.config.data):
        config = replace(config, data=study.config.data)  # the same dataset, spelled another way
    if config is not None and config != study.config:
        try:
            widened = box_widening(study.config, config)
        except ValueError:
            study.close()
            raise
        if widened:
            entry = study.widen_box(config)
            print(f"study: the sampled box widened at trial {entry['from_trial']} ("
                  + "; ".join(f"{k}: {a[0]:g},{a[1]:g} -> {b[0]:g},{b[1]:g}" for k, (a, b) in widened.items())
                  + "): the trials so far lie inside it; new recipes are drawn from the wider box", flush=True)
            return study
        diffs = "; ".join(config_differences(study.config, config))
        study.close()
        raise ValueError(f"the study at {directory} was created with a different configuration ({diffs})")
    return study




def _open_locked(directory: Path, config: StudyConfig | None, resume: bool) -> Study:
    """`open_or_create` under the study's lock, so two processes never run one study. A
    directory created here is removed again if the study cannot be opened."""
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    lock = StudyLock.acquire(directory)
    try:
        study = open_or_create(directory, config, resume=resume)
    except BaseException:
        lock.release()
        if created:
            (directory / LOCK_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    study.hold(lock)
    return study


def run_study(
    directory: str | os.PathLike,
    config: StudyConfig | None = None,
    *,
    trials: int | None = None,
    budget_minutes: float | None = None,
    budget_steps: int | None = None,
    resume: bool = False,
    executor=None,
    progress: bool = True,
    retry_failed: bool = False,
    until: float = 1.0,
    meta: dict | None = None,
) -> Study:
    """Run (or resume) a study until ``trials`` trials have finished, ``budget_minutes`` of
    study time have passed or ``budget_steps`` step-units (training steps summed over every
    run, of every rung) are spent, whichever comes first (the stored budget when not given).
    A halving study with ``rungs`` None chooses its rungs from these budgets
    (`tinyscale.study.halving.choose_rungs`; a budget in minutes once `MIN_PAIRS` rung-0 runs
    have measured what a run costs) and stores the choice.

    Whenever workers are free the sampler proposes recipes for the lowest free trial numbers
    (one per free worker); each proposal is stored before it trains. Numbers already finished
    are skipped, numbers left ``pending`` or ``running`` by an interruption are trained again as
    stored (``retry_failed``: failed ones too, e.g. after a fault of the machine rather than the
    recipe). An ordered study (``promotion="ordered"``) takes each decision on its step clock
    (`tinyscale.study.ordering.StepClock`, stored with the study), so the finishing order of
    its runs does not change it. Each result is stored by this (driver) process as soon as it
    arrives. Only one process runs a study at a time (its lock, `StudyLock`, is held until the
    returned study is closed). Returns the open `Study`; its ``stop_reason`` says why it ended before its budget,
    if it did. ``until`` < 1 stops it once that share of each budget is spent (the box check's
    halfway point, `tinyscale.commands.study.run_with_box_check`); the budgets stored, and the
    rungs chosen from them, stay whole. ``meta`` entries the study lacks are stored as it opens,
    before any run (a plan that an interrupted study must resume into).
    """
    from tinyscale.study.samplers import make_sampler

    for name, value in (("trials", trials), ("budget_minutes", budget_minutes), ("budget_steps", budget_steps)):
        if value is not None and (isinstance(value, bool) or not 0 < value < math.inf):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if budget_steps is not None and budget_steps != int(budget_steps):
        raise ValueError(f"budget_steps must be a whole number of steps, got {budget_steps!r}")
    if trials is not None and trials > MAX_TRIALS:
        raise ValueError(f"trials must be at most {MAX_TRIALS:,}, got {trials!r}")
    # Every check that can fail runs before the directory is created, so a typo leaves nothing
    # behind to trip over on the next try.
    plan = StudyPlan.resolve(config) if config is not None else None
    if config is not None and budget_steps is not None and budget_steps < config.steps:
        raise ValueError(f"a budget of {budget_steps:,} step-units buys no run: one run at rung 0 trains "
                         f"{config.steps:,} steps")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} exists and is not a directory")
    created = not directory.exists()
    new = not (directory / CONFIG_FILE).exists()
    study = _open_locked(directory, config, resume)
    try:
        target, budget, step_budget = _budget(study, trials, budget_minutes, budget_steps, resume)
        for key, value in (meta or {}).items():
            if study.get_meta(key) is None:
                study.set_meta(key, value)
        if not 0 < until <= 1:
            raise ValueError(f"until must be a share of the budget in (0, 1], got {until!r}")
        if plan is None:  # resumed without a config: check the stored one before workers start
            plan = StudyPlan.resolve(study.config, space=False)
        _check_trainer(study, plan)
        sampler = make_sampler(study.config)
        study.set_meta(WORKERS_META, executor.slots if executor is not None else 1)  # `trials`' time left
    except BaseException:
        study.close()
        raise
    config = study.config
    stop_target = None if target is None else max(1, math.ceil(target * until))
    halving = config.schedule == "halving"
    continuing = halving and plan.train.trunk_steps is not None  # promoted runs continue from trunks
    slots = executor.slots if executor is not None else 1  # what a budget in minutes buys: minutes x workers
    retrain = ("pending", "running", "failed") if retry_failed else ("pending", "running")
    kept = sum(1 for t in study.trials() if t.state not in retrain)  # finished and not to be retrained
    study.stop_reason = None  # set when the sampler says the space holds nothing new
    elapsed_before = float(study.get_meta("elapsed_seconds", 0.0))
    session_start = time.monotonic()
    in_flight: set[tuple[int, int]] = set()  # (trial number, rung)
    ended: set[tuple[int, int]] = set()  # runs that finished in this run
    said: list[str] = []  # the schedule's last news, printed when it changes

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - session_start

    def run_steps(rung: int) -> int:
        return rung_steps(config.steps, config.eta, rung)

    def train_config(rung: int):
        train = plan.train if rung == 0 else plan.train.with_(steps=run_steps(rung))
        # Continuing (wsd): rung 0's warm-up at every rung, so every rung's trunk lies on one path.
        return train.with_(warmup=plan.train.warmup_steps) if continuing else train

    def cost_steps(rung: int) -> int:
        """The steps a run at ``rung`` trains: all of them, or those after its parent's trunk."""
        return run_steps(rung) - (train_config(rung - 1).trunk_steps if continuing and rung else 0)

    def step_units_left() -> float:
        """What the step budget still allows (inf without one): finished runs that will not be
        retrained (the steps each trained) and the runs in flight are spent."""
        if step_budget is None:
            return math.inf
        stop = step_budget * until
        spent = sum(run_steps(t.rung) - t.start_step for t in study.runs()
                    if t.state not in retrain or (t.number, t.rung) in ended)
        return stop - spent - sum(cost_steps(rung) for _, rung in in_flight)

    def job(trial, rung: int) -> Job:
        seed = trial_seed(config.seed, trial.number)  # a promoted run keeps its recipe's seed: paired
        train = train_config(rung)
        study.start_trial(trial.number, trial.recipe, seed, retry_failed=retry_failed, rung=rung,
                          device=train.device, precision=train.precision)
        in_flight.add((trial.number, rung))
        if clock is not None and not clock.knows((trial.number, rung)):  # a run retrained keeps its clock time
            clock.dispatch((trial.number, rung))
            study.set_meta(CLOCK_META, clock.to_dict())
        top = config.rungs if config.rungs is not None else study.get_meta(CHOSEN_RUNGS, MAX_RUNGS)
        return Job((trial.number, rung), trial.recipe, seed, train,
                   resume_from=str(trunk_path(directory, trial.number, rung - 1)) if continuing and rung else None,
                   save_trunk=str(trunk_path(directory, trial.number, rung)) if continuing and rung < top else None,
                   progress=str(progress_path(directory, trial.number, rung)))

    def next_trials(free: int, log) -> list[Job]:
        """Up to ``free`` runs to train now: first those a previous run proposed or started but
        did not finish (trained as stored), then promotions (halving schedule), then new
        proposals, stored before they train. An ordered study takes its decisions one at a
        time on its step clock (`tinyscale.study.ordering`), each reading what has finished
        there, and takes none while one of those runs is still training."""
        if budget is not None and elapsed() >= budget * 60 * until:
            return []
        if halving and config.rungs is None and study.get_meta(CHOSEN_RUNGS) is None:
            _choose_rungs(study, target, budget, step_budget, slots, log, cost_steps)
        # Runs that finished in this run are not retried again (a retried run that fails again
        # stays failed).
        runs = study.runs()
        todo = [(t, t.rung) for t in runs if t.state in retrain and (t.number, t.rung) not in in_flight
                and (t.number, t.rung) not in ended and (stop_target is None or t.number < stop_target)][:free]
        if clock is None:
            return [job(trial, rung) for trial, rung in decide(free, todo, step_units_left(), log)]
        jobs = [job(trial, rung) for trial, rung in affordable(todo, step_units_left())[0]]
        # Runs not finished in reality: those stored as not yet done (left by an interruption,
        # say; read above, before the retrains among them joined the runs in flight) and those
        # in flight, which the jobs dispatched below join.
        stored_open = {(t.number, t.rung) for t in runs if t.state not in ("completed", "failed")}
        while len(jobs) < free:
            seen = clock.due()
            if unfinished(seen, stored_open | in_flight):
                break  # the decision reads a run still training: this worker waits for it
            chosen = decide(1, [], step_units_left(), log, seen)
            if chosen:
                jobs.append(job(*chosen[0]))
            elif clock.wait():
                study.set_meta(CLOCK_META, clock.to_dict())
            else:
                break
        return jobs

    def affordable(todo: list, left: float) -> tuple[list, float]:
        """The runs of ``todo`` the step budget pays for, in priority order, and what is left."""
        paid = []
        for trial, rung in todo:
            if cost_steps(rung) <= left:
                paid.append((trial, rung))
                left -= cost_steps(rung)
        return paid, left

    def decide(free: int, todo: list, left: float, log, seen: set | None = None) -> list:
        """``todo`` (runs to train again), then promotions, then new proposals, up to ``free``
        and what the step budget allows. ``seen``: the runs the decision may read (an ordered
        study's step clock; None: every run)."""
        trials = study.trials()
        if halving and len(todo) < free:
            todo += [(study.trial(p.number), p.rung) for p in _promotions(study, log, said, seen)][:free - len(todo)]
        todo, left = affordable(todo, left)
        if left < math.inf:  # new recipes train at rung 0: as many as the step budget still allows
            free = min(free, len(todo) + int(left // config.steps))
        if len(todo) < free and study.stop_reason is None:
            taken = {t.number for t in trials}
            numbers: list[int] = []
            number = 0
            while len(numbers) < free - len(todo) and (stop_target is None or number < stop_target):
                if number not in taken:
                    numbers.append(number)
                number += 1
            if numbers:
                shown = trials if seen is None else [t if (t.number, 0) in seen else replace(t, state="running")
                                                     for t in trials]  # what the clock has not finished is in flight
                batch = sampler.propose(shown, numbers, log=log)
                study.add_proposals(batch.proposals)
                if batch.note:
                    log(batch.note)
                if batch.stop_reason:
                    study.stop_reason = batch.stop_reason
                    log(f"study: stopping early: {batch.stop_reason}")
                todo += [(study.trial(p.number), 0) for p in batch.proposals]
        return todo

    ratios: dict[int, float] = {}  # the recipes' FLOPs ratios, what a run's clock time needs

    def clock_size(key: tuple[int, int]) -> tuple[int, float]:
        number, rung = key
        if number not in ratios:
            ratios.update((t.number, t.ratio) for t in study.trials())
        if number not in ratios:
            raise ValueError(f"the study's {CLOCK_META} names trial {number}, which the study does not hold")
        return cost_steps(rung), ratios[number]

    # An ordered study's clock, replayed from its stored events. A uniform study sampling the
    # stream reads no result to decide, so it needs none (its workers need not wait).
    ordered = config.promotion == "ordered" and (halving or config.sampler != "sobol")
    try:
        stored_clock = study.get_meta(CLOCK_META) if ordered else None
        clock = None if not ordered else (
            StepClock(slots, clock_size, exponent=config.clock_exponent) if stored_clock is None
            else StepClock.from_dict(stored_clock, clock_size))
    except BaseException:
        study.close()
        raise

    def record(job: Job, run: RunResult) -> str:
        number, rung = job.key
        study.finish_trial(number, run, rung=rung)
        # A trunk is read once (by the run at the next rung); a failed run is never promoted.
        for used in ([job.resume_from] if run.completed else []) + ([] if run.completed else [job.save_trunk]):
            if used:
                with contextlib.suppress(OSError):  # gone or unreachable: nothing to free
                    Path(used).unlink()
        in_flight.discard(job.key)
        ended.add(job.key)
        study.set_meta("elapsed_seconds", elapsed())
        p = study.progress()
        left = study_budget_left(study, slots, progress=p, until=until, elapsed=elapsed(),
                                 step_units=None if step_budget is None else step_units_left())
        return _postfix(study, p) + ("" if not left else f"; {duration(left)} left")  # 0: the budget is spent

    def release(jobs: list[Job]) -> None:
        # The runs in flight go back to pending, not left looking as if they were still
        # running; a resume trains them as stored.
        with contextlib.suppress(sqlite3.Error):  # the store itself failed: a resume treats 'running' alike
            for rung in {job.key[1] for job in jobs}:
                study.release_trials([job.key[0] for job in jobs if job.key[1] == rung], rung=rung)

    try:
        run_jobs(next_trials, record, data=plan.data, executor=executor, release=release, progress=progress,
                 desc="study", unit="run" if halving else "trial", total=None if halving else target,
                 initial=kept if not halving else len([t for t in study.runs() if t.state not in retrain]),
                 postfix=_postfix(study))
        if new and study.stop_reason and not study.trials():
            # The space held nothing to train (a window too narrow for any network, say): a new
            # study without a single trial is not left behind to trip over on the next try.
            study.close()
            _remove_new_study(directory, created)
            raise ValueError(f"no trial of the study completed: {study.stop_reason}")
    except BaseException:
        study.close()
        raise
    return study


def _remove_new_study(directory: Path, created: bool) -> None:
    """Remove the files a new study made in ``directory`` (and the directory, if made for it)."""
    for name in (CONFIG_FILE, TRIALS_FILE, *(TRIALS_FILE + s for s in SQLITE_SIDE_FILES), LOCK_FILE):
        (directory / name).unlink(missing_ok=True)
    if created:
        with contextlib.suppress(OSError):
            directory.rmdir()


def _budget(study: Study, trials: int | None, budget_minutes: float | None, budget_steps: int | None,
            resume: bool) -> tuple[int | None, float | None, int | None]:
    """Store a newly given budget and return the study's (target trials, minutes, step-units)."""
    done = study.progress().finished
    if trials is not None and resume and trials < done:
        raise ValueError(f"the study already has {done} finished trials; --trials {trials} asks for fewer "
                         f"(give more than {done} to run more)")
    if trials is not None:
        study.set_meta("target_trials", int(trials))
    if budget_minutes is not None:
        study.set_meta("budget_minutes", float(budget_minutes))
    if budget_steps is not None:
        study.set_meta("budget_steps", int(budget_steps))
    target, budget, steps = (study.get_meta(k) for k in ("target_trials", "budget_minutes", "budget_steps"))
    if target is None and budget is None and steps is None:
        raise ValueError("give a budget: a number of trials, minutes or step-units")
    return target, budget, steps


def _choose_rungs(study: Study, target: int | None, budget: float | None, step_budget: int | None, slots: int,
                  log, trained_steps) -> None:
    """A halving study with rungs auto: choose its rungs from its budgets and store the choice,
    or wait (a budget in minutes) until `MIN_PAIRS` rung-0 runs have measured what a run costs."""
    from tinyscale.limits import MAX_STEPS

    c = study.config
    cost = None
    if budget is not None:
        measured = timed_runs(study.trials("completed"))
        if len(measured) < MIN_PAIRS:
            return
        cost = RunCost.measured(measured)
    rungs = choose_rungs(steps=c.steps, eta=c.eta, max_steps=MAX_STEPS, trials=target, step_budget=step_budget,
                         worker_seconds=None if budget is None else budget * 60 * slots, cost=cost,
                         trained_steps=trained_steps)
    study.set_meta(CHOSEN_RUNGS, rungs)
    measured_by = "" if cost is None else f" (a run measured at {cost.seconds_per_step * 1000:.1f} ms a step)"
    if rungs:
        log(f"study: {rungs} rung{'s' if rungs > 1 else ''} above rung 0, the top training "
            f"{rung_steps(c.steps, c.eta, rungs):,} steps: the most whose {MIN_PAIRS} recipes at the top (and "
            f"{c.eta}x as many below) fit the budget{measured_by}")
    else:
        log(f"study: the budget fits no rung of {MIN_PAIRS} recipes at {c.steps * c.eta:,} steps{measured_by}: "
            f"every recipe trains {c.steps:,} steps at rung 0")


def _check_trainer(study: Study, plan: StudyPlan) -> None:
    """Record the resolved trainer settings on first run; on resume, refuse different ones.

    The study config names only some trainer settings; the rest are the trainer's defaults,
    which may change between tinyscale versions. Trials trained under different settings are
    not comparable, so a resumed study must train exactly as it started.
    """
    stored = study.get_meta("trainer")
    if stored is None:
        study.set_meta("trainer", plan.trainer_record())
        return
    plan.check_trainer(stored, f"the study at {study.directory}",
                       "resume it with the tinyscale version that started it, or start a new study")


def _postfix(study: Study, progress: StudyProgress | None = None) -> str:
    """The bar's words: the best accuracy so far and the failures; a study in rungs counts each
    rung's completed runs and gives each rung's best (rung 0's alone would stand still at its
    brief runs' level while the longer rungs, the ones the fit reads, climb past it). ``progress``:
    the study's, when the caller has just read it."""
    p = study.progress() if progress is None else progress
    failed = f"failed {p.counts.get('failed', 0)}"
    if study.config.schedule != "halving":
        return f"best acc {'-' if p.best_accuracy is None else f'{p.best_accuracy:.3f}'}, {failed}"
    rungs = study.rung_summary()
    bests = "/".join("-" if r.best is None else f"{r.best:.3f}" for r in rungs)
    return f"rungs {'/'.join(str(r.completed) for r in rungs)}, best acc {bests} by rung, {failed}"


def _promotions(study: Study, log, said: list[str], seen: set | None = None) -> list[Promotion]:
    """The promotions due now, reading the completed runs in ``seen`` (None: all); logs the stop
    rule's verdict when it changes."""
    c = study.config
    results = [r for r in study.rung_results() if seen is None or (r.number, r.rung) in seen]
    started: dict[int, set[int]] = {}
    for t in study.rung_runs():
        started.setdefault(t.rung, set()).add(t.number)
    settled = settled_rung(by_rung(results), study.top_rung)
    news = "" if settled is None else (
        f"study: rung {settled} ({rung_steps(c.steps, c.eta, settled):,} steps) ranks as rung {settled + 1} does "
        f"(rho >= {SETTLED_RHO}); no longer lengthening, more recipes instead")
    if news and news not in said:
        said.append(news)
        log(news)
    return promotions(results, started, eta=c.eta, top=study.top_rung)
