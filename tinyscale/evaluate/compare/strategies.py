"""The strategies a comparison sets against each other, and what their targets measure.

A strategy (one entry of `REGISTRY`) is a name, a label and colour for tables and plots, and a
function that, given a study and a `TargetMeasure`, returns its `StrategyBuilder`: target ->
`StrategyRecipe`. The GP strategies solve their recipe with the study's fit (`gp`) or with
TinyNet's Pareto fit of the same trials (`gp-pareto`) and are defined here; the others are the
solved rules of the baseline registry (`baselines.registry.RULES`), with its labels and colours.

Under a latency budget the targets are milliseconds predicted on a device table
(`tinyscale.latency`): the GP solves through `RecipeSolver.solve_latency`, every baseline
solves its own knob through `baselines.scale_latency`. Every solver answers with a
`tinyscale.space.steps.StepSolution`, which `strategy_recipe` turns into the builder's result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from baselines.common import knob_fields
from baselines.registry import RULES, scale_latency, solve_ratio
from tinyscale.space.cost import macs
from tinyscale.space.recipe import Recipe
from tinyscale.space.steps import StepSolution
from tinyscale.study.trial import StudyConfig

MATCH_TOLERANCE = 0.02  # |achieved / target - 1| allowed for one recipe to count as matched FLOPs
BUDGETS = ("macs", "latency")  # what a target is: a MACs ratio c of B0, or milliseconds on a device


@dataclass(frozen=True)
class StrategyRecipe:
    """What a strategy builds at a target c: the recipe closest to c, a note, and, where the
    solver knows them, the recipes of the achievable steps just below and just above c (the
    comparison trains those two when ``recipe`` misses c by more than `MATCH_TOLERANCE`)."""

    recipe: Recipe
    note: str = ""
    below: Recipe | None = None
    above: Recipe | None = None


@dataclass(frozen=True)
class TargetMeasure:
    """What a comparison's targets measure: ``macs`` (the counted ratio c to the study's B0) or
    ``latency`` (ms predicted on ``table``, a `tinyscale.latency.LatencyTable`)."""

    kind: str = "macs"
    table: object | None = None

    def __post_init__(self) -> None:
        if self.kind not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {self.kind!r}")
        if (self.kind == "latency") != (self.table is not None):
            raise ValueError("a latency budget needs a device table (and only it)")

    @property
    def symbol(self) -> str:
        return "ms" if self.kind == "latency" else "c"

    def value(self, recipe: Recipe, config: StudyConfig) -> float:
        if self.kind == "latency":
            return self.table.predict_us(recipe) / 1000.0
        return macs(recipe) / _baseline_macs(config)

    def latency_us(self) -> Callable[[Recipe], float]:
        return self.table.predict_us

    def fingerprint(self) -> dict:
        """What the budget records about the measure (nothing for MACs, so MACs comparisons stored
        before latency budgets existed still resume): the device and a hash of the table."""
        if self.kind == "macs":
            return {}
        import hashlib

        text = json.dumps(self.table.to_dict(), sort_keys=True)
        return {"target_measure": "latency", "device": self.table.profile.describe(),
                "latency_table_sha256": hashlib.sha256(text.encode()).hexdigest()}


MACS = TargetMeasure()


def _baseline_macs(config: StudyConfig) -> int:
    """B0's MACs in the study's context: what a ratio c is a ratio of."""
    return macs(config.recipe(1.0, 1.0, 1.0))


# A strategy's builder: target ratio c -> StrategyRecipe in the study's context (a plain
# ``(recipe, note)`` tuple is accepted too: one recipe, nothing to interpolate with). It raises
# ValueError when it cannot build anything near c; the message becomes the row's note.
StrategyBuilder = Callable[[float], "StrategyRecipe | tuple[Recipe, str]"]


@dataclass(frozen=True)
class Strategy:
    """One entry of the strategy registry: its name, how tables and plots label and colour it,
    and ``builder(study_dir, config, measure)``, which returns its `StrategyBuilder` for a study
    and a `TargetMeasure` (targets in c or in ms)."""

    name: str
    label: str
    color: str | None
    builder: Callable[[Path, StudyConfig, TargetMeasure], StrategyBuilder]


def strategy_recipe(solution: StepSolution, note: str = "") -> StrategyRecipe:
    """A solved target as a strategy's recipe: the closer step, and the recipes of both steps
    when there are two (none when one step is all there is: an exact hit, a width clamped at
    the end of its range, a recipe not solved in this measure)."""
    if solution.below == solution.above:
        return StrategyRecipe(solution.recipe, note)
    return StrategyRecipe(solution.recipe, note, solution.recipe_below, solution.recipe_above)


def _solver_builder(solver, config: StudyConfig, measure: TargetMeasure) -> StrategyBuilder:
    """A fitted `RecipeSolver` as a builder: its answer at c, or at a latency in ms, with the
    fit's notes; the two width steps around the target come with the answer's solution."""
    if measure.kind == "latency":
        latency = measure.latency_us()

        def build_latency(ms: float) -> StrategyRecipe:
            answer = solver.solve_latency(ms * 1000.0, latency)
            return strategy_recipe(answer.solution, "; ".join(answer.at_ratio.note_texts))

        return build_latency

    def build(c: float) -> StrategyRecipe:
        answer = solver.solve(c)
        return strategy_recipe(answer.solution, "; ".join(answer.note_texts))

    return build


def _gp_builder(study_dir: Path, config: StudyConfig, measure: TargetMeasure = MACS) -> StrategyBuilder:
    from tinyscale.fit.solve import RecipeSolver

    # ValueError naming `tinyscale fit` when there is no fit
    return _solver_builder(RecipeSolver.load(study_dir), config, measure)


def _gp_pareto_builder(study_dir: Path, config: StudyConfig, measure: TargetMeasure = MACS) -> StrategyBuilder:
    """The paper's method on the same study, whatever its saved fit: Pareto selection (the
    default K, about 1 in 5 trials) and GPs c -> r, c -> d on the selected models, fitted here
    from the study's trials (deterministic: the same trials give the same recipes)."""
    from tinyscale.fit.gp import fit_scaling
    from tinyscale.fit.solve import RecipeSolver
    from tinyscale.study.store import Study

    with Study.open(study_dir) as study:
        trials = study.fit_trials()
    return _solver_builder(RecipeSolver(fit_scaling(trials, config, method="pareto")), config, measure)


