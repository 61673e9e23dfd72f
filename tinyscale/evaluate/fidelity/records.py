"""The records of the fidelity check, from what was asked (`FidelitySettings`) and each retraining
(`Run`) to the result (`Fidelity`, or `SeedNoise` when only the noise was measured) and a fitted
model's agreement with the long runs (`ModelAgreement`). The statistics' own results
(`NoiseGroup`, `Signal`) live beside the code that computes them, in `stats`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from tinyscale.evaluate.fidelity.stats import NoiseGroup, Signal, pooled_noise, spearman, spearman_at_matched_c
from tinyscale.evaluate.fidelity.verdict import ADVICE, judge
from tinyscale.limits import check_count, check_number, is_exact_int

FIDELITY_FORMAT = 1
NOISE_FORMAT = 1


class VersionedRecord:
    """A record kept as one JSON object: its dataclass fields plus a ``format`` number, which
    `from_dict` checks so that a file of another layout is refused rather than misread."""

    FORMAT: ClassVar[int]

    def to_dict(self) -> dict:
        return {**asdict(self), "format": self.FORMAT}

    @classmethod
    def from_dict(cls, data: dict):
        """The record of ``data`` (as `to_dict` wrote it); ValueError for another format, or for
        numbers out of range or not following from the numbers they are derived from."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got a JSON {type(data).__name__}")
        if not is_exact_int(data.get("format"), cls.FORMAT):
            raise ValueError(f"format {data.get('format')!r}, expected {cls.FORMAT}")
        return cls._from_fields(data)

    @classmethod
    def _from_fields(cls, data: dict):
        raise NotImplementedError


@dataclass(frozen=True)
class RankPair:
    """One recipe's brief (the study's) and longer-training accuracy."""

    number: int
    ratio: float
    brief: float
    long: float


@dataclass(frozen=True)
class FidelitySettings:
    """What `measure` was asked (and the steps it trained with)."""

    recipes: int
    factor: float
    replicates: int
    noise_trials: int
    steps: int  # the steps of the runs checked (the noise replicates train this long)
    long_steps: int
    rung: int = 0  # the rung whose runs were checked (a study in rungs; 0: the study's trials)


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
class Fidelity(VersionedRecord):
    """Seed noise, rank fidelity and signal of a study's brief accuracies, and the verdict."""

    FORMAT: ClassVar[int] = FIDELITY_FORMAT

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
    def rung(self) -> int:
        """The rung whose runs the check retrained (0 for a uniform study, and for a check
        stored before checks of other rungs existed)."""
        return 0 if self.settings is None else self.settings.rung

    @property
    def headline(self) -> str:
        """The verdict in one line: the word, what it means, and why."""
        return f"{self.verdict}: {self.advice} ({'; '.join(self.reasons)})"

    @classmethod
    def _from_fields(cls, data: dict) -> Fidelity:
        fidelity = cls(
            sigma=data["sigma"], sigma_df=data["sigma_df"],
            noise=tuple(NoiseGroup.from_dict(g) for g in data["noise"]),
            rho=data["rho"], rho_matched=data["rho_matched"],
            pairs=tuple(RankPair(**p) for p in data["pairs"]),
            signal=Signal(**data["signal"]), verdict=data["verdict"], reasons=tuple(data["reasons"]),
            settings=None if data.get("settings") is None else FidelitySettings(**data["settings"]),
            runs=tuple(Run(**r) for r in data.get("runs", ())), created=data.get("created"),
        )
        check_fidelity(fidelity)
        return fidelity


@dataclass(frozen=True)
class SeedNoise(VersionedRecord):
    """The seed noise alone (`measure_noise`): what the accuracy surface needs, without the rank check."""

    FORMAT: ClassVar[int] = NOISE_FORMAT

    sigma: float  # pooled seed sd of top-1 (fraction) at the study's steps
    sigma_df: int
    noise: tuple[NoiseGroup, ...]
    created: str | None = None

    @classmethod
    def _from_fields(cls, data: dict) -> SeedNoise:
        sigma, df = data["sigma"], data["sigma_df"]
        if not (_is_number(sigma) and math.isfinite(sigma) and sigma >= 0 and type(df) is int and df >= 1):
            raise ValueError(f"sigma {sigma!r} with {df!r} df is not a seed noise")
        groups = tuple(NoiseGroup.from_dict(g) for g in data["noise"])
        check_noise(float(sigma), df, groups)
        return cls(float(sigma), df, groups, data.get("created"))


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


