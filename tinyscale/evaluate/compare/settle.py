"""Is a comparison out of the brief regime? (`tinyscale compare --settle-check`)

A comparison whose runs are too short only re-measures the study's proxy: networks compared
before they have learned. Two signs show it (issue 25): a fixed rule whose accuracy *falls* as
its budget c grows (a bigger network of the same rule losing to a smaller one), and an ordering
of the strategies that changes when the runs are made longer. The check trains one seed at two
of the ratios again at `LONG_FACTOR` times the steps (stored apart, in ``DIR/compare-settled``,
resumable) and calls the comparison **settled** when

- no fixed rule's accuracy falls between neighbouring ratios by more than 2 paired standard
  errors (by more than nothing when there is one seed), and
- at each re-run ratio the longer runs rank the strategies like the comparison's own runs of
  that seed: Spearman rho >= `SETTLED_RHO` (the study's stop rule's threshold).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from baselines.registry import RULES
from tinyscale.evaluate.compare.results import Comparison
from tinyscale.evaluate.compare.run import load_comparison, run_comparison
from tinyscale.evaluate.compare.settings import CompareSettings
from tinyscale.ranking import spearman

LONG_FACTOR = 2
SETTLED_RHO = 0.9
VARIANT = "settled"
FIXED_RULES = frozenset(rule.name for rule in RULES)


@dataclass(frozen=True)
class Fall:
    """A fixed rule less accurate at the larger of two neighbouring ratios."""

    strategy: str
    low: float  # the smaller ratio
    high: float
    change: float  # mean paired accuracy at high minus at low (negative), fraction
    se: float | None

    def to_dict(self) -> dict:
        return {"strategy": self.strategy, "low": self.low, "high": self.high, "change": self.change, "se": self.se}


@dataclass(frozen=True)
class Reorder:
    """At one ratio, the strategies by accuracy of one seed at the comparison's steps and longer."""

    ratio: float
    strategies: tuple[str, ...]  # the comparison's order, best first
    longer: tuple[str, ...]  # the longer runs' order, best first
    rho: float | None

    @property
    def holds(self) -> bool:
        return self.rho is not None and self.rho >= SETTLED_RHO

    def to_dict(self) -> dict:
        return {"ratio": self.ratio, "order": list(self.strategies), "longer_order": list(self.longer),
                "rho": self.rho, "holds": self.holds}


@dataclass(frozen=True)
class SettleCheck:
    steps: int
    long_steps: int
    seed: int
    falls: tuple[Fall, ...]
    reorders: tuple[Reorder, ...]

    @property
    def settled(self) -> bool:
        return not self.falls and bool(self.reorders) and all(r.holds for r in self.reorders)

    def to_dict(self) -> dict:
        return {"settled": self.settled, "steps": self.steps, "long_steps": self.long_steps, "seed": self.seed,
                "falls": [f.to_dict() for f in self.falls], "reorders": [r.to_dict() for r in self.reorders]}


def check_ratios(ratios: tuple[float, ...]) -> tuple[float, ...]:
    """The ratios re-run longer: of three or more, the second largest and the smallest (1/4 and
    1/16 of the default four: one in the middle, one at the low end, where brief runs mislead
    most); of fewer, all."""
    ordered = sorted(ratios, reverse=True)
    return tuple(ordered) if len(ordered) <= 2 else (ordered[1], ordered[-1])


def falls_with_c(comparison: Comparison) -> list[Fall]:
    """Fixed rules whose accuracy falls from one ratio to the next larger one (paired by seed)."""
    out = []
    ratios = sorted(comparison.settings.ratios)
    for name in comparison.settings.strategies:
        if name not in FIXED_RULES:
            continue
        for low, high in zip(ratios, ratios[1:]):
            a, b = comparison.row(low, name), comparison.row(high, name)
            if a is None or b is None or not a.matched or not b.matched:
                continue
            seeds = sorted(set(a.accuracy_by_seed) & set(b.accuracy_by_seed))
            diffs = [b.accuracy_by_seed[s] - a.accuracy_by_seed[s] for s in seeds]
            if not diffs:
                continue
            change = statistics.fmean(diffs)
            se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
            if change < -2 * (se or 0.0):
                out.append(Fall(name, low, high, change, se))
    return out


