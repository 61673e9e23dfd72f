"""Target FLOPs ratio c -> Recipe: r(c) and d(c) from the GP means, w solved against the real count.

Steps for a target c:

1. r and d are the GP posterior means at c, clipped to the ranges the study sampled (a GP
   extrapolating past the data must not propose a resolution nobody tried), and rounded to 4
   decimals (well below one pixel or one block of difference).
2. w is solved with `tinyscale.space.width.solve_width` so the *counted* MACs meet c as closely as the
   channel rounding allows; the answer keeps that `StepSolution` (``solution``), whose two steps
   are ``ratio_below``/``ratio_above``, the adjacent achievable ratios.
3. If no width reaches c at that (r, d) (c below the thinnest network's cost, e.g. far below the
   window, or above the widest's), w is clamped to the end of its range and the answer says so
   (``width_clamped`` plus a note); the achieved ratio is then reported honestly, not c.

The answer also carries the 95 % bands of r and d at c and ``extrapolated``: whether c lies
outside the span of c the GPs were fitted on. With the accuracy surface, a note says when its
best (r, d) at c needs a width no trial used (the ridge's ``width_limit``), so the recipe is held
at the explored widths.

Each note is a `Note`: a sentence for people and a `NoteKind` for code. Consumers branch on
the kind, never on the wording.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from tinyscale.fit.edges import Edge, recipe_edges
from tinyscale.space.cost import baseline_macs, cost
from tinyscale.space.recipe import Recipe
from tinyscale.space.steps import StepSolution
from tinyscale.space.width import W_MAX, W_MIN, check_ratio, reachable_ratios, solve_width

DECIMALS = 4


class NoteKind(str, Enum):
    """What a note on a `RecipeAnswer` is about (the value is its JSON name)."""

    CLIPPED = "clipped"  # r or d from the GP was outside the sampled range and clipped to it
    EXTRAPOLATED = "extrapolated"  # c outside the c-range the GPs were fitted on
    WIDTH_CLAMPED = "width_clamped"  # no width reaches c at (r, d); w clamped to its range
    UNDETERMINED = "undetermined"  # r's or d's 95 % band covers most of the sampled range: the data do not pin it
    WIDTH_LIMITED = "width_limited"  # the surface's best (r, d) at c needs a width no trial used; the ridge stops at the explored widths
    BOX_EDGE = "box_edge"  # r or d at the edge of the sampled box, where a wider box could go on (tinyscale.fit.edges)
    ARCH_LIMIT = "arch_limit"  # r or d at the architecture's own limit (one block per stage; the smallest input)


# An axis whose 95 % band at c covers at least this share of its sampled range (in log) is
# reported as not determined by the data: the value shown is then the GP's guess at the edge of
# a flat surface, not a measured preference.
UNDETERMINED_SHARE = 0.8


@dataclass(frozen=True)
class Note:
    """One note on an answer: its kind (branch on this) and the sentence shown to users."""

    kind: NoteKind
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class RecipeAnswer:
    """The recipe for one target ratio and everything a user needs to trust it.

    ``solution`` is the width solved at the fit's (r, d), in ratio units: the target, the
    recipe, its achieved ratio and the rounding step around the target are its. A width clamped
    at the end of its range is a solution of one step (`StepSolution.one_step`).
    """

    solution: StepSolution
    macs: int
    params: int
    r_mean: float  # GP mean before clipping
    d_mean: float
    r_band: tuple[float, float]  # 95 % credible band at c
    d_band: tuple[float, float]
    extrapolated: bool  # c outside the c-range the GPs saw
    c_range: tuple[float, float]
    clipped: tuple[str, ...]  # which of "r", "d" were clipped to the study's ranges
    width_clamped: bool
    notes: tuple[Note, ...]
    undetermined: tuple[str, ...] = ()  # which of "r", "d" the data do not pin down (see UNDETERMINED_SHARE)
    edges: tuple[Edge, ...] = ()  # where r or d sits at the sampled box's edge (`tinyscale.fit.edges`)

    @property
    def target(self) -> float:
        return self.solution.target

    @property
    def recipe(self) -> Recipe:
        return self.solution.recipe

    @property
    def achieved(self) -> float:
        """Counted MACs / baseline MACs."""
        return self.solution.achieved

    @property
    def ratio_below(self) -> float:
        """The achievable ratios bracketing the target (the rounding step)."""
        return self.solution.below

    @property
    def ratio_above(self) -> float:
        return self.solution.above

    @property
    def resolution(self) -> int:
        return self.recipe.resolution

    @property
    def note_texts(self) -> tuple[str, ...]:
        """The notes' sentences, in order."""
        return tuple(n.text for n in self.notes)

    def notes_of(self, kind: NoteKind) -> tuple[str, ...]:
        """The sentences of the notes of one kind."""
        return tuple(n.text for n in self.notes if n.kind == kind)

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "achieved": self.achieved,
            "ratio_below": self.ratio_below,
            "ratio_above": self.ratio_above,
            "recipe": self.recipe.to_dict(),
            "resolution": self.resolution,
            "macs": self.macs,
            "params": self.params,
            "r_mean": self.r_mean,
            "d_mean": self.d_mean,
            "r_band": list(self.r_band),
            "d_band": list(self.d_band),
            "extrapolated": self.extrapolated,
            "c_range": list(self.c_range),
            "clipped": list(self.clipped),
            "width_clamped": self.width_clamped,
            "undetermined": list(self.undetermined),
            "edges": [{"axis": e.axis, "side": e.side, "limit": e.limit, "wider": None if e.wider is None else list(e.wider)}
                      for e in self.edges],
            "notes": list(self.note_texts),
            "note_kinds": [n.kind.value for n in self.notes],  # parallel to "notes"
        }


