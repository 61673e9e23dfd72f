"""Gaussian-process fits c -> r and c -> d over the selected Pareto models, with bands and
diagnostics, and their persistence (``fit.json`` in the study directory).

Both fits are botorch ``SingleTaskGP``s in log space (x = log c, y = log r or log d): the
study samples c log-uniformly and the multipliers act multiplicatively, so log-log is where the
relation is smoothest, and the exponentiated band stays positive. Inputs are normalised
(``Normalize``), outcomes standardised (``Standardize``), the observation noise is inferred,
and hyperparameters are fitted with ``fit_gpytorch_mll`` on the exact marginal likelihood.

Bands are credible bands of the latent function (not of a new noisy observation): mean
± 1.96 posterior standard deviations in log space, exponentiated.

The saved file holds the training data and every fitted hyperparameter (each model's
``state_dict`` as nested lists), so `ScalingFit.load` rebuilds the posterior exactly without
refitting.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyscale.pareto import DEFAULT_K, ParetoSelection, select
from tinyscale.trial import StudyConfig, Trial

FIT_FILE = "fit.json"
FIT_FORMAT = 1
MIN_MODELS = 5  # fewer points than this cannot pin down a lengthscale, a noise and a trend
Z_95 = 1.959963984540054  # two-sided 95 % normal quantile


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
        )


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
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in ("c", "r", "w", "d", "accuracy")}
        numbers = tuple(int(n) for n in data["numbers"])
        lengths = {len(numbers), *(a.shape[0] for a in arrays.values())}
        if len(lengths) != 1 or any(a.ndim != 1 for a in arrays.values()):
            raise ValueError("training data columns have different lengths")
        if len(numbers) < MIN_MODELS:
            raise ValueError(f"training data holds {len(numbers)} models, fewer than {MIN_MODELS}")
        for k in ("c", "r", "w", "d"):
            if not np.all(np.isfinite(arrays[k])) or np.any(arrays[k] <= 0):
                raise ValueError(f"training data column {k} must hold positive finite numbers")
        return cls(numbers=numbers, **arrays)


def _tensor(x: np.ndarray):
    import torch

    return torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(-1, 1)


def _make_gp(x: np.ndarray, y: np.ndarray):
    """An unfitted SingleTaskGP on (n,) log-space inputs and outcomes."""
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize

    return SingleTaskGP(_tensor(x), _tensor(y), input_transform=Normalize(d=1), outcome_transform=Standardize(m=1))


def _fit_gp(x: np.ndarray, y: np.ndarray):
    import warnings

    import torch
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(0)  # fit_gpytorch_mll may retry from random restarts; keep it reproducible
    model = _make_gp(x, y)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # botorch's "data not standardised" hints do not apply in log space
        fit_gpytorch_mll(mll)
    model.eval()
    return model


def _state_to_json(model) -> dict:
    return {k: v.detach().cpu().tolist() for k, v in model.state_dict().items()}


def _model_from_state(x: np.ndarray, y: np.ndarray, state: dict):
    import torch

    model = _make_gp(x, y)
    current = model.state_dict()
    if set(state) != set(current):
        missing, extra = sorted(set(current) - set(state)), sorted(set(state) - set(current))
        raise ValueError(f"hyperparameters do not match the GP (missing {missing}, unexpected {extra})")
    tensors = {}
    for key, ref in current.items():
        value = torch.as_tensor(state[key], dtype=ref.dtype)
        if value.shape != ref.shape:
            raise ValueError(f"hyperparameter {key} has shape {tuple(value.shape)}, expected {tuple(ref.shape)}")
        tensors[key] = value
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model


def _posterior(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation of the latent log-space function at (n,) inputs."""
    import torch

    with torch.no_grad():
        post = model.posterior(_tensor(x))
        mean = post.mean.reshape(-1).numpy()
        std = post.variance.clamp_min(0.0).sqrt().reshape(-1).numpy()
    return mean, std


