"""One strategy's recipe at one target, checked against the study's context (`BuiltRecipe`).

Matched FLOPs is the point of the comparison, so every achieved value is measured here, for all
strategies alike. A strategy whose recipe lands within `MATCH_TOLERANCE` of the target trains
that recipe (bracket ``single``). Where it lands further off and its solver knows the achievable
steps on both sides, *both* steps are trained at every seed (brackets ``below`` and ``above``)
and the row's accuracy is, per seed, interpolated in log c (log ms) between them at the target.
A strategy that reaches only one side trains its single recipe, marked as not matched, with why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tinyscale.evaluate.compare.settings import parse_strategies
from tinyscale.evaluate.compare.strategies import (
    MACS,
    MATCH_TOLERANCE,
    REGISTRY,
    StrategyBuilder,
    StrategyRecipe,
    TargetMeasure,
)
from tinyscale.space.recipe import Recipe
from tinyscale.study.trial import StudyConfig


@dataclass(frozen=True)
class BuiltRecipe:
    """One strategy's recipe at one target ratio, or why there is none.

    ``below``/``above`` are set when the row is interpolated: ``recipe`` misses c by more than
    the tolerance, and these two achievable steps (counted ratios ``achieved_below`` < c <
    ``achieved_above``) are what is trained.
    """

    strategy: str
    target: float
    recipe: Recipe | None
    achieved: float | None  # counted MACs / baseline MACs of the study's context
    note: str = ""
    below: Recipe | None = None
    above: Recipe | None = None
    achieved_below: float | None = None
    achieved_above: float | None = None

    @property
    def interpolated(self) -> bool:
        return self.below is not None and self.above is not None

    @property
    def matched(self) -> bool:
        """The row's accuracy is at matched FLOPs: one recipe within the tolerance, or interpolated."""
        if self.interpolated:
            return True
        return self.achieved is not None and abs(self.achieved / self.target - 1.0) <= MATCH_TOLERANCE

    def parts(self) -> dict[str, Recipe]:
        """The recipes this row trains, by bracket: {"below", "above"} when interpolated,
        {"single"} for one recipe, nothing when none was built."""
        if self.recipe is None:
            return {}
        if self.interpolated:
            return {"below": self.below, "above": self.above}
        return {"single": self.recipe}


def _check_context(name: str, recipe: Recipe, config: StudyConfig) -> None:
    if (recipe.base_resolution, recipe.num_classes) != (config.base_resolution, config.num_classes):
        raise ValueError(
            f"strategy {name} built a recipe for base {recipe.base_resolution} px / {recipe.num_classes} "
            f"classes, but the study uses {config.base_resolution} px / {config.num_classes} classes"
        )


def build_recipe(name: str, builder: StrategyBuilder, target: float, config: StudyConfig,
                 measure: TargetMeasure = MACS) -> BuiltRecipe:
    """Run one strategy at one target and check the result against the study's context.

    Every achieved ratio is counted here, against the study's own baseline, for every strategy
    alike (B0 is the same network under both rule sets, so ratios are comparable); under a
    latency budget every achieved latency is predicted here on the one table. A recipe more
    than `MATCH_TOLERANCE` off the target becomes an interpolated row when the builder gave the
    steps on both sides of it; otherwise it stays a single recipe, marked as not matched.
    """
    try:
        out = builder(target)
    except ValueError as exc:
        return BuiltRecipe(name, target, None, None, f"not built: {exc}")
    if not isinstance(out, StrategyRecipe):
        recipe, note = out
        out = StrategyRecipe(recipe, note)
    _check_context(name, out.recipe, config)
    sym = measure.symbol
    achieved = measure.value(out.recipe, config)
    off = achieved / target - 1.0
    notes = [out.note] if out.note else []
    if abs(off) <= MATCH_TOLERANCE:
        return BuiltRecipe(name, target, out.recipe, achieved, "; ".join(notes))
    if out.below is not None and out.above is not None:
        _check_context(name, out.below, config)
        _check_context(name, out.above, config)
        lo, hi = measure.value(out.below, config), measure.value(out.above, config)
        if lo < target < hi:
            near = "c" if sym == "c" else "the target"
            notes.insert(0, f"no recipe within {MATCH_TOLERANCE:.0%} of {near}: top-1 interpolated in log {sym} between "
                            f"the steps at {lo:.4g} ({lo / target - 1:+.1%}) and {hi:.4g} ({hi / target - 1:+.1%}), "
                            "both trained at every seed")
            return BuiltRecipe(name, target, out.recipe, achieved, "; ".join(notes), out.below, out.above, lo, hi)
        why = f"its steps {lo:.4g} and {hi:.4g} do not bracket {sym}"
    else:
        why = f"no step on the other side of {sym} to interpolate with"
    what = "latency" if measure.kind == "latency" else "FLOPs"
    notes[:0] = [f"{what} not matched: achieved {achieved:.4g} is {off:+.1%} off the target", why]
    return BuiltRecipe(name, target, out.recipe, achieved, "; ".join(notes))


def strategy_builders(study_dir: str | Path, config: StudyConfig, names: Sequence[str],
                      measure: TargetMeasure = MACS) -> dict[str, StrategyBuilder]:
    """The builders of the named strategies in the study's context, for targets in ``measure``'s
    units (ValueError for unknown names or for ``gp`` on a study without a fit)."""
    return {name: REGISTRY[name].builder(Path(study_dir), config, measure) for name in parse_strategies(list(names))}
