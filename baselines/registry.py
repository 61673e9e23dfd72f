"""All scaling strategies by name: the one entry point the CLI, the compare stage and the UI call."""

from __future__ import annotations

from typing import Callable

from baselines.common import ScaledRecipe
from baselines.dwr import fast, uniform
from baselines.efficientnet import compound_recipe
from baselines.single_axis import depth_only, resolution_only, width_only
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
