"""Scaling strategies tinyscale compares against, each returning Recipes in a `ScaledRecipe`.

- `efficientnet`: compound scaling, φ solved against the counted cost; the published B0..B7 table.
- `dwr`: Dollár et al.'s α-rule, s solved against the counted cost: `fast` (α = 0.8) and
  `uniform` (α = 1/3: d, w², r² equal shares).
- `single_axis`: width only, depth only, resolution only at a target ratio.
- `tinynet`: the published TinyNet-A..E recipes.
- `registry`: `STRATEGIES`, `scale(rule, c)` and `scale_latency(rule, µs, latency)`, the single
  entry points for callers.
- `table`: the side-by-side scaling table.
"""

from baselines.common import ScaledRecipe
from baselines.dwr import dwr_recipe, fast, uniform
from baselines.efficientnet import EFFICIENTNET_B, compound_recipe, efficientnet_b
from baselines.registry import PUBLISHED, SOLVED, STRATEGIES, knob_fields, scale, scale_latency
from baselines.single_axis import depth_only, resolution_only, width_only
from baselines.table import TableRow, format_scaling_table, scaling_table
from baselines.tinynet import TINYNET, tinynet, tinynet_recipe

__all__ = [
    "EFFICIENTNET_B", "PUBLISHED", "SOLVED", "STRATEGIES", "TINYNET", "ScaledRecipe", "TableRow",
    "compound_recipe", "depth_only", "dwr_recipe", "fast", "efficientnet_b", "format_scaling_table", "resolution_only",
    "knob_fields", "scale", "scale_latency", "scaling_table", "tinynet", "tinynet_recipe", "uniform", "width_only",
]