def _round_within(value: float, lo: float, hi: float) -> float:
    """``value`` (already inside [lo, hi]) to DECIMALS places without leaving the range: a bound
    with more decimals (r_range=(0.33333, 1)) must not be rounded past (to 0.3333)."""
    step = 10.0 ** -DECIMALS
    rounded = round(value, DECIMALS)
    if rounded < lo:
        rounded = round(rounded + step, DECIMALS)
    elif rounded > hi:
        rounded = round(rounded - step, DECIMALS)
    return rounded if lo <= rounded <= hi else value  # a range narrower than one step: keep it exact


def _band_share(band: tuple[float, float], lo: float, hi: float) -> float:
    """The share of the sampled range [lo, hi] that a band covers, in log (1.0 for a range of
    one value that the band contains)."""
    b_lo, b_hi = max(band[0], lo), min(band[1], hi)
    if b_hi < b_lo:
        return 0.0
    if hi <= lo:
        return 1.0
    return (math.log(b_hi) - math.log(b_lo)) / (math.log(hi) - math.log(lo))


class RecipeSolver:
    """Answers recipe queries from a fitted `tinyscale.fit.gp.ScalingFit` (no refitting)."""

    def __init__(self, fit) -> None:
        self.fit = fit
        cfg = fit.config
        self._context = dict(rules=cfg.rules, base_resolution=cfg.base_resolution, num_classes=cfg.num_classes)
        self.baseline_macs = baseline_macs(cfg.recipe(1.0, 1.0, 1.0))

    @classmethod
    def load(cls, study_dir: str | os.PathLike) -> RecipeSolver:
        """The solver for a study whose fit was saved (``tinyscale fit``); ValueError if none or corrupt."""
        from tinyscale.fit.gp import ScalingFit

        return cls(ScalingFit.load(Path(study_dir)))

    def ratio_for_macs(self, macs: float) -> float:
        """The ratio c of a MACs budget in this study's context."""
        if isinstance(macs, bool) or not isinstance(macs, (int, float)) or not math.isfinite(macs) or macs <= 0:
            raise ValueError(f"the MACs budget must be a positive number, got {macs!r}")
        return float(macs) / self.baseline_macs

    def solve_macs(self, macs: float) -> RecipeAnswer:
        return self.solve(self.ratio_for_macs(macs))

    def solve(self, c: float) -> RecipeAnswer:
        c = check_ratio(c)
        cfg = self.fit.config
        pred = self.fit.predict([c])
        r_mean, d_mean = float(pred.r.mean[0]), float(pred.d.mean[0])
        notes: list[Note] = []
        clipped: list[str] = []
        values = {}
        for name, mean, (lo, hi) in (("r", r_mean, cfg.r_range), ("d", d_mean, cfg.d_range)):
            value = min(max(mean, lo), hi)
            # Past a bound by less than the recipe's rounding (a mean of 1.00003 against r <= 1) is
            # the bound itself, not a clip: the note said "r=1 ... is outside [0.35, 1]".
            if not lo <= round(mean, DECIMALS) <= hi:
                clipped.append(name)
                notes.append(Note(NoteKind.CLIPPED, f"{name}={mean:.{DECIMALS}f} from the GP is outside the sampled "
                                                    f"range [{lo:g}, {hi:g}]; clipped"))
            values[name] = _round_within(value, lo, hi)
        bands = {"r": (float(pred.r.lower[0]), float(pred.r.upper[0])),
                 "d": (float(pred.d.lower[0]), float(pred.d.upper[0]))}
        undetermined: list[str] = []
        for name, (lo, hi) in (("r", cfg.r_range), ("d", cfg.d_range)):
            share = _band_share(bands[name], lo, hi)
            if share >= UNDETERMINED_SHARE:
                undetermined.append(name)
                b_lo, b_hi = bands[name]
                notes.append(Note(NoteKind.UNDETERMINED,
                                  f"{name} is not determined by the data: its 95 % band [{b_lo:.3g}, {b_hi:.3g}] covers "
                                  f"{share:.0%} of the sampled range [{lo:g}, {hi:g}], so {name}={values[name]:g} is "
                                  "the fit's guess, not a measured preference"))
        r, d = values["r"], values["d"]
        # An undetermined axis's value is the fit's guess: its edge says nothing.
        edges = tuple(e for e in recipe_edges(r, d, cfg.r_range, cfg.d_range, rules=cfg.rules,
                                              base_resolution=cfg.base_resolution) if e.axis not in undetermined)
        notes += [Note(NoteKind.ARCH_LIMIT if e.limit else NoteKind.BOX_EDGE, e.text()) for e in edges]
        ridge, surface = self.fit.ridge, self.fit.surface
        limit = 0 if ridge is None or surface is None else ridge.width_limit_at(c)
        if limit:
            w_edge = surface.w_range[0] if limit < 0 else surface.w_range[1]
            notes.append(Note(NoteKind.WIDTH_LIMITED,
                              f"at c≈{c:.3g} the surface's best (r, d) needs a {'narrower' if limit < 0 else 'wider'} network "
                              f"than any trial (the study's widths stop at w={w_edge:.3g}): the recipe keeps to the widths "
                              f"measured, and whether that best is real is unmeasured; sample trials there to find out"))
        c_lo, c_hi = self.fit.c_range
        extrapolated = not (c_lo * (1 - 1e-9) <= c <= c_hi * (1 + 1e-9))
        if extrapolated:
            notes.append(Note(NoteKind.EXTRAPOLATED,
                              f"c={c:.4g} is outside the fitted range [{c_lo:.4g}, {c_hi:.4g}]: the GPs extrapolate"))

        reach_lo, reach_hi = reachable_ratios(r, d, **self._context)
        width_clamped = not reach_lo <= c <= reach_hi
        if width_clamped:
            w = W_MIN if c < reach_lo else W_MAX
            recipe = Recipe(r=r, w=w, d=d, **self._context)
            achieved = cost(recipe).macs / self.baseline_macs
            solution = StepSolution.one_step(c, achieved, recipe, w)
            notes.append(Note(
                NoteKind.WIDTH_CLAMPED,
                f"no width reaches c={c:.4g} at r={r:g}, d={d:g} (widths give {reach_lo:.4g} to {reach_hi:.4g}); "
                f"w clamped to {w:g}, achieved {achieved:.4g}",
            ))
        else:
            solution = solve_width(c, r, d, **self._context)
        cst = cost(solution.recipe)
        return RecipeAnswer(
            solution=solution,
            macs=cst.macs,
            params=cst.params,
            r_mean=r_mean,
            d_mean=d_mean,
            r_band=bands["r"],
            d_band=bands["d"],
            extrapolated=extrapolated,
            c_range=(c_lo, c_hi),
            clipped=tuple(clipped),
            width_clamped=width_clamped,
            notes=tuple(notes),
            undetermined=tuple(undetermined),
            edges=edges,
        )

    def solve_latency(self, target_us: float, latency) -> LatencyAnswer:
        """The recipe for a latency target (µs) on a latency measure (a device table's
        ``predict_us``): first the ratio c whose answer's latency meets the target (bisection
        over log c to 1e-4, the closer of the two answers around it), then, at that answer's r
        and d, the width that meets it (`tinyscale.latency.solve_width_latency`). If no width
        reaches it at that (r, d), the answer at c stands and ``width_solved`` is False."""
        from tinyscale.latency import check_latency_ms, solve_width_latency
        from tinyscale.space.steps import first_reaching
        from tinyscale.space.width import MAX_RATIO, MIN_RATIO

        check_latency_ms(target_us / 1000.0)
        c_lo, c_hi = self.fit.c_range
        lo = math.log(max(MIN_RATIO, c_lo / 16))
        hi = math.log(min(MAX_RATIO, max(4.0, c_hi * 16)))
        answers: dict[float, RecipeAnswer] = {}

        def answer(t: float) -> RecipeAnswer:
            if t not in answers:
                answers[t] = self.solve(math.exp(t))
            return answers[t]

        lat_lo, lat_hi = latency(answer(lo).recipe), latency(answer(hi).recipe)
        if not lat_lo <= target_us <= lat_hi:
            raise ValueError(f"{target_us / 1000:.4g} ms is out of reach for the fitted recipes on this device: "
                             f"they give latencies from {lat_lo / 1000:.4g} ms (c={math.exp(lo):.3g}) to "
                             f"{lat_hi / 1000:.4g} ms (c={math.exp(hi):.3g})")
        make = lambda t: answer(t).recipe  # noqa: E731
        if lat_lo == target_us:
            t = lo
        else:
            t_up = first_reaching(latency, make, target_us, lo, hi, tol=1e-4)
            t_down = max(lo, t_up - 1e-4)
            up, down = latency(make(t_up)), latency(make(t_down))
            t = t_up if up - target_us <= target_us - down else t_down
        at_c = answer(t)
        r, d = at_c.recipe.r, at_c.recipe.d
        try:
            width = solve_width_latency(target_us, r, d, latency, **self._context)
        except ValueError:
            as_found = StepSolution.one_step(float(target_us), float(latency(at_c.recipe)), at_c.recipe, at_c.recipe.w)
            return LatencyAnswer(at_c, as_found, False)
        return LatencyAnswer(at_c, width, True)