# ------------------------------------------------------------------ records read back from a file
# A fidelity.json may come from elsewhere: its numbers are held to their ranges and the derived
# ones (σ, ρ, the verdict) recomputed from what they are derived from, so a forged or damaged
# file is refused rather than shown (a "trustworthy" verdict beside ρ = -0.4, say).


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _same(stored: float | None, derived: float | None) -> bool:
    if stored is None or derived is None:
        return stored is None and derived is None
    return math.isclose(stored, derived, rel_tol=1e-9, abs_tol=1e-12)


def _ratio(name: str, value: object) -> None:
    if check_number(name, value, 0) <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


def _optional(name: str, value: object, low: float, high: float) -> None:
    if value is not None:
        check_number(name, value, low, high)


def check_noise(sigma: float, sigma_df: int, groups: tuple[NoiseGroup, ...]) -> None:
    """ValueError unless σ, its degrees of freedom and each group's sd are what the groups'
    accuracies give (`pooled_noise`)."""
    for g in groups:
        check_count("a noise group's trial number", g.number, 0)
        _ratio("a noise group's ratio", g.ratio)
        for a in g.accuracies:
            check_number("a noise group's accuracy", a, 0, 1)
    want_sigma, want_df, want = pooled_noise({g.number: g.accuracies for g in groups},
                                             {g.number: g.ratio for g in groups})
    if (len(want) != len(groups) or want_df != sigma_df or not _same(sigma, want_sigma)
            or not all(_is_number(a.sd) and _same(a.sd, b.sd) for a, b in zip(groups, want))):
        raise ValueError(f"sigma {sigma!r} with {sigma_df!r} df does not follow from its noise groups "
                         f"({want_sigma!r} with {want_df})")


def check_fidelity(f: Fidelity) -> None:
    """ValueError unless every number of ``f`` is in range and σ, ρ, ρ at matched c and the
    verdict follow from the numbers they are derived from."""
    check_count("sigma_df", f.sigma_df, 1)
    check_number("sigma", f.sigma, 0)
    check_noise(f.sigma, f.sigma_df, f.noise)
    for p in f.pairs:
        check_count("a pair's trial number", p.number, 0)
        _ratio("a pair's ratio", p.ratio)
        check_number("a brief accuracy", p.brief, 0, 1)
        check_number("a long accuracy", p.long, 0, 1)
    brief, long = [p.brief for p in f.pairs], [p.long for p in f.pairs]
    for name, stored, derived in (
            ("rho", f.rho, spearman(brief, long)),
            ("rho_matched", f.rho_matched,
             spearman_at_matched_c(np.log2([p.ratio for p in f.pairs]), np.array(brief), np.array(long)))):
        _optional(name, stored, -1, 1)
        if not _same(stored, derived):
            raise ValueError(f"{name} {stored!r} does not follow from the pairs ({derived!r})")
    s = f.signal
    check_count("signal.n", s.n, 1)
    for name in ("slope", "slope_se", "accuracy_sd", "residual_sd"):
        check_number(f"signal.{name}", getattr(s, name), -math.inf if name == "slope" else 0)
    _optional("signal.slope_t", s.slope_t, -math.inf, math.inf)
    _optional("signal.residual_ratio", s.residual_ratio, 0, math.inf)
    check_number("signal.beyond_noise", s.beyond_noise, 0, 1)
    verdict, _ = judge(f.rho, len(f.pairs), f.sigma, s)
    if f.verdict != verdict:
        raise ValueError(f"the verdict {f.verdict!r} does not follow from its numbers (they give {verdict!r})")
    if not f.reasons or not all(isinstance(r, str) for r in f.reasons):
        raise ValueError(f"reasons {list(f.reasons)!r:.80}: expected one sentence per check")
    for run in f.runs:
        if run.kind not in ("replicate", "long") or run.state not in ("completed", "failed"):
            raise ValueError(f"a run of kind {run.kind!r} in state {run.state!r}")
        for name in ("number", "seed", "steps"):
            check_count(f"a run's {name}", getattr(run, name), 0)
        _optional("a run's accuracy", run.accuracy, 0, 1)
        _optional("a run's train_seconds", run.train_seconds, 0, math.inf)
    if f.created is not None and not isinstance(f.created, str):
        raise ValueError(f"created is {f.created!r}, expected a time stamp")
    if f.settings is not None:
        st = f.settings
        for name in ("recipes", "replicates", "noise_trials", "steps", "long_steps"):
            check_count(f"settings.{name}", getattr(st, name), 1)
        check_count("settings.rung", st.rung, 0)
        check_number("settings.factor", st.factor, 1)
