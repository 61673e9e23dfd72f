"""Latency as a budget: the recipe that meets a target latency, and MnasNet's soft reward.

`solve_width_latency` (w at fixed r, d) and `solve_latency` (any knob, e.g. φ) use the MACs
solvers' bisection (`tinyscale.space.steps`) on a predicted latency (µs), which is
non-decreasing in w and φ up to measurement noise, and answer with its `StepSolution` in µs.
The latency is any function of a recipe, usually `tinyscale.latency.table.LatencyTable.predict_us`
of a device.
"""

from __future__ import annotations

import math
from typing import Callable

from tinyscale.space.recipe import Recipe
from tinyscale.space.steps import Knob, StepSolution, solve_steps
from tinyscale.space.width import width_knob

# MnasNet's soft latency reward exponent (Tan et al. 2019, β = w = -0.07).
MNASNET_BETA = -0.07


def check_latency_ms(ms: object) -> float:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
        raise ValueError(f"the latency budget must be a positive number of milliseconds, got {ms!r}")
    if ms > 1e6:
        raise ValueError(f"a latency budget of {ms:g} ms is over 16 minutes; give milliseconds")
    return float(ms)


def solve_latency(target_us: float, latency: Callable[[Recipe], float], knob: Knob) -> StepSolution:
    """The knob value whose ``latency(knob.make(t))`` (µs) is closest to ``target_us``, with the
    two achievable latencies around it."""
    check_latency_ms(target_us / 1000.0)
    return solve_steps(float(target_us), latency, knob, show=lambda us: f"{us / 1000:.4g} ms", kind="latencies")


def solve_width_latency(target_us: float, r: float, d: float, latency: Callable[[Recipe], float], *,
                        rules: str = "tinynet", base_resolution: int = 224, num_classes: int = 1000) -> StepSolution:
    """The width w at which Recipe(r, w, d) meets ``target_us`` on ``latency`` (µs)."""
    knob = width_knob(r, d, rules=rules, base_resolution=base_resolution, num_classes=num_classes)
    return solve_latency(target_us, latency, knob)


def mnasnet_reward(accuracy: float, latency_ms: float, target_ms: float, beta: float = MNASNET_BETA) -> float:
    """MnasNet's soft objective ACC · (LAT / T)^β (β = −0.07): a network twice as slow as the
    target pays about 5 % of its accuracy, one twice as fast earns about 5 %."""
    for name, value in (("latency", latency_ms), ("target", target_ms)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of milliseconds, got {value!r}")
    return float(accuracy) * (float(latency_ms) / float(target_ms)) ** beta
