"""The accuracy surface over every trial, and its ridge: the best (r, d) at each FLOPs ratio.

TinyNet fits c -> r and c -> d on ~20 Pareto models and throws the other trials away; with
brief, noisy trials that ranks recipes by seed luck. The surface method uses every completed
trial instead: one botorch ``SingleTaskGP`` of held-out accuracy (as log-odds, where a fixed
step is a fixed relative error rate change) over x = (log c, log r, log d), with inputs
normalised, outcomes standardised and the observation noise inferred (it *is* the seed noise
the GP must average away) or, when the seed noise has been measured (`tinyscale fidelity`'s σ,
from the same recipes retrained with other seeds), fixed at it: with 24 trials in three
dimensions the marginal likelihood can explain seed noise as shape instead (short lengthscales,
an inferred noise far below the measured one), and a ridge fitted to noise points at lucky
seeds. In log-odds the measured σ (accuracy points) becomes σ / (p (1 - p)) at each trial's
accuracy p, the delta method.

The *ridge* at a ratio c is the argmax of the posterior mean over the (r, d) grid that can
reach c with a width inside the range the study explored (the surface is not trusted where no
trial ever was: a tiny-resolution network widened 3x beyond any trial would be an
extrapolation of the GP's constant prior mean). The grid is the input sizes the base
resolution allows (r = pixels / base, at most `MAX_R_POINTS` of them) times `D_POINTS`
depths, log-spaced in the study's ranges.

Uncertainty: joint posterior samples of the surface over each c's candidates give a
distribution of the argmax (r*, d*); its 2.5 % and 97.5 % quantiles are the ridge's band, so
the band says how sure the *data* are of the best recipe, not only how smooth the curve is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyscale.space.cost import baseline_macs, macs
from tinyscale.fit.gpmodels import Z_95, fit_gp, lengthscales, load_state, loo_predictions, make_gp, noise_sd
from tinyscale.space.recipe import resolution_for
from tinyscale.study.trial import StudyConfig

MAX_R_POINTS = 24
D_POINTS = 16
C_POINTS = 24
RIDGE_SAMPLES = 512
ACC_CLIP = 1e-4  # accuracies are clipped to [ACC_CLIP, 1 - ACC_CLIP] before the log-odds
BAND_QUANTILES = (0.025, 0.975)


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), ACC_CLIP, 1.0 - ACC_CLIP)
    return np.log(p) - np.log1p(-p)


def sigmoid(x) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@dataclass(frozen=True)
class Ridge:
    """The best (r, d) found on the surface at each c of a grid, with 95 % bands (all (n,))."""

    c: np.ndarray
    r: np.ndarray
    d: np.ndarray
    r_lower: np.ndarray
    r_upper: np.ndarray
    d_lower: np.ndarray
    d_upper: np.ndarray
    accuracy: np.ndarray  # posterior mean accuracy at (c, r, d) of the ridge
    # Per c: -1 where the surface's best (r, d) over the whole grid needs a narrower network than
    # any trial used (so the ridge is held at the narrowest explored width), +1 a wider one, 0
    # where the ridge is the grid's best. Fits saved before this field read as all 0.
    width_limit: np.ndarray | None = None

    FIELDS = ("c", "r", "d", "r_lower", "r_upper", "d_lower", "d_upper", "accuracy")

    def __post_init__(self) -> None:
        if self.width_limit is None:
            object.__setattr__(self, "width_limit", np.zeros(np.shape(self.c)))

    def to_dict(self) -> dict:
        return {**{k: getattr(self, k).tolist() for k in self.FIELDS}, "width_limit": self.width_limit.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Ridge:
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in cls.FIELDS}
        if data.get("width_limit") is not None:
            arrays["width_limit"] = np.asarray(data["width_limit"], dtype=np.float64)
        n = arrays["c"].shape
        if any(a.ndim != 1 or a.shape != n for a in arrays.values()) or n[0] < 2:
            raise ValueError("ridge columns must be 1-d arrays of one length, at least 2")
        if not all(np.all(np.isfinite(a)) for a in arrays.values()) or np.any(arrays["c"] <= 0):
            raise ValueError("ridge columns must hold finite numbers and positive c")
        if "width_limit" in arrays and not np.all(np.isin(arrays["width_limit"], (-1.0, 0.0, 1.0))):
            raise ValueError("ridge width_limit must hold -1, 0 or 1")
        return cls(**arrays)

    def width_limit_at(self, c: float) -> int:
        """`width_limit` at the grid point nearest to ``c`` in log c (held at the ends)."""
        return int(self.width_limit[int(np.argmin(np.abs(np.log(self.c) - math.log(c))))])

    def band_at(self, c) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The ridge's r and d bands at ratios ``c``, interpolated in log c (held at the ends)."""
        x = np.log(np.asarray(c, dtype=np.float64))
        xs = np.log(self.c)

        def at(v):
            return np.exp(np.interp(x, xs, np.log(v)))

        return (at(self.r_lower), at(self.r_upper)), (at(self.d_lower), at(self.d_upper))