def loo_predictions(model) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form leave-one-out predictive mean and standard deviation at every training point,
    in the outcome's original (log) units, with the fitted hyperparameters held fixed
    (Rasmussen & Williams eq. 5.12 with the prior mean m removed: mu_i = y_i - [K^-1 (y - m)]_i / [K^-1]_ii,
    var_i = 1 / [K^-1]_ii).
    """
    import torch

    with torch.no_grad():
        x = model.train_inputs[0]  # in eval mode: already through the input transform
        y = model.train_targets.reshape(-1, 1)  # standardised outcomes
        k = model.covar_module(x).to_dense()
        noise = model.likelihood.noise.reshape(-1)
        k = k + torch.diag(noise.expand(k.shape[0]))
        k_inv = torch.cholesky_inverse(torch.linalg.cholesky(k))
        # SingleTaskGP has a fitted constant prior mean; the formula holds for y minus that mean.
        prior = model.mean_module(x).reshape(-1, 1)
        alpha = k_inv @ (y - prior)
        diag = torch.diagonal(k_inv).reshape(-1, 1)
        mean = y - alpha / diag
        var = 1.0 / diag
        tf = model.outcome_transform
        stdv = tf.stdvs.reshape(-1)
        mean = mean.reshape(-1) * stdv + tf.means.reshape(-1)
        std = var.reshape(-1).sqrt() * stdv
    return mean.numpy(), std.numpy()


def _loo_error(model, y_log: np.ndarray) -> LooError:
    mean, std = loo_predictions(model)
    err = y_log - mean
    return LooError(
        rmse_log=float(np.sqrt(np.mean(err**2))),
        max_rel=float(np.max(np.abs(np.exp(mean - y_log) - 1.0))),
        coverage=float(np.mean(np.abs(err) <= Z_95 * std)),
    )


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if np.ptp(a) < 1e-12 or np.ptp(b) < 1e-12:
        return None  # a constant has no correlation
    return float(np.corrcoef(a, b)[0, 1])


def _lengthscale(model) -> float:
    """Fitted lengthscale in units of log c (the kernel sees inputs normalised to [0, 1])."""
    ls = float(model.covar_module.lengthscale.detach().reshape(-1)[0])
    bounds = model.input_transform.bounds.reshape(-1)
    return ls * float(bounds[1] - bounds[0])


def _noise_sd(model) -> float:
    """Observation noise standard deviation in the outcome's log units."""
    return float(model.likelihood.noise.detach().reshape(-1)[0].sqrt() * model.outcome_transform.stdvs.reshape(-1)[0])


