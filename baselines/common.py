"""What every scaling strategy returns, and the one-dimensional step solver they share.

Each solved strategy moves one scalar knob (φ for compound scaling, or a single multiplier) on
which the counted MACs are a non-decreasing step function: channels round to multiples of 8,
repeats to whole blocks, resolution to whole pixels. "Meets c" therefore means the closer of
the two achievable costs that bracket c, exactly as `tinyscale.width.solve_width` does for w.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from tinyscale.cost import baseline_macs, macs
from tinyscale.recipe import Recipe
from tinyscale.width import check_ratio


@dataclass(frozen=True)
class ScaledRecipe:
    """A strategy's recipe and how close it came to the asked FLOPs ratio.

    ``target`` is None for published recipes (TinyNet-A..E), whose ratio is whatever they
    cost. ``ratio_below``/``ratio_above`` are the achievable ratios adjacent to the target
    (both equal ``achieved`` when it is hit exactly or nothing was solved). ``phi`` is the
    solved compound coefficient (EfficientNet only).
    """

    strategy: str
    recipe: Recipe
    target: float | None
    achieved: float
    ratio_below: float
    ratio_above: float
    phi: float | None = None

    @property
    def relative_error(self) -> float:
        """achieved / target - 1 (0 for published recipes)."""
        return 0.0 if self.target is None else self.achieved / self.target - 1.0

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "target": self.target,
            "achieved": self.achieved,
            "ratio_below": self.ratio_below,
            "ratio_above": self.ratio_above,
            "phi": self.phi,
            "recipe": self.recipe.to_dict(),
        }


def _first_reaching(make: Callable[[float], Recipe], target: float, lo: float, hi: float) -> float:
    """Smallest knob value t in (lo, hi] with macs(make(t)) >= target, given
    macs(make(lo)) < target <= macs(make(hi))."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if macs(make(mid)) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def _short_value(make: Callable[[float], Recipe], t: float, lo: float, hi: float) -> float:
    """A short decimal knob value that builds exactly the network t builds (0.86, not
    0.8571428...), so printed recipes read like the papers' and round-trip through JSON."""
    m = macs(make(t))
    a = lo if macs(make(lo)) == m else _first_reaching(make, m, lo, t)
    b = hi if macs(make(hi)) == m else _first_reaching(make, m + 1, t, hi)
    mid = 0.5 * (a + b)
    for digits in range(1, 12):
        candidate = round(mid, digits)
        if a <= candidate <= b and lo <= candidate <= hi and macs(make(candidate)) == m:
            return candidate
    return t


@dataclass(frozen=True)
class StepSolution:
    knob: float
    achieved: float
    ratio_below: float
    ratio_above: float


def solve_knob(
    c: float,
    make: Callable[[float], Recipe],
    lo: float,
    hi: float,
    *,
    what: str,
    low_limit: str,
    high_limit: str,
) -> StepSolution:
    """The knob value in [lo, hi] whose counted cost is closest to c times the baseline.

    ``make(t)`` must be valid on [lo, hi] and its MACs non-decreasing in t. ``what`` names the
    strategy and ``low_limit``/``high_limit`` say what stops the knob at each end, for the
    error raised when c is out of reach.
    """
    c = check_ratio(c)
    base = baseline_macs(make(lo))
    m_lo, m_hi = macs(make(lo)), macs(make(hi))
    if not m_lo / base <= c <= m_hi / base:
        raise ValueError(
            f"c={c:.6g} is out of reach for {what}: it gives ratios from {m_lo / base:.6g} "
            f"({low_limit}) to {m_hi / base:.6g} ({high_limit})"
        )
    target = c * base
    if m_lo >= target:
        t_up = t_down = lo
    else:
        t_up = _first_reaching(make, target, lo, hi)
        # The step just below: a hair under the first value that reaches the target.
        t_down = max(lo, math.nextafter(t_up, -math.inf))
    above, below = macs(make(t_up)), macs(make(t_down))
    if above == target or below >= target:
        below = above
    t = t_up if above - target <= target - below else t_down
    t = _short_value(make, t, lo, hi)
    return StepSolution(knob=t, achieved=macs(make(t)) / base, ratio_below=below / base, ratio_above=above / base)
