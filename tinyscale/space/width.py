"""Solve the width multiplier that makes a recipe meet a target FLOPs ratio.

The counted cost is a non-decreasing step function of w (channels are rounded to multiples of
8), so "meets c" means: of the two achievable costs that bracket c, the closer one. The closed
form c = r²·d·w² is not used: for small models it misses the counted cost by tens of percent.

`solve_width` answers in ratio units with the step solver's `StepSolution`; its bisection is
`tinyscale.space.steps.first_reaching` on the integer MACs count. It does not go through
`solve_steps`: its short width lies strictly inside the step (`solve_steps` also takes the
width where the step begins: 0.55 rather than 0.553 at c = 0.385), and its out-of-reach message
names (r, d), so the shared path would change recipes that studies and fits already hold.
`width_knob` is w as a `Knob` of the shared step solver, for budgets other than a MACs ratio.
"""

from __future__ import annotations

import math

from tinyscale.space.cost import baseline_macs, macs
from tinyscale.space.recipe import MAX_MULTIPLIER, Recipe
from tinyscale.space.steps import Knob, StepSolution, first_reaching

# Below this every channel count (the 1280 head included) is already at its 8-channel minimum,
# so smaller widths build the same network.
W_MIN = 0.009
W_MAX = MAX_MULTIPLIER
# Targets beyond these are typos (a missing minus sign in an exponent), not designs.
MIN_RATIO = 1e-6
MAX_RATIO = 1e4


def check_ratio(c: object) -> float:
    """The target FLOPs ratio as a float; ValueError unless it is a positive finite number
    within [MIN_RATIO, MAX_RATIO] (the one rule for absurd targets: `scale`, `recipe`,
    `export` and the app all check through here)."""
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c <= 0:
        raise ValueError(f"target ratio c must be a positive finite number, got {c!r}")
    if not MIN_RATIO <= c <= MAX_RATIO:
        raise ValueError(f"target ratio c must be between {MIN_RATIO:g} and {MAX_RATIO:g} times the unscaled "
                         f"B0's MACs, got {c:g}")
    return float(c)


def _template(r: float, d: float, rules: str, base_resolution: int, num_classes: int) -> Recipe:
    return Recipe(r=r, w=1.0, d=d, rules=rules, base_resolution=base_resolution, num_classes=num_classes)


def reachable_ratios(
    r: float, d: float, *, rules: str = "tinynet", base_resolution: int = 224, num_classes: int = 1000
) -> tuple[float, float]:
    """The smallest and largest FLOPs ratio any width reaches at this (r, d)."""
    t = _template(r, d, rules, base_resolution, num_classes)
    base = baseline_macs(t)
    return macs(t.with_(w=W_MIN)) / base, macs(t.with_(w=W_MAX)) / base


def _step_interval(t: Recipe, w: float, lo: float = W_MIN, hi: float = W_MAX) -> tuple[float, float]:
    """The interval (a, b) of widths around w that build the same cost as w, searched within
    [lo, hi] (a known step boundary as lo or hi saves a bisection): a is the first width
    reaching that cost, b the first exceeding it."""
    m = macs(t.with_(w=w))
    make = lambda x: t.with_(w=x)  # noqa: E731
    a = lo if macs(t.with_(w=lo)) == m else first_reaching(macs, make, m, lo, w)
    b = hi if macs(t.with_(w=hi)) == m else first_reaching(macs, make, m, w, hi, strict=True)
    return a, b


def _short_width(t: Recipe, w: float, lo: float = W_MIN, hi: float = W_MAX) -> float:
    """A short decimal width that builds exactly the network w builds (0.54, not 0.5398171...)."""
    m = macs(t.with_(w=w))
    a, b = _step_interval(t, w, lo, hi)
    mid = 0.5 * (a + b)
    for digits in range(1, 12):
        candidate = round(mid, digits)
        if a < candidate < b and W_MIN <= candidate <= W_MAX and macs(t.with_(w=candidate)) == m:
            return candidate
    return w


def solve_width(
    c: float,
    r: float,
    d: float,
    *,
    rules: str = "tinynet",
    base_resolution: int = 224,
    num_classes: int = 1000,
) -> StepSolution:
    """The width w at which Recipe(r, w, d) costs c times the baseline, as closely as the
    channel rounding allows: a `StepSolution` in ratio units (``knob`` is w).

    Raises ValueError when c is not a positive finite number or lies outside what any width
    reaches at this (r, d) (the message gives the reachable range).
    """
    c = check_ratio(c)
    t = _template(r, d, rules, base_resolution, num_classes)
    base = baseline_macs(t)
    lo_ratio, hi_ratio = reachable_ratios(r, d, rules=rules, base_resolution=base_resolution, num_classes=num_classes)
    if not lo_ratio <= c <= hi_ratio:
        raise ValueError(
            f"c={c:.6g} is out of reach at r={r:g}, d={d:g} ({rules} rules, base {base_resolution} px): "
            f"widths give ratios from {lo_ratio:.6g} to {hi_ratio:.6g}"
        )
    target_macs = c * base
    if macs(t.with_(w=W_MIN)) >= target_macs:
        w_up = W_MIN
    else:
        w_up = first_reaching(macs, lambda x: t.with_(w=x), math.ceil(target_macs), W_MIN, W_MAX)
    above = macs(t.with_(w=w_up))
    if above == target_macs or w_up == W_MIN:
        below = above
        w_above = w_below = _short_width(t, w_up)
    else:
        # The step just below: any width a hair under the first one that reaches the target.
        below_w = math.nextafter(w_up, 0.0)
        below = macs(t.with_(w=below_w))
        # w_up is where the upper step begins: it bounds both sides' interval search.
        w_above = _short_width(t, w_up, below_w, W_MAX)
        w_below = _short_width(t, below_w, W_MIN, w_up)
    w = w_above if above - target_macs <= target_macs - below else w_below
    recipe = t.with_(w=w)
    return StepSolution(target=c, achieved=macs(recipe) / base, below=below / base, above=above / base,
                        recipe=recipe, recipe_below=t.with_(w=w_below), recipe_above=t.with_(w=w_above),
                        knob=w, knob_below=w_below, knob_above=w_above)


def width_knob(r: float, d: float, *, rules: str = "tinynet", base_resolution: int = 224,
               num_classes: int = 1000) -> Knob:
    """w at fixed (r, d) as a knob of the shared step solver, over [W_MIN, W_MAX]: what a latency
    target solves (`tinyscale.latency.solve_width_latency`, the baselines' width-only rule)."""
    t = _template(r, d, rules, base_resolution, num_classes)
    return Knob(lambda w: t.with_(w=w), W_MIN, W_MAX,
                what=f"width at r={r:g}, d={d:g} ({rules} rules, base {base_resolution} px)",
                low_limit=f"w={W_MIN:g}, every channel at its minimum", high_limit=f"w={W_MAX:g}", name="w")
