"""Scaling strategies tinyscale compares against, each returning Recipes in a `ScaledRecipe`.

- `efficientnet`: compound scaling, φ solved against the counted cost; the published B0..B7 table.
- `single_axis`: width only, depth only, resolution only at a target ratio.
- `tinynet`: the published TinyNet-A..E recipes.
- `registry`: `STRATEGIES` and `scale(rule, c)`, the single entry point for callers.
- `table`: the side-by-side scaling table.
"""

from baselines.common import ScaledRecipe
from baselines.efficientnet import EFFICIENTNET_B, compound_recipe, efficientnet_b
from baselines.registry import PUBLISHED, SOLVED, STRATEGIES, scale
from baselines.single_axis import depth_only, resolution_only, width_only
from baselines.table import TableRow, format_scaling_table, scaling_table
from baselines.tinynet import TINYNET, tinynet, tinynet_recipe

__all__ = [
    "EFFICIENTNET_B", "PUBLISHED", "SOLVED", "STRATEGIES", "TINYNET", "ScaledRecipe", "TableRow",
    "compound_recipe", "depth_only", "efficientnet_b", "format_scaling_table", "resolution_only",
    "scale", "scaling_table", "tinynet", "tinynet_recipe", "width_only",
]
