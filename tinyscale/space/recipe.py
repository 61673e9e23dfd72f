"""The recipe: how far to scale EfficientNet-B0 along resolution, width and depth.

A `Recipe` is the single value every pipeline stage passes around. It carries the three
multipliers and the context that turns them into one exact network: the rule set (how channels
and repeats are rounded), the base resolution the multiplier ``r`` applies to, and the number of
classes of the classifier.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Literal

from tinyscale.space.rules import RULES

Rules = Literal["tinynet", "efficientnet"]
RULE_SETS: tuple[str, ...] = tuple(RULES)  # the rule sets' names (`tinyscale.space.rules`)

# Multipliers beyond this are typos, not designs: EfficientNet-B7 is w=2.0, d=3.1, r≈2.7.
MAX_MULTIPLIER = 8.0
# Five stride-2 stages divide the input by 32. Below 8 px the stem output is 4x4 or less and
# stages 3-7 all run on a single pixel, which is no longer a meaningful image network.
MIN_RESOLUTION = 8
MAX_RESOLUTION = 4096
MAX_CLASSES = 1_000_000
RECIPE_FIELDS = ("r", "w", "d", "rules", "base_resolution", "num_classes")  # Recipe.to_dict's keys


def _check_multiplier(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    if value > MAX_MULTIPLIER:
        raise ValueError(f"{name} must be at most {MAX_MULTIPLIER}, got {value}")
    return value


def resolution_for(r: float, base_resolution: int) -> int:
    """Input side in pixels: int(base·r), as TinyNet does.

    The tiny epsilon keeps products that are integers on paper (240/224·224) from landing one
    pixel short through floating-point error; it cannot move any other value across an integer.
    """
    return int(math.floor(base_resolution * r + 1e-9))


@dataclass(frozen=True)
class Recipe:
    """A scaling of EfficientNet-B0: r (resolution), w (width), d (depth) multipliers.

    ``rules`` selects the rounding conventions ("tinynet": round-half-even repeats, fixed stem,
    head >= 1280; "efficientnet": ceil repeats, stem and head scale with w). ``base_resolution``
    is the side length r multiplies (224 for ImageNet-sized data, 32 for small images).
    """

    r: float = 1.0
    w: float = 1.0
    d: float = 1.0
    rules: Rules = "tinynet"
    base_resolution: int = 224
    num_classes: int = 1000

    def __post_init__(self) -> None:
        for name in ("r", "w", "d"):
            object.__setattr__(self, name, _check_multiplier(name, getattr(self, name)))
        if self.rules not in RULE_SETS:
            raise ValueError(f"rules must be one of {RULE_SETS}, got {self.rules!r}")
        for name, upper in (("base_resolution", MAX_RESOLUTION), ("num_classes", MAX_CLASSES)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if not 1 <= value <= upper:
                raise ValueError(f"{name} must be between 1 and {upper}, got {value}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")
        res = resolution_for(self.r, self.base_resolution)
        if res < MIN_RESOLUTION:
            raise ValueError(
                f"r={self.r} gives a {res} px input at base resolution {self.base_resolution}; "
                f"the network needs at least {MIN_RESOLUTION} px (r >= "
                f"{MIN_RESOLUTION / self.base_resolution:.4g})"
            )
        if res > MAX_RESOLUTION:
            raise ValueError(f"r={self.r} gives a {res} px input; at most {MAX_RESOLUTION} px")

    @property
    def resolution(self) -> int:
        """Input side length in pixels."""
        return resolution_for(self.r, self.base_resolution)

    def baseline(self) -> Recipe:
        """The unscaled network (r = w = d = 1) in the same context; ratios are relative to it."""
        return replace(self, r=1.0, w=1.0, d=1.0)

    def with_(self, **changes: object) -> Recipe:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {
            "r": self.r,
            "w": self.w,
            "d": self.d,
            "rules": self.rules,
            "base_resolution": self.base_resolution,
            "num_classes": self.num_classes,
        }

    def to_json(self) -> str:
        """The recipe as result stores keep it (sorted keys, so equal recipes give equal text)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        known = {k: data[k] for k in RECIPE_FIELDS if k in data}
        return cls(**known)
