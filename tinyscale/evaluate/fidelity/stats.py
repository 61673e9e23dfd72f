"""The statistics of the fidelity check, on plain numbers: rank correlation, the trend of accuracy
in log2 c, the pooled seed noise, and the signal of a study's brief accuracies against that noise.

Pure and fast (numpy; `spearman` lives in `tinyscale.ranking`, shared with the study's rung
schedule). `tinyscale.evaluate.fidelity.summary` puts
these together into a `Fidelity`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tinyscale.ranking import spearman  # re-exported: the fidelity check's rank correlation

MIN_TRIALS = 5  # completed trials needed: a quadratic in log2 c plus residual degrees of freedom
MIN_RECIPES = 3  # a rank correlation on fewer points says nothing


def linear_trend(x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Ordinary least squares y = a + b x: (b, the standard error of b, the residuals). The
    standard error is nan when two points leave no residual degree of freedom."""
    xm = x - x.mean()
    sxx = float(np.dot(xm, xm))
    b = float(np.dot(xm, y - y.mean()) / sxx)
    resid = y - y.mean() - b * xm
    dof = len(x) - 2
    se = math.sqrt(float(np.dot(resid, resid)) / dof / sxx) if dof > 0 else math.nan
    return b, se, resid


def quadratic_residuals(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The residuals of a least-squares quadratic in x (centred, for a well-conditioned fit)."""
    xm = x - x.mean()
    design = np.stack([np.ones_like(xm), xm, xm * xm], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ coef


def spearman_at_matched_c(log2_c: np.ndarray, a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's ρ between ``a`` and ``b`` after removing each one's linear trend in log2 c: how
    alike they rank recipes of equal cost. None on fewer than four recipes (two residual degrees
    of freedom per side leave nothing to rank) or when every recipe has the same c."""
    if len(log2_c) < 4 or np.ptp(log2_c) == 0:
        return None
    _, _, resid_a = linear_trend(log2_c, a)
    _, _, resid_b = linear_trend(log2_c, b)
    return spearman(resid_a, resid_b)


@dataclass(frozen=True)
class NoiseGroup:
    """One recipe trained at the study's steps with several seeds (the study's own run first)."""

    number: int  # the study's trial number
    ratio: float
    accuracies: tuple[float, ...]
    sd: float  # sample standard deviation over the seeds

    @classmethod
    def from_dict(cls, data: dict) -> NoiseGroup:
        return cls(**{**data, "accuracies": tuple(data["accuracies"])})


def pooled_noise(replicate_groups: Mapping[int, Sequence[float]], c: Mapping[int, float]
                 ) -> tuple[float, int, tuple[NoiseGroup, ...]]:
    """(σ, its degrees of freedom, the groups): the seed sd of one run's accuracy pooled over
    recipes, each recipe about its own mean. Groups of fewer than two runs are ignored."""
    groups = []
    for n in sorted(replicate_groups):
        accs = tuple(float(a) for a in replicate_groups[n])
        if len(accs) < 2:
            continue
        groups.append(NoiseGroup(n, float(c[n]), accs, float(np.std(accs, ddof=1))))
    if not groups:
        raise ValueError("need at least one recipe trained with two or more seeds for the noise estimate")
    sigma_df = sum(len(g.accuracies) - 1 for g in groups)
    sigma = math.sqrt(sum((len(g.accuracies) - 1) * g.sd**2 for g in groups) / sigma_df)
    return sigma, sigma_df, tuple(groups)


@dataclass(frozen=True)
class Signal:
    """How accuracy depends on c over all completed trials, against the seed noise σ."""

    n: int  # completed trials
    slope: float  # accuracy (fraction) per doubling of c
    slope_se: float
    slope_t: float | None  # slope / se; None when the fit is exact (se = 0)
    accuracy_sd: float  # sample sd of the brief accuracies
    residual_sd: float  # sd of residuals of a quadratic in log2 c (the spread at matched c)
    residual_ratio: float | None  # residual_sd / σ; None when σ = 0
    beyond_noise: float  # max(0, 1 - σ² / var(accuracy))


def accuracy_signal(log2_c: np.ndarray, accuracy: np.ndarray, sigma: float) -> Signal:
    """The `Signal` of accuracies at costs log2 c, given the seed noise ``sigma``. The spread at
    matched c is taken about a quadratic, so a bend in the accuracy curve is not mistaken for
    recipe signal. ValueError when every trial has the same c (no slope to measure)."""
    if np.ptp(log2_c) == 0:
        raise ValueError("all completed trials are at one FLOPs ratio: no slope to measure")
    slope, slope_se, _ = linear_trend(log2_c, accuracy)
    resid = quadratic_residuals(log2_c, accuracy)
    residual_sd = math.sqrt(float(np.dot(resid, resid)) / (len(accuracy) - 3))
    var = float(np.var(accuracy, ddof=1))
    return Signal(
        n=len(accuracy), slope=slope, slope_se=slope_se, slope_t=slope / slope_se if slope_se > 0 else None,
        accuracy_sd=math.sqrt(var), residual_sd=residual_sd,
        residual_ratio=residual_sd / sigma if sigma > 0 else None,
        beyond_noise=max(0.0, 1.0 - sigma**2 / var) if var > 0 else 0.0,
    )
