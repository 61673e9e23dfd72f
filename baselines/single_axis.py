"""Single-axis scaling: move only width, only depth or only resolution to meet a FLOPs ratio c.

These are the naive baselines every compound rule must beat. They are built under TinyNet rules
by default, the product's own rule set, so that a comparison with its recipes differs only in
*how the budget is split across axes*, not in rounding conventions (under EfficientNet rules
width-only would also shrink the stem and head, and depth-only would round repeats up).
Pass ``rules="efficientnet"`` for the other convention.
"""

from __future__ import annotations

from baselines.common import Knob, ScaledRecipe, scaled_recipe
from tinyscale.space.recipe import MAX_MULTIPLIER, MAX_RESOLUTION, MIN_RESOLUTION, Recipe
from tinyscale.space.width import check_ratio, solve_width

DEFAULT_RULES = "tinynet"
# Below this every stage is at its 1-block minimum under either rule set (round(1·d) and
# ceil(1·d) hold at 1 well before it), so smaller depths build the same network.
D_MIN = 0.01


def width_only(c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
               num_classes: int = 1000) -> ScaledRecipe:
    """r = d = 1, w solved against the counted cost (see tinyscale.space.width.solve_width)."""
    check_ratio(c)
    sol = solve_width(c, 1.0, 1.0, rules=rules, base_resolution=base_resolution, num_classes=num_classes)
    return ScaledRecipe(strategy="width", recipe=sol.recipe, target=float(c), achieved=sol.achieved,
                        ratio_below=sol.ratio_below, ratio_above=sol.ratio_above,
                        recipe_below=sol.recipe_below, recipe_above=sol.recipe_above)


def depth_knob(*, rules: str = DEFAULT_RULES, base_resolution: int = 224, num_classes: int = 1000) -> Knob:
    """d as the knob of depth-only scaling (r = w = 1)."""
    template = Recipe(rules=rules, base_resolution=base_resolution, num_classes=num_classes)
    return Knob(lambda d: template.with_(d=d), D_MIN, MAX_MULTIPLIER,
                what=f"depth-only scaling ({rules} rules, base {base_resolution} px)",
                low_limit="1 block per stage, the minimum depth", high_limit=f"d={MAX_MULTIPLIER:g}", name="d")


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


def depth_only(c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
               num_classes: int = 1000) -> ScaledRecipe:
    """r = w = 1, d solved. Depth alone cannot go below 1 block per stage."""
    return scaled_recipe("depth", c, depth_knob(rules=rules, base_resolution=base_resolution, num_classes=num_classes))


def resolution_only(c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
                    num_classes: int = 1000) -> ScaledRecipe:
    """w = d = 1, r solved (in whole input pixels). Cannot go below the minimum input size."""
    return scaled_recipe("resolution", c,
                   resolution_knob(rules=rules, base_resolution=base_resolution, num_classes=num_classes))
