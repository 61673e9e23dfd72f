"""Does the study's brief training carry signal? FBNetV3's proxy check, on a study directory.

A study trains every sampled recipe briefly and once; the Pareto selection and the GP fits then
trust those single brief accuracies. This stage measures how far that trust is earned:

* **seed noise** — a few completed trials, spread over the FLOPs range, are trained again with
  other seeds at the study's own steps; the spread of each recipe's accuracies (the study's own
  run counts as one of them) is that recipe's σ, pooled into one σ.
* **rank fidelity** — about ten completed trials spread over the window are trained
  `factor` × longer, each with a fresh seed (a shared seed would correlate the noise of the
  two runs and flatter the agreement); Spearman's ρ between the brief and the long accuracies
  says whether the brief runs rank recipes as longer training does. FBNetV3 stops refining its
  proxy once ρ ≥ 0.92; we call ρ ≥ 0.8 good. ``rho_matched`` is ρ after removing each run
  set's linear trend in log2 c: the ranking among recipes *at matched cost* (reported only;
  ten points make it noisy).
* **signal** — over all completed trials: the slope of accuracy against log2 c with its
  standard error, the residual spread at matched c (sd of the residuals of a quadratic in
  log2 c, so a bend in the accuracy curve is not mistaken for recipe signal) in units of σ, and
  the fraction of the accuracy variance beyond seed noise, max(0, 1 − σ² / var(acc)).

The recipe the GPs learn is the split of a budget into r, d (and w) *at a given c*, so the
residual spread at matched c is the number that says whether the study can tell such splits
apart: when it is about σ, the models the Pareto selection picks at each c are picked by seed.

`summarize` is the pure part (numbers in, `Fidelity` out); `measure` trains through the study
engine's executors, stores each finished run in ``DIR/fidelity/fidelity.sqlite`` as soon as it
arrives (so an interrupted run resumes without retraining anything), and writes
``DIR/fidelity.json`` atomically when every run is in. `load_fidelity` reads it back;
`format_fidelity` is the text block `tinyscale fidelity` and `tinyscale fit` print.

`measure_noise` runs the seed-noise replicates alone (``DIR/seed-noise.json``; the demo does,
before its fit), and `noise_for_fit` gives the accuracy surface the measured σ to fix its
observation noise at (`tinyscale.fit.surface` says why).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from tinyscale.evaluate.store import TrainerResultStore
from tinyscale.storage import write_text_atomically
from tinyscale.study.plan import StudyPlan
from tinyscale.study.runner import Job, RunResult, queue_of, run_jobs

FIDELITY_FILE = "fidelity.json"
NOISE_FILE = "seed-noise.json"  # the seed noise alone (`measure_noise`), when the full check has not run
NOISE_FORMAT = 1
FIDELITY_DIRNAME = "fidelity"
STORE_NAME = "fidelity.sqlite"
FIDELITY_FORMAT = 1
SCHEMA_VERSION = 1

DEFAULT_RECIPES = 10  # trials trained longer for the rank check
DEFAULT_FACTOR = 4.0  # the longer training is this many times the study's steps
DEFAULT_REPLICATES = 2  # extra seeds per noise trial (the study's own run makes 3 per recipe)
DEFAULT_NOISE_TRIALS = 4  # trials retrained with other seeds for the noise estimate
MIN_TRIALS = 5  # completed trials needed: a quadratic in log2 c plus residual degrees of freedom
MIN_RECIPES = 3  # a rank correlation on fewer points says nothing

# Seeds. The study trains trial n with trial_seed(seed, n) (0..N-1 for the default seed 0) and
# `tinyscale compare` uses seeds 0..N-1, so fidelity runs start far above both:
# FIDELITY_SEED_OFFSET + trial_seed(seed, n) * SEED_SLOTS + slot, slot 0 for the long run and
# 1..replicates for the noise replicates. Every seed is also checked against the study's own.
FIDELITY_SEED_OFFSET = 10**12
SEED_SLOTS = 1000  # so at most SEED_SLOTS - 1 replicates per trial
LONG_SLOT = 0

# Verdict thresholds.
# FBNetV3 refines its proxy until the rank correlation with full training reaches 0.92.
RHO_FBNETV3 = 0.92
# Our bar for "the brief runs rank recipes like longer training": weaker than FBNetV3's because
# a study's brief runs are much shorter than its proxy and ρ on ~10 recipes is itself uncertain
# (its standard error is about 0.1 near ρ = 0.8).
RHO_GOOD = 0.8
# Below this the agreement cannot be told from chance at the default size: with 10 recipes a
# one-sided 5 % test needs ρ ≥ 0.56.
RHO_POOR = 0.5
# The rise of accuracy with c must be at least 2 standard errors (about 95 %) to count as
# resolved; without it the study cannot even rank networks of different cost.
SLOPE_T_MIN = 2.0
# Fraction of the brief accuracies' variance that is not seed noise. Under half: more noise
# than anything else. At least 0.8: seed noise is at most 0.45 of the spread (in sd).
BEYOND_NOISE_POOR = 0.5
BEYOND_NOISE_GOOD = 0.8
# Residual sd at matched c in units of σ. At 1.5σ, 1 − 1/1.5² = 56 % of the spread between
# recipes of equal cost is the recipe rather than the seed; at about 1σ it is all seed noise,
# and the Pareto models the GPs are fitted on were picked by seed.
MATCHED_GOOD = 1.5

VERDICTS = ("trustworthy", "weak", "untrustworthy")
ADVICE = {
    "trustworthy": "the brief runs carry signal: the recipe reflects real differences between recipes",
    "weak": "treat the recipe as a rough guide: the study resolves part of what it needs, not all",
    "untrustworthy": "the brief accuracies do not separate recipes from seed noise reliably: train longer "
                     "(--steps) or run more trials before trusting the recipe",
}


# =============================================================================== pure statistics


def rankdata(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing the average of the ranks they span."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's ρ: Pearson's correlation of the (average-tie) ranks. None when either side has
    fewer than two distinct values (the correlation is undefined)."""
    if len(a) != len(b):
        raise ValueError(f"spearman needs paired values, got {len(a)} and {len(b)}")
    ra, rb = rankdata(a), rankdata(b)
    da, db = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db)))
    if denom == 0.0:
        return None
    return float(np.dot(da, db) / denom)


