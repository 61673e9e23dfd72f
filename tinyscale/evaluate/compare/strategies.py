"""The strategies a comparison sets against each other, and what their targets measure.

A strategy (one entry of `REGISTRY`) is a name, a label and colour for tables and plots, and a
function that, given a study and a `TargetMeasure`, returns its `StrategyBuilder`: target ->
`StrategyRecipe`. The GP strategies solve their recipe with the study's fit (`gp`) or with
TinyNet's Pareto fit of the same trials (`gp-pareto`); the others call `baselines`.

Under a latency budget the targets are milliseconds predicted on a device table
(`tinyscale.latency`): the GP solves through `RecipeSolver.solve_latency`, every baseline
solves its own knob through `baselines.scale_latency`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinyscale.space.cost import macs
from tinyscale.space.recipe import Recipe
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


def gp_answer_recipe(answer, context: dict) -> StrategyRecipe:
    """A `tinyscale.fit.solve.RecipeAnswer` as a strategy's recipe: its notes, and the two width
    steps around c at the answer's (r, d) when the solved width misses c by more than the
    tolerance (none when the width was clamped: then no step lies on the other side)."""
    from tinyscale.space.width import solve_width

    below = above = None
    if abs(answer.achieved / answer.target - 1.0) > MATCH_TOLERANCE and not answer.width_clamped:
        sol = solve_width(answer.target, answer.recipe.r, answer.recipe.d, **context)
        below, above = sol.recipe_below, sol.recipe_above
    return StrategyRecipe(answer.recipe, "; ".join(answer.note_texts), below, above)


def gp_latency_recipe(answer, target_us: float, latency, context: dict) -> StrategyRecipe:
    """A `tinyscale.fit.solve.LatencyAnswer` as a strategy's recipe: as `gp_answer_recipe`, with the
    two width steps around the latency target when the solved width misses it by more than
    the tolerance (none when no width reached it)."""
    from tinyscale.latency import solve_width_latency

    below = above = None
    if answer.width_solved and abs(answer.predicted_us / target_us - 1.0) > MATCH_TOLERANCE:
        sol = solve_width_latency(target_us, answer.recipe.r, answer.recipe.d, latency, **context)
        below, above = sol.recipe_below, sol.recipe_above
    return StrategyRecipe(answer.recipe, "; ".join(answer.at_ratio.note_texts), below, above)


def _solver_builder(solver, config: StudyConfig, measure: TargetMeasure) -> StrategyBuilder:
    """A fitted `RecipeSolver` as a builder: its answer at c, or at a latency in ms."""
    context = dict(rules=config.rules, base_resolution=config.base_resolution, num_classes=config.num_classes)
    if measure.kind == "latency":
        latency = measure.latency_us()

        def build_latency(ms: float) -> StrategyRecipe:
            return gp_latency_recipe(solver.solve_latency(ms * 1000.0, latency), ms * 1000.0, latency, context)

        return build_latency

    def build(c: float) -> StrategyRecipe:
        return gp_answer_recipe(solver.solve(c), context)

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
        trials = study.trials(state="completed")
    return _solver_builder(RecipeSolver(fit_scaling(trials, config, method="pareto")), config, measure)


def _knob_note(phi: float | None, s: float | None) -> str:
    """A baseline row's note: its solved φ or s."""
    return "; ".join(([f"φ={phi:.4g}"] if phi is not None else []) + ([f"s={s:.4g}"] if s is not None else []))


def _baseline(function: str, rule: str, *, study_rules: bool = True
              ) -> Callable[[Path, StudyConfig, TargetMeasure], StrategyBuilder]:
    """A registry builder for ``baselines.<function>(c, ...)`` in the study's context, or for
    ``baselines.scale_latency(rule, ...)`` under a latency budget. With ``study_rules`` the
    recipe is built under the study's rule set (rules about how to split the budget); without,
    under the baseline's own (EfficientNet's, as the TF reference does)."""

    def builder(study_dir: Path, config: StudyConfig, measure: TargetMeasure = MACS) -> StrategyBuilder:
        import baselines

        kwargs: dict = dict(base_resolution=config.base_resolution, num_classes=config.num_classes)
        if study_rules:
            kwargs["rules"] = config.rules
        if measure.kind == "latency":
            latency = measure.latency_us()

            def build_latency(ms: float) -> StrategyRecipe:
                sol, knob = baselines.scale_latency(rule, ms * 1000.0, latency, **kwargs)
                fields = baselines.knob_fields(knob, sol.knob)
                note = _knob_note(fields.get("phi"), fields.get("s")) or f"{knob}={sol.knob:.4g}"
                return StrategyRecipe(sol.recipe, note, sol.recipe_below, sol.recipe_above)

            return build_latency
        solve = getattr(baselines, function)

        def build(c: float) -> StrategyRecipe:
            result = solve(c, **kwargs)
            return StrategyRecipe(result.recipe, _knob_note(result.phi, result.s), result.recipe_below,
                                  result.recipe_above)

        return build

    return builder


# The strategies `tinyscale compare` knows, in table order. Adding one is one entry here.
REGISTRY: dict[str, Strategy] = {s.name: s for s in (
    Strategy("gp", "GP recipe (this study's fit)", "#d62728", _gp_builder),
    Strategy("gp-pareto", "GP on Pareto models (TinyNet's method)", "#e377c2", _gp_pareto_builder),
    Strategy("efficientnet", "EfficientNet compound (φ solved)", "#1f77b4",
             _baseline("compound_recipe", "efficientnet", study_rules=False)),
    Strategy("uniform", "uniform compound (d, w², r² equal shares)", "#17becf", _baseline("uniform", "uniform")),
    Strategy("fast", "fast dWr (Dollár et al., α = 0.8)", "#8c564b", _baseline("fast", "fast")),
    Strategy("width", "width only", "#2ca02c", _baseline("width_only", "width")),
    Strategy("depth", "depth only", "#9467bd", _baseline("depth_only", "depth")),
    Strategy("resolution", "resolution only", "#ff7f0e", _baseline("resolution_only", "resolution")),
)}
STRATEGIES: tuple[str, ...] = tuple(REGISTRY)
STRATEGY_LABELS: dict[str, str] = {name: s.label for name, s in REGISTRY.items()}
DEFAULT_STRATEGIES: tuple[str, ...] = ("gp", "gp-pareto", "efficientnet", "uniform", "fast", "width", "depth",
                                       "resolution")
