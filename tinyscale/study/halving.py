"""The rung schedule of a study (``schedule="halving"``): asynchronous successive halving
(ASHA, Li et al. 2020) with promotion at matched cost and a rank-correlation stop rule.

Rung 0 trains every recipe for the study's ``steps``; rung k trains the recipes promoted from
rung k-1 for ``steps * eta**k`` steps, from scratch with the recipe's own seed (the trainer's
cosine schedule is fitted to its length, so a longer run is a new run, and it is paired with
the shorter one by its seed). Whenever a worker is free the study promotes before it proposes:
a recipe completed at rung k is promoted once it is among the best ``floor(n_k / eta)`` of the
``n_k`` recipes completed there, highest rung first; only when nothing is promotable does a new
recipe start at rung 0. No worker waits for a rung to fill (ASHA's point). As in ASHA, a
promotion is never taken back, so a rung can end with more than ``n / eta`` recipes.

Promotion compares recipes **at matched cost**: a recipe's score at a rung is its accuracy
(plus what its shape is measured to gain at the next rung, `shape_gain`, once enough recipes
have run at both) above the rung's trend in log c (a least-squares quadratic in log c, a line below
`QUADRATIC_FROM` results), not its accuracy. Bigger networks are more accurate at every rung;
promoting by accuracy would promote the biggest networks, and the fit needs the best shape at
*each* budget. TinyNet's accuracy-against-log-FLOPs curves are smooth and bend (saturate), which
a quadratic follows and a line does not.

The stop rule: between rungs k and k+1, Spearman's rho of the promoted recipes' scores at the
two rungs (`agreement`). Scores, not accuracies: across recipes of different cost the raw accuracies rank
alike at any length (cost dominates them), so their rho would say "settled" when the ranking
that matters, shape at matched cost, is still noise. Once rho >= `SETTLED_RHO` over at least
`MIN_PAIRS` recipes, rung k already ranks as rung k+1 does: the study stops lengthening (no
promotion past rung k) and spends the rest of its budget on more recipes, promoted up to rung k.
Everything here is computed from the stored runs, so a resumed study decides as an
uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from tinyscale.ranking import spearman, spearman_p, trend_residuals
from tinyscale.study.timing import RunCost

SCHEDULES = ("uniform", "halving")
DEFAULT_ETA = 3  # Hyperband's and ASHA's usual reduction factor
DEFAULT_RUNGS = 2  # rungs above rung 0: the top rung trains eta**2 = 9x the study's steps
MAX_ETA = 16
MAX_RUNGS = 8
SETTLED_RHO = 0.9  # FBNetV3 picks its proxy where the rank correlation passes 0.92
# Spearman's rho over fewer recipes is too coarse to trust: at 6, rho >= 0.9 has a one-sided
# p of 0.008 under no agreement (rho takes steps of 0.03 there); at 4 every 0.2 is one swap.
MIN_PAIRS = 6
CHANCE_P = 0.05  # a rung whose rho with the next has a larger one-sided p ranks no better than chance
QUADRATIC_FROM = 8  # results at a rung before its trend bends (3 coefficients need room)
# A rung the fit reads must hold this many completed recipes: the accuracy surface's minimum
# (tinyscale.fit.gp.MIN_MODELS). On the synthetic study of tests/test_halving.py (seeds 10-21),
# the top rung's few recipes, twice screened and trained longest, held better shapes than the
# middle rung's many (true shape gap -0.014 against -0.022, SE 0.003).
MIN_FIT_RESULTS = 5


@dataclass(frozen=True)
class RungResult:
    """One recipe's completed run at one rung: what promotion and the stop rule read."""

    number: int  # the trial (recipe) number
    rung: int
    ratio: float  # FLOPs ratio c of the recipe
    accuracy: float
    r: float = 1.0  # the recipe's resolution and depth multipliers: its shape at this cost,
    d: float = 1.0  # which the rung-to-rung correction (`shape_gain`) reads


@dataclass(frozen=True)
class Promotion:
    number: int
    rung: int  # the rung it is promoted to


