"""Did the study's fit foresee what the comparison measured?

The comparison trains every strategy's recipe longer than the study trained anything (by default
4x its longest runs); the study's accuracy surface predicted each of those recipes' accuracy
from the study's own runs before any of them was trained. Where the two order the strategies
alike, the fit's ranking of recipes held up under longer training; where they disagree, either
longer training reorders the recipes or the surface misjudged them at the study's own length (on
Imagenette the surface put its own recipe 4.6 points above Dollar's `fast` at c = 1/16; 3,600-step
runs put it 3.0 below; experiments/imagenette_length_bias.py asks which).

It costs nothing: the surface is read at each compared recipe's target c and (r, d) (width is
what meets c), no run is trained. Levels differ (longer runs are more accurate), so only orders
are compared: per ratio, Spearman's rho between predicted and measured accuracy, and over every
pair of strategies at a ratio that the comparison tells apart (paired by seed, by more than 2
standard errors; with one seed, by at least `ONE_SEED_GAP`), how many the surface orders alike.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from tinyscale.evaluate.compare.results import Comparison
from tinyscale.ranking import spearman

ONE_SEED_GAP = 0.01  # with one seed there is no standard error: gaps below 1 point are not judged


@dataclass(frozen=True)
class Reversal:
    """Two strategies at one ratio that the surface orders the other way round."""

    ratio: float
    better: str  # the one the comparison measured as more accurate
    worse: str
    measured: float  # better - worse, accuracy (fraction), paired by seed
    stderr: float | None
    predicted: float  # better - worse as the surface predicted (negative)

    def to_dict(self) -> dict:
        return {"ratio": self.ratio, "better": self.better, "worse": self.worse, "measured": self.measured,
                "stderr": self.stderr, "predicted": self.predicted}


@dataclass(frozen=True)
class Foresight:
    predicted: dict[tuple[float, str], float]  # (ratio, strategy) -> the surface's accuracy
    rho: dict[float, float | None]  # per ratio with >= 3 strategies
    judged: int  # pairs the comparison tells apart
    reversals: tuple[Reversal, ...]

    @property
    def agreed(self) -> int:
        return self.judged - len(self.reversals)

    def to_dict(self) -> dict:
        return {"predicted": [{"ratio": c, "strategy": s, "accuracy": a} for (c, s), a in self.predicted.items()],
                "rho": [{"ratio": c, "rho": r} for c, r in self.rho.items()], "judged": self.judged,
                "agreed": self.agreed, "reversals": [r.to_dict() for r in self.reversals]}


def foresight(comparison: Comparison, surface) -> Foresight | None:
    """What ``surface`` (a fit's `AccuracySurface`) predicted for ``comparison``'s recipes
    against what it measured; None for a comparison at matched latency (its targets are not
    FLOPs ratios) or with no two strategies measured at one ratio."""
    if comparison.settings.budget != "macs":
        return None
    rows = [r for r in comparison.rows if r.recipe is not None and r.matched and r.accuracies]
    predicted = {(r.ratio, r.strategy): float(surface.accuracy(r.ratio, r.recipe.r, r.recipe.d)) for r in rows}
    rho: dict[float, float | None] = {}
    judged, reversals = 0, []
    for c in sorted({r.ratio for r in rows}, reverse=True):
        here = [r for r in rows if r.ratio == c]
        if len(here) >= 3:
            rho[c] = spearman([predicted[c, r.strategy] for r in here], [r.mean for r in here])
        for a, b in itertools.combinations(here, 2):
            margin = comparison.margin(c, b.strategy, a.strategy)  # a - b, paired by seed
            if margin is None or not _told_apart(margin.value, margin.stderr):
                continue
            judged += 1
            better, worse = (a, b) if margin.value > 0 else (b, a)
            gap = predicted[c, better.strategy] - predicted[c, worse.strategy]
            if gap < 0:
                reversals.append(Reversal(c, better.strategy, worse.strategy, abs(margin.value), margin.stderr, gap))
    if not judged and not rho:
        return None
    return Foresight(predicted, rho, judged, tuple(reversals))


def _told_apart(value: float, stderr: float | None) -> bool:
    return abs(value) >= ONE_SEED_GAP if stderr is None else abs(value) > 2 * stderr


def format_foresight(f: Foresight, steps: int | None = None, strategy: str = "gp") -> str:
    """A few lines of Markdown: how many pairs the surface ordered as the comparison did, rho per
    ratio, and the reversals (those of ``strategy``, the study's own recipe, first)."""
    trained = "the study's runs" if steps is None else f"the study's runs ({steps:,} steps at most)"
    rhos = ", ".join(f"c={c:g} {'n/a' if r is None else f'{r:+.2f}'}" for c, r in f.rho.items())
    head = (f"**Did the fit foresee this?** The accuracy surface, fitted on {trained} before any of these "
            f"recipes was trained, orders {f.agreed} of the {f.judged} strategy pairs that these runs tell apart "
            f"(by more than 2 paired SE; with one seed, by {100 * ONE_SEED_GAP:g} point or more) as they do"
            + (f" (Spearman rho per ratio: {rhos})" if rhos else "") + ".")
    if not f.reversals:
        return head
    lines = [head + " Where it does not, longer training reorders these recipes, or the surface misjudged them "
                    "even at the study's length (retraining the pair at that length tells which):"]
    ordered = sorted(f.reversals, key=lambda r: (strategy not in (r.better, r.worse), -r.measured))
    for r in ordered:
        se = "" if r.stderr is None else f" ± {100 * r.stderr:.2f}"
        lines.append(f"- c={r.ratio:g}: {r.better} measured {100 * r.measured:.2f}{se} points above {r.worse}; "
                     f"the surface put {r.worse} {100 * abs(r.predicted):.2f} above")
    return "\n".join(lines)


def study_foresight(study_dir, comparison: Comparison | None) -> tuple[Foresight, int | None] | None:
    """`foresight` of ``comparison`` by the study's saved fit, with the longest runs that fit
    read (in steps, None when it cannot tell); None without a saved fit with an accuracy
    surface, at matched latency, or with nothing to judge."""
    from tinyscale.fit.gp import FIT_FILE, ScalingFit

    if comparison is None or comparison.settings.budget != "macs" or not (Path(study_dir) / FIT_FILE).is_file():
        return None
    try:
        fit = ScalingFit.load(study_dir)
    except ValueError:
        return None  # a damaged fit is reported where the fit is read; this is only a check of it
    found = None if fit.surface is None else foresight(comparison, fit.surface)
    return None if found is None else (found, _longest_steps(fit))


def fit_foresight(study_dir, comparison: Comparison | None) -> str:
    """`format_foresight` of `study_foresight` ("" when there is none)."""
    found = study_foresight(study_dir, comparison)
    return "" if found is None else format_foresight(*found)


def _longest_steps(fit) -> int | None:
    """The longest runs the fit read, in steps (None when it cannot tell)."""
    from tinyscale.study.halving import rung_steps

    c = fit.config
    if not math.isfinite(c.steps):
        return None
    rungs = getattr(getattr(fit.surface, "fidelity", None), "rungs", None) or fit.rungs
    if not rungs:
        return c.steps if c.schedule != "halving" else None
    return rung_steps(c.steps, c.eta, max(rungs))
