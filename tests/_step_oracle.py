"""An independent check of "meets c as closely as rounding allows" for any one-knob solver.

The counted cost is a step function of the knob. Scanning the knob densely gives (a subset of)
the achievable ratios; a correct solution brackets c by two adjacent achievable ratios, picks
the closer one, and no scanned ratio lies strictly between them.
"""

from __future__ import annotations

from typing import Callable, Iterable

from tinyscale.space.cost import ratio
from tinyscale.space.recipe import Recipe


def achievable(make: Callable[[float], Recipe], knobs: Iterable[float]) -> list[float]:
    return sorted({ratio(make(t)) for t in knobs})


def check_closest_step(c: float, recipe: Recipe, achieved: float, below: float, above: float,
                       ratios: list[float]) -> None:
    tol = 1e-12
    assert abs(achieved - ratio(recipe)) <= tol  # recounted, not trusted
    assert below - tol <= c <= above + tol, (below, c, above)
    assert achieved in (below, above)
    other = above if achieved == below else below
    assert abs(achieved - c) <= abs(other - c) + tol  # the closer step
    assert abs(achieved - c) <= (above - below) / 2 + tol  # never more than half a step off
    between = [x for x in ratios if below + tol < x < above - tol]
    assert not between, f"achievable ratios {between[:3]} lie between the reported steps {below}..{above}"
    if ratios:  # the reported steps are achievable too (as far as the scan sees)
        assert min(ratios) - tol <= below and above <= max(ratios) + tol
