"""What every scaling strategy returns, and the MACs-ratio face of the shared step solver.

Each solved strategy moves one scalar knob (φ for compound scaling, or a single multiplier) on
which the counted MACs are a non-decreasing step function: channels round to multiples of 8,
repeats to whole blocks, resolution to whole pixels. "Meets c" therefore means the closer of
the two achievable costs that bracket c, exactly as `tinyscale.space.width.solve_width` does for w.
The bisection itself lives in `tinyscale.space.steps`, which also solves latency targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tinyscale.space.cost import baseline_macs, macs
from tinyscale.space.recipe import Recipe
from tinyscale.space.steps import solve_steps
from tinyscale.space.width import check_ratio


@dataclass(frozen=True)
class ScaledRecipe:
    """A strategy's recipe and how close it came to the asked FLOPs ratio.

    ``target`` is None for published recipes (TinyNet-A..E), whose ratio is whatever they
    cost. ``ratio_below``/``ratio_above`` are the achievable ratios adjacent to the target
    (both equal ``achieved`` when it is hit exactly or nothing was solved), and
    ``recipe_below``/``recipe_above`` the recipes that build them (None for published recipes),
    so a caller can train both sides of a rounding step. ``phi`` is the solved compound
    coefficient (EfficientNet only), ``s`` the solved nominal FLOPs factor of the dWr rules
    (`uniform`, `fast`: d·w²·r² = s before rounding).
    """

    strategy: str
    recipe: Recipe
    target: float | None
    achieved: float
    ratio_below: float
    ratio_above: float
    phi: float | None = None
    recipe_below: Recipe | None = None
    recipe_above: Recipe | None = None
    s: float | None = None

    @property
    def relative_error(self) -> float:
        """achieved / target - 1 (0 for published recipes)."""
        return 0.0 if self.target is None else self.achieved / self.target - 1.0

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "target": self.target,
            "achieved": self.achieved,
            "ratio_below": self.ratio_below,
            "ratio_above": self.ratio_above,
            "phi": self.phi,
            "s": self.s,
            "recipe": self.recipe.to_dict(),
            "recipe_below": None if self.recipe_below is None else self.recipe_below.to_dict(),
            "recipe_above": None if self.recipe_above is None else self.recipe_above.to_dict(),
        }


@dataclass(frozen=True)
class Knob:
    """A solved rule's one scalar knob, whatever the budget: ``make(t)`` builds the network at
    t, valid on [lo, hi] with a cost (MACs, latency) non-decreasing in t; ``what`` names the
    rule and ``low_limit``/``high_limit`` say what stops t at each end, for the out-of-reach
    error. ``name`` is what t is called in output ("phi", "ln s", "d", "r", "w")."""

    make: Callable[[float], Recipe]
    lo: float
    hi: float
    what: str
    low_limit: str
    high_limit: str
    name: str


@dataclass(frozen=True)
class StepSolution:
    """The solved knob and the two steps around c: ``knob_below``/``knob_above`` build the
    networks costing ``ratio_below``/``ratio_above`` (both equal ``knob`` on an exact hit);
    ``knob`` is whichever of them is closer to c."""

    knob: float
    achieved: float
    ratio_below: float
    ratio_above: float
    knob_below: float
    knob_above: float


def solve_knob(
    c: float,
    make: Callable[[float], Recipe],
    lo: float,
    hi: float,
    *,
    what: str,
    low_limit: str,
    high_limit: str,
) -> StepSolution:
    """The knob value in [lo, hi] whose counted cost is closest to c times the baseline
    (`tinyscale.space.steps.solve_steps` on the counted MACs).

    ``make(t)`` must be valid on [lo, hi] and its MACs non-decreasing in t. ``what`` names the
    strategy and ``low_limit``/``high_limit`` say what stops the knob at each end, for the
    error raised when c is out of reach.
    """
    c = check_ratio(c)
    base = baseline_macs(make(lo))
    sol = solve_steps(c * base, macs, make, lo, hi, what=what, low_limit=low_limit, high_limit=high_limit,
                      show=lambda m: f"{m / base:.6g}", name="c=", kind="ratios")
    return StepSolution(knob=sol.knob, achieved=sol.achieved / base, ratio_below=sol.value_below / base,
                        ratio_above=sol.value_above / base, knob_below=sol.knob_below, knob_above=sol.knob_above)


def scaled_recipe(strategy: str, c: float, knob: Knob, extra: Callable[[float], dict] = lambda t: {}) -> ScaledRecipe:
    """The rule's recipe at FLOPs ratio c: ``knob`` solved against the counted MACs, with the
    networks of both adjacent steps; ``extra(t)`` adds the solved knob's own fields (φ, s)."""
    sol = solve_knob(c, knob.make, knob.lo, knob.hi, what=knob.what, low_limit=knob.low_limit,
                     high_limit=knob.high_limit)
    return ScaledRecipe(strategy=strategy, recipe=knob.make(sol.knob), target=float(c), achieved=sol.achieved,
                        ratio_below=sol.ratio_below, ratio_above=sol.ratio_above,
                        recipe_below=knob.make(sol.knob_below), recipe_above=knob.make(sol.knob_above),
                        **extra(sol.knob))
