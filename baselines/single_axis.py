"""Single-axis scaling: move only width, only depth or only resolution to meet a FLOPs ratio c.

These are the naive baselines every compound rule must beat. They are built under TinyNet rules
by default, the product's own rule set, so that a comparison with its recipes differs only in
*how the budget is split across axes*, not in rounding conventions (under EfficientNet rules
width-only would also shrink the stem and head, and depth-only would round repeats up).
Pass ``rules="efficientnet"`` for the other convention.
"""

from __future__ import annotations

from baselines.common import ScaledRecipe, solve_knob
from tinyscale.recipe import MAX_MULTIPLIER, MAX_RESOLUTION, MIN_RESOLUTION, Recipe
from tinyscale.width import check_ratio, solve_width

DEFAULT_RULES = "tinynet"
# Below this every stage is at its 1-block minimum under either rule set (round(1·d) and
# ceil(1·d) hold at 1 well before it), so smaller depths build the same network.
D_MIN = 0.01


def width_only(c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
               num_classes: int = 1000) -> ScaledRecipe:
    """r = d = 1, w solved against the counted cost (see tinyscale.width.solve_width)."""
    check_ratio(c)
    sol = solve_width(c, 1.0, 1.0, rules=rules, base_resolution=base_resolution, num_classes=num_classes)
    return ScaledRecipe(strategy="width", recipe=sol.recipe, target=float(c), achieved=sol.achieved,
                        ratio_below=sol.ratio_below, ratio_above=sol.ratio_above,
                        recipe_below=sol.recipe_below, recipe_above=sol.recipe_above)


def depth_only(c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
               num_classes: int = 1000) -> ScaledRecipe:
    """r = w = 1, d solved. Depth alone cannot go below 1 block per stage."""
    template = Recipe(rules=rules, base_resolution=base_resolution, num_classes=num_classes)

    def make(d: float) -> Recipe:
        return template.with_(d=d)

    sol = solve_knob(
        c, make, D_MIN, MAX_MULTIPLIER,
        what=f"depth-only scaling ({rules} rules, base {base_resolution} px)",
        low_limit="1 block per stage, the minimum depth",
        high_limit=f"d={MAX_MULTIPLIER:g}",
    )
    return ScaledRecipe(strategy="depth", recipe=make(sol.knob), target=float(c), achieved=sol.achieved,
                        ratio_below=sol.ratio_below, ratio_above=sol.ratio_above,
                        recipe_below=make(sol.knob_below), recipe_above=make(sol.knob_above))


def resolution_only(c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
                    num_classes: int = 1000) -> ScaledRecipe:
    """w = d = 1, r solved (in whole input pixels). Cannot go below the minimum input size."""
    template = Recipe(rules=rules, base_resolution=base_resolution, num_classes=num_classes)
    r_lo = MIN_RESOLUTION / base_resolution
    # The largest r still inside both limits (up to 4096 px: any r flooring to it is valid).
    r_hi = min(MAX_MULTIPLIER, (MAX_RESOLUTION + 1 - 1e-6) / base_resolution)

    def make(r: float) -> Recipe:
        return template.with_(r=r)

    sol = solve_knob(
        c, make, r_lo, r_hi,
        what=f"resolution-only scaling ({rules} rules, base {base_resolution} px)",
        low_limit=f"{MIN_RESOLUTION} px, the network's minimum input",
        high_limit=f"{make(r_hi).resolution} px",
    )
    return ScaledRecipe(strategy="resolution", recipe=make(sol.knob), target=float(c), achieved=sol.achieved,
                        ratio_below=sol.ratio_below, ratio_above=sol.ratio_above,
                        recipe_below=make(sol.knob_below), recipe_above=make(sol.knob_above))
