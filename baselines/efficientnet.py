"""EfficientNet compound scaling: the published B0..B7 table and φ solved against the real count.

Compound scaling sets d = 1.2^φ, w = 1.1^φ, r = 1.15^φ (α·β²·γ² ≈ 2, so nominally FLOPs ≈ 2^φ).
That nominal rule is badly off when shrinking (channel rounding, the 1-block minimum per stage,
fixed stem/head costs), so the fair baseline at a FLOPs ratio c solves φ numerically until the
*counted* cost (tinyscale.space.cost) meets c as closely as the rounding allows. Always built under
EfficientNet rules (ceil repeats, stem and head scale with w), as the TF reference does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from baselines.common import ScaledRecipe, scaled_recipe
from tinyscale.space.recipe import MAX_MULTIPLIER, MAX_RESOLUTION, MIN_RESOLUTION, Recipe
from tinyscale.space.steps import Knob

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # depth, width, resolution bases of the compound rule
PUBLISHED_BASE_RESOLUTION = 224  # the B0 input the B-table resolutions are relative to
RULES = "efficientnet"


@dataclass(frozen=True)
class EfficientNetB:
    """One published model: (width, depth, resolution px, dropout) from the TF reference."""

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float


EFFICIENTNET_B: dict[str, EfficientNetB] = {
    m.name: m
    for m in (
        EfficientNetB("b0", 1.0, 1.0, 224, 0.2),
        EfficientNetB("b1", 1.0, 1.1, 240, 0.2),
        EfficientNetB("b2", 1.1, 1.2, 260, 0.3),
        EfficientNetB("b3", 1.2, 1.4, 300, 0.3),
        EfficientNetB("b4", 1.4, 1.8, 380, 0.4),
        EfficientNetB("b5", 1.6, 2.2, 456, 0.4),
        EfficientNetB("b6", 1.8, 2.6, 528, 0.5),
        EfficientNetB("b7", 2.0, 3.1, 600, 0.5),
    )
}


def efficientnet_b(name: str, *, base_resolution: int = 224, num_classes: int = 1000) -> Recipe:
    """The published model ``name`` ("b0".."b7") as a Recipe: r = px / 224 applied to the
    given base resolution (so at base 224 the input is exactly the published size)."""
    key = name.lower()
    if key not in EFFICIENTNET_B:
        raise ValueError(f"EfficientNet model must be one of {sorted(EFFICIENTNET_B)}, got {name!r}")
    m = EFFICIENTNET_B[key]
    return Recipe(r=m.resolution / PUBLISHED_BASE_RESOLUTION, w=m.width, d=m.depth, rules=RULES,
                  base_resolution=base_resolution, num_classes=num_classes)


def compound_multipliers(phi: float) -> tuple[float, float, float]:
    """(r, w, d) of the compound rule at coefficient φ."""
    return GAMMA**phi, BETA**phi, ALPHA**phi


def compound_at_phi(phi: float, *, base_resolution: int = 224, num_classes: int = 1000) -> Recipe:
    r, w, d = compound_multipliers(phi)
    return Recipe(r=r, w=w, d=d, rules=RULES, base_resolution=base_resolution, num_classes=num_classes)


def _valid(phi: float, base_resolution: int, num_classes: int) -> bool:
    try:
        compound_at_phi(phi, base_resolution=base_resolution, num_classes=num_classes)
    except ValueError:
        return False
    return True


def phi_range(base_resolution: int = 224, num_classes: int = 1000) -> tuple[float, float]:
    """The φ interval whose recipes are valid: below, the input would drop under the network's
    minimum resolution; above, a multiplier or the input size would pass its upper limit."""
    # Validate the context once so a bad base resolution/class count reports its own field.
    Recipe(base_resolution=base_resolution, num_classes=num_classes)
    lo = math.log(MIN_RESOLUTION / base_resolution) / math.log(GAMMA)
    hi = min(
        math.log(MAX_MULTIPLIER) / math.log(ALPHA),
        math.log(MAX_MULTIPLIER) / math.log(BETA),
        math.log(min(MAX_MULTIPLIER, MAX_RESOLUTION / base_resolution)) / math.log(GAMMA),
    )
    # The analytic bounds sit on the limits; step inwards past floating-point error.
    step = 1e-12
    while not _valid(lo, base_resolution, num_classes):
        lo += step
        step *= 2
    step = 1e-12
    while not _valid(hi, base_resolution, num_classes):
        hi -= step
        step *= 2
    return lo, hi


def compound_knob(base_resolution: int = 224, num_classes: int = 1000) -> Knob:
    """φ as the knob of compound scaling, over its valid range."""
    lo, hi = phi_range(base_resolution, num_classes)

    def make(phi: float) -> Recipe:
        return compound_at_phi(phi, base_resolution=base_resolution, num_classes=num_classes)

    return Knob(make, lo, hi, what=f"EfficientNet compound scaling (base {base_resolution} px)",
                low_limit=f"φ={lo:.4g}, the {MIN_RESOLUTION} px minimum input",
                high_limit=f"φ={hi:.4g}, the multiplier/input size limit", name="phi")


def compound_recipe(c: float, base_resolution: int = 224, num_classes: int = 1000) -> ScaledRecipe:
    """EfficientNet compound scaling at FLOPs ratio c (relative to the unscaled B0 at the same
    base resolution), with φ solved against the counted cost; works for c below and above 1.

    Raises ValueError if c is not a positive finite number or out of reach (the message gives
    the reachable range and which limit stops it).
    """
    return scaled_recipe("efficientnet", c, compound_knob(base_resolution, num_classes))
