"""Resolution-only scaling: move only the input resolution to meet a FLOPs ratio c.

A naive baseline like the other single axes (`baselines.single_axis`), built under TinyNet
rules by default for the same reason: a comparison then differs only in how the budget is split.
"""

from __future__ import annotations

from baselines.common import DEFAULT_RULES, ScaledRecipe, scaled_recipe
from tinyscale.space.recipe import MAX_MULTIPLIER, MAX_RESOLUTION, MIN_RESOLUTION, Recipe
from tinyscale.space.steps import Knob


def resolution_knob(*, rules: str = DEFAULT_RULES, base_resolution: int = 224, num_classes: int = 1000) -> Knob:
    """r as the knob of resolution-only scaling (w = d = 1), in whole input pixels."""
    template = Recipe(rules=rules, base_resolution=base_resolution, num_classes=num_classes)
    r_lo = MIN_RESOLUTION / base_resolution
    # The largest r still inside both limits (up to 4096 px: any r flooring to it is valid).
    r_hi = min(MAX_MULTIPLIER, (MAX_RESOLUTION + 1 - 1e-6) / base_resolution)

    def make(r: float) -> Recipe:
        return template.with_(r=r)

    return Knob(make, r_lo, r_hi, what=f"resolution-only scaling ({rules} rules, base {base_resolution} px)",
                low_limit=f"{MIN_RESOLUTION} px, the network's minimum input",
                high_limit=f"{make(r_hi).resolution} px", name="r")


def resolution_only(c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
                    num_classes: int = 1000) -> ScaledRecipe:
    """w = d = 1, r solved (in whole input pixels). Cannot go below the minimum input size."""
    return scaled_recipe("resolution", c,
                         resolution_knob(rules=rules, base_resolution=base_resolution, num_classes=num_classes))