@dataclass
class ScalingFit:
    """The fitted c -> r and c -> d relations of one study (use `fit_scaling` or `ScalingFit.load`)."""

    config: StudyConfig
    data: TrainingData
    r_model: object  # botorch SingleTaskGP on (log c, log r)
    d_model: object  # botorch SingleTaskGP on (log c, log d)
    diagnostics: Diagnostics
    k: int = DEFAULT_K
    selection_rows: list[dict] = field(default_factory=list)  # per-trial rank / selected / reason
    created: float = field(default_factory=time.time)
    source: str | None = None  # the study directory it was fitted from, if any

    @property
    def c_range(self) -> tuple[float, float]:
        """The span of c the GPs saw; queries outside it are extrapolations."""
        return float(self.data.c.min()), float(self.data.c.max())

    def predict(self, c) -> Prediction:
        """r and d (mean and 95 % band) at target ratios ``c`` (scalar or 1-d array, all > 0)."""
        c_arr = np.atleast_1d(np.asarray(c, dtype=np.float64)).reshape(-1)
        if c_arr.size == 0:
            raise ValueError("no target ratios given")
        if not np.all(np.isfinite(c_arr)) or np.any(c_arr <= 0):
            raise ValueError(f"target ratios c must be positive finite numbers, got {c_arr.tolist()}")
        x = np.log(c_arr)
        bands = []
        for model in (self.r_model, self.d_model):
            mean, std = _posterior(model, x)
            bands.append(Band(np.exp(mean), np.exp(mean - Z_95 * std), np.exp(mean + Z_95 * std)))
        return Prediction(c=c_arr, r=bands[0], d=bands[1])

    # ------------------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        import botorch

        return {
            "format": FIT_FORMAT,
            "kind": "tinyscale.ScalingFit",
            "created": self.created,
            "source": self.source,
            "botorch_version": botorch.__version__,
            "config": self.config.to_dict(),
            "k": self.k,
            "data": self.data.to_dict(),
            "r_state": _state_to_json(self.r_model),
            "d_state": _state_to_json(self.d_model),
            "diagnostics": self.diagnostics.to_dict(),
            "selection": self.selection_rows,
        }

    @classmethod
    def from_dict(cls, payload: dict) -> ScalingFit:
        if not isinstance(payload, dict) or payload.get("kind") != "tinyscale.ScalingFit":
            raise ValueError("not a tinyscale fit (missing kind 'tinyscale.ScalingFit')")
        if payload.get("format") != FIT_FORMAT:
            raise ValueError(f"fit format {payload.get('format')!r} is not the supported {FIT_FORMAT}")
        data = TrainingData.from_dict(payload["data"])
        x = np.log(data.c)
        return cls(
            config=StudyConfig.from_dict(payload["config"]),
            data=data,
            r_model=_model_from_state(x, np.log(data.r), payload["r_state"]),
            d_model=_model_from_state(x, np.log(data.d), payload["d_state"]),
            diagnostics=Diagnostics.from_dict(payload["diagnostics"]),
            k=int(payload["k"]),
            selection_rows=list(payload.get("selection", [])),
            created=float(payload["created"]),
            source=payload.get("source"),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fit as JSON, atomically (a crash leaves the old file or the new one).

        ``path`` may be a study directory (then ``fit.json`` inside it) or a file path.
        """
        path = Path(path)
        if path.is_dir():
            path = path / FIT_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ScalingFit:
        """Read a fit written by `save` (a study directory or the file itself), without refitting."""
        path = Path(path)
        if path.is_dir():
            path = path / FIT_FILE
            if not path.is_file():
                raise ValueError(f"no fit in {path.parent}: run `tinyscale fit {path.parent}` first")
        if not path.is_file():
            raise ValueError(f"no fit file at {path}")
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(payload)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(
                f"the fit file {path} is corrupt or from another version ({type(exc).__name__}: {exc}); "
                f"run `tinyscale fit` on the study again"
            ) from None


def fit_scaling(
    trials: list[Trial],
    config: StudyConfig,
    *,
    k: int = DEFAULT_K,
    seed: int = 0,
    selection: ParetoSelection | None = None,
    source: str | None = None,
) -> ScalingFit:
    """Select up to ``k`` well-spread Pareto models (NSGA-III) and fit c -> r, c -> d on them.

    Raises ValueError when there are fewer than MIN_MODELS usable models or the data is
    degenerate (all at one FLOPs ratio).
    """
    completed = [t for t in trials if t.state == "completed"]
    if not completed:
        raise ValueError("the study has no completed trials yet; run or resume it before fitting")
    if selection is None:
        selection = select(completed, k, seed=seed)
    chosen = selection.selected
    if len(chosen) < MIN_MODELS:
        raise ValueError(
            f"only {len(chosen)} usable completed trial(s); the fits need at least {MIN_MODELS} models "
            f"(run more trials)"
        )
    c = np.array([t.ratio for t in chosen], dtype=np.float64)
    if not np.all(c > 0):
        raise ValueError("every selected trial must have a positive FLOPs ratio")
    if np.log(c.max() / c.min()) < 0.05:
        raise ValueError(
            f"all {len(chosen)} selected models sit at one FLOPs ratio (c from {c.min():.4g} to {c.max():.4g}); "
            "a curve over c needs models spread across the window"
        )
    data = TrainingData(
        numbers=tuple(t.number for t in chosen),
        c=c,
        r=np.array([t.recipe.r for t in chosen]),
        w=np.array([t.recipe.w for t in chosen]),
        d=np.array([t.recipe.d for t in chosen]),
        accuracy=np.array([float(t.accuracy) for t in chosen]),
    )
    x = np.log(data.c)
    r_model = _fit_gp(x, np.log(data.r))
    d_model = _fit_gp(x, np.log(data.d))

    n_front = sum(1 for e in selection.entries if e.rank == 1)
    warnings: list[str] = []
    if n_front < MIN_MODELS:
        warnings.append(
            f"only {n_front} model(s) are non-dominated; the fit also uses models from later fronts"
        )
    if len(chosen) < k:
        warnings.append(f"{len(chosen)} models available, fewer than k={k}")
    diagnostics = Diagnostics(
        n_models=len(chosen),
        n_front=n_front,
        loo_r=_loo_error(r_model, np.log(data.r)),
        loo_d=_loo_error(d_model, np.log(data.d)),
        correlation={name: _pearson(getattr(data, name), data.c) for name in ("r", "w", "d")},
        lengthscale_r=_lengthscale(r_model),
        lengthscale_d=_lengthscale(d_model),
        noise_r=_noise_sd(r_model),
        noise_d=_noise_sd(d_model),
        warnings=tuple(warnings),
    )
    return ScalingFit(
        config=config, data=data, r_model=r_model, d_model=d_model, diagnostics=diagnostics, k=k,
        selection_rows=selection.to_rows(), source=source,
    )


def format_fit(fit: ScalingFit) -> str:
    """The human-readable report of `tinyscale fit`."""
    dg = fit.diagnostics
    lo, hi = fit.c_range
    lines = [
        f"models     {dg.n_models} selected (k={fit.k}) of a non-dominated front of {dg.n_front}; "
        f"c from {lo:.4g} to {hi:.4g}",
    ]
    for name, ls, noise, loo in (("r", dg.lengthscale_r, dg.noise_r, dg.loo_r), ("d", dg.lengthscale_d, dg.noise_d, dg.loo_d)):
        lines.append(
            f"GP c->{name}    lengthscale {ls:.3g} (log c), noise sd {noise:.3g} (log {name}); "
            f"LOO rmse {loo.rmse_log:.3g} (log), max rel error {loo.max_rel:.1%}, 95% band coverage {loo.coverage:.0%}"
        )
    corr = "  ".join(f"{k}={'n/a (constant)' if v is None else f'{v:+.2f}'}" for k, v in dg.correlation.items())
    lines.append(f"Pearson    with c among the selected models: {corr}")
    grid = np.exp(np.linspace(math.log(lo), math.log(hi), 5))
    pred = fit.predict(grid)
    lines.append("curve      c        r [95% band]            d [95% band]")
    for i, c in enumerate(grid):
        lines.append(
            f"           {c:<8.4g} {pred.r.mean[i]:.3f} [{pred.r.lower[i]:.3f}, {pred.r.upper[i]:.3f}]"
            f"    {pred.d.mean[i]:.3f} [{pred.d.lower[i]:.3f}, {pred.d.upper[i]:.3f}]"
        )
    for w in dg.warnings:
        lines.append(f"warning    {w}")
    return "\n".join(lines)
