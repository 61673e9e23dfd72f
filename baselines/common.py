"""What every scaling strategy returns, and the MACs-ratio face of the shared step solver.

Each solved strategy moves one scalar knob (φ for compound scaling, or a single multiplier: a
`tinyscale.space.steps.Knob`) on which the counted MACs are a non-decreasing step function:
channels round to multiples of 8, repeats to whole blocks, resolution to whole pixels. "Meets c"
therefore means the closer of the two achievable costs that bracket c, exactly as
`tinyscale.space.width.solve_width` does for w. The bisection itself lives in
`tinyscale.space.steps`, which also solves latency targets; its `StepSolution` becomes the
public `ScaledRecipe` in one place, `ScaledRecipe.from_solution`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tinyscale.space.cost import baseline_macs, macs
from tinyscale.space.recipe import Recipe
from tinyscale.space.steps import Knob, StepSolution, solve_steps
from tinyscale.space.width import check_ratio

# The rule set of every rule that is about how to split the budget across axes (all but
# EfficientNet, whose recipes are the published models'): the product's own.
DEFAULT_RULES = "tinynet"


def knob_fields(name: str, value: float) -> dict:
    """A solved knob as a `ScaledRecipe` reports it: ``{"phi": φ}`` for compound scaling,
    ``{"s": s}`` for the dWr rules (whose knob is ln s), nothing for a one-axis rule (its recipe
    shows the axis)."""
    if name == "phi":
        return {"phi": value}
    if name == "ln s":
        return {"s": math.exp(value)}
    return {}


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

    @classmethod
    def from_solution(cls, strategy: str, solution: StepSolution, knob_name: str = "") -> ScaledRecipe:
        """A solved rule's result: ``solution`` in ratio units, whose knob is called
        ``knob_name`` (φ and s become their fields, see `knob_fields`)."""
        return cls(strategy=strategy, recipe=solution.recipe, target=solution.target, achieved=solution.achieved,
                   ratio_below=solution.below, ratio_above=solution.above, recipe_below=solution.recipe_below,
                   recipe_above=solution.recipe_above, **knob_fields(knob_name, solution.knob))

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


def solve_knob(c: float, knob: Knob) -> StepSolution:
    """The knob value in [knob.lo, knob.hi] whose counted cost is closest to c times the
    baseline, in ratio units: `tinyscale.space.steps.solve_steps` on the counted MACs, whose
    values are then divided by the baseline's MACs.

    Raises ValueError when c is not a positive finite number or is out of the knob's reach.
    """
    c = check_ratio(c)
    base = baseline_macs(knob.make(knob.lo))
    solution = solve_steps(c * base, macs, knob, show=lambda m: f"{m / base:.6g}", prefix="c=", kind="ratios")
    return solution.per(base, c)


def scaled_recipe(strategy: str, c: float, knob: Knob) -> ScaledRecipe:
    """The rule's recipe at FLOPs ratio c: ``knob`` solved against the counted MACs, with the
    networks of both adjacent steps and the solved knob's own fields (φ, s)."""
    return ScaledRecipe.from_solution(strategy, solve_knob(c, knob), knob.name)
