"""Every baseline scaling rule, once: the registry (`RULES`) the CLI, the compare stage and the UI read.

A `Rule` is a name, the label and colour tables and figures show it with, a one-line help for
`tinyscale scale --rule`, and how it builds a recipe: a solved rule's knob factory (its knob
solved by the shared step solver for a MACs ratio or a latency target), or a published rule's
recipe. `STRATEGIES`, `SOLVED`, `PUBLISHED`, `KNOBS`, `scale`, `solve_ratio` and
`scale_latency` are derived from it here; the CLI's rule choices and help and the baselines of
`tinyscale compare` are derived from it where they are used.

Adding a rule is a module in baselines/ with its knob factory and one entry in `RULES`. This
module and everything it imports at load time is torch-free: the CLI reads it to build its parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from baselines.common import DEFAULT_RULES, ScaledRecipe, solve_knob
from baselines.dwr import FAST_ALPHA, UNIFORM_ALPHA, dwr_knob
from baselines.efficientnet import compound_knob
from baselines.resolution import resolution_knob
from baselines.single_axis import depth_knob, width_only_knob, width_only_solution
from baselines.tinynet import TINYNET, tinynet
from tinyscale.space.recipe import Recipe
from tinyscale.space.steps import Knob, StepSolution

# (rules, base_resolution, num_classes) -> the rule's knob in that context.
KnobFactory = Callable[[str, int, int], Knob]


@dataclass(frozen=True)
class Rule:
    """One scaling rule.

    A solved rule has ``knob``, solved against the counted MACs for a ratio c and against a
    latency for a latency target (EfficientNet's ignores ``rules``: it keeps its own rule set).
    Where a rule has a MACs-ratio solver of its own, ``solve_ratio(c, rules, base_resolution,
    num_classes)`` is used for a ratio instead (width only: the width solver's exact arithmetic).
    A published rule has no knob, only ``recipe(base_resolution, num_classes)``; it ignores c.
    ``color`` None: no fixed colour in figures.
    """

    name: str
    label: str
    color: str | None
    help: str
    knob: KnobFactory | None = None
    recipe: Callable[[int, int], ScaledRecipe] | None = None
    solve_ratio: Callable[[float, str, int, int], StepSolution] | None = None

    @property
    def published(self) -> bool:
        return self.knob is None


def _published(name: str) -> Callable[[int, int], ScaledRecipe]:
    return lambda base, classes: tinynet(name, base_resolution=base, num_classes=classes)


# In the order tables, figures and `--rule` list them.
RULES: tuple[Rule, ...] = (
    Rule("efficientnet", "EfficientNet compound (φ solved)", "#1f77b4",
         "compound scaling, φ solved (EfficientNet's own rules)",
         knob=lambda rules, base, classes: compound_knob(base, classes)),
    Rule("uniform", "uniform compound (d, w², r² equal shares)", "#17becf",
         "d, w², r² equal shares of the FLOPs factor",
         knob=lambda rules, base, classes: dwr_knob(UNIFORM_ALPHA, strategy="uniform", rules=rules,
                                                    base_resolution=base, num_classes=classes)),
    Rule("fast", "fast dWr (Dollár et al., α = 0.8)", "#8c564b", "Dollár et al.'s dWr (α=0.8)",
         knob=lambda rules, base, classes: dwr_knob(FAST_ALPHA, strategy="fast", rules=rules, base_resolution=base,
                                                    num_classes=classes)),
    Rule("width", "width only", "#2ca02c", "one axis only",
         knob=lambda rules, base, classes: width_only_knob(rules=rules, base_resolution=base, num_classes=classes),
         solve_ratio=lambda c, rules, base, classes: width_only_solution(c, rules=rules, base_resolution=base,
                                                                        num_classes=classes)),
    Rule("depth", "depth only", "#9467bd", "one axis only",
         knob=lambda rules, base, classes: depth_knob(rules=rules, base_resolution=base, num_classes=classes)),
    Rule("resolution", "resolution only", "#ff7f0e", "one axis only",
         knob=lambda rules, base, classes: resolution_knob(rules=rules, base_resolution=base, num_classes=classes)),
    *(Rule(name, f"TinyNet-{name[-1].upper()} (published)", None, "the published recipe (--ratio ignored)",
           recipe=_published(name)) for name in TINYNET),
)

STRATEGIES: dict[str, Rule] = {rule.name: rule for rule in RULES}
# Strategies that solve a recipe for a target ratio c, and published recipes (c is ignored).
SOLVED: tuple[str, ...] = tuple(rule.name for rule in RULES if not rule.published)
PUBLISHED: tuple[str, ...] = tuple(rule.name for rule in RULES if rule.published)
# Each solved rule's knob under a rule set, for any budget.
KNOBS: dict[str, KnobFactory] = {rule.name: rule.knob for rule in RULES if rule.knob is not None}


def solve_ratio(rule: str, c: float, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
                num_classes: int = 1000) -> tuple[StepSolution, str]:
    """Solved rule ``rule`` at FLOPs ratio c: ``(solution, knob_name)``, the solution in ratio
    units and what its ``knob`` is ("phi", "ln s", "w", "d", "r"). ``rules`` is the rule set of
    every rule but ``efficientnet`` (which keeps EfficientNet's).

    Raises ValueError for an unknown or published rule, a bad c, or one out of reach.
    """
    if rule not in SOLVED:
        raise ValueError(f"a target ratio needs a solved rule ({', '.join(SOLVED)}); got {rule!r}")
    entry = STRATEGIES[rule]
    if entry.solve_ratio is not None:
        solution = entry.solve_ratio(c, rules, base_resolution, num_classes)
        return solution, entry.knob(rules, base_resolution, num_classes).name
    knob = entry.knob(rules, base_resolution, num_classes)
    return solve_knob(c, knob), knob.name


def scale(rule: str, c: float | None = None, *, rules: str = DEFAULT_RULES, base_resolution: int = 224,
          num_classes: int = 1000) -> ScaledRecipe:
    """The recipe strategy ``rule`` gives at FLOPs ratio c (ignored for published TinyNets).
    ``rules`` is the rule set of the solved rules but ``efficientnet`` (see `solve_ratio`).

    Raises ValueError for an unknown rule, a missing or invalid c, or a c out of reach.
    """
    if rule not in STRATEGIES:
        raise ValueError(f"rule must be one of {', '.join(STRATEGIES)}; got {rule!r}")
    entry = STRATEGIES[rule]
    if entry.published:
        return entry.recipe(base_resolution, num_classes)
    if c is None:
        raise ValueError(f"rule {rule!r} needs a target ratio c (--ratio)")
    return ScaledRecipe.from_solution(rule, *solve_ratio(rule, c, rules=rules, base_resolution=base_resolution,
                                                         num_classes=num_classes))


def scale_latency(rule: str, target_us: float, latency: Callable[[Recipe], float], *, rules: str = DEFAULT_RULES,
                  base_resolution: int = 224, num_classes: int = 1000) -> tuple[StepSolution, str]:
    """The recipe solved rule ``rule`` gives at a latency target (µs) on a latency measure
    (`tinyscale.latency.LatencyTable.predict_us` of a device): the rule's knob solved by the
    same step bisection as for a FLOPs ratio. ``rules`` as for `solve_ratio`. Returns
    ``(solution, knob_name)``: the solution in µs and what its ``knob`` is.

    Raises ValueError for an unknown or published rule, a bad target, or one out of reach.
    """
    from tinyscale.latency.solve import solve_latency

    if rule not in SOLVED:
        raise ValueError(f"a latency target needs a solved rule ({', '.join(SOLVED)}); got {rule!r}")
    knob = KNOBS[rule](rules, base_resolution, num_classes)
    return solve_latency(target_us, latency, knob), knob.name
