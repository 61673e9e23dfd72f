"""From the sum of a network's parts to the whole network (`Calibration`).

Parts measured alone miss what the whole network shares and add a per-call overhead of their
own, so the sum is corrected by a linear fit on whole-network measurements of calibration
recipes: ``predicted = slope · sum + per_part · parts + intercept`` (non-negative least squares,
so the prediction is non-decreasing in every part). Where the sum's error depends on the
network's shape (on onnxruntime wide and deep networks are slower than their parts, small ones
faster), the ``"gp"`` correction adds a GP over (log input px, log w, log d) of what the linear
fit leaves, log(measured / linear), fitted on more calibration networks drawn from the recipe
box; far from them it falls back to the linear fit.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Iterable

from tinyscale.limits import MAX_CALIBRATION_SLOPE, MAX_LATENCY_US, check_count, check_number
from tinyscale.space.recipe import Recipe

CORRECTIONS = ("linear", "gp")  # how the sum of parts is corrected to whole networks
MIN_GP_POINTS = 8  # calibration networks a gp correction needs at least


@dataclass(frozen=True)
class CalibrationPoint:
    """One calibration network: its measured latency and the sum of its parts (µs)."""

    recipe: Recipe
    measured_us: float
    summed_us: float
    parts: int

    def to_dict(self) -> dict:
        return {"recipe": self.recipe.to_dict(), "measured_us": self.measured_us, "summed_us": self.summed_us,
                "parts": self.parts}


def _shape_features(recipe: Recipe) -> list[float]:
    """What the GP correction sees of a network: log input side, log w, log d."""
    return [math.log(recipe.resolution), math.log(recipe.w), math.log(recipe.d)]


@dataclass(frozen=True)
class Calibration:
    """predicted = slope · summed + per_part_us · parts + intercept_us, times exp(GP mean) of the
    shape for ``kind == "gp"`` (the GP is refitted from ``points`` when first used, so a table
    file stores only the points)."""

    slope: float = 1.0
    per_part_us: float = 0.0
    intercept_us: float = 0.0
    points: tuple[CalibrationPoint, ...] = ()
    kind: str = "linear"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def linear(self, summed_us: float, parts: int) -> float:
        return self.slope * summed_us + self.per_part_us * parts + self.intercept_us

    def apply(self, summed_us: float, parts: int, recipe: Recipe | None = None) -> float:
        value = self.linear(summed_us, parts)
        if self.kind != "gp" or recipe is None:
            return value
        return value * math.exp(self.log_ratio(recipe))

    def log_ratio(self, recipe: Recipe) -> float:
        """The GP's mean of log(measured / linear) at the recipe's shape (0 without a GP)."""
        if self.kind != "gp":
            return 0.0
        key = tuple(_shape_features(recipe))
        if key not in self._cache:
            import torch

            model = self._model()
            with torch.no_grad():
                x = torch.tensor([list(key)], dtype=torch.float64)
                self._cache[key] = float(model.posterior(x).mean.squeeze())
        return self._cache[key]

    def _model(self):
        if "model" not in self._cache:
            import torch
            from botorch.fit import fit_gpytorch_mll
            from botorch.models import SingleTaskGP
            from botorch.models.transforms import Normalize, Standardize
            from gpytorch.mlls import ExactMarginalLogLikelihood

            x = torch.tensor([_shape_features(p.recipe) for p in self.points], dtype=torch.float64)
            y = torch.tensor([[math.log(p.measured_us / self.linear(p.summed_us, p.parts))] for p in self.points],
                             dtype=torch.float64)
            model = SingleTaskGP(x, y, input_transform=Normalize(d=x.shape[1]), outcome_transform=Standardize(m=1))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            model.eval()
            self._cache["model"] = model
        return self._cache["model"]

    @classmethod
    def fit(cls, points: Iterable[CalibrationPoint], kind: str = "linear") -> Calibration:
        """Non-negative least squares on (summed, parts, 1), so the prediction never falls as a
        part grows or is added; with fewer than 4 points, or a fit without a positive slope,
        the proportional fit measured ≈ slope · summed. ``kind="gp"`` adds the GP of what that
        leaves (it needs at least `MIN_GP_POINTS` points)."""
        import numpy as np
        from scipy.optimize import nnls

        if kind not in CORRECTIONS:
            raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {kind!r}")
        pts = tuple(points)
        if kind == "gp" and len(pts) < MIN_GP_POINTS:
            raise ValueError(f"a gp correction needs at least {MIN_GP_POINTS} calibration networks, got {len(pts)}")
        if not pts:
            return cls()
        y = np.array([p.measured_us for p in pts], dtype=float)
        s = np.array([p.summed_us for p in pts], dtype=float)
        if len(pts) >= 4:
            a = np.column_stack([s, [float(p.parts) for p in pts], np.ones(len(pts))])
            coef, _ = nnls(a, y)
            if coef[0] > 0:
                return cls(float(coef[0]), float(coef[1]), float(coef[2]), pts, kind)
        return cls(float(np.dot(s, y) / np.dot(s, s)), 0.0, 0.0, pts, kind)

    def to_dict(self) -> dict:
        out = {"slope": self.slope, "per_part_us": self.per_part_us, "intercept_us": self.intercept_us,
               "points": [p.to_dict() for p in self.points]}
        if self.kind != "linear":  # linear tables stay byte-identical to those of earlier versions
            out["kind"] = self.kind
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        """A calibration as `to_dict` writes it (the GP is refitted from the points when used).
        KeyError/TypeError/AttributeError on a malformed one, ValueError on a bad kind or a
        number a fit cannot give: the coefficients must be finite, the slope positive and the
        rest non-negative (as `fit` makes them), the points' latencies positive, so that no
        prediction is negative, NaN or infinite."""
        points = tuple(_point_from_dict(p) for p in data["points"])
        kind = data.get("kind", "linear")
        if kind not in CORRECTIONS:
            raise ValueError(f"calibration kind {kind!r} is not one of {', '.join(CORRECTIONS)}")
        if kind == "gp" and len(points) < MIN_GP_POINTS:
            raise ValueError(f"a gp calibration with {len(points)} points (at least {MIN_GP_POINTS} needed)")
        slope = check_number("calibration slope", data["slope"], 0, MAX_CALIBRATION_SLOPE)
        if slope <= 0:
            raise ValueError(f"calibration slope must be positive, got {slope!r}")
        return cls(slope, check_number("calibration per_part_us", data["per_part_us"], 0, MAX_LATENCY_US),
                   check_number("calibration intercept_us", data["intercept_us"], 0, MAX_LATENCY_US), points, kind)


def _point_from_dict(data: dict) -> CalibrationPoint:
    """A stored calibration point, its latencies positive and finite, its part count an integer."""
    return CalibrationPoint(Recipe.from_dict(data["recipe"]),
                            _latency("calibration measured_us", data["measured_us"]),
                            _latency("calibration summed_us", data["summed_us"]),
                            check_count("calibration parts", data["parts"], 1))


def _latency(name: str, value: object) -> float:
    value = check_number(name, value, 0, MAX_LATENCY_US)
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value
