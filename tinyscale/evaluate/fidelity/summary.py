"""The pure part of the fidelity check: numbers in, `Fidelity` out (`summarize`), and how a model
fitted on the brief runs ranks the check's recipes against their long runs (`model_agreement`).

A study trains every sampled recipe briefly and once; the Pareto selection and the GP fits then
trust those single brief accuracies. The check measures how far that trust is earned:

* **seed noise** — a few completed trials, spread over the FLOPs range, are trained again with
  other seeds at the study's own steps; the spread of each recipe's accuracies (the study's own
  run counts as one of them) is that recipe's σ, pooled into one σ.
* **rank fidelity** — about ten completed trials spread over the window are trained
  `factor` × longer, each with a fresh seed (a shared seed would correlate the noise of the
  two runs and flatter the agreement); Spearman's ρ between the brief and the long accuracies
  says whether the brief runs rank recipes as longer training does. FBNetV3 stops refining its
  proxy once ρ ≥ 0.92; we call ρ ≥ 0.8 good. ``rho_matched`` is ρ after removing each run
  set's linear trend in log2 c: the ranking among recipes *at matched cost* (reported only;
  ten points make it noisy).
* **signal** — over all completed trials: the slope of accuracy against log2 c with its
  standard error, the residual spread at matched c (sd of the residuals of a quadratic in
  log2 c, so a bend in the accuracy curve is not mistaken for recipe signal) in units of σ, and
  the fraction of the accuracy variance beyond seed noise, max(0, 1 − σ² / var(acc)).

The recipe the GPs learn is the split of a budget into r, d (and w) *at a given c*, so the
residual spread at matched c is the number that says whether the study can tell such splits
apart: when it is about σ, the models the Pareto selection picks at each c are picked by seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from tinyscale.evaluate.fidelity.records import Fidelity, ModelAgreement, RankPair
from tinyscale.evaluate.fidelity.stats import (MIN_RECIPES, MIN_TRIALS, accuracy_signal, pooled_noise, spearman,
                                               spearman_at_matched_c)
from tinyscale.evaluate.fidelity.verdict import judge


def _check_inputs(brief: Mapping[int, float], long: Mapping[int, float],
                  replicate_groups: Mapping[int, Sequence[float]], c: Mapping[int, float]) -> None:
    """ValueError, naming what is wrong, unless the numbers can support the check."""
    if set(c) != set(brief):
        raise ValueError("brief accuracies and FLOPs ratios must cover the same trials")
    if len(brief) < MIN_TRIALS:
        raise ValueError(f"need at least {MIN_TRIALS} completed trials, got {len(brief)}")
    for name, values in (("brief", brief.values()), ("long", long.values()),
                         ("replicate", [a for g in replicate_groups.values() for a in g])):
        bad = [v for v in values if not (isinstance(v, (int, float)) and math.isfinite(v))]
        if bad:
            raise ValueError(f"{name} accuracies must be finite numbers, got {bad[0]!r}")
    if any(not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0) for v in c.values()):
        raise ValueError("FLOPs ratios must be positive finite numbers")
    for name, numbers_given in (("long runs", long), ("replicate groups", replicate_groups)):
        unknown = sorted(set(numbers_given) - set(brief))
        if unknown:
            raise ValueError(f"{name} of trials without a brief accuracy: {unknown}")


def summarize(
    brief: Mapping[int, float],
    long: Mapping[int, float],
    replicate_groups: Mapping[int, Sequence[float]],
    c: Mapping[int, float],
) -> Fidelity:
    """The seed noise, rank fidelity, signal and verdict of a study's brief accuracies.

    ``brief``: trial number -> the study's (brief) accuracy, every completed trial;
    ``c``: trial number -> its FLOPs ratio (the same trials);
    ``long``: trial number -> accuracy after the longer training (a subset of ``brief``);
    ``replicate_groups``: trial number -> accuracies of that recipe at the study's steps under
    different seeds, the study's own run included (groups of fewer than two are ignored).
    Accuracies are fractions in [0, 1]. ValueError when the numbers cannot support the check.
    """
    _check_inputs(brief, long, replicate_groups, c)
    sigma, sigma_df, groups = pooled_noise(replicate_groups, c)

    # Rank fidelity: the recipes trained longer, in order of c.
    pair_numbers = sorted(long, key=lambda n: (c[n], n))
    if len(pair_numbers) < MIN_RECIPES:
        raise ValueError(f"need at least {MIN_RECIPES} recipes trained longer for the rank check, "
                         f"got {len(pair_numbers)}")
    pairs = tuple(RankPair(n, float(c[n]), float(brief[n]), float(long[n])) for n in pair_numbers)
    pair_brief = np.array([p.brief for p in pairs])
    pair_long = np.array([p.long for p in pairs])
    rho = spearman(pair_brief, pair_long)
    rho_matched = spearman_at_matched_c(np.log2([p.ratio for p in pairs]), pair_brief, pair_long)

    # Signal over all completed trials.
    numbers = sorted(brief)
    signal = accuracy_signal(np.log2([c[n] for n in numbers]), np.array([brief[n] for n in numbers], dtype=float),
                             sigma)
    verdict, reasons = judge(rho, len(pairs), sigma, signal)
    return Fidelity(sigma=sigma, sigma_df=sigma_df, noise=groups, rho=rho, rho_matched=rho_matched,
                    pairs=pairs, signal=signal, verdict=verdict, reasons=tuple(reasons))


def model_agreement(fidelity: Fidelity | None, predicted: Mapping[int, float]) -> ModelAgreement | None:
    """Spearman ρ between ``predicted`` (a model's accuracy for each trial number it covers) and
    the long runs of the check's recipes; None when no check was measured or it covers fewer
    than `MIN_RECIPES` of them."""
    if fidelity is None:
        return None
    pairs = [p for p in fidelity.pairs if p.number in predicted]
    if len(pairs) < MIN_RECIPES:
        return None
    long = [p.long for p in pairs]
    return ModelAgreement(spearman([predicted[p.number] for p in pairs], long),
                          spearman([p.brief for p in pairs], long), len(pairs))
