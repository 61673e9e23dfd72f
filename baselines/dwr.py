"""dWr scaling (Dollár, Singh, Girshick, "Fast and Accurate Model Scaling", CVPR 2021) and its
uniform special case, both solved against the counted cost.

For a nominal FLOPs factor s, the α-rule scales

    d = s^((1−α)/2),   w = s^(α/2),   r = s^((1−α)/4)

so that d·w²·r² = s: a share α of the factor goes to w² and the rest is split evenly between
d and r² (log d = 2·log r). α = 0.8 is the paper's fast scaling (`fast`: mostly width, which
keeps activations and so run time low); α = 1/3 gives d, w² and r² equal shares, i.e.
d = s^(1/3), w = r = s^(1/6) (`uniform`). Both are this one function of α.

Like EfficientNet's φ, the nominal s is not the counted ratio (channel rounding, whole blocks
and pixels, fixed stem/head costs), so s is solved with the shared step solver
(`baselines.common.solve_knob`) until the counted MACs meet c as closely as the rounding
allows. The knob is ln s (the reachable s spans hundreds of orders of magnitude for α near 1).

These rules are about *how to split* the budget across axes, not about a rounding convention,
so they are built under TinyNet rules by default, the product's own, as the single-axis
baselines are (`rules=` to change); only `efficientnet` keeps EfficientNet's rules, because
its recipes are the published models'.
"""

from __future__ import annotations

import math

from baselines.common import DEFAULT_RULES, ScaledRecipe, scaled_recipe
from tinyscale.space.recipe import MAX_MULTIPLIER, MAX_RESOLUTION, MIN_RESOLUTION, Recipe
from tinyscale.space.steps import Knob

FAST_ALPHA = 0.8  # the paper's dWr choice
UNIFORM_ALPHA = 1.0 / 3.0  # d, w², r² take equal shares


def check_alpha(alpha: object) -> float:
    """α as a float; ValueError unless 0 < α < 1 (at the ends an axis would never move, and
    the reachable range would have no lower end)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be a number strictly between 0 and 1, got {alpha!r}")
    return float(alpha)


def dwr_exponents(alpha: float) -> tuple[float, float, float]:
    """(e_r, e_w, e_d) with r = s^e_r, w = s^e_w, d = s^e_d; 2·e_r + 2·e_w + e_d = 1."""
    a = check_alpha(alpha)
    return (1.0 - a) / 4.0, a / 2.0, (1.0 - a) / 2.0


def dwr_multipliers(log_s: float, alpha: float) -> tuple[float, float, float]:
    """(r, w, d) of the α-rule at nominal factor s = e^log_s, before any rounding."""
    e_r, e_w, e_d = dwr_exponents(alpha)
    return math.exp(e_r * log_s), math.exp(e_w * log_s), math.exp(e_d * log_s)


def dwr_at(log_s: float, alpha: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
           num_classes: int = 1000) -> Recipe:
    r, w, d = dwr_multipliers(log_s, alpha)
    return Recipe(r=r, w=w, d=d, rules=rules, base_resolution=base_resolution, num_classes=num_classes)


def _upper_limits(alpha: float, base_resolution: int) -> dict[str, float]:
    """ln s at which each upper limit is reached: a multiplier at 8, the input at its maximum."""
    e_r, e_w, e_d = dwr_exponents(alpha)
    r_max = min(MAX_MULTIPLIER, MAX_RESOLUTION / base_resolution)
    r_name = f"r={MAX_MULTIPLIER:g}" if r_max == MAX_MULTIPLIER else f"the {MAX_RESOLUTION} px maximum input"
    return {f"w={MAX_MULTIPLIER:g}": math.log(MAX_MULTIPLIER) / e_w,
            f"d={MAX_MULTIPLIER:g}": math.log(MAX_MULTIPLIER) / e_d,
            r_name: math.log(r_max) / e_r}


def log_s_range(alpha: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
                num_classes: int = 1000) -> tuple[float, float]:
    """The interval of ln s whose recipes are valid: below, the input would drop under the
    network's minimum resolution; above, a multiplier or the input size would pass its limit."""
    e_r, _, _ = dwr_exponents(alpha)
    Recipe(rules=rules, base_resolution=base_resolution, num_classes=num_classes)  # context errors first
    lo = math.log(MIN_RESOLUTION / base_resolution) / e_r
    hi = min(_upper_limits(alpha, base_resolution).values())

    def valid(log_s: float) -> bool:
        try:
            dwr_at(log_s, alpha, rules=rules, base_resolution=base_resolution, num_classes=num_classes)
        except ValueError:
            return False
        return True

    # The analytic bounds sit on the limits; step inwards past floating-point error.
    step = 1e-12 * max(1.0, abs(lo))
    while not valid(lo):
        lo += step
        step *= 2
    step = 1e-12 * max(1.0, abs(hi))
    while not valid(hi):
        hi -= step
        step *= 2
    return lo, hi


def dwr_knob(alpha: float = FAST_ALPHA, *, strategy: str | None = None, rules: str = DEFAULT_RULES,
             base_resolution: int = 224, num_classes: int = 1000) -> Knob:
    """ln s as the knob of the α-rule, over its valid range (ValueError unless 0 < α < 1)."""
    alpha = check_alpha(alpha)
    lo, hi = log_s_range(alpha, rules=rules, base_resolution=base_resolution, num_classes=num_classes)
    name = strategy or f"dwr(alpha={alpha:g})"

    def make(log_s: float) -> Recipe:
        return dwr_at(log_s, alpha, rules=rules, base_resolution=base_resolution, num_classes=num_classes)

    limits = _upper_limits(alpha, base_resolution)
    upper = min(limits, key=limits.__getitem__)
    return Knob(make, lo, hi, what=f"{name} scaling ({rules} rules, base {base_resolution} px)",
                low_limit=f"s={math.exp(lo):.4g}, the {MIN_RESOLUTION} px minimum input",
                high_limit=f"s={math.exp(hi):.4g}, {upper}", name="ln s")


def dwr_recipe(c: float, alpha: float = FAST_ALPHA, *, strategy: str | None = None, rules: str = DEFAULT_RULES,
               base_resolution: int = 224, num_classes: int = 1000) -> ScaledRecipe:
    """The α-rule at FLOPs ratio c (relative to the unscaled B0 in the same context), s solved
    against the counted cost; works for c below and above 1. ``strategy`` names the result
    (default ``dwr(alpha=...)``).

    Raises ValueError if c is not a positive finite number or out of reach (the message gives
    the reachable range and which limit stops it), or α is not in (0, 1).
    """
    alpha = check_alpha(alpha)
    knob = dwr_knob(alpha, strategy=strategy, rules=rules, base_resolution=base_resolution, num_classes=num_classes)
    return scaled_recipe(strategy or f"dwr(alpha={alpha:g})", c, knob)


def uniform(c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
            num_classes: int = 1000) -> ScaledRecipe:
    """d = s^(1/3), w = r = s^(1/6): the α-rule at α = 1/3."""
    return dwr_recipe(c, UNIFORM_ALPHA, strategy="uniform", rules=rules, base_resolution=base_resolution,
                      num_classes=num_classes)


def fast(c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
         num_classes: int = 1000) -> ScaledRecipe:
    """Dollár et al.'s dWr fast scaling: the α-rule at α = 0.8 (d = s^0.1, w = s^0.4, r = s^0.05)."""
    return dwr_recipe(c, FAST_ALPHA, strategy="fast", rules=rules, base_resolution=base_resolution,
                      num_classes=num_classes)
