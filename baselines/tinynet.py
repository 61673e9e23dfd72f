"""The published TinyNet-A..E recipes (official code and README, ImageNet-1k).

Built under TinyNet rules (round-half-even repeats, fixed 32-channel stem, head >= 1280). The
published input sizes are int(224·r); at another base resolution r applies to that base.
"""

from __future__ import annotations

from dataclasses import dataclass

from baselines.common import ScaledRecipe
from tinyscale.space.cost import ratio
from tinyscale.space.recipe import Recipe

RULES = "tinynet"


@dataclass(frozen=True)
class TinyNetSpec:
    name: str
    r: float
    w: float
    d: float
    resolution: int  # published input px at base 224
    macs: int  # published FLOPs (MACs)
    top1: float  # published ImageNet-1k top-1, %


TINYNET: dict[str, TinyNetSpec] = {
    s.name: s
    for s in (
        TinyNetSpec("tinynet-a", 0.86, 1.0, 1.2, 192, 339_000_000, 76.8),
        TinyNetSpec("tinynet-b", 0.84, 0.75, 1.1, 188, 202_000_000, 75.0),
        TinyNetSpec("tinynet-c", 0.825, 0.54, 0.85, 184, 100_000_000, 71.2),
        TinyNetSpec("tinynet-d", 0.68, 0.54, 0.695, 152, 52_000_000, 67.0),
        TinyNetSpec("tinynet-e", 0.475, 0.51, 0.60, 106, 24_000_000, 59.9),
    )
}


def _key(name: str) -> str:
    key = str(name).lower()
    return key if key.startswith("tinynet-") else f"tinynet-{key}"


def tinynet_recipe(name: str, *, base_resolution: int = 224, num_classes: int = 1000) -> Recipe:
    """The published recipe ``name`` ("tinynet-a".."tinynet-e", or just "a".."e")."""
    key = _key(name)
    if key not in TINYNET:
        raise ValueError(f"TinyNet model must be one of {sorted(TINYNET)}, got {name!r}")
    s = TINYNET[key]
    return Recipe(r=s.r, w=s.w, d=s.d, rules=RULES, base_resolution=base_resolution, num_classes=num_classes)


def tinynet(name: str, *, base_resolution: int = 224, num_classes: int = 1000) -> ScaledRecipe:
    """The published recipe as a strategy result: no target, achieved = its counted ratio."""
    recipe = tinynet_recipe(name, base_resolution=base_resolution, num_classes=num_classes)
    c = ratio(recipe)
    return ScaledRecipe(strategy=_key(name), recipe=recipe, target=None, achieved=c,
                        ratio_below=c, ratio_above=c)

