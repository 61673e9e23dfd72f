"""Random (r, w, d) shrinkings of EfficientNet-B0 inside a FLOPs window, the TinyNet way.

Each candidate draws three numbers from a seeded stream (scrambled Sobol or plain uniform):
r and d log-uniform in their ranges, and a target ratio c log-uniform in the window. The
width is then solved so the *counted* cost meets c (`tinyscale.space.width.solve_width`); a draw
whose c is out of reach at that (r, d), or whose solved network lands outside the window
after channel rounding, is rejected. Two draws that build the same network (same input size,
depths and channel widths) are one candidate: the later one is skipped.

The stream is deterministic for a config, and the k-th recipe does not depend on how many are
asked for, so trial number k of a study always means the same recipe (what resume relies on).

A study asks a *sampler* (`Sampler`, built by `tinyscale.study.samplers.make_sampler` from the
config's ``sampler``) for the recipes of its next trial numbers: ``sobol``
(`tinyscale.study.samplers.sobol`) is this stream (trial k = recipe k); ``botorch``
(`tinyscale.study.samplers.botorch`) takes the stream's first ``init_trials`` recipes and then
proposes recipes with an acquisition on the study's accuracy surface. Either way the study
stores each proposal before training it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from tinyscale.space.arch import build_architecture
from tinyscale.space.recipe import Recipe, resolution_for
from tinyscale.study.trial import StudyConfig, Trial
from tinyscale.space.width import reachable_ratios, solve_width

SAMPLINGS = ("sobol", "random")
SAMPLERS = ("sobol", "botorch")
DEFAULT_INIT_TRIALS = 8  # 2 (dims + 1) space-filling points before a 3-d GP steers, the usual start
MIN_INIT_TRIALS = 5  # the accuracy surface needs this many trained trials (tinyscale.fit.gp.MIN_MODELS)
D_DECIMALS = 3  # depth multipliers are stored to 3 decimals; finer steps build the same depths
_CHUNK = 64
# A window so narrow that nothing fits should be an error, not an endless loop.
MAX_REJECTIONS_PER_RECIPE = 200


def check_space(config: StudyConfig) -> None:
    """ValueError (naming the field) when the search space of a config makes no sense."""
    if config.sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {config.sampling!r}")
    for name in ("window", "r_range", "d_range"):
        lo, hi = getattr(config, name)
        if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float))) or not 0 < lo <= hi:
            raise ValueError(f"{name} must be two numbers 0 < low <= high, got {getattr(config, name)!r}")
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{name} must be finite, got {getattr(config, name)!r}")
    config.recipe(config.r_range[0], 1.0, config.d_range[0])  # smallest input and depth valid?
    config.recipe(config.r_range[1], 1.0, config.d_range[1])
    # Some network of the space must land in the window, or every draw is rejected.
    context = {"rules": config.rules, "base_resolution": config.base_resolution, "num_classes": config.num_classes}
    reach_lo = reachable_ratios(config.r_range[0], config.d_range[0], **context)[0]
    reach_hi = reachable_ratios(config.r_range[1], config.d_range[1], **context)[1]
    if config.window[1] < reach_lo or config.window[0] > reach_hi:
        raise ValueError(f"no network reaches the window {config.window[0]:g},{config.window[1]:g}: r_range and "
                         f"d_range give ratios from {reach_lo:.4g} to {reach_hi:.4g}")
    check_sampler(config)


def check_sampler(config: StudyConfig) -> None:
    """ValueError (in the command line's words) when the sampler options make no sense."""
    if config.sampler not in SAMPLERS:
        raise ValueError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {config.sampler!r}")
    n = config.init_trials
    if config.sampler != "botorch":
        if n is not None:
            raise ValueError("--init-trials is for --sampler botorch (the sobol sampler has no initial phase)")
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < MIN_INIT_TRIALS:
        raise ValueError(
            f"--init-trials must be a whole number of at least {MIN_INIT_TRIALS}, got {n!r}: the acquisition "
            f"steers by the accuracy surface, which needs {MIN_INIT_TRIALS} trained trials"
        )


def _log_uniform(u: float, lo: float, hi: float) -> float:
    return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def _unit_draws(config: StudyConfig) -> Iterator[tuple[float, float, float]]:
    """An endless deterministic stream of points in [0, 1)^3."""
    import torch  # here, not at the top: the command line reads this module's constants without torch

    if config.sampling == "sobol":
        engine = torch.quasirandom.SobolEngine(dimension=3, scramble=True, seed=config.seed)
        while True:
            for row in engine.draw(_CHUNK, dtype=torch.float64).tolist():
                yield tuple(row)
    else:
        gen = torch.Generator().manual_seed(config.seed)
        while True:
            for row in torch.rand(_CHUNK, 3, generator=gen, dtype=torch.float64).tolist():
                yield tuple(row)


def architecture_key(recipe: Recipe) -> tuple:
    """What makes two recipes the same network."""
    a = build_architecture(recipe)
    return (a.resolution, a.depths, a.widths, a.stem_channels, a.head_channels)


def unit_to_point(u: tuple[float, float, float], config: StudyConfig) -> tuple[float, float, float]:
    """The (r, d, c) a point ``u`` of [0, 1)^3 asks for: r and d log-uniform in their ranges
    (r snapped to a whole pixel count, d to D_DECIMALS), c log-uniform in the window."""
    (c_lo, c_hi), (r_lo, r_hi), (d_lo, d_hi) = config.window, config.r_range, config.d_range
    base = config.base_resolution
    u_r, u_d, u_c = u
    # r only matters through the pixel count it gives; store r = pixels / base so the
    # recipe's r is the multiplier that was really used.
    r = resolution_for(_log_uniform(u_r, r_lo, r_hi), base) / base
    d = round(_log_uniform(u_d, d_lo, d_hi), D_DECIMALS)
    return r, d, _log_uniform(u_c, c_lo, c_hi)


def recipe_at(config: StudyConfig, r: float, d: float, c: float) -> Recipe | None:
    """The recipe at (r, d) whose width is solved against the counted cost to meet ``c``, or
    None when no width reaches c there or the rounded network lands outside the window
    (TinyNet's rejection)."""
    c_lo, c_hi = config.window
    try:
        sol = solve_width(c, r, d, rules=config.rules, base_resolution=config.base_resolution,
                          num_classes=config.num_classes)
    except ValueError:
        return None  # c out of reach at this (r, d)
    return sol.recipe if c_lo <= sol.achieved <= c_hi else None


def iter_recipes(config: StudyConfig) -> Iterator[Recipe]:
    """The study's endless stream of distinct recipes inside the window (see module doc).

    Stops with ValueError when MAX_REJECTIONS_PER_RECIPE draws in a row give nothing new.
    """
    check_space(config)
    seen: set[tuple] = set()
    misses = 0
    for u in _unit_draws(config):
        recipe = recipe_at(config, *unit_to_point(u, config))
        if recipe is not None:
            key = architecture_key(recipe)
            if key not in seen:
                seen.add(key)
                misses = 0
                yield recipe
                continue
        misses += 1
        if misses >= MAX_REJECTIONS_PER_RECIPE:
            raise ValueError(too_few_networks(config, misses, len(seen)))


def too_few_networks(config: StudyConfig, misses: int, found: int) -> str:
    return (f"no new recipe in {misses} draws: the window {config.window} with r in {config.r_range} and "
            f"d in {config.d_range} holds too few distinct networks (found {found})")


def sample_recipes(config: StudyConfig, n: int, *, start: int = 0) -> list[Recipe]:
    """Recipes number ``start`` .. ``start + n - 1`` of the config's stream."""
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0, got n={n}, start={start}")
    out: list[Recipe] = []
    for i, recipe in enumerate(iter_recipes(config)):
        if i >= start + n:
            break
        if i >= start:
            out.append(recipe)
    return out


# =============================================================================== samplers
@dataclass(frozen=True)
class Proposal:
    """The recipe a sampler chose for one trial number, and which sampler chose it."""

    number: int
    recipe: Recipe
    proposed_by: str  # "sobol"/"random": the seeded stream; "botorch": the acquisition


@dataclass(frozen=True)
class ProposalBatch:
    """What one call of `Sampler.propose` gave: possibly fewer proposals than numbers asked
    for, then ``stop_reason`` says why no more will come (the space holds no new network)."""

    proposals: tuple[Proposal, ...]
    seconds: float  # how long proposing took
    stop_reason: str | None = None
    note: str | None = None  # a progress line worth printing (what proposed, how long it took)


class Sampler(Protocol):
    def propose(self, trials: Sequence[Trial], numbers: Sequence[int],
                log: Callable[[str], None] = print) -> ProposalBatch:
        """Recipes for the new trial ``numbers`` (ascending), given every trial the study holds
        (finished, and proposed or running ones, which count as pending). ``log`` gets lines
        worth showing while the proposal is computed."""
        ...
