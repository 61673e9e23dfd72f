"""Scaling strategies tinyscale compares against, each returning Recipes in a `ScaledRecipe`.

- `registry`: every rule once (`RULES`: name, label, colour, help, knob or published recipe),
  and the single entry points for callers: `scale(rule, c)`, `solve_ratio(rule, c)`,
  `scale_latency(rule, µs, latency)`.
- `common`: `ScaledRecipe`, and a knob solved for a MACs ratio (`solve_knob`).
- `efficientnet`: compound scaling, φ solved against the counted cost; the published B0..B7 table.
- `dwr`: Dollár et al.'s α-rule, s solved against the counted cost: `fast` (α = 0.8) and
  `uniform` (α = 1/3: d, w², r² equal shares).
- `single_axis`: width only, depth only at a target ratio; `resolution`: resolution only.
- `tinynet`: the published TinyNet-A..E recipes.
- `table`: the side-by-side scaling table.
"""

from baselines.common import ScaledRecipe, knob_fields
from baselines.dwr import dwr_recipe, fast, uniform
from baselines.efficientnet import EFFICIENTNET_B, compound_recipe, efficientnet_b
from baselines.registry import KNOBS, PUBLISHED, RULES, SOLVED, STRATEGIES, Rule, scale, scale_latency, solve_ratio
from baselines.resolution import resolution_only
from baselines.single_axis import depth_only, width_only
from baselines.table import TableRow, format_scaling_table, scaling_table
from baselines.tinynet import TINYNET, tinynet, tinynet_recipe

__all__ = [
    "EFFICIENTNET_B", "KNOBS", "PUBLISHED", "RULES", "SOLVED", "STRATEGIES", "TINYNET", "Rule", "ScaledRecipe",
    "TableRow", "compound_recipe", "depth_only", "dwr_recipe", "efficientnet_b", "fast", "format_scaling_table",
    "knob_fields", "resolution_only", "scale", "scale_latency", "scaling_table", "solve_ratio", "tinynet",
    "tinynet_recipe", "uniform", "width_only",
]
