"""Pareto selection of trained trials: non-dominated fronts, then NSGA-III niching to pick K.

Objectives (both minimised, the NSGA-III convention): ``log(MACs)`` and ``1 - accuracy``; any other
positive cost of a trial (a predicted latency: ``cost=`` of `select`) can stand in for MACs.
Cost enters in log space because the study samples the FLOPs ratio log-uniformly, so "spread
across the FLOPs range" means spread in log c; in linear MACs every reference direction would
crowd towards the large models.

Selection follows Deb & Jain's NSGA-III environmental selection:

1. Non-dominated sorting: front 1 is botorch's ``is_non_dominated`` on all points, front 2 on
   what remains, and so on. Whole fronts are taken while they fit into K.
2. If the next front does not fit, its members compete for the remaining slots by reference-point
   niching: objectives are translated by the ideal point and scaled by the nadir of front 1,
   K Das-Dennis reference directions (for two objectives: evenly spaced on the simplex) are laid
   over that normalised plane, every point is associated with the nearest direction
   (perpendicular distance), and slots go one at a time to the least crowded direction that
   still has candidates, taking its nearest candidate when the niche is empty.

So when front 1 holds more than K models, the K kept spread over the whole front (both ends
included), and when it holds fewer, the rest is filled from fronts 2, 3, ... in the same way.
Every trial ends up with its front rank, its niche and whether it was selected, plus a sentence
saying why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tinyscale.study.trial import Trial

DEFAULT_K = 20


@dataclass(frozen=True)
class ParetoEntry:
    """One trial's fate in the selection."""

    trial: Trial
    rank: int  # 1 = non-dominated front
    selected: bool
    niche: int | None  # reference direction the trial was associated with (None if never niched)
    distance: float | None  # perpendicular distance to that direction (normalised objectives)
    reason: str

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def pareto(self) -> bool:
        return self.rank == 1


@dataclass(frozen=True)
class ParetoSelection:
    """The outcome of `select`: an entry per usable trial, plus the trials it could not rank."""

    entries: tuple[ParetoEntry, ...]  # in the order the trials were given
    k: int
    skipped: tuple[tuple[int, str], ...] = ()  # (trial number, why) for trials without a usable accuracy

    @property
    def selected(self) -> list[Trial]:
        """The chosen trials, cheapest first."""
        chosen = [e.trial for e in self.entries if e.selected]
        return sorted(chosen, key=lambda t: (t.macs, -(t.accuracy or 0.0), t.number))

    @property
    def front(self) -> list[Trial]:
        """The non-dominated trials (rank 1), cheapest first."""
        return sorted((e.trial for e in self.entries if e.rank == 1), key=lambda t: (t.macs, t.number))

    def entry(self, number: int) -> ParetoEntry:
        for e in self.entries:
            if e.trial.number == number:
                return e
        raise KeyError(number)

    def to_rows(self) -> list[dict]:
        """One plain dict per trial (for tables and JSON)."""
        return [
            {
                "number": e.trial.number,
                "r": e.trial.recipe.r,
                "w": e.trial.recipe.w,
                "d": e.trial.recipe.d,
                "ratio": e.trial.ratio,
                "macs": e.trial.macs,
                "accuracy": e.trial.accuracy,
                "rank": e.rank,
                "selected": e.selected,
                "niche": e.niche,
                "distance": e.distance,
                "reason": e.reason,
            }
            for e in self.entries
        ]


def objectives(trials: list[Trial], cost: Callable[[Trial], float] | None = None) -> np.ndarray:
    """(n, 2) minimisation objectives: log(cost), 1 - accuracy; the cost is MACs unless given."""
    costs = [t.macs if cost is None else cost(t) for t in trials]
    for t, c in zip(trials, costs):
        if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
            raise ValueError(f"trial {t.number}: the cost must be a positive number, got {c!r}")
    return np.array([[math.log(c), 1.0 - float(t.accuracy)] for t, c in zip(trials, costs)], dtype=np.float64)


def front_ranks(points: np.ndarray) -> np.ndarray:
    """Non-dominated sorting of (n, m) points, every objective minimised -> (n,) ranks from 1.

    Each front is botorch's ``is_non_dominated`` on what the earlier fronts left; identical
    points share a front (``deduplicate=False``).
    """
    import torch
    from botorch.utils.multi_objective.pareto import is_non_dominated

    points = np.asarray(points, dtype=np.float64)
    n = points.shape[0]
    ranks = np.zeros(n, dtype=np.int64)
    remaining = np.arange(n)
    rank = 1
    while remaining.size:
        y = torch.as_tensor(-points[remaining])  # botorch maximises
        mask = is_non_dominated(y, maximize=True, deduplicate=False).numpy()
        ranks[remaining[mask]] = rank
        remaining = remaining[~mask]
        rank += 1
    return ranks


