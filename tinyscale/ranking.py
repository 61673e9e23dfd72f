"""Rank statistics shared by the study's rung schedule (`tinyscale.study.halving`) and the
evaluations (`tinyscale.evaluate.fidelity`, the comparison's settled check): Spearman's rho, how
far a rho is from chance (`spearman_p`), and residuals from a trend in log cost. A leaf: numpy,
and scipy only inside the functions that need it (importing scipy.stats at the top would slow
the CLI's start-up by more than half a second).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's ρ: Pearson's correlation of the ranks, ties sharing the average of the ranks
    they span (`scipy.stats.rankdata`). None when either side has fewer than two distinct values
    (the correlation is undefined); ValueError when the two sides differ in length.

    Not `scipy.stats.spearmanr`, which differs in the last bit at times: ρ on a few recipes can
    land exactly on a threshold of the verdict (0.8 on 4 or 5 recipes), where that bit decides."""
    if len(a) != len(b):
        raise ValueError(f"spearman needs paired values, got {len(a)} and {len(b)}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    from scipy.stats import rankdata

    ra, rb = rankdata(x), rankdata(y)
    da, db = ra - ra.mean(), rb - rb.mean()
    return float(np.dot(da, db) / math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db))))


def spearman_p(rho: float, n: int) -> float:
    """One-sided p of a Spearman ρ of ``rho`` or more over ``n`` pairs when the two rankings are
    unrelated: Student's t approximation, t = ρ √((n − 2) / (1 − ρ²)) on n − 2 degrees of freedom
    (what `scipy.stats.spearmanr` uses; against the exact permutation p of untied ranks, within
    0.02 at 6 pairs and 0.01 from 7, enumerated for rho 0.5..0.9).
    ValueError below 3 pairs or for ρ outside [−1, 1]."""
    if n < 3 or not -1.0 <= rho <= 1.0:
        raise ValueError(f"spearman_p needs rho in [-1, 1] over at least 3 pairs, got {rho!r} over {n}")
    if rho >= 1.0:
        return 0.0
    if rho <= -1.0:
        return 1.0
    from scipy.stats import t

    return float(t.sf(rho * math.sqrt((n - 2) / (1.0 - rho * rho)), n - 2))


def trend_residuals(x: Sequence[float], y: Sequence[float], degree: int) -> np.ndarray:
    """The residuals of ``y`` from its least-squares polynomial of ``degree`` in ``x`` (x centred
    and scaled, so the fit is well conditioned; degree 0 when every x is the same)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.ptp(x) <= 1e-12:
        degree = 0
    basis = np.vander((x - x.mean()) / (x.std() or 1.0), degree + 1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return y - basis @ coef