@dataclass(frozen=True)
class SurfaceDiagnostics:
    n_trials: int
    lengthscales: tuple[float, float, float]  # in log c, log r, log d units
    noise_sd: float  # observation noise sd in log-odds units at the median accuracy
    noise_sd_points: float  # the same, in accuracy points at the median accuracy
    loo_rmse_points: float  # leave-one-out error of held-out accuracy, in points
    loo_coverage: float  # fraction of trials inside their own 95 % LOO predictive band
    spread_points: float  # sd of the trials' accuracies, in points, for scale
    noise: str = "inferred"  # "inferred" by the fit, or "measured" (fixed at a measured seed σ)

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["lengthscales"] = list(self.lengthscales)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> SurfaceDiagnostics:
        data = dict(data)
        data["lengthscales"] = tuple(float(v) for v in data["lengthscales"])
        return cls(**data)


def log_inputs(c, r, d) -> np.ndarray:
    """The surface's inputs: (log c, log r, log d), one row per run."""
    return np.stack([np.log(np.asarray(v, dtype=np.float64)).reshape(-1) for v in (c, r, d)], axis=1)


@dataclass(frozen=True)
class SurfaceSlice:
    """The surface at one c over the (r, d) grid: what the app draws as contours.

    ``accuracy`` (nr, nd) is the posterior mean held-out accuracy, NaN where no explored width
    reaches c; ``best_r``/``best_d`` is the ridge point at c (argmax over the reachable grid).
    """

    c: float
    r: np.ndarray
    d: np.ndarray
    accuracy: np.ndarray
    best_r: float
    best_d: float
    best_accuracy: float


def logit_noise_var(accuracy, seed_noise: float) -> np.ndarray:
    """Observation variance in log-odds of trials at ``accuracy`` (fractions) whose seed noise is
    ``seed_noise`` (a fraction, e.g. 0.012 for 1.2 points): (σ / (p (1 - p)))², the delta method."""
    if not (isinstance(seed_noise, (int, float)) and math.isfinite(seed_noise) and 0 < seed_noise < 0.5):
        raise ValueError(f"the measured seed noise must be a fraction in (0, 0.5), got {seed_noise!r}")
    p = np.clip(np.asarray(accuracy, dtype=np.float64), ACC_CLIP, 1.0 - ACC_CLIP)
    return (seed_noise / (p * (1.0 - p))) ** 2