def _linear(x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """OLS y = a + b x: (b, standard error of b, residuals)."""
    xm = x - x.mean()
    sxx = float(np.dot(xm, xm))
    b = float(np.dot(xm, y - y.mean()) / sxx)
    resid = y - y.mean() - b * xm
    dof = len(x) - 2
    se = math.sqrt(float(np.dot(resid, resid)) / dof / sxx) if dof > 0 else math.nan
    return b, se, resid


def _quadratic_residuals(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xm = x - x.mean()
    design = np.stack([np.ones_like(xm), xm, xm * xm], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ coef


# =============================================================================== results


@dataclass(frozen=True)
class NoiseGroup:
    """One recipe trained at the study's steps with several seeds (the study's own run first)."""

    number: int  # the study's trial number
    ratio: float
    accuracies: tuple[float, ...]
    sd: float  # sample standard deviation over the seeds

    @classmethod
    def from_dict(cls, data: dict) -> NoiseGroup:
        return cls(**{**data, "accuracies": tuple(data["accuracies"])})


@dataclass(frozen=True)
class RankPair:
    """One recipe's brief (the study's) and longer-training accuracy."""

    number: int
    ratio: float
    brief: float
    long: float


@dataclass(frozen=True)
class Signal:
    """How accuracy depends on c over all completed trials, against the seed noise σ."""

    n: int  # completed trials
    slope: float  # accuracy (fraction) per doubling of c
    slope_se: float
    slope_t: float | None  # slope / se; None when the fit is exact (se = 0)
    accuracy_sd: float  # sample sd of the brief accuracies
    residual_sd: float  # sd of residuals of a quadratic in log2 c (the spread at matched c)
    residual_ratio: float | None  # residual_sd / σ; None when σ = 0
    beyond_noise: float  # max(0, 1 - σ² / var(accuracy))


@dataclass(frozen=True)
class FidelitySettings:
    """What `measure` was asked (and the steps it trained with)."""

    recipes: int
    factor: float
    replicates: int
    noise_trials: int
    steps: int  # the study's steps per trial (the noise replicates train this long)
    long_steps: int


@dataclass(frozen=True)
class Run:
    """One retraining: a noise replicate or a long run of a study trial."""

    kind: str  # "replicate" or "long"
    number: int
    seed: int
    steps: int
    state: str  # "completed" or "failed"
    accuracy: float | None
    train_seconds: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Fidelity:
    """Seed noise, rank fidelity and signal of a study's brief accuracies, and the verdict."""

    sigma: float  # pooled seed sd of top-1 (fraction) at the study's steps
    sigma_df: int  # its degrees of freedom
    noise: tuple[NoiseGroup, ...]
    rho: float | None  # Spearman ρ brief vs long
    rho_matched: float | None  # Spearman ρ of the residuals after each side's linear trend in log2 c
    pairs: tuple[RankPair, ...]
    signal: Signal
    verdict: str  # one of VERDICTS
    reasons: tuple[str, ...]  # one plain sentence per check, with its numbers
    settings: FidelitySettings | None = None
    runs: tuple[Run, ...] = ()
    created: str | None = None

    @property
    def advice(self) -> str:
        return ADVICE[self.verdict]

    @property
    def headline(self) -> str:
        """The verdict in one line: the word, what it means, and why."""
        return f"{self.verdict}: {self.advice} ({'; '.join(self.reasons)})"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["format"] = FIDELITY_FORMAT
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Fidelity:
        data = dict(data)
        data.pop("format", None)
        return cls(
            sigma=float(data["sigma"]), sigma_df=int(data["sigma_df"]),
            noise=tuple(NoiseGroup.from_dict(g) for g in data["noise"]),
            rho=data["rho"], rho_matched=data["rho_matched"],
            pairs=tuple(RankPair(**p) for p in data["pairs"]),
            signal=Signal(**data["signal"]), verdict=data["verdict"], reasons=tuple(data["reasons"]),
            settings=None if data.get("settings") is None else FidelitySettings(**data["settings"]),
            runs=tuple(Run(**r) for r in data.get("runs", ())), created=data.get("created"),
        )


@dataclass(frozen=True)
class ModelAgreement:
    """How a model fitted on the study's brief runs (the accuracy surface) ranks the rank check's
    recipes against their long runs, beside how the single brief runs rank the same recipes.

    The recipe comes from the surface, not from any one trial: where it pools neighbouring trials
    it can rank better than each trial's single noisy run, and where it smooths real differences
    away it ranks worse. Both Spearman ρ are over the same ``n`` recipes."""

    rho: float | None  # the model's predicted accuracies vs the long runs
    rho_brief: float | None  # the single brief runs vs the long runs, on the same recipes
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def model_agreement(fidelity: Fidelity | None, predicted: Mapping[int, float]) -> ModelAgreement | None:
    """Spearman ρ between ``predicted`` (a model's accuracy for each trial number it covers) and
    the long runs of the check's recipes; None when no check was measured or it covers fewer
    than `MIN_RECIPES` of them."""
    if fidelity is None:
        return None
    pairs = [p for p in fidelity.pairs if p.number in predicted]
    if len(pairs) < MIN_RECIPES:
        return None
    long = [p.long for p in pairs]
    return ModelAgreement(spearman([predicted[p.number] for p in pairs], long),
                          spearman([p.brief for p in pairs], long), len(pairs))


def format_model_agreement(agreement: ModelAgreement | None) -> str | None:
    """The line `tinyscale fit` prints for the surface's agreement with the long runs."""
    if agreement is None:
        return None
    rho = "undefined" if agreement.rho is None else f"{agreement.rho:.2f}"
    brief = "undefined" if agreement.rho_brief is None else f"{agreement.rho_brief:.2f}"
    return (f"surface    the accuracy surface ranks the {agreement.n} recipes of the check at Spearman ρ = {rho} "
            f"against their long runs (their single brief runs: ρ = {brief})")


def pooled_noise(replicate_groups: Mapping[int, Sequence[float]], c: Mapping[int, float]
                 ) -> tuple[float, int, tuple[NoiseGroup, ...]]:
    """(σ, its degrees of freedom, the groups): the seed sd of one run's accuracy pooled over
    recipes, each recipe about its own mean. Groups of fewer than two runs are ignored."""
    groups = []
    for n in sorted(replicate_groups):
        accs = tuple(float(a) for a in replicate_groups[n])
        if len(accs) < 2:
            continue
        groups.append(NoiseGroup(n, float(c[n]), accs, float(np.std(accs, ddof=1))))
    if not groups:
        raise ValueError("need at least one recipe trained with two or more seeds for the noise estimate")
    sigma_df = sum(len(g.accuracies) - 1 for g in groups)
    sigma = math.sqrt(sum((len(g.accuracies) - 1) * g.sd**2 for g in groups) / sigma_df)
    return sigma, sigma_df, tuple(groups)


def summarize(
    brief: Mapping[int, float],
    long: Mapping[int, float],
    replicate_groups: Mapping[int, Sequence[float]],
    c: Mapping[int, float],
) -> Fidelity:
    """The pure part: numbers in, `Fidelity` out.

    ``brief``: trial number -> the study's (brief) accuracy, every completed trial;
    ``c``: trial number -> its FLOPs ratio (the same trials);
    ``long``: trial number -> accuracy after the longer training (a subset of ``brief``);
    ``replicate_groups``: trial number -> accuracies of that recipe at the study's steps under
    different seeds, the study's own run included (groups of fewer than two are ignored).
    Accuracies are fractions in [0, 1]. ValueError when the numbers cannot support the check.
    """
    numbers = sorted(brief)
    if set(c) != set(brief):
        raise ValueError("brief accuracies and FLOPs ratios must cover the same trials")
    if len(numbers) < MIN_TRIALS:
        raise ValueError(f"need at least {MIN_TRIALS} completed trials, got {len(numbers)}")
    for name, values in (("brief", brief.values()), ("long", long.values()),
                         ("replicate", [a for g in replicate_groups.values() for a in g])):
        bad = [v for v in values if not (isinstance(v, (int, float)) and math.isfinite(v))]
        if bad:
            raise ValueError(f"{name} accuracies must be finite numbers, got {bad[0]!r}")
    if any(not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0) for v in c.values()):
        raise ValueError("FLOPs ratios must be positive finite numbers")
    for name, numbers_given in (("long runs", long), ("replicate groups", replicate_groups)):
        unknown = sorted(set(numbers_given) - set(brief))
        if unknown:
            raise ValueError(f"{name} of trials without a brief accuracy: {unknown}")

    sigma, sigma_df, groups = pooled_noise(replicate_groups, c)

    # Rank fidelity.
    pair_numbers = sorted(long, key=lambda n: (c[n], n))
    if len(pair_numbers) < MIN_RECIPES:
        raise ValueError(f"need at least {MIN_RECIPES} recipes trained longer for the rank check, "
                         f"got {len(pair_numbers)}")
    pairs = tuple(RankPair(n, float(c[n]), float(brief[n]), float(long[n])) for n in pair_numbers)
    rho = spearman([p.brief for p in pairs], [p.long for p in pairs])
    rho_matched = None
    px = np.log2([p.ratio for p in pairs])
    if len(pairs) >= 4 and np.ptp(px) > 0:
        _, _, rb = _linear(px, np.array([p.brief for p in pairs]))
        _, _, rl = _linear(px, np.array([p.long for p in pairs]))
        rho_matched = spearman(rb, rl)

    # Signal over all completed trials.
    x = np.log2([c[n] for n in numbers])
    y = np.array([brief[n] for n in numbers], dtype=float)
    if np.ptp(x) == 0:
        raise ValueError("all completed trials are at one FLOPs ratio: no slope to measure")
    slope, slope_se, _ = _linear(x, y)
    slope_t = slope / slope_se if slope_se > 0 else None
    resid = _quadratic_residuals(x, y)
    residual_sd = math.sqrt(float(np.dot(resid, resid)) / (len(y) - 3))
    var = float(np.var(y, ddof=1))
    beyond = max(0.0, 1.0 - sigma**2 / var) if var > 0 else 0.0
    signal = Signal(
        n=len(numbers), slope=slope, slope_se=slope_se, slope_t=slope_t,
        accuracy_sd=math.sqrt(var), residual_sd=residual_sd,
        residual_ratio=residual_sd / sigma if sigma > 0 else None, beyond_noise=beyond,
    )
    verdict, reasons = judge(rho, len(pairs), sigma, signal)
    return Fidelity(sigma=sigma, sigma_df=sigma_df, noise=groups, rho=rho, rho_matched=rho_matched,
                    pairs=pairs, signal=signal, verdict=verdict, reasons=tuple(reasons))


def _pts(x: float) -> str:
    return f"{100 * x:.2f} points"


def judge(rho: float | None, n_pairs: int, sigma: float, signal: Signal) -> tuple[str, list[str]]:
    """The verdict and one sentence per check (failures first)."""
    bad: list[str] = []  # any of these: untrustworthy
    short: list[str] = []  # any of these (and no bad): weak
    good: list[str] = []

    if rho is None:
        bad.append(f"the rank correlation with longer training is undefined on {n_pairs} recipes "
                   "(all brief or all long accuracies equal)")
    elif rho < RHO_POOR:
        bad.append(f"the brief runs rank {n_pairs} recipes unlike longer training (Spearman ρ = {rho:.2f} "
                   f"< {RHO_POOR})")
    elif rho < RHO_GOOD:
        short.append(f"the brief runs rank {n_pairs} recipes only partly like longer training "
                     f"(Spearman ρ = {rho:.2f}; good is ≥ {RHO_GOOD}, FBNetV3 asks {RHO_FBNETV3})")
    else:
        good.append(f"the brief runs rank {n_pairs} recipes like longer training (Spearman ρ = {rho:.2f})")

    per_doubling = f"{100 * signal.slope:+.2f} ± {100 * signal.slope_se:.2f} points per doubling of c"
    t = signal.slope_t
    if t is None:
        (good if signal.slope > 0 else bad).append(f"accuracy moves {per_doubling} (an exact fit)")
    elif t < SLOPE_T_MIN:
        what = "falls" if signal.slope < 0 else "does not rise measurably"
        bad.append(f"accuracy {what} with c ({per_doubling}, t = {t:.1f} < {SLOPE_T_MIN})")
    else:
        good.append(f"accuracy rises {per_doubling} (t = {t:.1f})")

    share = f"{signal.beyond_noise:.0%} of the accuracy variance is beyond seed noise (σ = {_pts(sigma)})"
    if signal.beyond_noise < BEYOND_NOISE_POOR:
        bad.append(f"only {share}")
    elif signal.beyond_noise < BEYOND_NOISE_GOOD:
        short.append(share)
    else:
        good.append(share)

    ratio = signal.residual_ratio
    if ratio is None:
        short.append("the seed noise measured 0, so the spread at matched c cannot be put against it "
                     "(too few replicates, or a tiny validation set?)")
    elif ratio < MATCHED_GOOD:
        short.append(f"at matched c recipes differ by {_pts(signal.residual_sd)} (sd), {ratio:.1f}σ: "
                     f"mostly seed noise, so the r/d split is not resolved (good is ≥ {MATCHED_GOOD}σ)")
    else:
        good.append(f"at matched c recipes differ by {_pts(signal.residual_sd)} (sd), {ratio:.1f}σ")

    verdict = "untrustworthy" if bad else "weak" if short else "trustworthy"
    return verdict, bad + short + good


# =============================================================================== choosing trials


def spread(trials: Sequence, k: int) -> list:
    """``k`` trials at the empirical quantiles 0, 1/(k-1), ..., 1 of log c (all of them when there
    are no more than ``k``), in order of c. Deterministic: sorted by (ratio, number)."""
    ordered = sorted(trials, key=lambda t: (t.ratio, t.number))
    if k >= len(ordered):
        return ordered
    if k == 1:
        return [ordered[len(ordered) // 2]]
    # Indices round(q (n-1)) for evenly spaced q are distinct when k <= n (steps of at least 1).
    idx = [int(round(i * (len(ordered) - 1) / (k - 1))) for i in range(k)]
    return [ordered[i] for i in idx]


def fidelity_seed(study_seed: int, number: int, slot: int) -> int:
    """The seed of retraining ``slot`` of trial ``number`` (slot 0: long run; 1..: replicates)."""
    from tinyscale.study.plan import trial_seed

    if not 0 <= slot < SEED_SLOTS:
        raise ValueError(f"seed slot must be in 0..{SEED_SLOTS - 1}, got {slot}")
    return FIDELITY_SEED_OFFSET + trial_seed(study_seed, number) * SEED_SLOTS + slot


@dataclass(frozen=True)
class Task:
    kind: str
    number: int
    seed: int
    steps: int


def plan(trials: Sequence, config, *, recipes: int, factor: float, replicates: int, noise_trials: int,
         all_numbers: Sequence[int] = ()) -> tuple[list[Task], FidelitySettings]:
    """Which retrainings `measure` needs: replicates of ``noise_trials`` spread trials, then long
    runs of ``recipes`` spread trials. ``all_numbers`` (every trial of the study) is used to check
    that no seed repeats one the study trained with."""
    from tinyscale.study.plan import trial_seed

    settings = _check_settings(recipes, factor, replicates, noise_trials, config.steps)
    tasks = [Task("replicate", t.number, fidelity_seed(config.seed, t.number, k), config.steps)
             for t in spread(trials, noise_trials) for k in range(1, replicates + 1)]
    tasks += [Task("long", t.number, fidelity_seed(config.seed, t.number, LONG_SLOT), settings.long_steps)
              for t in spread(trials, recipes)]
    study_seeds = {trial_seed(config.seed, n) for n in (*all_numbers, *(t.number for t in trials))}
    clash = sorted({t.seed for t in tasks} & study_seeds)
    if clash or len({t.seed for t in tasks}) != len(tasks):
        raise ValueError(f"fidelity seeds collide with the study's trial seeds ({clash[:3]}); "
                         "a study seed this large is not supported")
    return tasks, settings


def _check_settings(recipes, factor, replicates, noise_trials, steps) -> FidelitySettings:
    for name, value, low in (("recipes", recipes, MIN_RECIPES), ("replicates", replicates, 1),
                             ("noise_trials", noise_trials, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}")
    if replicates >= SEED_SLOTS:
        raise ValueError(f"replicates must be below {SEED_SLOTS}, got {replicates}")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 1:
        raise ValueError(f"factor must be a number of at least 1 (times the study's steps), got {factor!r}")
    return FidelitySettings(recipes, float(factor), replicates, noise_trials, steps, math.ceil(factor * steps))


# =============================================================================== store


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    kind TEXT NOT NULL CHECK (kind IN ('replicate', 'long')),
    number INTEGER NOT NULL, seed INTEGER NOT NULL, steps INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('completed', 'failed')),
    accuracy REAL, loss REAL, train_seconds REAL, reason TEXT, recipe TEXT NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (kind, number, seed, steps));
"""


def fidelity_dir(study_dir: str | os.PathLike) -> Path:
    return Path(study_dir) / FIDELITY_DIRNAME


class FidelityStore(TrainerResultStore):
    """The retrainings of a study's fidelity check (the `tinyscale.storage.ResultStore` contract:
    one transaction per run). ``budget`` is the data and every trainer setting but steps and
    threads, so runs of other lengths share a store and runs under other settings are refused."""

    SCHEMA = _SCHEMA
    SCHEMA_VERSION = SCHEMA_VERSION
    RESULT_TABLES = ("runs",)
    WHAT = "runs"

    @classmethod
    def open(cls, study_dir: str | os.PathLike, budget: dict, *, restart: bool = False) -> FidelityStore:
        return cls.open_at(fidelity_dir(study_dir) / STORE_NAME, budget, restart=restart)

    def put(self, run: Run, recipe_json: str, loss: float | None = None) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.kind, run.number, run.seed, run.steps, run.state, run.accuracy, loss, run.train_seconds,
                 run.reason, recipe_json, time.time()),
            )

    def runs(self) -> dict[tuple[str, int, int, int], tuple[Run, str]]:
        """(kind, number, seed, steps) -> (the run, the recipe it trained as JSON)."""
        rows = self._conn.execute(
            "SELECT kind, number, seed, steps, state, accuracy, train_seconds, reason, recipe FROM runs")
        return {(r[0], r[1], r[2], r[3]): (Run(*r[:8]), r[8]) for r in rows}


# =============================================================================== measuring


def _recipe_json(recipe) -> str:
    return json.dumps(recipe.to_dict(), sort_keys=True)


def _budget(config, train) -> dict:
    from tinyscale.train.config import comparable_settings

    trainer = {k: v for k, v in comparable_settings(train).items() if k != "steps"}
    return {"data": config.data, "data_seed": config.seed, "train_size": config.train_size,
            "val_size": config.val_size, "rules": config.rules, "base_resolution": config.base_resolution,
            "num_classes": config.num_classes, **trainer}


def _checkable(study_dir: Path):
    """(config, trainer, completed trials, every trial) of a study the check can retrain."""
    from tinyscale.study.store import Study

    with Study.open(study_dir) as study:
        config = study.config
        everything = study.trials()
        # Replicates must train exactly as the study's trials did (the study records its resolved
        # trainer settings when it starts; a hand-made study has none to check).
        plan = StudyPlan.resolve(config, space=False, load=False)
        plan.check_trainer(study.get_meta("trainer"), f"the study at {study.directory}",
                           "its brief accuracies cannot be replicated by this version")
    train = plan.train
    completed = [t for t in everything if t.state == "completed" and t.accuracy is not None
                 and math.isfinite(t.accuracy)]
    if len(completed) < MIN_TRIALS:
        raise ValueError(f"the study at {study_dir} has {len(completed)} completed trial(s); the fidelity check "
                         f"needs at least {MIN_TRIALS} (run more trials with `tinyscale study --resume`)")
    return config, train, completed, everything


def _retrain(study_dir: Path, config, train, tasks: Sequence[Task], by_number: Mapping, *, executor, threads,
             restart: bool, progress: bool, desc: str) -> dict:
    """Train the ``tasks`` not stored yet (resuming), each stored as soon as it finishes;
    returns every stored run: (kind, number, seed, steps) -> (run, recipe JSON)."""
    with FidelityStore.open(study_dir, _budget(config, train), restart=restart) as store:
        stored = store.runs()
        todo = []
        for task in tasks:
            hit = stored.get((task.kind, task.number, task.seed, task.steps))
            if hit is None:
                todo.append(task)
            elif hit[1] != _recipe_json(by_number[task.number].recipe):
                raise ValueError(f"{store.path} holds a run of trial {task.number} with another recipe "
                                 f"(was the study recreated?); pass --restart to retrain")
        if todo:
            plan = StudyPlan.resolve(config, space=False)  # a missing dataset: one clear error before any worker starts

            def record(job: Job, run: RunResult) -> str:
                task = job.key
                stored_run = Run(task.kind, task.number, task.seed, task.steps, run.state, run.accuracy,
                                 run.train_seconds, run.reason)
                store.put(stored_run, _recipe_json(job.recipe), run.loss if run.completed else None)
                acc = "failed" if run.accuracy is None else f"{100 * run.accuracy:.2f} %"
                return f"last: {task.kind} #{task.number} {task.steps} steps {acc}"

            jobs = [Job(task, by_number[task.number].recipe, task.seed, train.with_(steps=task.steps)) for task in todo]
            run_jobs(queue_of(jobs), record, data=plan.data, executor=executor, threads=threads, progress=progress,
                     desc=desc, total=len(tasks), initial=len(tasks) - len(todo))
        return store.runs()


def _replicate_groups(runs: Sequence[Run], brief: Mapping[int, float]) -> dict[int, list[float]]:
    """Trial number -> its accuracies at the study's steps: the study's own run, then replicates."""
    groups: dict[int, list[float]] = {}
    for r in runs:
        if r.kind == "replicate" and r.state == "completed":
            groups.setdefault(r.number, [brief[r.number]]).append(r.accuracy)
    return groups


def measure(
    study_dir: str | os.PathLike,
    *,
    recipes: int = DEFAULT_RECIPES,
    factor: float = DEFAULT_FACTOR,
    replicates: int = DEFAULT_REPLICATES,
    noise_trials: int = DEFAULT_NOISE_TRIALS,
    executor=None,
    threads: int | None = None,
    restart: bool = False,
    progress: bool = True,
) -> Fidelity:
    """Retrain what the check needs (resuming: finished runs are never retrained), summarize,
    and write ``DIR/fidelity.json``. Returns the `Fidelity`.

    Training goes through `tinyscale.study.executors` (``executor``; by default one in-process worker
    with ``threads`` torch threads) with the study's data and trainer settings; this process
    stores each run in ``DIR/fidelity/fidelity.sqlite`` as soon as it finishes. ``restart``
    discards stored runs first. ValueError for a directory without a study, too few completed
    trials, bad settings, or a study trained under other trainer settings.
    """
    study_dir = Path(study_dir)
    config, train, completed, everything = _checkable(study_dir)
    tasks, settings = plan(completed, config, recipes=recipes, factor=factor, replicates=replicates,
                           noise_trials=noise_trials, all_numbers=[t.number for t in everything])
    by_number = {t.number: t for t in completed}
    stored = _retrain(study_dir, config, train, tasks, by_number, executor=executor, threads=threads,
                      restart=restart, progress=progress, desc="fidelity")

    runs = tuple(stored[(t.kind, t.number, t.seed, t.steps)][0] for t in tasks)
    brief = {t.number: float(t.accuracy) for t in completed}
    c = {t.number: float(t.ratio) for t in completed}
    long = {r.number: r.accuracy for r in runs if r.kind == "long" and r.state == "completed"}
    failed = [r for r in runs if r.state == "failed"]
    try:
        result = summarize(brief, long, _replicate_groups(runs, brief), c)
    except ValueError as exc:
        if failed:
            raise ValueError(f"{exc} ({len(failed)} of {len(runs)} retrainings failed, e.g. trial "
                             f"{failed[0].number}: {failed[0].reason})") from None
        raise
    result = replace(result, settings=settings, runs=runs, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    save_fidelity(result, study_dir)
    return result


@dataclass(frozen=True)
class SeedNoise:
    """The seed noise alone (`measure_noise`): what the accuracy surface needs, without the rank check."""

    sigma: float  # pooled seed sd of top-1 (fraction) at the study's steps
    sigma_df: int
    noise: tuple[NoiseGroup, ...]
    created: str | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["format"] = NOISE_FORMAT
        return out

    @classmethod
    def from_dict(cls, data: dict) -> SeedNoise:
        if data.get("format") != NOISE_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {NOISE_FORMAT}")
        sigma, df = float(data["sigma"]), int(data["sigma_df"])
        if not (math.isfinite(sigma) and sigma >= 0 and df >= 1):
            raise ValueError(f"sigma {sigma!r} with {df!r} df is not a seed noise")
        groups = tuple(NoiseGroup.from_dict(g) for g in data["noise"])
        return cls(sigma, df, groups, data.get("created"))


def measure_noise(
    study_dir: str | os.PathLike,
    *,
    replicates: int = DEFAULT_REPLICATES,
    noise_trials: int = DEFAULT_NOISE_TRIALS,
    executor=None,
    threads: int | None = None,
    progress: bool = True,
) -> SeedNoise:
    """The seed-noise part of the check alone: ``noise_trials`` trials spread over c retrained
    ``replicates`` times at the study's steps; writes ``DIR/seed-noise.json``. The runs are the
    ones `measure` plans (same trials, seeds and store), so a later full check reuses them."""
    study_dir = Path(study_dir)
    config, train, completed, everything = _checkable(study_dir)
    tasks, _ = plan(completed, config, recipes=DEFAULT_RECIPES, factor=DEFAULT_FACTOR, replicates=replicates,
                    noise_trials=noise_trials, all_numbers=[t.number for t in everything])
    tasks = [t for t in tasks if t.kind == "replicate"]
    by_number = {t.number: t for t in completed}
    stored = _retrain(study_dir, config, train, tasks, by_number, executor=executor, threads=threads,
                      restart=False, progress=progress, desc="seed noise")
    runs = [stored[(t.kind, t.number, t.seed, t.steps)][0] for t in tasks]
    brief = {t.number: float(t.accuracy) for t in completed}
    sigma, df, groups = pooled_noise(_replicate_groups(runs, brief), {t.number: float(t.ratio) for t in completed})
    noise = SeedNoise(sigma, df, groups, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    _write_json(study_dir / NOISE_FILE, noise.to_dict())
    return noise


# =============================================================================== persistence, text


def _write_json(path: Path, data: dict) -> Path:
    """Write ``data`` atomically (a reader sees the old file or the new one)."""
    write_text_atomically(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    return path


def _read_json(path: Path, parse, remedy: str):
    """``parse(data)`` of the JSON file at ``path``; None when there is no file; a ValueError
    naming the file and ``remedy`` when it is damaged."""
    if not path.is_file():
        return None
    try:
        return parse(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); {remedy}") from None


def load_noise(study_dir: str | os.PathLike) -> SeedNoise | None:
    """The stored `measure_noise` result, None when there is none (ValueError if damaged)."""
    return _read_json(Path(study_dir) / NOISE_FILE, SeedNoise.from_dict,
                      f"delete it, or run `tinyscale fidelity {study_dir}`")


def save_fidelity(fidelity: Fidelity, study_dir: str | os.PathLike) -> Path:
    """Write ``DIR/fidelity.json`` atomically (a reader sees the old file or the new one)."""
    return _write_json(Path(study_dir) / FIDELITY_FILE, fidelity.to_dict())


def _parse_fidelity(data: dict) -> Fidelity:
    if data.get("format") != FIDELITY_FORMAT:
        raise ValueError(f"format {data.get('format')!r}, expected {FIDELITY_FORMAT}")
    return Fidelity.from_dict(data)


def load_fidelity(study_dir: str | os.PathLike) -> Fidelity | None:
    """The stored check of a study, or None when it was never measured (ValueError if damaged)."""
    path = Path(study_dir) / FIDELITY_FILE
    fidelity = _read_json(path, _parse_fidelity, f"rerun `tinyscale fidelity {study_dir}`")
    if fidelity is None:
        return None
    if fidelity.verdict not in VERDICTS:
        raise ValueError(f"{path} holds an unknown verdict {fidelity.verdict!r}")
    return fidelity


NOISE_CHOICES = ("auto", "measured", "inferred")


def noise_for_fit(study_dir: str | os.PathLike, choice: str = "auto") -> float | None:
    """The seed noise (a fraction) the accuracy surface should be fixed at, or None to infer it.

    The full check's σ (``fidelity.json``) when stored, else the seed noise measured alone
    (``seed-noise.json``, `measure_noise`). ``choice``: "measured" requires one (ValueError
    when there is none), "inferred" never uses one, "auto" uses one when stored and positive."""
    if choice not in NOISE_CHOICES:
        raise ValueError(f"noise must be one of {', '.join(NOISE_CHOICES)}, got {choice!r}")
    if choice == "inferred":
        return None
    measured = load_fidelity(study_dir) or load_noise(study_dir)
    if measured is None or not measured.sigma > 0:
        if choice == "measured":
            why = "no seed noise is measured" if measured is None else "the measured seed noise is 0"
            raise ValueError(f"{why} for {study_dir}: run `tinyscale fidelity {study_dir}` first, or fit with "
                             "--noise inferred")
        return None
    return float(measured.sigma)


def not_measured_hint(study_dir: str | os.PathLike) -> str:
    return f"not measured: run `tinyscale fidelity {study_dir}`"


def stale_note(fidelity: Fidelity, completed: int | None) -> str | None:
    """A note when the study has gained completed trials since the check was measured."""
    if completed is None or completed <= fidelity.signal.n:
        return None
    return (f"measured on {fidelity.signal.n} completed trials; the study has {completed} now "
            "(rerun the check to include them)")


def format_fidelity(fidelity: Fidelity | None, study_dir: str | os.PathLike = "DIR", *,
                    completed: int | None = None, reasons: bool = True) -> str:
    """The text block `tinyscale fidelity` prints (the hint when None): the verdict, ρ, σ and the
    signal line, then (``reasons``) one line per check; a note when the study has grown since."""
    if fidelity is None:
        return f"fidelity   {not_measured_hint(study_dir)}"
    f, s, st = fidelity, fidelity.signal, fidelity.settings
    steps = "" if st is None else f" ({st.steps} steps) and {st.factor:g}x longer runs ({st.long_steps} steps)"
    rho = "undefined" if f.rho is None else f"{f.rho:.2f}"
    matched = "" if f.rho_matched is None else f"; at matched c (trend in log2 c removed) ρ = {f.rho_matched:.2f}"
    per = " ".join(f"{100 * g.sd:.2f}" for g in f.noise)
    t = "exact fit" if s.slope_t is None else f"t = {s.slope_t:.1f}"
    ratio = "n/a" if s.residual_ratio is None else f"{s.residual_ratio:.2f}σ"
    lines = [
        f"fidelity   {f.verdict.upper()}: {f.advice}",
        f"rank       Spearman ρ = {rho} between the brief runs{steps}, {len(f.pairs)} recipes "
        f"(good ≥ {RHO_GOOD}; FBNetV3 stops at {RHO_FBNETV3}){matched}",
        f"noise      seed σ = {100 * f.sigma:.2f} points (pooled, {f.sigma_df} df; per recipe {per})",
        f"signal     slope {100 * s.slope:+.2f} ± {100 * s.slope_se:.2f} points per doubling of c ({t}, "
        f"{s.n} trials); residual sd at matched c {100 * s.residual_sd:.2f} points = {ratio}; "
        f"{s.beyond_noise:.0%} of the accuracy variance beyond seed noise",
    ]
    if reasons:
        lines += [f"because    {r}" for r in f.reasons]
    elif f.verdict != "trustworthy":
        lines.append(f"mainly     {f.reasons[0]}")  # the first reason is the deciding one
    note = stale_note(f, completed)
    if note:
        lines.append(f"note       {note}")
    return "\n".join(lines)


def describe_stored(study_dir: str | os.PathLike, completed: int | None = None) -> str:
    """The stored check in a few lines (verdict, ρ, σ, slope, and the deciding reason unless
    trustworthy), the hint
    when there is none, or why it is unreadable: what `tinyscale fit` prints. Never raises."""
    try:
        fidelity = load_fidelity(study_dir)
    except ValueError as exc:
        return f"fidelity   unreadable: {exc}"
    return format_fidelity(fidelity, study_dir, completed=completed, reasons=False)


def stored_dict(study_dir: str | os.PathLike) -> dict | None:
    """The stored check as a dict, None when not measured or unreadable (`tinyscale fit --json`)."""
    try:
        fidelity = load_fidelity(study_dir)
    except ValueError:
        return None
    return None if fidelity is None else fidelity.to_dict()
