"""All scaling strategies by name: the one entry point the CLI, the compare stage and the UI call."""

from __future__ import annotations

import math

from typing import Callable

from baselines.common import Knob, ScaledRecipe
from baselines.dwr import FAST_ALPHA, UNIFORM_ALPHA, dwr_knob, fast, uniform
from baselines.efficientnet import compound_knob, compound_recipe
from baselines.single_axis import DEFAULT_RULES, depth_knob, depth_only, resolution_knob, resolution_only, width_only
from baselines.tinynet import TINYNET, tinynet

# Strategies that solve a recipe for a target ratio c, and published recipes (c is ignored).
SOLVED: tuple[str, ...] = ("efficientnet", "uniform", "fast", "width", "depth", "resolution")
PUBLISHED: tuple[str, ...] = tuple(TINYNET)


def _published(name: str) -> Callable[..., ScaledRecipe]:
    def run(c: float | None, base_resolution: int, num_classes: int) -> ScaledRecipe:
        return tinynet(name, base_resolution=base_resolution, num_classes=num_classes)

    return run


STRATEGIES: dict[str, Callable[[float | None, int, int], ScaledRecipe]] = {
    "efficientnet": lambda c, base, classes: compound_recipe(c, base_resolution=base, num_classes=classes),
    "uniform": lambda c, base, classes: uniform(c, base_resolution=base, num_classes=classes),
    "fast": lambda c, base, classes: fast(c, base_resolution=base, num_classes=classes),
    "width": lambda c, base, classes: width_only(c, base_resolution=base, num_classes=classes),
    "depth": lambda c, base, classes: depth_only(c, base_resolution=base, num_classes=classes),
    "resolution": lambda c, base, classes: resolution_only(c, base_resolution=base, num_classes=classes),
    **{name: _published(name) for name in PUBLISHED},
}


def scale(rule: str, c: float | None = None, *, base_resolution: int = 224, num_classes: int = 1000) -> ScaledRecipe:
    """The recipe strategy ``rule`` gives at FLOPs ratio c (ignored for published TinyNets).

    Raises ValueError for an unknown rule, a missing or invalid c, or a c out of reach.
    """
    if rule not in STRATEGIES:
        raise ValueError(f"rule must be one of {', '.join(STRATEGIES)}; got {rule!r}")
    if c is None and rule in SOLVED:
        raise ValueError(f"rule {rule!r} needs a target ratio c (--ratio)")
    return STRATEGIES[rule](c, base_resolution, num_classes)


# Each solved rule's knob under a rule set, for budgets other than a MACs ratio (width-only's is
# the width solver's own, `tinyscale.latency.solve_width_latency`). EfficientNet keeps its own
# rules, as its MACs-ratio answer does.
KNOBS: dict[str, Callable[[str, int, int], Knob]] = {
    "efficientnet": lambda rules, base, classes: compound_knob(base, classes),
    "uniform": lambda rules, base, classes: dwr_knob(UNIFORM_ALPHA, strategy="uniform", rules=rules,
                                                     base_resolution=base, num_classes=classes),
    "fast": lambda rules, base, classes: dwr_knob(FAST_ALPHA, strategy="fast", rules=rules, base_resolution=base,
                                                  num_classes=classes),
    "depth": lambda rules, base, classes: depth_knob(rules=rules, base_resolution=base, num_classes=classes),
    "resolution": lambda rules, base, classes: resolution_knob(rules=rules, base_resolution=base,
                                                               num_classes=classes),
}


def knob_fields(name: str, value: float) -> dict:
    """A solved knob as a `ScaledRecipe` reports it: ``{"phi": φ}`` for compound scaling,
    ``{"s": s}`` for the dWr rules (whose knob is ln s), nothing for a one-axis rule (its recipe
    shows the axis)."""
    if name == "phi":
        return {"phi": value}
    if name == "ln s":
        return {"s": math.exp(value)}
    return {}


def scale_latency(rule: str, target_us: float, latency: Callable, *, rules: str = DEFAULT_RULES,
                  base_resolution: int = 224, num_classes: int = 1000):
    """The recipe solved rule ``rule`` gives at a latency target (µs) on a latency measure
    (`tinyscale.latency.LatencyTable.predict_us` of a device): the rule's knob solved by the
    same step bisection as for a FLOPs ratio. ``rules`` is the rule set of every rule but
    ``efficientnet`` (which keeps EfficientNet's). Returns ``(solution, knob_name)``: a
    `tinyscale.latency.LatencySolution` and what its ``knob`` is ("phi", "ln s", "d", "r", "w").

    Raises ValueError for an unknown or published rule, a bad target, or one out of reach.
    """
    from tinyscale.latency import solve_latency, solve_width_latency

    if rule not in SOLVED:
        raise ValueError(f"a latency target needs a solved rule ({', '.join(SOLVED)}); got {rule!r}")
    if rule == "width":
        return solve_width_latency(target_us, 1.0, 1.0, latency, rules=rules, base_resolution=base_resolution,
                                   num_classes=num_classes), "w"
    knob = KNOBS[rule](rules, base_resolution, num_classes)
    return solve_latency(target_us, latency, knob.make, knob.lo, knob.hi, what=knob.what,
                         low_limit=knob.low_limit, high_limit=knob.high_limit), knob.name
