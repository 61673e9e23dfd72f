"""Which recipes a device table is built from, and building it (`build_table`).

The table's parts come from a **grid of recipes** (`grid_recipes`: input sides × widths, deep
enough that every stage has a repeated block, both rule sets): d changes only how often a shape
repeats, not which shapes exist. Its correction is fitted on whole networks: on the grid's
sides and widths for a linear correction (`calibration_recipes`), drawn from the box the grid
spans for a gp one (`box_recipes`), which must see the shapes users ask about.
"""

from __future__ import annotations

import math
from typing import Iterable

from tinyscale.latency.calibration import CORRECTIONS, MIN_GP_POINTS
from tinyscale.latency.measure import Measurer
from tinyscale.latency.table import LatencyTable
from tinyscale.latency.timing import check_count
from tinyscale.space.recipe import Recipe

GRID_SIDES = (64, 96, 128, 160, 192, 224, 256)
GRID_WIDTHS = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4)
SMALL_GRID_SIDES = (96, 160, 224)
SMALL_GRID_WIDTHS = (0.35, 0.7, 1.0)
GRIDS = {"default": (GRID_SIDES, GRID_WIDTHS), "small": (SMALL_GRID_SIDES, SMALL_GRID_WIDTHS)}
GRID_DEPTH = 2.0  # every stage has a repeated block (its shapes do not depend on d)
CALIBRATION_DEPTHS = (0.5, 1.0, 1.6)
BOX_DEPTHS = (0.35, 1.5)  # the depth range box-drawn calibration networks span (the samplers')
# Calibration networks by default: the linear fit has 3 coefficients; the GP needs the box covered.
DEFAULT_CALIBRATION = {"linear": 8, "gp": 32}


def grid_recipes(sides: Iterable[int] = GRID_SIDES, widths: Iterable[float] = GRID_WIDTHS, *,
                 rules: Iterable[str] = ("tinynet", "efficientnet"), depth: float = GRID_DEPTH,
                 base_resolution: int = 224, num_classes: int = 1000) -> list[Recipe]:
    """Recipes whose parts span the search space: each input side × width, at one depth where
    every stage repeats (r is set so the floor gives exactly the side)."""
    return [Recipe(r=(side + 0.5) / base_resolution, w=w, d=depth, rules=rule, base_resolution=base_resolution,
                   num_classes=num_classes) for rule in rules for side in sides for w in widths]


def calibration_recipes(sides: Iterable[int] = GRID_SIDES, widths: Iterable[float] = GRID_WIDTHS, *,
                        count: int = 8, seed: int = 0, base_resolution: int = 224,
                        num_classes: int = 1000) -> list[Recipe]:
    """``count`` whole networks on the grid's sides and widths (so all their parts are in the
    table), at several depths, drawn with a seeded generator."""
    import random

    rng = random.Random(seed)
    sides, widths = list(sides), list(widths)
    out: list[Recipe] = []
    seen = set()
    for _ in range(count * 20):
        if len(out) >= count:
            break
        side, w, d = rng.choice(sides), rng.choice(widths), CALIBRATION_DEPTHS[len(out) % len(CALIBRATION_DEPTHS)]
        recipe = Recipe(r=(side + 0.5) / base_resolution, w=w, d=d, base_resolution=base_resolution,
                        num_classes=num_classes)
        if recipe not in seen:
            seen.add(recipe)
            out.append(recipe)
    return out


def box_recipes(sides: Iterable[int] = GRID_SIDES, widths: Iterable[float] = GRID_WIDTHS, *, count: int = 32,
                seed: int = 0, base_resolution: int = 224, num_classes: int = 1000) -> list[Recipe]:
    """``count`` whole networks drawn log-uniformly from the box the grid spans (input side
    between its smallest and largest, w between its widths, d in `BOX_DEPTHS`), seeded: the
    calibration of a gp correction, which must see the shapes users ask about."""
    import random

    rng = random.Random(seed)
    sides, widths = list(sides), list(widths)

    def log_uniform(lo: float, hi: float) -> float:
        return round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 4)

    out: list[Recipe] = []
    for _ in range(count * 20):
        if len(out) >= count:
            break
        side = int(log_uniform(min(sides), max(sides)))
        recipe = Recipe(r=(side + 0.5) / base_resolution, w=log_uniform(min(widths), max(widths)),
                        d=log_uniform(*BOX_DEPTHS), base_resolution=base_resolution, num_classes=num_classes)
        if recipe not in out:
            out.append(recipe)
    return out


def build_table(measurer: Measurer, *, grid: str = "default", calibration: int | None = None,
                progress: bool = False, seed: int = 0, sides: Iterable[int] | None = None,
                widths: Iterable[float] | None = None, num_classes: int = 1000,
                correction: str = "linear") -> LatencyTable:
    """A table for this machine: the grid's parts, then ``calibration`` whole networks
    (default `DEFAULT_CALIBRATION` of the ``correction``): on the grid for a linear correction,
    drawn from the grid's box (`box_recipes`) for a gp one.

    ``sides`` (input sides in px) and ``widths`` replace the named grid's, e.g. to cover a
    study at base 32 px (parts on 4-32 px maps) rather than ImageNet-sized inputs;
    ``num_classes`` is the classifier the heads are timed with."""
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {', '.join(GRIDS)}, got {grid!r}")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    if calibration is None:
        calibration = DEFAULT_CALIBRATION[correction]
    check_count("calibration recipes", calibration, MIN_GP_POINTS if correction == "gp" else 2)
    grid_sides, grid_widths = GRIDS[grid]
    sides = tuple(grid_sides if sides is None else sides)
    widths = tuple(grid_widths if widths is None else widths)
    if not sides or any(isinstance(x, bool) or not isinstance(x, int) or not 8 <= x <= 1024 for x in sides):
        raise ValueError(f"grid sides must be whole numbers of pixels from 8 to 1024, got {list(sides)}")
    if not widths or any(not (isinstance(x, (int, float)) and 0.05 <= x <= 4) for x in widths):
        raise ValueError(f"grid widths must be multipliers from 0.05 to 4, got {list(widths)}")
    base = max(sides)  # r = side / base stays <= 1 (any base works: the parts depend on the side only)
    table = LatencyTable(measurer.profile())
    table.fill(grid_recipes(sides, widths, base_resolution=base, num_classes=num_classes), measurer,
               progress=progress)
    draw = box_recipes if correction == "gp" else calibration_recipes
    table.calibrate(draw(sides, widths, count=calibration, seed=seed, base_resolution=base, num_classes=num_classes),
                    measurer, progress=progress, kind=correction)
    return table