@dataclass(frozen=True)
class RungAgreement:
    """How rung ``rung`` ranks the recipes it shares with rung ``rung + 1``."""

    rung: int
    pairs: int  # recipes completed at both rungs
    rho: float | None  # Spearman's rho of the matched-cost scores (None below 3 pairs, or ties)
    raw_rho: float | None  # the same on raw accuracies, shown beside it (cost inflates it)

    @property
    def settled(self) -> bool:
        return self.pairs >= MIN_PAIRS and self.rho is not None and self.rho >= SETTLED_RHO

    @property
    def p_value(self) -> float | None:
        """One-sided p of this rho under no agreement (`tinyscale.ranking.spearman_p`); None
        below `MIN_PAIRS` recipes, where a p says little."""
        return None if self.rho is None or self.pairs < MIN_PAIRS else spearman_p(self.rho, self.pairs)

    @property
    def chance(self) -> bool:
        """The lower rung ranks these recipes no better than chance (p >= `CHANCE_P`): its
        promotions cannot be told from random picks."""
        return self.p_value is not None and self.p_value >= CHANCE_P


@dataclass(frozen=True)
class RungSummary:
    """One rung of a study as the CLI, the fit and the app show it."""

    rung: int
    steps: int
    completed: int
    agreement: RungAgreement | None  # with the next rung; None for the top rung
    best: float | None = None  # the rung's best accuracy (None: nothing completed there)

    def to_dict(self) -> dict:
        a = self.agreement
        return {"rung": self.rung, "steps": self.steps, "completed": self.completed, "best_accuracy": self.best,
                "rho_next": None if a is None else a.rho, "raw_rho_next": None if a is None else a.raw_rho,
                "pairs_next": None if a is None else a.pairs, "settled": bool(a and a.settled),
                "p_next": None if a is None else a.p_value, "chance": bool(a and a.chance)}