@dataclass(frozen=True)
class LatencyAnswer:
    """A latency query's answer: ``at_ratio`` is the fit's answer at the ratio c whose recipe
    meets the target; ``solution`` (µs) is w re-solved against the latency at that answer's r
    and d when ``width_solved``, else that answer's recipe as one step. ``recipe`` is the final
    network, with its predicted latency and, when the width was solved, the adjacent steps."""

    at_ratio: RecipeAnswer
    solution: StepSolution
    width_solved: bool

    @property
    def recipe(self) -> Recipe:
        return self.solution.recipe

    @property
    def target_us(self) -> float:
        return self.solution.target

    @property
    def predicted_us(self) -> float:
        return self.solution.achieved

    @property
    def below_us(self) -> float | None:
        return self.solution.below if self.width_solved else None

    @property
    def above_us(self) -> float | None:
        return self.solution.above if self.width_solved else None

    def recipe_answer(self) -> RecipeAnswer:
        """The answer shaped like a ratio query's: ``recipe`` with its own counted ratio, MACs
        and params (the rounding step is the latency's, so ``ratio_below``/``above`` are the
        achieved ratio), and the fit's r, d bands and notes at the ratio it was found at."""
        cst = cost(self.recipe)
        achieved = cst.macs / baseline_macs(self.recipe)
        one_step = StepSolution.one_step(self.at_ratio.target, achieved, self.recipe, self.recipe.w)
        return replace(self.at_ratio, solution=one_step, macs=cst.macs, params=cst.params)

