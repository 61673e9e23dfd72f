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
    (both equal ``achieved`` when it is hit exactly or nothing was solved), and
    ``recipe_below``/``recipe_above`` the recipes that build them (None for published recipes),
    so a caller can train both sides of a rounding step. ``phi`` is the solved compound
    coefficient (EfficientNet only), ``s`` the solved nominal FLOPs factor of the dWr rules
    (`uniform`, `fast`: d·w²·r² = s before rounding).
    """

    strategy: str
    recipe: Recipe
    target: float | None
    achieved: float
    ratio_below: float
    ratio_above: float
    phi: float | None = None
    recipe_below: Recipe | None = None
    recipe_above: Recipe | None = None
    s: float | None = None

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
            "s": self.s,
            "recipe": self.recipe.to_dict(),
            "recipe_below": None if self.recipe_below is None else self.recipe_below.to_dict(),
            "recipe_above": None if self.recipe_above is None else self.recipe_above.to_dict(),
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
    """The solved knob and the two steps around c: ``knob_below``/``knob_above`` build the
    networks costing ``ratio_below``/``ratio_above`` (both equal ``knob`` on an exact hit);
    ``knob`` is whichever of them is closer to c."""

    knob: float
    achieved: float
    ratio_below: float
    ratio_above: float
    knob_below: float
    knob_above: float


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
        below, t_down = above, t_up
    # Short knob values for both steps. t_up is where the upper step begins, so each side's
    # interval search is bounded by it: one bisection per side, as for one value over [lo, hi].
    k_above = _short_value(make, t_up, t_down if t_down < t_up else lo, hi)
    k_below = k_above if t_down == t_up else _short_value(make, t_down, lo, t_up)
    t = k_above if above - target <= target - below else k_below
    return StepSolution(knob=t, achieved=macs(make(t)) / base, ratio_below=below / base,
                        ratio_above=above / base, knob_below=k_below, knob_above=k_above)
