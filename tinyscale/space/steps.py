"""The one-dimensional step solver behind every "meet this budget" question.

A knob t (φ of compound scaling, a single multiplier, the width w) builds a network through
``make(t)``; a budget measure ``value(recipe)`` (counted MACs, predicted latency in µs) is a
non-decreasing step function of t: channels round to multiples of 8, repeats to whole blocks,
resolution to whole pixels. "Meets the target" therefore means the closer of the two achievable
values that bracket it. `baselines.common.solve_knob` asks it in MACs ratios,
`tinyscale.latency` in microseconds; both get the same bisection and the same short decimals.

A measure that is only nearly monotone (a latency table of noisy measurements) still gets a
bracket: the bisection keeps value(lo) < target <= value(hi) at every step, so the two values it
returns bracket the target, though another bracketing step may exist elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from tinyscale.space.recipe import Recipe

Measure = Callable[[Recipe], float]


def first_reaching(value: Measure, make: Callable[[float], Recipe], target: float, lo: float, hi: float,
                   *, strict: bool = False, tol: float = 0.0) -> float:
    """Smallest knob t in (lo, hi] with value(make(t)) >= target (> target when ``strict``),
    given that lo does not reach it and hi does; to within ``tol`` of the knob if given (the
    bisection stops once hi - lo <= tol and returns hi, which reaches the target)."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi or hi - lo <= tol:
            break
        v = value(make(mid))
        if v > target or (not strict and v == target):
            hi = mid
        else:
            lo = mid
    return hi


def short_value(value: Measure, make: Callable[[float], Recipe], t: float, lo: float, hi: float) -> float:
    """A short decimal knob value that builds a network of the same value as t (0.86, not
    0.8571428...), so printed recipes read like the papers' and round-trip through JSON."""
    m = value(make(t))
    a = lo if value(make(lo)) == m else first_reaching(value, make, m, lo, t)
    b = hi if value(make(hi)) == m else first_reaching(value, make, m, t, hi, strict=True)
    mid = 0.5 * (a + b)
    for digits in range(1, 12):
        candidate = round(mid, digits)
        if a <= candidate <= b and lo <= candidate <= hi and value(make(candidate)) == m:
            return candidate
    return t


@dataclass(frozen=True)
class StepSolution:
    """The solved knob and the two steps around the target: ``knob_below``/``knob_above`` build
    the networks of value ``value_below``/``value_above`` (both equal ``knob`` on an exact hit);
    ``knob`` is whichever of them is closer to the target. Values are in the measure's units."""

    knob: float
    achieved: float
    value_below: float
    value_above: float
    knob_below: float
    knob_above: float


def solve_steps(
    target: float,
    value: Measure,
    make: Callable[[float], Recipe],
    lo: float,
    hi: float,
    *,
    what: str,
    low_limit: str,
    high_limit: str,
    show: Callable[[float], str] = lambda v: f"{v:.6g}",
    name: str = "",
    kind: str = "values",
) -> StepSolution:
    """The knob in [lo, hi] whose ``value`` is closest to ``target``.

    ``make(t)`` must be valid on [lo, hi] and ``value(make(t))`` non-decreasing in t. ``what``
    names the strategy, ``low_limit``/``high_limit`` say what stops the knob at each end, and
    ``show`` formats a value, ``name`` prefixes the target ("c=") and ``kind`` names the values
    ("ratios"), for the ValueError raised when the target is out of reach.
    """
    v_lo, v_hi = value(make(lo)), value(make(hi))
    if not v_lo <= target <= v_hi:
        raise ValueError(
            f"{name}{show(target)} is out of reach for {what}: it gives {kind} from {show(v_lo)} "
            f"({low_limit}) to {show(v_hi)} ({high_limit})"
        )
    if v_lo >= target:
        t_up = t_down = lo
    else:
        t_up = first_reaching(value, make, target, lo, hi)
        # The step just below: a hair under the first value that reaches the target.
        t_down = max(lo, math.nextafter(t_up, -math.inf))
    above, below = value(make(t_up)), value(make(t_down))
    if above == target or below >= target:
        below, t_down = above, t_up
    # Short knob values for both steps. t_up is where the upper step begins, so each side's
    # interval search is bounded by it: one bisection per side, as for one value over [lo, hi].
    k_above = short_value(value, make, t_up, t_down if t_down < t_up else lo, hi)
    k_below = k_above if t_down == t_up else short_value(value, make, t_down, lo, t_up)
    t = k_above if above - target <= target - below else k_below
    return StepSolution(knob=t, achieved=value(make(t)), value_below=below, value_above=above,
                        knob_below=k_below, knob_above=k_above)