def reference_directions(count: int) -> np.ndarray:
    """Das-Dennis directions for two objectives: ``count`` points evenly spaced on the simplex
    from (0, 1) to (1, 0)."""
    if count < 1:
        raise ValueError(f"need at least one reference direction, got {count}")
    if count == 1:
        return np.array([[0.5, 0.5]])
    t = np.linspace(0.0, 1.0, count)
    return np.stack([t, 1.0 - t], axis=1)


def associate(normalised: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest reference direction of each point and the perpendicular distance to it."""
    unit = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    along = normalised @ unit.T  # (n, h) projections
    perp = np.sqrt(np.maximum((normalised**2).sum(1, keepdims=True) - along**2, 0.0))
    niche = perp.argmin(axis=1)
    return niche, perp[np.arange(len(normalised)), niche]


def normalise(points: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Translate by the ideal point and scale by the nadir of front 1 (per objective).

    The nadir of front 1 stands in for NSGA-III's hyperplane intercepts: with two objectives the
    extreme points of the front are its two ends, whose intercepts are exactly that nadir. A
    zero spread (every front-1 point equal in some objective) scales by 1 instead.
    """
    ideal = points.min(axis=0)
    spread = points[ranks == 1].max(axis=0) - ideal
    spread = np.where(spread > 1e-12, spread, 1.0)
    return (points - ideal) / spread


def select(trials: list[Trial], k: int = DEFAULT_K, *, seed: int = 0,
           cost: Callable[[Trial], float] | None = None) -> ParetoSelection:
    """NSGA-III selection of ``k`` well-spread trials on (accuracy up, cost down); the cost is
    MACs unless ``cost`` (trial -> positive number, e.g. a predicted latency) is given.

    Only completed trials with a finite accuracy take part; the others are listed in
    ``skipped``. Ties between equally crowded niches are broken with a seeded generator, so the
    result is deterministic for a given ``seed``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (how many models to select) must be a positive integer, got {k!r}")
    usable: list[Trial] = []
    skipped: list[tuple[int, str]] = []
    for t in trials:
        if t.state != "completed":
            skipped.append((t.number, f"state is {t.state}"))
        elif t.accuracy is None or not math.isfinite(t.accuracy):
            skipped.append((t.number, "no accuracy recorded"))
        elif t.macs <= 0:
            skipped.append((t.number, f"MACs must be positive, got {t.macs}"))
        else:
            usable.append(t)
    if not usable:
        raise ValueError("no completed trials with an accuracy to select from; run or resume the study first")

    points = objectives(usable, cost)
    ranks = front_ranks(points)
    n = len(usable)
    selected = np.zeros(n, dtype=bool)
    niche = np.full(n, -1, dtype=np.int64)
    distance = np.full(n, np.nan)
    reasons = [""] * n

    taken = 0
    last_rank = 0
    for rank in range(1, int(ranks.max()) + 1):
        members = np.flatnonzero(ranks == rank)
        if taken + members.size > k:
            last_rank = rank
            break
        selected[members] = True
        taken += members.size
        for i in members:
            reasons[i] = f"front {rank}: the whole front fits into k={k}"

    if last_rank:
        # The front that does not fit: niching decides who of it gets the remaining slots.
        normalised = normalise(points, ranks)
        directions = reference_directions(k)
        idx = np.flatnonzero(ranks <= last_rank)
        nich, dist = associate(normalised[idx], directions)
        niche[idx] = nich
        distance[idx] = dist
        counts = np.bincount(niche[selected], minlength=len(directions))
        candidates = set(np.flatnonzero(ranks == last_rank).tolist())
        rng = np.random.default_rng(seed)
        while taken < k and candidates:
            alive = np.array(sorted({int(niche[i]) for i in candidates}))
            least = alive[counts[alive] == counts[alive].min()]
            j = int(least[rng.integers(len(least))]) if least.size > 1 else int(least[0])
            pool = sorted(i for i in candidates if niche[i] == j)
            if counts[j] == 0:
                pick = min(pool, key=lambda i: (distance[i], i))  # NSGA-III: nearest when niche empty
                why = "nearest to an empty niche"
            else:
                pick = pool[int(rng.integers(len(pool)))]
                why = f"niche already held {counts[j]}, least crowded left"
            selected[pick] = True
            counts[j] += 1
            taken += 1
            candidates.discard(pick)
            reasons[pick] = f"front {last_rank}: won niche {j} of {len(directions)} ({why})"
        for i in candidates:
            reasons[i] = f"front {last_rank}: lost the niching to better-spread models (niche {niche[i]})"
        for i in np.flatnonzero(ranks > last_rank):
            reasons[i] = f"front {ranks[i]}: k={k} slots were filled by earlier fronts"

    entries = tuple(
        ParetoEntry(
            trial=t,
            rank=int(ranks[i]),
            selected=bool(selected[i]),
            niche=None if niche[i] < 0 else int(niche[i]),
            distance=None if math.isnan(distance[i]) else float(distance[i]),
            reason=reasons[i],
        )
        for i, t in enumerate(usable)
    )
    return ParetoSelection(entries=entries, k=k, skipped=tuple(skipped))
