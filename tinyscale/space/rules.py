"""Rule sets: how a scaled B0 table is rounded into one exact network, as values.

Two published conventions differ in three places, and a `RuleSet` holds each as a field (as
timm's builder takes ``depth_trunc``, ``round_chs_fn`` and ``fix_stem`` as arguments) instead of
string branches in the builder:

- ``repeats``: blocks in a stage for ``repeats * d`` (EfficientNet rounds up; TinyNet rounds
  half-to-even, as Python's ``round`` and the official TinyNet code do, keeping at least one);
- ``fix_stem``: the stem keeps B0's 32 channels whatever the width (TinyNet);
- ``head_floor``: the head is never narrower than B0's 1,280 channels (TinyNet).

A new rule set is one entry in `RULES`; `tinyscale.space.recipe.RULE_SETS` lists their names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


def ceil_repeats(repeats: int, d: float) -> int:
    return int(math.ceil(repeats * d))


def round_repeats(repeats: int, d: float) -> int:
    # Python's round is half-to-even (round(2.5) == 2), exactly as the official TinyNet code.
    return max(1, round(repeats * d))


@dataclass(frozen=True)
class RuleSet:
    """How repeats and the stem and head channels are rounded (see the module docstring)."""

    name: str
    repeats: Callable[[int, float], int]
    fix_stem: bool
    head_floor: bool


RULES: dict[str, RuleSet] = {
    "tinynet": RuleSet("tinynet", round_repeats, fix_stem=True, head_floor=True),
    "efficientnet": RuleSet("efficientnet", ceil_repeats, fix_stem=False, head_floor=False),
}


def rule_set(name: str) -> RuleSet:
    """The rule set called ``name`` (ValueError naming the known ones otherwise)."""
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"rules must be one of {tuple(RULES)}, got {name!r}") from None
