"""The stored cells folded into a `Comparison`: one `ComparisonRow` per target and strategy
(recipe, achieved value, accuracy per seed, the `Bracket` of an interpolated row) and the
margins of one strategy over another, paired by seed (`Margin`, `MeanMargin`)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tinyscale.evaluate.compare.settings import CompareSettings
from tinyscale.space.cost import cost, macs
from tinyscale.space.recipe import Recipe

if TYPE_CHECKING:
    from tinyscale.evaluate.compare.build import BuiltRecipe
    from tinyscale.evaluate.compare.store import Cell


@dataclass(frozen=True)
class Bracket:
    """An interpolated row's two trained recipes and what each scored.

    ``weight`` is the share of the upper step in the interpolation, (ln c − ln c_below) /
    (ln c_above − ln c_below); ``accuracies_below``/``accuracies_above`` are per seed, over the
    seeds where both completed (the row's ``seeds``).
    """

    below: Recipe
    above: Recipe
    ratio_below: float
    ratio_above: float
    weight: float
    accuracies_below: tuple[float, ...]
    accuracies_above: tuple[float, ...]


def interpolation_weight(target: float, below: float, above: float) -> float:
    """Where ``target`` lies between ``below`` and ``above`` in log c (0 at below, 1 at above)."""
    return (math.log(target) - math.log(below)) / (math.log(above) - math.log(below))


@dataclass(frozen=True)
class ComparisonRow:
    """One strategy at one target ratio, over all its seeds.

    ``recipe``/``achieved``/``macs``/``params`` describe the strategy's recipe closest to c.
    For an interpolated row (``bracket`` set) that recipe is one of the two trained steps and
    ``accuracies`` are interpolated at c per seed; ``matched`` says whether the accuracy is
    at matched FLOPs (one recipe within the tolerance, or interpolated).
    """

    ratio: float
    strategy: str
    recipe: Recipe | None
    achieved: float | None
    macs: int | None
    params: int | None
    matched: bool
    note: str
    accuracies: tuple[float, ...]  # per seed in ``seeds``: measured, or interpolated at c
    failed: int = 0  # failed training runs of this row
    seeds: tuple[int, ...] = ()  # the seeds of ``accuracies``, in settings order
    bracket: Bracket | None = None

    @property
    def interpolated(self) -> bool:
        return self.bracket is not None

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.accuracies) if self.accuracies else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (None with fewer than two)."""
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else None

    @property
    def accuracy_by_seed(self) -> dict[int, float]:
        return dict(zip(self.seeds, self.accuracies))

    @property
    def effective_macs(self) -> float | None:
        """The MACs the row's accuracy applies to: for an interpolated row, the two steps' MACs
        interpolated in log with the accuracy's weight (at matched MACs exactly the target's),
        the recipe's counted MACs otherwise."""
        if self.recipe is None:
            return None
        if self.bracket is not None:
            lo, hi = macs(self.bracket.below), macs(self.bracket.above)
            return math.exp(math.log(lo) + self.bracket.weight * (math.log(hi) - math.log(lo)))
        return self.macs


@dataclass(frozen=True)
class Margin:
    """``strategy`` minus ``baseline`` at one ratio, in accuracy (fraction), paired by seed: the
    mean over the seeds both rows have of the per-seed differences."""

    ratio: float
    value: float
    stderr: float | None  # sd of the per-seed differences / sqrt(n); None when n < 2
    matched: bool  # both rows at matched FLOPs
    baseline: str = "efficientnet"
    n: int = 0  # paired seeds
    strategy: str = "gp"


@dataclass(frozen=True)
class MeanMargin:
    """``strategy`` minus ``baseline`` averaged over the ratios where both have results: per
    seed, the mean over those ratios of the differences; then mean and standard error over the
    seeds present at every one of them."""

    baseline: str
    ratios: tuple[float, ...]
    value: float
    stderr: float | None
    n: int
    matched: bool  # every included ratio at matched FLOPs on both sides
    strategy: str = "gp"


def _paired(diffs: Sequence[float]) -> tuple[float, float | None]:
    value = statistics.fmean(diffs)
    stderr = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
    return value, stderr


@dataclass(frozen=True)
class Comparison:
    settings: CompareSettings
    budget: dict
    rows: tuple[ComparisonRow, ...]
    complete: bool  # every requested cell trained
    cells_done: int
    cells_total: int

    def row(self, ratio: float, strategy: str) -> ComparisonRow | None:
        return next((r for r in self.rows if r.ratio == ratio and r.strategy == strategy), None)

    def _differences(self, c: float, baseline: str, strategy: str) -> dict[int, float]:
        a, b = self.row(c, strategy), self.row(c, baseline)
        if a is None or b is None:
            return {}
        acc_a, acc_b = a.accuracy_by_seed, b.accuracy_by_seed
        return {s: acc_a[s] - acc_b[s] for s in self.settings.seeds if s in acc_a and s in acc_b}

    def margin(self, c: float, baseline: str = "efficientnet", strategy: str = "gp") -> Margin | None:
        """``strategy`` − ``baseline`` at ratio c, paired by seed (None without a paired seed)."""
        diffs = self._differences(c, baseline, strategy)
        if not diffs:
            return None
        value, stderr = _paired(list(diffs.values()))
        matched = self.row(c, strategy).matched and self.row(c, baseline).matched
        return Margin(c, value, stderr, matched, baseline, len(diffs), strategy)

    def margins(self, baseline: str = "efficientnet", strategy: str = "gp") -> list[Margin]:
        """``strategy`` − ``baseline`` at every ratio where both have a paired seed."""
        found = (self.margin(c, baseline, strategy) for c in self.settings.ratios)
        return [m for m in found if m is not None]

    def mean_margin(self, baseline: str, strategy: str = "gp") -> MeanMargin | None:
        """``strategy`` − ``baseline`` over the ratios where both have results (see `MeanMargin`)."""
        per_ratio = {c: self._differences(c, baseline, strategy) for c in self.settings.ratios}
        per_ratio = {c: d for c, d in per_ratio.items() if d}
        if not per_ratio:
            return None
        seeds = [s for s in self.settings.seeds if all(s in d for d in per_ratio.values())]
        if not seeds:
            return None
        value, stderr = _paired([statistics.fmean(d[s] for d in per_ratio.values()) for s in seeds])
        matched = all(self.row(c, strategy).matched and self.row(c, baseline).matched for c in per_ratio)
        return MeanMargin(baseline, tuple(per_ratio), value, stderr, len(seeds), matched, strategy)

    def baselines(self, strategy: str = "gp") -> tuple[str, ...]:
        """The strategies ``strategy`` is measured against: every other one compared."""
        return tuple(n for n in self.settings.strategies if n != strategy) if strategy in self.settings.strategies else ()


def assemble_comparison(settings: CompareSettings, budget: dict,
                        recipes: dict[tuple[str, float], BuiltRecipe],
                        cells: dict[tuple[str, float, int, str], Cell]) -> Comparison:
    """Fold the stored recipes and cells into the rows ``settings`` asks for: a row per built
    (strategy, target), its accuracies per seed measured or interpolated at the target, failed
    runs counted in its note; ``complete`` once every (target, strategy) has a row and every
    cell of those rows is stored."""
    rows = []
    done = trainable = 0
    for c in settings.ratios:
        for name in settings.strategies:
            built = recipes.get((name, c))
            if built is None:
                continue
            parts = built.parts()
            trainable += len(parts) * len(settings.seeds)
            runs = {b: {s: cells[(name, c, s, b)] for s in settings.seeds if (name, c, s, b) in cells} for b in parts}
            done += sum(len(r) for r in runs.values())
            ok = {b: {s: x.accuracy for s, x in r.items() if x.state == "completed" and x.accuracy is not None}
                  for b, r in runs.items()}
            failed = [x for r in runs.values() for x in r.values() if x.state != "completed" or x.accuracy is None]
            bracket = None
            if built.interpolated:
                seeds = tuple(s for s in settings.seeds if s in ok["below"] and s in ok["above"])
                weight = interpolation_weight(c, built.achieved_below, built.achieved_above)
                lo = tuple(ok["below"][s] for s in seeds)
                hi = tuple(ok["above"][s] for s in seeds)
                accs = tuple(a + weight * (b - a) for a, b in zip(lo, hi))
                bracket = Bracket(built.below, built.above, built.achieved_below, built.achieved_above, weight, lo, hi)
            else:
                single = ok.get("single", {})
                seeds = tuple(s for s in settings.seeds if s in single)
                accs = tuple(single[s] for s in seeds)
            note = built.note
            if failed:
                reasons = "; ".join(sorted({x.reason or "unknown" for x in failed}))
                note = "; ".join(filter(None, [note, f"{len(failed)} run(s) failed: {reasons}"]))
            c_cost = cost(built.recipe) if built.recipe is not None else None
            rows.append(ComparisonRow(
                ratio=c, strategy=name, recipe=built.recipe, achieved=built.achieved,
                macs=c_cost.macs if c_cost else None, params=c_cost.params if c_cost else None,
                matched=built.matched, note=note, accuracies=accs, failed=len(failed), seeds=seeds,
                bracket=bracket,
            ))
    return Comparison(settings, budget, tuple(rows), complete=done >= trainable and
                      len(rows) == len(settings.ratios) * len(settings.strategies),
                      cells_done=done, cells_total=trainable)
