"""The records of the fidelity check, from what was asked (`FidelitySettings`) and each retraining
(`Run`) to the result (`Fidelity`, or `SeedNoise` when only the noise was measured) and a fitted
model's agreement with the long runs (`ModelAgreement`). The statistics' own results
(`NoiseGroup`, `Signal`) live beside the code that computes them, in `stats`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

from tinyscale.evaluate.fidelity.stats import NoiseGroup, Signal
from tinyscale.evaluate.fidelity.verdict import ADVICE

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
        """The record of ``data`` (as `to_dict` wrote it); ValueError for another format."""
        if data.get("format") != cls.FORMAT:
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
    def headline(self) -> str:
        """The verdict in one line: the word, what it means, and why."""
        return f"{self.verdict}: {self.advice} ({'; '.join(self.reasons)})"

    @classmethod
    def _from_fields(cls, data: dict) -> Fidelity:
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
class SeedNoise(VersionedRecord):
    """The seed noise alone (`measure_noise`): what the accuracy surface needs, without the rank check."""

    FORMAT: ClassVar[int] = NOISE_FORMAT

    sigma: float  # pooled seed sd of top-1 (fraction) at the study's steps
    sigma_df: int
    noise: tuple[NoiseGroup, ...]
    created: str | None = None

    @classmethod
    def _from_fields(cls, data: dict) -> SeedNoise:
        sigma, df = float(data["sigma"]), int(data["sigma_df"])
        if not (math.isfinite(sigma) and sigma >= 0 and df >= 1):
            raise ValueError(f"sigma {sigma!r} with {df!r} df is not a seed noise")
        groups = tuple(NoiseGroup.from_dict(g) for g in data["noise"])
        return cls(sigma, df, groups, data.get("created"))


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
