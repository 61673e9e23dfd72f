"""Single-axis scaling: move only width or only depth to meet a FLOPs ratio c.

These are the naive baselines every compound rule must beat. They are built under TinyNet rules
by default, the product's own rule set, so that a comparison with its recipes differs only in
*how the budget is split across axes*, not in rounding conventions (under EfficientNet rules
width-only would also shrink the stem and head, and depth-only would round repeats up).
Pass ``rules="efficientnet"`` for the other convention.
"""

from __future__ import annotations

from baselines.common import DEFAULT_RULES, ScaledRecipe, scaled_recipe
from tinyscale.space.recipe import MAX_MULTIPLIER, Recipe
from tinyscale.space.steps import Knob, StepSolution
from tinyscale.space.width import solve_width, width_knob

# Below this every stage is at its 1-block minimum under either rule set (round(1·d) and
# ceil(1·d) hold at 1 well before it), so smaller depths build the same network.
D_MIN = 0.01


def width_only_solution(c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
                        num_classes: int = 1000) -> StepSolution:
    """r = d = 1, w solved against the counted cost by the width solver
    (`tinyscale.space.width.solve_width`, whose arithmetic is its own), in ratio units."""
    return solve_width(c, 1.0, 1.0, rules=rules, base_resolution=base_resolution, num_classes=num_classes)


def width_only_knob(*, rules: str = DEFAULT_RULES, base_resolution: int = 224, num_classes: int = 1000) -> Knob:
    """w as the knob of width-only scaling (r = d = 1), for budgets other than a MACs ratio."""
    return width_knob(1.0, 1.0, rules=rules, base_resolution=base_resolution, num_classes=num_classes)


def width_only(c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
               num_classes: int = 1000) -> ScaledRecipe:
    """r = d = 1, w solved against the counted cost (see tinyscale.space.width.solve_width)."""
    return ScaledRecipe.from_solution(
        "width", width_only_solution(c, rules=rules, base_resolution=base_resolution, num_classes=num_classes))


def depth_knob(*, rules: str = DEFAULT_RULES, base_resolution: int = 224, num_classes: int = 1000) -> Knob:
    """d as the knob of depth-only scaling (r = w = 1)."""
    template = Recipe(rules=rules, base_resolution=base_resolution, num_classes=num_classes)
    return Knob(lambda d: template.with_(d=d), D_MIN, MAX_MULTIPLIER,
                what=f"depth-only scaling ({rules} rules, base {base_resolution} px)",
                low_limit="1 block per stage, the minimum depth", high_limit=f"d={MAX_MULTIPLIER:g}", name="d")


def depth_only(c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
               num_classes: int = 1000) -> ScaledRecipe:
    """r = w = 1, d solved. Depth alone cannot go below 1 block per stage."""
    return scaled_recipe("depth", c, depth_knob(rules=rules, base_resolution=base_resolution, num_classes=num_classes))
