"""Where a recipe sits against the edges of the box the study sampled, and whether the box can
go further (issue 25 item 6).

A ridge on the edge of the sampled box is a finding, not an answer: the best shape at that c
may lie beyond, where no trial was. Two kinds of edge differ in what a user can do:

- the **box's** edge (r at its lowest resolution sampled, say, when smaller inputs exist): a
  study with a wider range finds out; the note names the range to resume with;
- the **architecture's** limit: below some depth every stage of B0 already has one block (the
  rounding rules' floor: with TinyNet's round-half-even repeats every d < 0.375 builds the same
  network, so the default d_range's 0.35 *is* the floor), and below `MIN_RESOLUTION` pixels there
  is no input; nothing lies past these, and the note says the recipe is the family's extreme.

The test is on the recipe's own value: within `EDGE_SHARE` of the sampled range (in log) of a
bound, or past it (a GP mean clipped to the box).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tinyscale.space.arch import B0_STAGES, scale_repeats
from tinyscale.space.recipe import MAX_MULTIPLIER, MIN_RESOLUTION, resolution_for

EDGE_SHARE = 0.05  # of the axis's sampled range in log: about half a step of the surface's depth grid
WIDEN = 1.5  # a suggested extension reaches this factor past the edge (or to the limit)


@dataclass(frozen=True)
class Edge:
    """A recipe's ``axis`` ("r" or "d") at the ``side`` ("low" or "high") of its sampled range."""

    axis: str
    side: str
    value: float
    bound: float  # the sampled range's bound it sits at
    limit: bool  # the architecture's own limit: no network lies past it
    wider: tuple[float, float] | None  # a range to resume the study with, past the edge (None at a limit)

    def text(self) -> str:
        name = {"r": "resolution", "d": "depth"}[self.axis]
        extreme = "lowest" if self.side == "low" else "highest"
        if self.limit:
            why = ("every stage of B0 already has a single block there, so no shallower network exists"
                   if self.axis == "d" else f"no input is smaller than {MIN_RESOLUTION} px")
            return (f"{self.axis}={self.value:g} is at the {extreme} {name} the architecture allows ({why}): "
                    f"at this c the data prefer the family's extreme, and nothing lies beyond it to try")
        lo, hi = self.wider
        return (f"{self.axis}={self.value:g} is at the {extreme} {name} the study sampled ({self.bound:g}): the best "
                f"may lie beyond, where no trial was; to find out, resume the study with a wider box "
                f"(tinyscale study --resume DIR --{self.axis}-range {lo:g},{hi:g}) and fit again")


def depth_floor(rules: str) -> float:
    """The largest depth multiplier below which every network is the same (one block per stage):
    the smallest d at which some stage of B0 gets a second block."""
    lo, hi = 0.0, 1.0  # at d = 1 B0's deepest stages have more than one block; bisect for the step (to 1e-9)
    for _ in range(60):
        mid = (lo + hi) / 2
        if all(scale_repeats(s.repeats, mid, rules) <= 1 for s in B0_STAGES):
            lo = mid
        else:
            hi = mid
    return hi


def _near(value: float, bound: float, lo: float, hi: float, side: str) -> bool:
    if side == "low" and value <= bound or side == "high" and value >= bound:
        return True  # at or past it (a clipped GP mean)
    span = math.log(hi) - math.log(lo)
    return span > 0 and abs(math.log(value) - math.log(bound)) <= EDGE_SHARE * span


def recipe_edges(r: float, d: float, r_range: tuple[float, float], d_range: tuple[float, float], *,
                 rules: str, base_resolution: int) -> list[Edge]:
    """The edges of the sampled box that the recipe (r, d) sits at, each with what lies past it."""
    edges = []
    floor = depth_floor(rules)
    r_min = MIN_RESOLUTION / base_resolution  # resolution_for(r_min, base) == MIN_RESOLUTION
    for axis, value, (lo, hi) in (("r", r, r_range), ("d", d, d_range)):
        for side, bound in (("low", lo), ("high", hi)):
            if not _near(value, bound, lo, hi, side):
                continue
            if side == "low":
                at_limit = bound < floor if axis == "d" else resolution_for(bound, base_resolution) <= MIN_RESOLUTION
                past = max(bound / WIDEN, floor * 0.999 if axis == "d" else r_min)
                wider = None if at_limit else (math.floor(past * 1000) / 1000, hi)  # down: stay past the edge
            else:
                at_limit = bound >= MAX_MULTIPLIER
                wider = None if at_limit else (lo, round(min(bound * WIDEN, MAX_MULTIPLIER), 3))
            edges.append(Edge(axis, side, value, bound, at_limit, wider))
    return edges