class AccuracySurface:
    """Posterior of held-out accuracy over (c, r, d); build with `fit` or `from_state`.

    ``seed_noise``: the measured seed noise (a fraction) the observation noise is fixed at, or
    None when the fit infers it."""

    def __init__(self, model, x: np.ndarray, y: np.ndarray, w_range: tuple[float, float],
                 seed_noise: float | None = None) -> None:
        self.model = model
        self.x = x  # (n, 3) log c, log r, log d
        self.y = y  # (n,) log-odds of accuracy
        self.w_range = w_range  # the widths the study explored
        self.seed_noise = seed_noise

    @classmethod
    def fit(cls, c, r, d, w, accuracy, seed_noise: float | None = None) -> AccuracySurface:
        w = np.asarray(w, dtype=np.float64)
        x, y = log_inputs(c, r, d), logit(accuracy)
        yvar = None if seed_noise is None else logit_noise_var(accuracy, seed_noise)
        return cls(fit_gp(x, y, yvar), x, y, (float(w.min()), float(w.max())), seed_noise)

    @classmethod
    def from_state(cls, c, r, d, w, accuracy, state: dict, seed_noise: float | None = None) -> AccuracySurface:
        w = np.asarray(w, dtype=np.float64)
        x, y = log_inputs(c, r, d), logit(accuracy)
        yvar = None if seed_noise is None else logit_noise_var(accuracy, seed_noise)
        return cls(load_state(make_gp(x, y, yvar), state), x, y, (float(w.min()), float(w.max())), seed_noise)

    def features(self, c, r, d) -> np.ndarray:
        """The GP's inputs for queries at (c, r, d): (n, 3) log c, log r, log d (a surface over
        several training lengths adds the length it predicts at, `tinyscale.fit.multifidelity`)."""
        return log_inputs(c, r, d)

    def posterior(self, c, r, d) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and sd of the latent log-odds at broadcast (c, r, d)."""
        import torch

        c, r, d = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (c, r, d)))
        with torch.no_grad():
            post = self.model.posterior(torch.as_tensor(self.features(c, r, d)))
            mean = post.mean.reshape(c.shape).numpy()
            sd = post.variance.clamp_min(0.0).sqrt().reshape(c.shape).numpy()
        return mean, sd

    def accuracy(self, c, r, d) -> np.ndarray:
        """Posterior mean held-out accuracy (through the log-odds mean) at broadcast (c, r, d)."""
        return sigmoid(self.posterior(c, r, d)[0])

    # ------------------------------------------------------------------------ the ridge
    def candidates(self, config: StudyConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The (r, d) grid and, per point, the lowest and highest c its explored widths reach:
        r (nr,), d (nd,), c_lo (nr, nd), c_hi (nr, nd)."""
        base = config.base_resolution
        px_lo = resolution_for(config.r_range[0], base)
        px_hi = resolution_for(config.r_range[1], base)
        pixels = np.arange(px_lo, px_hi + 1)
        if pixels.size > MAX_R_POINTS:
            pixels = np.unique(np.round(np.exp(np.linspace(math.log(px_lo), math.log(px_hi), MAX_R_POINTS))))
        r = pixels.astype(np.float64) / base
        d = np.unique(np.round(np.exp(np.linspace(*np.log(config.d_range), D_POINTS)), 3))
        base_macs = baseline_macs(config.recipe(1.0, 1.0, 1.0))
        w_lo, w_hi = self.w_range
        c_lo = np.empty((r.size, d.size))
        c_hi = np.empty((r.size, d.size))
        for i, rv in enumerate(r):
            for j, dv in enumerate(d):
                c_lo[i, j] = macs(config.recipe(float(rv), w_lo, float(dv))) / base_macs
                c_hi[i, j] = macs(config.recipe(float(rv), w_hi, float(dv))) / base_macs
        return r, d, c_lo, c_hi

    def slice(self, config: StudyConfig, c: float) -> SurfaceSlice:
        """The posterior mean accuracy over the (r, d) grid at ratio ``c`` (see `SurfaceSlice`)."""
        r, d, c_lo, c_hi = self._candidates_cached(config)
        rr, dd = np.meshgrid(r, d, indexing="ij")
        acc = self.accuracy(np.full(rr.shape, float(c)), rr, dd)
        reach = (c_lo <= c) & (c <= c_hi)
        acc = np.where(reach, acc, np.nan)
        if reach.any():
            i, j = np.unravel_index(np.nanargmax(acc), acc.shape)
            best = (float(r[i]), float(d[j]), float(acc[i, j]))
        else:
            best = (math.nan, math.nan, math.nan)
        return SurfaceSlice(float(c), r, d, acc, *best)

    def _candidates_cached(self, config: StudyConfig):
        key = (config.rules, config.base_resolution, config.num_classes, config.r_range, config.d_range)
        cache = self.__dict__.setdefault("_candidates", {})
        if key not in cache:
            cache[key] = self.candidates(config)
        return cache[key]

    def ridge(self, config: StudyConfig, c_grid, *, samples: int = RIDGE_SAMPLES, seed: int = 0) -> Ridge:
        """Argmax of the posterior mean over the reachable (r, d) at each c of ``c_grid``, and
        the 95 % band of the argmax over joint posterior samples."""
        import torch

        c_grid = np.asarray(c_grid, dtype=np.float64).reshape(-1)
        r, d, c_lo, c_hi = self._candidates_cached(config)
        rr, dd = np.meshgrid(r, d, indexing="ij")
        rr, dd, c_lo, c_hi = rr.ravel(), dd.ravel(), c_lo.ravel(), c_hi.ravel()
        out = {k: np.empty(c_grid.size) for k in (*Ridge.FIELDS, "width_limit") if k != "c"}
        lo_q, hi_q = BAND_QUANTILES
        with torch.random.fork_rng():  # seeded draws that leave the caller's stream alone
            torch.manual_seed(seed)
            for k, c in enumerate(c_grid):
                self._ridge_point(k, float(c), rr, dd, c_lo, c_hi, samples, out, lo_q, hi_q)
        return Ridge(c=c_grid, **out)

    def _ridge_point(self, k, c, rr, dd, c_lo, c_hi, samples, out, lo_q, hi_q) -> None:
        """Fill row ``k`` of ``out`` with the ridge at ``c`` (candidates: flattened grid)."""
        import torch

        ok = (c_lo <= c) & (c <= c_hi)
        if not ok.any():  # nothing the study explored reaches c: take the nearest reach
            gap = np.maximum(c_lo - c, 0) / c + np.maximum(c - c_hi, 0) / c
            ok = gap <= gap.min() * (1 + 1e-9)
        idx = np.flatnonzero(ok)
        with torch.no_grad():
            # The mean over the whole grid: the ridge's candidates are the reachable part of it, and
            # the grid's best ignoring the explored widths says whether the ridge is held at the
            # width limit, which the recipe must say (the surface beyond it is a guess).
            everywhere = self.model.posterior(torch.as_tensor(self.features(np.full(rr.size, c), rr, dd))).mean.reshape(-1).numpy()
            post = self.model.posterior(torch.as_tensor(self.features(np.full(idx.size, c), rr[idx], dd[idx])))
            best = post.rsample(torch.Size([samples])).reshape(samples, idx.size).argmax(dim=1).numpy()
        mean = everywhere[idx]
        free = int(np.argmax(everywhere))
        out["width_limit"][k] = 0.0 if ok[free] else (-1.0 if c_lo[free] > c else 1.0)
        top = idx[int(np.argmax(mean))]
        out["r"][k], out["d"][k] = rr[top], dd[top]
        out["accuracy"][k] = float(sigmoid(mean.max()))
        for name, values in (("r", rr), ("d", dd)):
            picks = np.log(values[idx[best]])
            out[f"{name}_lower"][k] = math.exp(min(np.quantile(picks, lo_q), math.log(out[name][k])))
            out[f"{name}_upper"][k] = math.exp(max(np.quantile(picks, hi_q), math.log(out[name][k])))

    # ------------------------------------------------------------------------ diagnostics
    def x_lengthscales(self) -> np.ndarray:
        """The fitted lengthscales over (log c, log r, log d), in those units."""
        return lengthscales(self.model)

    def diagnostics(self) -> SurfaceDiagnostics:
        """Its fit: noise, leave-one-out errors (each run at its own inputs), lengthscales."""
        model = self.model
        acc = sigmoid(self.y)
        p = float(np.median(acc))
        if self.seed_noise is None:
            noise = noise_sd(model)
        else:  # fixed per trial: quote it at the median accuracy, as the inferred one is
            noise = self.seed_noise / (p * (1 - p))
        mean, sd = loo_predictions(model)
        err = acc - sigmoid(mean)
        return SurfaceDiagnostics(
            n_trials=int(self.y.size),
            lengthscales=tuple(float(v) for v in self.x_lengthscales()),  # type: ignore[arg-type]
            noise_sd=noise,
            noise_sd_points=100 * noise * p * (1 - p),  # d sigmoid / dx = p (1 - p)
            loo_rmse_points=float(100 * np.sqrt(np.mean(err**2))),
            loo_coverage=float(np.mean(np.abs(self.y - mean) <= Z_95 * sd)),
            spread_points=float(100 * np.std(acc, ddof=1)) if acc.size > 1 else 0.0,
            noise="inferred" if self.seed_noise is None else "measured",
        )