def reorders(comparison: Comparison, longer: Comparison, seed: int) -> list[Reorder]:
    """Per ratio of ``longer``, the strategies' order at ``seed`` in both comparisons."""
    out = []
    for c in longer.settings.ratios:
        pairs = []
        for name in comparison.settings.strategies:
            short_row, long_row = comparison.row(c, name), longer.row(c, name)
            if short_row is None or long_row is None or not short_row.matched or not long_row.matched:
                continue
            if seed in short_row.accuracy_by_seed and seed in long_row.accuracy_by_seed:
                pairs.append((name, short_row.accuracy_by_seed[seed], long_row.accuracy_by_seed[seed]))
        if len(pairs) < 2:  # nothing to rank: the ratio cannot be judged, so it does not pass
            out.append(Reorder(c, tuple(n for n, _, _ in pairs), tuple(n for n, _, _ in pairs), None))
            continue
        order = tuple(n for n, _, _ in sorted(pairs, key=lambda p: -p[1]))
        long_order = tuple(n for n, _, _ in sorted(pairs, key=lambda p: -p[2]))
        out.append(Reorder(c, order, long_order, spearman([p[1] for p in pairs], [p[2] for p in pairs])))
    return out


def run_settle_check(study_dir: str | Path, comparison: Comparison, *, executor=None, progress: bool = True,
                     table=None) -> SettleCheck:
    """Train the longer re-runs that are missing (one seed, `check_ratios`, every strategy of
    the comparison, `LONG_FACTOR` x its steps) and judge the comparison."""
    settings: CompareSettings = comparison.settings
    seed = settings.seeds[0]
    long_settings = replace(settings, ratios=check_ratios(settings.ratios), seeds=(seed,),
                            steps=LONG_FACTOR * settings.steps)
    longer = run_comparison(study_dir, long_settings, progress=progress, executor=executor, table=table,
                            variant=VARIANT)
    return judge(comparison, longer)


def judge(comparison: Comparison, longer: Comparison) -> SettleCheck:
    """The verdict on ``comparison`` given its ``longer`` re-runs of its first seed."""
    seed = comparison.settings.seeds[0]
    return SettleCheck(comparison.settings.steps, longer.settings.steps, seed, tuple(falls_with_c(comparison)),
                       tuple(reorders(comparison, longer, seed)))


def stored_settle_check(study_dir: str | Path, comparison: Comparison) -> tuple[SettleCheck, int] | None:
    """The check as far as its longer re-runs are stored, without training anything (the app
    reads it while they may still train): the check and how many of the re-runs it needs have
    no result yet (0: the verdict `run_settle_check` gives); None when no re-run was stored for
    this comparison's length and first seed."""
    settings = comparison.settings
    longer = load_comparison(study_dir, settings.budget, variant=VARIANT)
    seed = settings.seeds[0]
    if longer is None or longer.settings.steps != LONG_FACTOR * settings.steps or seed not in longer.settings.seeds:
        return None
    missing = 0
    for c in check_ratios(settings.ratios):
        for name in settings.strategies:
            row = longer.row(c, name)
            if row is None or (row.matched and seed not in row.accuracy_by_seed):
                missing += 1
    return judge(comparison, longer), missing


def format_settle_check(check: SettleCheck, symbol: str = "c") -> str:
    """The verdict and its evidence, a few lines of Markdown."""
    head = (f"**settled check** ({check.long_steps:,}-step re-runs of seed {check.seed} against the "
            f"{check.steps:,}-step runs): " + ("**settled**" if check.settled else "**not settled**: the "
                                                "comparison may only re-measure brief training; train longer (--steps)"))
    lines = [head]
    for f in check.falls:
        se = "" if f.se is None else f" ± {100 * f.se:.2f}"
        lines.append(f"- {f.strategy} falls from {symbol}={f.low:g} to {symbol}={f.high:g}: "
                     f"{100 * f.change:+.2f}{se} points")
    for r in check.reorders:
        if len(r.strategies) < 2:
            lines.append(f"- {symbol}={r.ratio:g}: fewer than two strategies at matched cost to rank")
            continue
        rho = "n/a, every accuracy tied on one side, so it cannot pass" if r.rho is None else f"{r.rho:+.2f}"
        same = "same order" if r.strategies == r.longer else f"longer: {' > '.join(r.longer)}"
        lines.append(f"- {symbol}={r.ratio:g}: rho {rho} ({' > '.join(r.strategies)}; {same})")
    return "\n".join(lines)