def _knob_note(knob: str, value: float) -> str:
    """A baseline row's note: its solved φ or s."""
    fields = knob_fields(knob, value)
    return "; ".join(([f"φ={fields['phi']:.4g}"] if "phi" in fields else [])
                     + ([f"s={fields['s']:.4g}"] if "s" in fields else []))


def _baseline(rule: str) -> Callable[[Path, StudyConfig, TargetMeasure], StrategyBuilder]:
    """A registry builder for baseline ``rule`` in the study's context: its knob solved for a
    ratio c (`baselines.registry.solve_ratio`) or a latency in ms (`baselines.scale_latency`),
    under the study's rule set (EfficientNet keeps its own, as the TF reference does)."""

    def builder(study_dir: Path, config: StudyConfig, measure: TargetMeasure = MACS) -> StrategyBuilder:
        context = dict(rules=config.rules, base_resolution=config.base_resolution, num_classes=config.num_classes)
        if measure.kind == "latency":
            latency = measure.latency_us()

            def build_latency(ms: float) -> StrategyRecipe:
                solution, knob = scale_latency(rule, ms * 1000.0, latency, **context)
                return strategy_recipe(solution, _knob_note(knob, solution.knob) or f"{knob}={solution.knob:.4g}")

            return build_latency

        def build(c: float) -> StrategyRecipe:
            solution, knob = solve_ratio(rule, c, **context)
            return strategy_recipe(solution, _knob_note(knob, solution.knob))

        return build

    return builder


# The strategies `tinyscale compare` knows, in table order: the two GP strategies, then every
# solved baseline rule of the registry (a published recipe has no target to match).
REGISTRY: dict[str, Strategy] = {s.name: s for s in (
    Strategy("gp", "GP recipe (this study's fit)", "#d62728", _gp_builder),
    Strategy("gp-pareto", "GP on Pareto models (TinyNet's method)", "#e377c2", _gp_pareto_builder),
    *(Strategy(rule.name, rule.label, rule.color, _baseline(rule.name)) for rule in RULES if not rule.published),
)}
STRATEGIES: tuple[str, ...] = tuple(REGISTRY)
STRATEGY_LABELS: dict[str, str] = {name: s.label for name, s in REGISTRY.items()}
DEFAULT_STRATEGIES: tuple[str, ...] = STRATEGIES
