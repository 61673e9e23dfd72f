"""How long runs take, from a study's own: a forecast for the long commands that train after it.

A study stores what each of its runs cost (seconds of training and of evaluation). On one
device a training step's time grows about as a power of the network's FLOPs ratio c (about
c^0.5 on a CPU core: `tinyscale.study.ordering`), and at equal c deeper networks and larger
inputs cost more (more layers, larger maps: on Imagenette's halving study the step time went as
c^0.49 d^0.29 r^0.62, residual sd 0.21 in log against 0.30 for c alone), so a plane through the
runs in log space predicts a run of any recipe and length on the machine the study ran on.
`compare` uses it to say, before hours of training, about how long they will take, and after
each run how long is left, scaled by what the runs it has finished really took (`Forecast`):
another worker count or a busy machine changes the speed, and the finished runs measure that.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import numpy as np

MIN_RUNS = 3  # runs a plane through log time needs before it predicts anything
MIN_SPREAD = 0.05  # an input whose log varies less than this over the runs is left out of the plane


def timed_runs(runs: Iterable) -> list:
    """The completed ``runs`` (a study's `Trial`s) that measured their speed: steps trained past
    their start, a positive training time and a positive FLOPs ratio, all finite. Every speed
    said here (the plane, the step exponent, a budget's time left, what a run costs) reads these."""
    return [t for t in runs if t.state == "completed" and t.ratio and math.isfinite(t.ratio) and t.ratio > 0
            and t.steps and t.steps > t.start_step
            and t.train_seconds and math.isfinite(t.train_seconds) and t.train_seconds > 0]


@dataclass(frozen=True)
class RunTimeModel:
    """log(seconds a training step) = step . (1, log c, log d, log r), and log(seconds of
    evaluation) = evaluation . (the same), fitted on ``runs`` runs trained on ``device``
    ("cpu" or "cuda"); an input that did not vary over the runs has coefficient 0."""

    step: tuple[float, float, float, float]
    evaluation: tuple[float, float, float, float]
    runs: int
    device: str

    def seconds(self, c: float, r: float, d: float, steps: int) -> float:
        """A run's predicted seconds: ``steps`` training steps of the recipe (``r``, ``d``) at
        FLOPs ratio ``c``, then its evaluation."""
        x = np.array([1.0, math.log(c), math.log(d), math.log(r)])
        return steps * math.exp(float(np.dot(self.step, x))) + math.exp(float(np.dot(self.evaluation, x)))

    @classmethod
    def fit(cls, runs: Iterable, device: str) -> RunTimeModel | None:
        """The model of the completed ``runs`` (a study's `Trial`s) trained on ``device``'s kind
        ("cpu", or "cuda" for any GPU); None when fewer than `MIN_RUNS` of them measured their time."""
        kind = device_kind(device)
        rows = [(t.ratio, t.recipe.d, t.recipe.r, t.train_seconds / (t.steps - t.start_step), max(t.eval_seconds, 1e-3))
                for t in timed_runs(runs) if device_kind(t.device or "cpu") == kind
                and t.eval_seconds is not None and math.isfinite(t.eval_seconds)]
        if kind is None or len(rows) < MIN_RUNS:
            return None
        data = np.log(np.asarray(rows, dtype=np.float64))
        inputs = np.column_stack([np.ones(len(data)), data[:, :3]])
        return cls(_plane(inputs, data[:, 3]), _plane(inputs, data[:, 4]), len(rows), kind)


def step_exponent(runs: Iterable) -> tuple[float, int] | None:
    """(b, n): a training step's time as c^b, fitted on the ``n`` completed runs that measured it
    (what an ordered study's clock charges per step is c^`CLOCK_EXPONENT`); None with fewer than
    `MIN_RUNS`, or when their c does not vary."""
    rows = [(t.ratio, t.train_seconds / (t.steps - t.start_step)) for t in timed_runs(runs)]
    if len(rows) < MIN_RUNS:
        return None
    data = np.log(np.asarray(rows, dtype=np.float64))
    if np.ptp(data[:, 0]) < MIN_SPREAD:
        return None
    return _plane(np.column_stack([np.ones(len(data)), data[:, 0]]), data[:, 1])[1], len(rows)


@dataclass(frozen=True)
class RunCost:
    """What one run costs on average, measured on a study's first rung-0 runs (the rungs a
    budget in minutes buys, `tinyscale.study.halving.choose_rungs`): seconds per training step
    and the seconds it spends outside training (evaluation), which do not grow with the rung."""

    seconds_per_step: float
    fixed_seconds: float

    def at(self, steps: int) -> float:
        return self.seconds_per_step * steps + self.fixed_seconds

    @classmethod
    def measured(cls, runs: list) -> RunCost:
        """The mean over ``runs`` (`timed_runs`)."""
        return cls(sum(t.train_seconds / (t.steps - t.start_step) for t in runs) / len(runs),
                   sum(t.eval_seconds or 0.0 for t in runs) / len(runs))


def _plane(inputs: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    """Least squares y = inputs . coef over the inputs that vary (the others' coefficients 0)."""
    used = [0] + [k for k in range(1, inputs.shape[1]) if np.ptp(inputs[:, k]) >= MIN_SPREAD]
    coef = np.zeros(inputs.shape[1])
    coef[used] = np.linalg.lstsq(inputs[:, used], y, rcond=None)[0]
    return tuple(float(v) for v in coef)


def forecast_jobs(study_runs: Iterable | None, jobs: list, executor) -> Forecast:
    """How long ``jobs`` (`tinyscale.study.runner.Job`s) will take on ``executor`` (None: one
    local worker), predicted from ``study_runs`` (a study's completed `Trial`s) on that kind of
    device (None, or none usable: only the runs that finish will tell). A job resumed from its
    progress file has only its steps past its heartbeat's left to train."""
    from tinyscale.space.cost import ratio
    from tinyscale.train.heartbeat import heartbeat_path, read_heartbeat

    device = getattr(executor, "device", None) or "cpu"
    try:
        model = None if study_runs is None else RunTimeModel.fit(study_runs, device)
    except np.linalg.LinAlgError:  # a forecast is never worth a failed command: without one,
        model = None  # only the runs that finish tell the speed
    predicted, left = {}, {}
    for job in jobs:
        if model is None:
            predicted[job.key] = 1.0
            continue
        c, steps = ratio(job.recipe), job.train.steps
        predicted[job.key] = model.seconds(c, job.recipe.r, job.recipe.d, steps)
        beat = read_heartbeat(heartbeat_path(job.progress)) if getattr(job, "progress", None) else None
        if beat is not None and beat[1] == steps and beat[0] > 0:
            left[job.key] = model.seconds(c, job.recipe.r, job.recipe.d, steps - beat[0])
    return Forecast(predicted, getattr(executor, "slots", 1), modelled=model is not None, left=left)


def budget_left(finished: Iterable, slots: int, *, trials: int | None = None, step_units: float | None = None,
                seconds: float | None = None) -> float | None:
    """Wall seconds until a study spends the first of its budgets that runs out: ``seconds``
    left of a budget in minutes, ``step_units`` left of a step budget or ``trials`` left of a
    trial budget (each None when the study has none), the last two at the speed of its
    ``finished`` runs (`Trial`s) over ``slots`` workers; None when nothing can be said yet."""
    measured = [(t.steps - t.start_step, t.train_seconds + (t.eval_seconds or 0.0)) for t in timed_runs(finished)]
    estimates = [] if seconds is None else [max(0.0, seconds)]
    if measured:
        took = sum(s for _, s in measured)
        if step_units is not None and math.isfinite(step_units):
            estimates.append(max(0.0, step_units) * took / sum(n for n, _ in measured) / max(1, slots))
        if trials is not None:
            estimates.append(max(0, trials) * took / len(measured) / max(1, slots))
    return min(estimates) if estimates else None


WORKERS_META = "workers"  # the study's meta key: how many workers its last run had


def study_time_left(study) -> tuple[float | None, int]:
    """(wall seconds until the open ``study`` spends its budget, or None when that cannot be said
    or nothing is left; the workers that speed assumes: its last run's): `study_budget_left` as
    its last run would go on, for `trials` while the study runs or before it resumes."""
    workers = study.get_meta(WORKERS_META)
    workers = workers if isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1 else 1
    p = study.progress()
    if not p.budget_open and not (p.budget_minutes and p.elapsed_seconds < p.budget_minutes * 60):
        return None, workers
    return (study_budget_left(study, workers, progress=p) or None), workers


def study_budget_left(study, workers: int, *, progress=None, until: float = 1.0, elapsed: float | None = None,
                      step_units: float | None = None) -> float | None:
    """`budget_left` of the open ``study``'s own budgets over ``workers``: the share ``until`` of
    each, with ``elapsed`` seconds spent (None: as stored) and ``step_units`` left (None: the
    stored budget less the steps trained, by the finished runs and, as far as their heartbeats
    say, by those begun; the study's driver counts its runs in flight as spent)."""
    p = study.progress() if progress is None else progress
    elapsed = p.elapsed_seconds if elapsed is None else elapsed
    runs = study.runs()
    done_units, done_runs = _underway(study.directory, runs)  # what the runs begun have trained
    if step_units is None and p.budget_steps:
        step_units = p.budget_steps * until - p.steps_spent - done_units
    config = study.config
    halving = config.schedule == "halving"  # its trial target counts recipes, not the runs left
    if halving and p.target_trials:  # the work its recipes are planned to take, in step-units
        planned = halving_step_units(max(1, math.ceil(p.target_trials * until)), config.steps, config.eta,
                                     study.top_rung) - p.steps_spent - done_units
        step_units = planned if step_units is None else min(step_units, planned)
    return budget_left([t for t in runs if t.state == "completed"], workers, step_units=step_units,
                       trials=None if halving or not p.target_trials
                       else max(1, math.ceil(p.target_trials * until)) - p.finished - done_runs,
                       seconds=None if not p.budget_minutes else p.budget_minutes * 60 * until - elapsed)


def _underway(directory, runs: Iterable) -> tuple[float, float]:
    """(step-units, runs' worth) the ``runs`` begun and not finished have trained, from their
    heartbeats: a run in flight, or one interrupted that will continue from its progress file."""
    from tinyscale.storage import progress_path
    from tinyscale.train.heartbeat import heartbeat_path, read_heartbeat

    units = fraction = 0.0
    for t in runs:
        if t.state in ("completed", "failed"):
            continue
        beat = read_heartbeat(heartbeat_path(progress_path(directory, t.number, t.rung)))
        if beat is not None and beat[0] > 0:
            units += beat[0] - min(t.start_step or 0, beat[0])
            fraction += beat[0] / beat[1]
    return units, fraction


def halving_step_units(recipes: int, steps: int, eta: int, top: int) -> int:
    """The step-units a study in rungs plans for ``recipes`` recipes: ASHA's quotas, the best
    ``recipes // eta**k`` at each rung k up to ``top``, each run ``steps * eta**k``. About what it
    takes: a run continued from its trunk costs less, asynchronous promotion can take a few more,
    and a stop rule that settles ends the lengthening early."""
    return sum((recipes // eta ** k) * steps * eta ** k for k in range(top + 1))


def device_kind(device: str) -> str | None:
    """"cpu" or "cuda" (any GPU), the kinds whose runs time alike; None for anything else."""
    if device == "cpu":
        return "cpu"
    return "cuda" if device == "cuda" or device.startswith("cuda:") else None


@dataclass
class Forecast:
    """How long the runs of one command have left: each run's ``predicted`` seconds (a
    `RunTimeModel`'s, or 1 each without one: then only the runs that finish tell the speed), or
    ``left`` of them for a run resumed part-way, scaled by what the finished runs really took over
    what was predicted for them (a resumed run reports all its attempts' seconds, so the scale
    compares whole runs), over ``slots`` workers."""

    predicted: dict[Hashable, float]
    slots: int
    modelled: bool = True
    left: dict[Hashable, float] = field(default_factory=dict)
    _done: set = field(default_factory=set, repr=False)
    _took: float = field(default=0.0, repr=False)
    _foreseen: float = field(default=0.0, repr=False)

    def finished(self, key: Hashable, seconds: float | None) -> None:
        """Run ``key`` finished after ``seconds`` of work (None: not measured)."""
        if key in self._done or key not in self.predicted:
            return
        self._done.add(key)
        if seconds is not None and math.isfinite(seconds) and seconds > 0:
            self._took += seconds
            self._foreseen += self.predicted[key]

    def seconds_left(self) -> float | None:
        """Wall seconds the runs not yet finished need; None before a model or a finished run
        says anything of the speed."""
        if self._foreseen > 0:
            scale = self._took / self._foreseen
        elif self.modelled:
            scale = 1.0
        else:
            return None
        left = sum(self.left.get(key, s) for key, s in self.predicted.items() if key not in self._done)
        return scale * left / max(1, self.slots)

    def words(self) -> str:
        """"about 2 h 10 min left" (or "" when nothing is known yet, or nothing is left)."""
        left = self.seconds_left()
        if left is None or not self.predicted or len(self._done) == len(self.predicted):
            return ""
        return f"{duration(left)} left"

    def upfront(self) -> str:
        """Before any run finished: "about 5 h 10 min" ("" without a model)."""
        left = self.seconds_left() if self.modelled and self.predicted else None
        return "" if left is None else duration(left)


def duration(seconds: float) -> str:
    """A forecast's rounding of a duration: "under a minute", "about 12 min", "about 2 h 10 min"."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"about {minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h" + (f" {minutes} min" if minutes else "")
