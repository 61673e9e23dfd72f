"""The one-dimensional step solver behind every "meet this budget" question.

A knob t (φ of compound scaling, a single multiplier, the width w) builds a network through
``make(t)``; a budget measure ``value(recipe)`` (counted MACs, predicted latency in µs) is a
non-decreasing step function of t: channels round to multiples of 8, repeats to whole blocks,
resolution to whole pixels. "Meets the target" therefore means the closer of the two achievable
values that bracket it. `baselines.common.solve_knob` asks it in MACs ratios,
`tinyscale.latency` in microseconds; both get the same bisection and the same short decimals.

`StepSolution` is the one answer to "a target in one measure": the target, the two achievable
values around it, their recipes and knob values. Every solver returns it (`solve_steps`, the
width solver `tinyscale.space.width.solve_width`, the baselines' `solve_knob`, the latency
solvers), and the result types built from one (`baselines.ScaledRecipe`,
`tinyscale.fit.solve.RecipeAnswer` and `LatencyAnswer`) take their bracket from it.

A measure that is only nearly monotone (a latency table of noisy measurements) still gets a
bracket: the bisection keeps value(lo) < target <= value(hi) at every step, so the two values it
returns bracket the target, though another bracketing step may exist elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from tinyscale.space.recipe import Recipe

Measure = Callable[[Recipe], float]


@dataclass(frozen=True)
class Knob:
    """One scalar knob t that builds a network, whatever the budget: ``make(t)`` is valid on
    [lo, hi] and the budget's measure (MACs, latency) is non-decreasing in t. ``what`` names
    the strategy and ``low_limit``/``high_limit`` say what stops t at each end, for the
    out-of-reach error; ``name`` is what t is called in output ("phi", "ln s", "w", "d", "r")."""

    make: Callable[[float], Recipe]
    lo: float
    hi: float
    what: str
    low_limit: str
    high_limit: str
    name: str


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
    """A target solved in one measure (a MACs ratio c, or microseconds): ``below`` and
    ``above`` are the achievable values bracketing ``target`` (both equal ``achieved`` on an
    exact hit), built by ``recipe_below``/``recipe_above`` at knob values ``knob_below``/
    ``knob_above``; ``recipe`` (at ``knob``, value ``achieved``) is whichever of the two is
    closer to the target.

    A solution built by `one_step` has a single step that need not bracket the target: a knob
    clamped at the end of its range, or a recipe taken as given."""

    target: float
    achieved: float
    below: float
    above: float
    recipe: Recipe
    recipe_below: Recipe
    recipe_above: Recipe
    knob: float
    knob_below: float
    knob_above: float

    @property
    def relative_error(self) -> float:
        return self.achieved / self.target - 1.0

    @classmethod
    def one_step(cls, target: float, achieved: float, recipe: Recipe, knob: float) -> StepSolution:
        """A solution of one step: ``recipe`` (value ``achieved``, at ``knob``) on both sides."""
        return cls(target=target, achieved=achieved, below=achieved, above=achieved, recipe=recipe,
                   recipe_below=recipe, recipe_above=recipe, knob=knob, knob_below=knob, knob_above=knob)

    def per(self, unit: float, target: float) -> StepSolution:
        """The same steps with values divided by ``unit`` (counted MACs per baseline MACs: a
        ratio c) and ``target`` as asked in the new unit (c itself, which c·unit / unit may
        miss by an ulp)."""
        return replace(self, target=target, achieved=self.achieved / unit, below=self.below / unit,
                       above=self.above / unit)


def solve_steps(
    target: float,
    value: Measure,
    knob: Knob,
    *,
    show: Callable[[float], str] = lambda v: f"{v:.6g}",
    prefix: str = "",
    kind: str = "values",
) -> StepSolution:
    """The knob value in [knob.lo, knob.hi] whose ``value`` is closest to ``target``, with both
    steps around it, in ``value``'s units.

    ``value(knob.make(t))`` must be non-decreasing in t. ``show`` formats a value, ``prefix``
    goes before the target ("c=") and ``kind`` names the values ("ratios"), for the ValueError
    raised when the target is out of reach (which also names ``knob.what`` and its limits).
    """
    make, lo, hi = knob.make, knob.lo, knob.hi
    v_lo, v_hi = value(make(lo)), value(make(hi))
    if not v_lo <= target <= v_hi:
        raise ValueError(
            f"{prefix}{show(target)} is out of reach for {knob.what}: it gives {kind} from {show(v_lo)} "
            f"({knob.low_limit}) to {show(v_hi)} ({knob.high_limit})"
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
    recipe = make(t)
    return StepSolution(target=target, achieved=value(recipe), below=below, above=above, recipe=recipe,
                        recipe_below=make(k_below), recipe_above=make(k_above), knob=t, knob_below=k_below,
                        knob_above=k_above)
