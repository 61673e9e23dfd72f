"""Rank statistics shared by the study's rung schedule (`tinyscale.study.halving`) and the
evaluations (`tinyscale.evaluate.fidelity`, the comparison's settled check): Spearman's rho and
residuals from a trend in log cost. A leaf: numpy, and scipy only inside `spearman` (importing
scipy.stats at the top would slow the CLI's start-up by more than half a second).
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


def trend_residuals(x: Sequence[float], y: Sequence[float], degree: int) -> np.ndarray:
    """The residuals of ``y`` from its least-squares polynomial of ``degree`` in ``x`` (x centred
    and scaled, so the fit is well conditioned; degree 0 when every x is the same)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.ptp(x) <= 1e-12:
        degree = 0
    basis = np.vander((x - x.mean()) / (x.std() or 1.0), degree + 1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return y - basis @ coef
