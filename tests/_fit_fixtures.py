"""Synthetic studies for the fit-stage tests: completed trials whose best models follow a known
smooth r(c), d(c), so the Pareto selection and the GP fits have a ground truth to recover.

The "good" trials sit on the true curves (plus log-normal noise on r and d), with w solved
against the real count so their ratio is what we asked; their accuracy rises with log c, so
they form the non-dominated front. "Decoy" trials are random recipes that are strictly worse
than a good trial of no larger cost, so they are dominated by construction.
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace

import numpy as np

from tinyscale.space.cost import cost, ratio
from tinyscale.study.trial import StudyConfig, Trial
from tinyscale.space.width import solve_width

CONFIG = StudyConfig(data="generated", rules="tinynet", base_resolution=32, num_classes=10,
                     window=(0.05, 1.0), r_range=(0.35, 1.0), d_range=(0.35, 1.5))


def r_true(c):
    """Resolution of the best model at ratio c (rises steeply, as the paper finds)."""
    return 0.95 * np.asarray(c, dtype=float) ** 0.22


def d_true(c):
    return 1.1 * np.asarray(c, dtype=float) ** 0.28


def accuracy_curve(c):
    """Accuracy of a model on the front at ratio c."""
    return 0.85 + 0.06 * np.log(np.asarray(c, dtype=float))


def make_trial(number: int, r: float, w: float, d: float, accuracy: float, config: StudyConfig = CONFIG) -> Trial:
    recipe = config.recipe(r, w, d)
    cst = cost(recipe)
    return Trial(number=number, recipe=recipe, state="completed", macs=cst.macs, params=cst.params,
                 ratio=ratio(recipe), accuracy=float(accuracy), loss=1.0, steps=10)


def synthetic_trials(n_good: int = 24, n_decoys: int = 30, noise: float = 0.03, seed: int = 0,
                     config: StudyConfig = CONFIG) -> list[Trial]:
    rng = np.random.default_rng(seed)
    lo, hi = config.window
    trials: list[Trial] = []
    cs = np.exp(np.linspace(math.log(lo), math.log(hi), n_good))
    for c in cs:
        r = float(np.clip(r_true(c) * math.exp(noise * rng.standard_normal()), *config.r_range))
        d = float(np.clip(d_true(c) * math.exp(noise * rng.standard_normal()), *config.d_range))
        sol = solve_width(float(c), r, d, rules=config.rules, base_resolution=config.base_resolution,
                          num_classes=config.num_classes)
        acc = float(accuracy_curve(sol.achieved))
        trials.append(make_trial(len(trials), r, sol.recipe.w, d, acc, config))
    good = list(trials)
    cheapest = min(g.macs for g in good)
    while len(trials) < n_good + n_decoys:
        r = float(rng.uniform(*config.r_range))
        d = float(rng.uniform(*config.d_range))
        w = float(rng.uniform(0.3, 1.2))
        t = make_trial(len(trials), r, w, d, 0.0, config)
        if t.macs < cheapest:
            continue  # a decoy cheaper than every good model could not be dominated
        # Strictly worse than every good model that costs no more: dominated by construction.
        best_cheaper = max(g.accuracy for g in good if g.macs <= t.macs)
        acc = best_cheaper - 0.05 - 0.1 * rng.random()
        trials.append(make_trial(t.number, r, w, d, acc, config))
    return trials


def write_study(directory, trials: list[Trial], config: StudyConfig = CONFIG):
    """A real study directory holding these trials (through the study engine's public API)."""
    from tinyscale.study.store import Study

    study = Study.create(directory, config)
    for t in trials:
        study.start_trial(t.number, t.recipe, seed=t.number)
        study.finish_trial(t.number, SimpleNamespace(accuracy=t.accuracy, loss=t.loss, steps=t.steps,
                                                     images_seen=None, train_seconds=0.1,
                                                     eval_seconds=0.01, images_per_second=None))
    study.close()
    return directory


@lru_cache(maxsize=None)
def fitted(seed: int = 1):
    """The paper's (Pareto) fit of `synthetic_trials(seed=seed)`, whose selected models follow
    the known r(c), d(c), shared by every test module in the session (fits take seconds on a
    loaded machine; nothing mutates a fit)."""
    from tinyscale.fit.gp import fit_scaling

    return fit_scaling(synthetic_trials(seed=seed), CONFIG, method="pareto", k=20)
