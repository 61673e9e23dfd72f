"""Which retrainings the fidelity check needs: the trials it retrains (spread over log c), the
seed of each retraining, and the `Task` list `plan_runs` hands to the run loop."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tinyscale.evaluate.fidelity.records import FidelitySettings
from tinyscale.evaluate.fidelity.stats import MIN_RECIPES
from tinyscale.study.plan import trial_seed

DEFAULT_RECIPES = 10  # trials trained longer for the rank check
DEFAULT_FACTOR = 4.0  # the longer training is this many times the study's steps
DEFAULT_REPLICATES = 2  # extra seeds per noise trial (the study's own run makes 3 per recipe)
DEFAULT_NOISE_TRIALS = 4  # trials retrained with other seeds for the noise estimate

# Seeds. The study trains trial n with trial_seed(seed, n) (0..N-1 for the default seed 0) and
# `tinyscale compare` uses seeds 0..N-1, so fidelity runs start far above both:
# FIDELITY_SEED_OFFSET + trial_seed(seed, n) * SEED_SLOTS + slot, slot 0 for the long run and
# 1..replicates for the noise replicates. Every seed is also checked against the study's own.
FIDELITY_SEED_OFFSET = 10**12
SEED_SLOTS = 1000  # so at most SEED_SLOTS - 1 replicates per trial
LONG_SLOT = 0


def spread(trials: Sequence, k: int) -> list:
    """``k`` trials at the empirical quantiles 0, 1/(k-1), ..., 1 of log c (all of them when there
    are no more than ``k``), in order of c. Deterministic: sorted by (ratio, number)."""
    ordered = sorted(trials, key=lambda t: (t.ratio, t.number))
    if k >= len(ordered):
        return ordered
    if k == 1:
        return [ordered[len(ordered) // 2]]
    # Indices round(q (n-1)) for evenly spaced q are distinct when k <= n (steps of at least 1).
    idx = [int(round(i * (len(ordered) - 1) / (k - 1))) for i in range(k)]
    return [ordered[i] for i in idx]


def fidelity_seed(study_seed: int, number: int, slot: int) -> int:
    """The seed of retraining ``slot`` of trial ``number`` (slot 0: long run; 1..: replicates)."""
    if not 0 <= slot < SEED_SLOTS:
        raise ValueError(f"seed slot must be in 0..{SEED_SLOTS - 1}, got {slot}")
    return FIDELITY_SEED_OFFSET + trial_seed(study_seed, number) * SEED_SLOTS + slot


@dataclass(frozen=True)
class Task:
    """One retraining to do: a noise replicate (``kind`` "replicate") or long run ("long") of
    study trial ``number``; also the key its `Run` is stored under."""

    kind: str
    number: int
    seed: int
    steps: int


def _check_settings(recipes, factor, replicates, noise_trials, steps: int, rung: int = 0) -> FidelitySettings:
    """The settings of a check asked for with these numbers (ValueError for a bad one)."""
    for name, value, low in (("recipes", recipes, MIN_RECIPES), ("replicates", replicates, 1),
                             ("noise_trials", noise_trials, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}")
    if replicates >= SEED_SLOTS:
        raise ValueError(f"replicates must be below {SEED_SLOTS}, got {replicates}")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 1:
        raise ValueError(f"factor must be a number of at least 1 (times the study's steps), got {factor!r}")
    return FidelitySettings(recipes, float(factor), replicates, noise_trials, steps, math.ceil(factor * steps), rung)


def plan_runs(trials: Sequence, config, *, recipes: int, factor: float, replicates: int, noise_trials: int,
              all_numbers: Sequence[int] = (), rung: int = 0, steps: int | None = None
              ) -> tuple[list[Task], FidelitySettings]:
    """Which retrainings `measure` needs: replicates of ``noise_trials`` spread trials, then long
    runs of ``recipes`` spread trials. ``trials`` are the runs checked: the study's trials, or a
    study in rungs' runs at ``rung``, ``steps`` long (default the study's steps). ``all_numbers``
    (every trial of the study) is used to check that no seed repeats one the study trained with."""
    steps = config.steps if steps is None else steps
    settings = _check_settings(recipes, factor, replicates, noise_trials, steps, rung)
    tasks = [Task("replicate", t.number, fidelity_seed(config.seed, t.number, k), steps)
             for t in spread(trials, noise_trials) for k in range(1, replicates + 1)]
    tasks += [Task("long", t.number, fidelity_seed(config.seed, t.number, LONG_SLOT), settings.long_steps)
              for t in spread(trials, recipes)]
    study_seeds = {trial_seed(config.seed, n) for n in (*all_numbers, *(t.number for t in trials))}
    clash = sorted({t.seed for t in tasks} & study_seeds)
    if clash or len({t.seed for t in tasks}) != len(tasks):
        raise ValueError(f"fidelity seeds collide with the study's trial seeds ({clash[:3]}); "
                         "a study seed this large is not supported")
    return tasks, settings
