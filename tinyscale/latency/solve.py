"""Latency as a budget: the recipe that meets a target latency, and MnasNet's soft reward.

`solve_width_latency` (w at fixed r, d) and `solve_latency` (any knob, e.g. φ) use the MACs
solvers' bisection (`tinyscale.space.steps`) on a predicted latency (µs), which is
non-decreasing in w and φ up to measurement noise. The latency is any function of a recipe,
usually `tinyscale.latency.table.LatencyTable.predict_us` of a device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from tinyscale.space.recipe import Recipe

# MnasNet's soft latency reward exponent (Tan et al. 2019, β = w = -0.07).
MNASNET_BETA = -0.07


@dataclass(frozen=True)
class LatencySolution:
    """The recipe meeting a latency target as closely as the rounding allows (µs): ``below``
    and ``above`` are the adjacent achievable latencies, built by ``recipe_below/above``."""

    recipe: Recipe
    target_us: float
    achieved_us: float
    below_us: float
    above_us: float
    knob: float
    recipe_below: Recipe
    recipe_above: Recipe

    @property
    def relative_error(self) -> float:
        return self.achieved_us / self.target_us - 1.0


def check_latency_ms(ms: object) -> float:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
        raise ValueError(f"the latency budget must be a positive number of milliseconds, got {ms!r}")
    if ms > 1e6:
        raise ValueError(f"a latency budget of {ms:g} ms is over 16 minutes; give milliseconds")
    return float(ms)


def solve_latency(target_us: float, latency: Callable[[Recipe], float], make: Callable[[float], Recipe],
                  lo: float, hi: float, *, what: str, low_limit: str, high_limit: str) -> LatencySolution:
    """The knob in [lo, hi] whose ``latency(make(knob))`` (µs) is closest to ``target_us``."""
    from tinyscale.space.steps import solve_steps

    check_latency_ms(target_us / 1000.0)
    sol = solve_steps(float(target_us), latency, make, lo, hi, what=what, low_limit=low_limit,
                      high_limit=high_limit, show=lambda us: f"{us / 1000:.4g} ms", kind="latencies")
    return LatencySolution(recipe=make(sol.knob), target_us=float(target_us), achieved_us=sol.achieved,
                           below_us=sol.value_below, above_us=sol.value_above, knob=sol.knob,
                           recipe_below=make(sol.knob_below), recipe_above=make(sol.knob_above))


def solve_width_latency(target_us: float, r: float, d: float, latency: Callable[[Recipe], float], *,
                        rules: str = "tinynet", base_resolution: int = 224, num_classes: int = 1000) -> LatencySolution:
    """The width w at which Recipe(r, w, d) meets ``target_us`` on ``latency`` (µs)."""
    from tinyscale.space.width import W_MAX, W_MIN

    template = Recipe(r=r, w=1.0, d=d, rules=rules, base_resolution=base_resolution, num_classes=num_classes)
    return solve_latency(target_us, latency, lambda w: template.with_(w=w), W_MIN, W_MAX,
                         what=f"width at r={r:g}, d={d:g} ({rules} rules, base {base_resolution} px)",
                         low_limit=f"w={W_MIN:g}, every channel at its minimum", high_limit=f"w={W_MAX:g}")


def mnasnet_reward(accuracy: float, latency_ms: float, target_ms: float, beta: float = MNASNET_BETA) -> float:
    """MnasNet's soft objective ACC · (LAT / T)^β (β = −0.07): a network twice as slow as the
    target pays about 5 % of its accuracy, one twice as fast earns about 5 %."""
    for name, value in (("latency", latency_ms), ("target", target_ms)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of milliseconds, got {value!r}")
    return float(accuracy) * (float(latency_ms) / float(target_ms)) ** beta
