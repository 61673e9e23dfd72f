"""Which fit the design assistant shows and how fresh it is: the study's saved fit or one made
for the page (`FitSource`), the runs the saved fit has not seen (one rule for every command
that warns of a stale fit), the rung its ridge is read at, and the runs its plots draw.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tinyscale.study.trial import StudyConfig, Trial


@dataclass(frozen=True)
class FitSource:
    """Where the fitted curves came from: the study's saved fit, or a fit made for the page."""

    solver: object  # tinyscale.fit.solve.RecipeSolver
    saved: bool  # True: fit.json in the study; False: fitted in memory from the current trials
    n_models: int  # models the GPs were fitted on
    note: str | None  # what the user should know (e.g. the saved fit predates newer trials)


def load_fit(study_dir: str | os.PathLike, trials: list[Trial], config: StudyConfig) -> FitSource:
    """The solver for a study: its saved fit (``tinyscale fit``) when there is one, else a fit
    of the completed trials made now (not written to the study), reading what ``tinyscale fit``
    reads by default: ``trials`` (the study's fit trials), or every run of every rung of a study
    that trains in rungs (`tinyscale.fit.multifidelity.default_rungs`), read from the study.

    Raises ValueError, with the reason in a sentence, when neither is possible (too few
    completed trials, degenerate data).
    """
    from tinyscale.evaluate.fidelity import noise_for_fit
    from tinyscale.fit.gp import FIT_FILE, ScalingFit, fit_scaling
    from tinyscale.fit.multifidelity import default_rungs
    from tinyscale.fit.solve import RecipeSolver

    completed = [t for t in trials if t.state == "completed"]
    saved_problem = None
    if (Path(study_dir) / FIT_FILE).is_file():
        try:
            fit = ScalingFit.load(study_dir)
        except ValueError as exc:
            saved_problem = str(exc)
        else:
            used = len(fit.data.numbers)
            newer, unit = unseen_by_fit(fit, study_dir, completed)
            note = None
            if newer > 0:
                note = f"the saved fit predates {newer} newer completed {unit}(s); run `tinyscale fit {study_dir}` to refit"
            return FitSource(RecipeSolver(fit), saved=True, n_models=used, note=note)
    which = default_rungs(config)
    noise = None
    if which == "fit":
        try:
            noise = noise_for_fit(study_dir)  # the measured seed noise (fidelity.json or seed-noise.json), if any
        except ValueError as exc:  # a damaged file: say so, and let the fit infer the noise
            saved_problem = "; ".join(filter(None, (saved_problem, str(exc))))
        read = completed
    else:  # a measured seed noise is of one rung's runs: a fit across rungs infers its own
        read = _completed_runs(study_dir, which)
    fit = fit_scaling(read, config, source=str(study_dir), seed_noise=noise, from_rungs=which)
    what = "completed trials" if which == "fit" else "completed runs of every rung"
    note = f"fitted in the app from {len(read)} {what} (run `tinyscale fit {study_dir}` to save it)"
    if saved_problem:
        note = f"{saved_problem}. Using a fresh fit instead: {note}"
    return FitSource(RecipeSolver(fit), saved=False, n_models=len(fit.data.numbers), note=note)


def unseen_by_fit(fit, study_dir: str | os.PathLike, fit_trials: list | None = None) -> tuple[int, str]:
    """(how many, "run" or "trial"): the completed work of the study at ``study_dir`` its saved
    ``fit`` never read, the one rule for "the saved fit is stale" (the app and `recipe` say it). A
    fit across rungs read runs, not recipes: a new run at any rung is news to it, even one its fit
    rung lacks. ``fit_trials``: the study's fit trials, when already read."""
    from tinyscale.study.store import Study

    if getattr(fit.surface, "fidelity", None) is not None:
        return len(fit.unseen(_completed_runs(study_dir, "all"))), "run"
    if fit_trials is None:
        with Study.open(study_dir) as study:
            fit_trials = study.fit_trials()
    return len(fit.unseen(fit_trials)), "trial"


def stale_fit_note(study_dir: str | os.PathLike, fit) -> str | None:
    """The command line's note (`recipe`, `export`, `compare`) when the study at ``study_dir``
    has completed runs or trials its saved ``fit`` has not seen; None when it has none, or
    cannot be read (the command's own reading of it says why)."""
    try:
        unseen, unit = unseen_by_fit(fit, study_dir)
    except ValueError:
        return None
    if unseen:
        return (f"the study has {unseen} completed {unit}(s) the fit has not seen: "
                f"run `tinyscale fit {study_dir}` to use them")
    return None


def _completed_runs(study_dir: str | os.PathLike, which_rungs: str) -> list:
    """The runs a fit reading ``which_rungs`` of the study at ``study_dir`` is given."""
    from tinyscale.fit.multifidelity import runs_read
    from tinyscale.study.store import Study

    with Study.open(study_dir) as study:
        return runs_read(study, which_rungs)


def ridge_rung(fit) -> int:
    """The rung a fit's ridge is read at: its surface's target rung when it read every rung, else
    the one rung it read (`tinyscale.fit.gp.ScalingFit`)."""
    across = getattr(fit.surface, "fidelity", None)
    return across.target if across is not None else max(fit.rungs, default=0)


def plotted_runs(source: FitSource, fit_trials: Sequence[Trial], runs: Sequence[Trial] | None) -> list[Trial]:
    """One run per recipe for the plots of the fit's data: ``fit_trials`` (the fit rung's runs,
    or every trial of a uniform study), unless the fit read several rungs of ``runs``; then each
    recipe's completed run at its highest rung, so that every recipe the fit used is drawn."""
    if not runs or len(source.solver.fit.rungs or ()) < 2:
        return list(fit_trials)
    longest: dict[int, Trial] = {}
    for t in runs:
        if t.state == "completed" and (t.number not in longest or t.rung > longest[t.number].rung):
            longest[t.number] = t
    return [longest[n] for n in sorted(longest)]


def fit_models(source: FitSource, trials: list[Trial]) -> list[Trial]:
    """The trials the GPs were fitted on."""
    numbers = set(source.solver.fit.data.numbers)
    return [t for t in trials if t.number in numbers and t.state == "completed"]
