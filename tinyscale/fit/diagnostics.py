"""What a scaling fit reports besides its curves: the points it was fitted on
(`TrainingData`), its bands and predictions, and its diagnostics (leave-one-out errors,
correlations, the surface's own), all persisted in ``fit.json`` by `tinyscale.fit.gp`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyscale.fit.gpmodels import Z_95, loo_predictions
from tinyscale.fit.surface import SurfaceDiagnostics

MIN_MODELS = 5  # fewer points than this cannot pin down a lengthscale, a noise and a trend


@dataclass(frozen=True)
class Band:
    """Posterior mean and 95 % credible band of one multiplier at each queried c."""

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True)
class Prediction:
    c: np.ndarray
    r: Band
    d: Band


@dataclass(frozen=True)
class LooError:
    """Leave-one-out error of one fit (closed form, fitted hyperparameters held fixed).

    ``rmse_log``: root mean square of log(true) - log(predicted), i.e. roughly the relative
    error; ``max_rel``: the largest |predicted/true - 1|; ``coverage``: fraction of held-out
    points inside their own 95 % LOO predictive band.
    """

    rmse_log: float
    max_rel: float
    coverage: float

    def to_dict(self) -> dict:
        return {"rmse_log": self.rmse_log, "max_rel": self.max_rel, "coverage": self.coverage}


@dataclass(frozen=True)
class Diagnostics:
    n_models: int
    n_front: int  # size of the non-dominated front among all usable trials
    loo_r: LooError
    loo_d: LooError
    # Pearson correlation of each multiplier with c among the selected models (None if constant).
    correlation: dict[str, float | None]
    lengthscale_r: float
    lengthscale_d: float
    noise_r: float  # observation noise standard deviation, log-space units
    noise_d: float
    warnings: tuple[str, ...] = ()
    surface: SurfaceDiagnostics | None = None  # the accuracy surface's own (method "surface")

    def to_dict(self) -> dict:
        return {
            "n_models": self.n_models,
            "n_front": self.n_front,
            "loo_r": self.loo_r.to_dict(),
            "loo_d": self.loo_d.to_dict(),
            "correlation": dict(self.correlation),
            "lengthscale_r": self.lengthscale_r,
            "lengthscale_d": self.lengthscale_d,
            "noise_r": self.noise_r,
            "noise_d": self.noise_d,
            "warnings": list(self.warnings),
            "surface": None if self.surface is None else self.surface.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Diagnostics:
        return cls(
            n_models=int(data["n_models"]),
            n_front=int(data["n_front"]),
            loo_r=LooError(**data["loo_r"]),
            loo_d=LooError(**data["loo_d"]),
            correlation=dict(data["correlation"]),
            lengthscale_r=float(data["lengthscale_r"]),
            lengthscale_d=float(data["lengthscale_d"]),
            noise_r=float(data["noise_r"]),
            noise_d=float(data["noise_d"]),
            warnings=tuple(data.get("warnings", ())),
            surface=None if data.get("surface") is None else SurfaceDiagnostics.from_dict(data["surface"]),
        )


MAX_MULTIPLIER = 1e3  # the largest r, w, d or c a fit file may hold (B7 is c = 39 of B0)


@dataclass(frozen=True)
class TrainingData:
    """The selected models the GPs were fitted on, cheapest first."""

    numbers: tuple[int, ...]
    c: np.ndarray
    r: np.ndarray
    w: np.ndarray
    d: np.ndarray
    accuracy: np.ndarray

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v.tolist()) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> TrainingData:
        for k in ("c", "r", "w", "d", "accuracy"):
            if not isinstance(data[k], list) or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                                    for v in data[k]):
                raise ValueError(f"training data column {k} must be a list of numbers")
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in ("c", "r", "w", "d", "accuracy")}
        numbers = tuple(int(n) for n in data["numbers"])
        lengths = {len(numbers), *(a.shape[0] for a in arrays.values())}
        if len(lengths) != 1 or any(a.ndim != 1 for a in arrays.values()):
            raise ValueError("training data columns have different lengths")
        if len(numbers) < MIN_MODELS:
            raise ValueError(f"training data holds {len(numbers)} models, fewer than {MIN_MODELS}")
        for k in ("c", "r", "w", "d"):
            # A multiplier or ratio of B0 beyond MAX_MULTIPLIER is no network anyone trains; a
            # crafted 1e308 would otherwise pass as finite and overflow every solve after it.
            if not np.all(np.isfinite(arrays[k])) or np.any(arrays[k] <= 0) or np.any(arrays[k] > MAX_MULTIPLIER):
                raise ValueError(f"training data column {k} must hold positive numbers up to {MAX_MULTIPLIER:g}")
        if not np.all((arrays["accuracy"] >= 0) & (arrays["accuracy"] <= 1)):
            raise ValueError("training data column accuracy must hold fractions from 0 to 1")
        return cls(numbers=numbers, **arrays)


def loo_error(model, y_log: np.ndarray) -> LooError:
    mean, std = loo_predictions(model)
    err = y_log - mean
    return LooError(
        rmse_log=float(np.sqrt(np.mean(err**2))),
        max_rel=float(np.max(np.abs(np.exp(mean - y_log) - 1.0))),
        coverage=float(np.mean(np.abs(err) <= Z_95 * std)),
    )


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = np.asarray(a)[keep], np.asarray(b)[keep]
    if a.size < 2 or np.ptp(a) < 1e-12 or np.ptp(b) < 1e-12:
        return None  # a constant has no correlation
    return float(np.corrcoef(a, b)[0, 1])