def check_schedule(schedule: object, eta: object, rungs: object, steps: int, max_steps: int) -> None:
    """ValueError (in the command line's words) when the schedule options make no sense.
    ``rungs`` None: chosen by the study from its budget (`choose_rungs`)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    for name, value, high in (("--eta", eta, MAX_ETA), ("--rungs", rungs, MAX_RUNGS)):
        if name == "--rungs" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not (2 if name == "--eta" else 1) <= value <= high:
            low = 2 if name == "--eta" else 1
            raise ValueError(f"{name} must be a whole number from {low} to {high}" + (" or auto" if name == "--rungs"
                             else "") + f", got {value!r}")
    if schedule == "halving" and rungs is not None and steps * eta ** rungs > max_steps:
        raise ValueError(f"the top rung would train {steps * eta ** rungs:,} steps (--steps {steps} x --eta {eta} "
                         f"^ --rungs {rungs}), more than {max_steps:,}")


def rung_steps(steps: int, eta: int, rung: int) -> int:
    """Training steps of a run at ``rung``."""
    return steps * eta ** rung


def schedule_cost(rungs: int, eta: int, run_cost) -> float:
    """The cost of the smallest schedule whose top rung the stop rule can judge: `MIN_PAIRS`
    recipes at rung ``rungs``, ``eta`` x as many at each rung below (the ASHA quotas), where a run
    at rung k costs ``run_cost(k)``."""
    return sum(MIN_PAIRS * eta ** (rungs - k) * run_cost(k) for k in range(rungs + 1))


def choose_rungs(*, steps: int, eta: int, max_steps: int, trials: int | None = None,
                 step_budget: int | None = None, worker_seconds: float | None = None,
                 cost: RunCost | None = None, trained_steps: Callable[[int], int] | None = None) -> int:
    """The most rungs above rung 0 (up to `MAX_RUNGS`) whose smallest judged schedule
    (`schedule_cost`) fits every budget given: ``trials`` recipes at rung 0, ``step_budget``
    step-units (training steps summed over runs), ``worker_seconds`` (minutes x 60 x workers,
    with each run's ``cost`` as measured). A run at rung k trains ``trained_steps(k)`` steps
    (default all its ``steps * eta**k``; fewer when it continues from its parent's trunk). 0 when
    not even one lengthening fits: the study trains every recipe at rung 0.

    Why "judged": a rung with fewer than `MIN_PAIRS` recipes cannot tell whether lengthening
    changed the ranking (the stop rule needs them), so a deeper schedule the budget cannot fill
    to that depth spends its longest runs on a verdict it cannot reach."""
    if worker_seconds is not None and cost is None:
        raise ValueError("a budget in minutes needs the measured cost of a run")
    trained = trained_steps or (lambda k: steps * eta ** k)

    def fits(rungs: int) -> bool:
        if steps * eta ** rungs > max_steps:
            return False
        if trials is not None and MIN_PAIRS * eta ** rungs > trials:
            return False
        if step_budget is not None and schedule_cost(rungs, eta, trained) > step_budget:
            return False
        return worker_seconds is None or schedule_cost(rungs, eta, lambda k: cost.at(trained(k))) <= worker_seconds

    rungs = 0
    while rungs < MAX_RUNGS and fits(rungs + 1):
        rungs += 1
    return rungs


def matched_cost_scores(results: Sequence[RungResult]) -> dict[int, float]:
    """Each result's accuracy above the trend of its rung's accuracies in log c (number ->
    score): a least-squares quadratic in log c from `QUADRATIC_FROM` results, a line from 3,
    the mean below that."""
    if not results:
        return {}
    degree = 2 if len(results) >= QUADRATIC_FROM else 1 if len(results) >= 3 else 0
    residual = trend_residuals([math.log(r.ratio) for r in results], [r.accuracy for r in results], degree)
    return {r.number: float(e) for r, e in zip(results, residual)}


def by_rung(results: Iterable[RungResult]) -> dict[int, list[RungResult]]:
    out: dict[int, list[RungResult]] = {}
    for r in sorted(results, key=lambda r: (r.rung, r.number)):
        out.setdefault(r.rung, []).append(r)
    return out


def agreement(lower: Sequence[RungResult], upper: Sequence[RungResult]) -> RungAgreement:
    """How ``lower``'s ranking at matched cost agrees with ``upper``'s on the recipes completed
    at both.

    The lower rung's scores come from its trend over all its recipes. The upper rung holds only
    the few promoted ones, too few for a trend of their own (a line through 6 selected recipes
    absorbs whatever part of their shape happens to go with cost), so its scores are the lower
    scores plus what the longer run changed beyond a smooth gain: the rung-to-rung gain is
    regressed on log c (bigger networks gain more from longer training), and each recipe's
    residual from that line is how much its shape gained or lost."""
    rung = lower[0].rung if lower else (upper[0].rung - 1 if upper else 0)
    low_scores = matched_cost_scores(lower)
    low_acc = {r.number: r.accuracy for r in lower}
    shared = [r for r in upper if r.number in low_scores]
    up_scores: list[float] = []
    if shared:
        change = trend_residuals([math.log(r.ratio) for r in shared],
                                 [r.accuracy - low_acc[r.number] for r in shared], 1 if len(shared) >= 3 else 0)
        up_scores = [low_scores[r.number] + float(e) for r, e in zip(shared, change)]
    return RungAgreement(
        rung=rung, pairs=len(shared),
        rho=spearman([low_scores[r.number] for r in shared], up_scores),
        raw_rho=spearman([low_acc[r.number] for r in shared], [r.accuracy for r in shared]),
    )


def shape_gain(lower: Sequence[RungResult], upper: Sequence[RungResult]):
    """What a recipe's shape adds to its accuracy between two rungs, fitted on the recipes
    completed at both: the gain regressed on log c, log r and log d, of which the shape part
    (log r, log d) is returned as a function of a result; None below `MIN_PAIRS` recipes.

    Brief training favours some shapes (deep networks start slowly): promotion by the lower
    rung's scores alone keeps passing over recipes that long training would rank first, and
    the rungs above cannot recover what rung 0 dropped. The shapes' gain, measured on the
    recipes already trained at both rungs, predicts the others'."""
    import numpy as np

    low = {r.number: r for r in lower}
    shared = [r for r in upper if r.number in low]
    if len(shared) < MIN_PAIRS:
        return None
    features = np.array([[1.0, math.log(r.ratio), math.log(r.r), math.log(r.d)] for r in shared])
    gain = np.array([r.accuracy - low[r.number].accuracy for r in shared])
    coef, *_ = np.linalg.lstsq(features, gain, rcond=None)
    b_r, b_d = float(coef[2]), float(coef[3])
    return lambda result: b_r * math.log(result.r) + b_d * math.log(result.d)


def settled_rung(rungs: Mapping[int, Sequence[RungResult]], top: int) -> int | None:
    """The lowest rung below ``top`` whose ranking the next rung confirms (`RungAgreement.settled`),
    or None."""
    for k in range(top):
        if agreement(rungs.get(k, ()), rungs.get(k + 1, ())).settled:
            return k
    return None


def promotions(results: Iterable[RungResult], started: Mapping[int, set[int]], *, eta: int, top: int
               ) -> list[Promotion]:
    """Every promotion due now, highest target rung first, best score first within a rung.

    ``started`` holds, per rung >= 1, the recipes that already have a run there (in any state):
    a recipe is promoted once. Nothing is promoted past the settled rung (`settled_rung`), and
    nothing to rung k+1 >= 2 before rung k holds `MIN_PAIRS` recipes completed at rung k-1 too:
    the longest runs cost the most, so they wait until the stop rule can say whether the last
    lengthening changed the ranking (workers meanwhile train new rung-0 recipes)."""
    rungs = by_rung(results)
    settled = settled_rung(rungs, top)
    cap = top if settled is None else settled
    due: list[Promotion] = []
    for k in range(cap - 1, -1, -1):
        if k >= 1 and agreement(rungs.get(k - 1, []), rungs.get(k, [])).pairs < MIN_PAIRS:
            continue  # lengthen again only once the stop rule has judged the last lengthening
        done = rungs.get(k, [])
        gain = shape_gain(done, rungs.get(k + 1, []))
        scores = matched_cost_scores(done if gain is None else [replace(r, accuracy=r.accuracy + gain(r))
                                                                for r in done])
        best = sorted(done, key=lambda r: (-scores[r.number], r.number))[: len(done) // eta]
        due += [Promotion(r.number, k + 1) for r in best if r.number not in started.get(k + 1, set())]
    return due


def fit_rung(results: Iterable[RungResult], top: int) -> int:
    """The rung whose accuracies the fit uses: the settled rung when the ranking has settled,
    else the highest rung with `MIN_FIT_RESULTS` completed recipes (rung 0 otherwise)."""
    rungs = by_rung(results)
    settled = settled_rung(rungs, top)
    if settled is not None:
        return settled
    full = [k for k, done in rungs.items() if len(done) >= MIN_FIT_RESULTS]
    return max(full, default=0)


def summarise(results: Iterable[RungResult], *, steps: int, eta: int, top: int) -> list[RungSummary]:
    """Rungs 0..top with their counts and each one's agreement with the next."""
    rungs = by_rung(results)
    return [RungSummary(k, rung_steps(steps, eta, k), len(rungs.get(k, [])),
                        agreement(rungs.get(k, []), rungs.get(k + 1, [])) if k < top else None,
                        max((r.accuracy for r in rungs.get(k, [])), default=None))
            for k in range(top + 1)]


def longest_rung(rungs: Sequence[RungSummary], at_least: int = 1) -> RungSummary | None:
    """The highest rung holding at least ``at_least`` completed recipes (None when none does):
    the study's longest runs, where a fit across rungs reads its ridge (``at_least`` 1) and what
    `tinyscale fidelity` checks by default (``at_least`` its minimum)."""
    return max((r for r in rungs if r.completed >= at_least), key=lambda r: r.rung, default=None)


def format_rungs(rungs: Sequence[RungSummary], fit: int, *, every_rung: bool = False) -> str:
    """The rungs, one line each: steps, recipes completed, agreement with the next rung
    (Spearman's rho at matched cost), and which rung the fit reads; ``every_rung``: the fit
    reads every rung's runs (`tinyscale fit`'s default on a study in rungs): no rung is marked,
    and a last line says where the ridge is read and what the fit rung is."""
    if every_rung:
        top = longest_rung(rungs)
        where = "" if top is None else f", its ridge at rung {top.rung} ({top.steps:,} steps, the longest runs)"
        return "\n".join([format_rungs(rungs, -1), *(
            [f"  the fit reads every rung's runs{where}; `fit --from-rungs fit` reads rung {fit} alone, the "
             "rung whose ranking the study trusts"] if fit >= 0 else [])])
    lines = []
    for r in rungs:
        a = r.agreement
        agree = "" if a is None or a.rho is None else (
            f"; ranks like rung {r.rung + 1} at rho {a.rho:+.2f} over {a.pairs} recipes"
            + (" (settled)" if a.settled else f" (no better than chance, p = {a.p_value:.2f})" if a.chance else ""))
        lines.append(f"  rung {r.rung}: {r.steps:,} steps, {r.completed} recipes{agree}"
                     + ("  <- the fit reads this rung" if r.rung == fit else ""))
    return "\n".join(lines)
