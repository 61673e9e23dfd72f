"""Gaussian-process fits c -> r and c -> d, with bands and diagnostics, and their persistence
(``fit.json`` in the study directory).

Two methods give the points the curves are fitted on (``fit_scaling(method=...)``):

- ``surface`` (the default): an accuracy surface over *every* completed trial
  (`tinyscale.fit.surface`); the points are its ridge, the best (r, d) at each c of a grid, and
  the bands are widened to the ridge's own 95 % band from posterior samples of the argmax.
- ``pareto`` (the paper's): up to K models selected by non-dominated sorting and NSGA-III
  niching (`tinyscale.fit.pareto`); K defaults to about 1 in 5 trials, as TinyNet kept ~20 of ~100.

A study that trains in rungs is fitted on one rung's runs (``from_rungs="fit"``, the rung the study
trusts), or, with ``from_rungs="all"``, on every run of every rung by a surface with the training
length as an input, read at the top rung (`tinyscale.fit.multifidelity`).

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

from tinyscale.fit.diagnostics import MIN_MODELS, Band, Diagnostics, Prediction, TrainingData, loo_error, pearson
from tinyscale.fit.gpmodels import (Z_95, expected_jitter, fit_gp, lengthscales, load_state, make_gp, noise_sd,
                                    posterior, state_json)
from tinyscale.fit.multifidelity import MultiFidelitySurface, RunFidelity, check_rungs
from tinyscale.fit.pareto import ParetoSelection, front_ranks, objectives, select
from tinyscale.fit.surface import C_POINTS, AccuracySurface, Ridge
from tinyscale.limits import MAX_JSON_BYTES, is_exact_int
from tinyscale.storage import FIT_FILE, loads_json, read_bounded, write_text_atomically
from tinyscale.study.trial import StudyConfig, Trial, check_seed

FIT_FORMAT = 2  # 2 added the method, the ridge and the accuracy surface; 1 (pareto only) still loads
READABLE_FORMATS = (1, 2)
METHODS = ("surface", "pareto")
DEFAULT_METHOD = "surface"
OBJECTIVES = ("macs", "latency")  # the cost the Pareto selection minimises beside 1 - accuracy
# The paper's Pareto step kept about 1 in 5 trials (~20 of ~100); keeping most of them selects
# nothing, so K is at most half of the usable trials.
PARETO_FRACTION = 0.2
PARETO_MAX_FRACTION = 0.5


@dataclass
class ScalingFit:
    """The fitted c -> r and c -> d relations of one study (use `fit_scaling` or `ScalingFit.load`).

    ``data`` holds the trials the fit used (method "pareto": the selected models; "surface":
    every completed trial). The c -> r, c -> d GPs are fitted on ``data`` (pareto) or on the
    ``ridge`` of the accuracy ``surface`` (surface).
    """

    config: StudyConfig
    data: TrainingData
    r_model: object  # botorch SingleTaskGP on (log c, log r)
    d_model: object  # botorch SingleTaskGP on (log c, log d)
    diagnostics: Diagnostics
    k: int | None = None  # models the Pareto step kept (method "pareto")
    selection_rows: list[dict] = field(default_factory=list)  # per-trial rank / selected / reason
    created: float = field(default_factory=time.time)
    source: str | None = None  # the study directory it was fitted from, if any
    method: str = "pareto"
    ridge: Ridge | None = None  # method "surface": the best (r, d) per c, with the argmax's band
    surface: AccuracySurface | None = None
    objective: str = "macs"  # what the Pareto selection minimised beside 1 - accuracy
    rungs: tuple[int, ...] | None = None  # the rungs whose runs the fit read (None: a fit saved before this field)

    @property
    def c_range(self) -> tuple[float, float]:
        """The span of c the fit saw (its trials); queries outside it are extrapolations."""
        return float(self.data.c.min()), float(self.data.c.max())

    def unseen(self, trials: list[Trial]) -> list[int]:
        """Numbers of the usable completed ``trials`` this fit never ranked (finished after it):
        the one rule for "the saved fit is stale"."""
        if all("rung" in row for row in self.selection_rows):  # one row per run: a run is (number, rung)
            runs = {(row["number"], row["rung"]) for row in self.selection_rows}
            return [t.number for t in usable_trials(trials) if (t.number, t.rung) not in runs]
        seen = {row["number"] for row in self.selection_rows}
        return [t.number for t in usable_trials(trials) if t.number not in seen]

    def curve_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(c, r, d) the c -> r and c -> d GPs were fitted on."""
        if self.ridge is not None:
            return self.ridge.c, self.ridge.r, self.ridge.d
        return self.data.c, self.data.r, self.data.d

    def predict(self, c) -> Prediction:
        """r and d (mean and 95 % band) at target ratios ``c`` (scalar or 1-d array, all > 0).

        With a ridge, each band is the union of the curve GP's band and the ridge's own band
        (posterior samples of the surface's argmax), so it shows how sure the data are of the
        best recipe, not only how smooth the curve through it is.
        """
        c_arr = np.atleast_1d(np.asarray(c, dtype=np.float64)).reshape(-1)
        if c_arr.size == 0:
            raise ValueError("no target ratios given")
        if not np.all(np.isfinite(c_arr)) or np.any(c_arr <= 0):
            raise ValueError(f"target ratios c must be positive finite numbers, got {c_arr.tolist()}")
        x = np.log(c_arr)
        ridge_bands = self.ridge.band_at(c_arr) if self.ridge is not None else (None, None)
        bands = []
        for model, ridge_band in zip((self.r_model, self.d_model), ridge_bands):
            mean, std = posterior(model, x)
            lower, upper = np.exp(mean - Z_95 * std), np.exp(mean + Z_95 * std)
            if ridge_band is not None:
                lower, upper = np.minimum(lower, ridge_band[0]), np.maximum(upper, ridge_band[1])
            bands.append(Band(np.exp(mean), lower, upper))
        return Prediction(c=c_arr, r=bands[0], d=bands[1])

    def trial_accuracy(self) -> dict[int, float]:
        """The accuracy surface's posterior mean at each trial it was fitted on, by trial number
        (empty for the Pareto method, which has no accuracy model)."""
        if self.surface is None:
            return {}
        predicted = self.surface.accuracy(self.data.c, self.data.r, self.data.d)
        return {n: float(a) for n, a in zip(self.data.numbers, predicted)}

    # ------------------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        import botorch

        return {
            "format": FIT_FORMAT,
            "kind": "tinyscale.ScalingFit",
            "method": self.method,
            "objective": self.objective,
            "created": self.created,
            "source": self.source,
            "botorch_version": botorch.__version__,
            "config": self.config.to_dict(),
            "k": self.k,
            "data": self.data.to_dict(),
            "r_state": state_json(self.r_model),
            "d_state": state_json(self.d_model),
            "ridge": None if self.ridge is None else self.ridge.to_dict(),
            "surface_state": None if self.surface is None else state_json(self.surface.model),
            # The measured seed noise the surface's observation noise is fixed at (None: inferred);
            # the fixed-noise GP's variances are not in its state, so loading rebuilds them from it.
            "surface_seed_noise": None if self.surface is None else self.surface.seed_noise,
            "rungs": None if self.rungs is None else list(self.rungs),
            # A surface across rungs: each run's rung and the rung its ridge is read at (None: one rung).
            "surface_fidelity": self.surface.fidelity.to_dict() if isinstance(self.surface, MultiFidelitySurface)
            else None,
            "diagnostics": self.diagnostics.to_dict(),
            "selection": self.selection_rows,
        }

    @classmethod
    def from_dict(cls, payload: dict) -> ScalingFit:
        if not isinstance(payload, dict) or payload.get("kind") != "tinyscale.ScalingFit":
            raise ValueError("not a tinyscale fit (missing kind 'tinyscale.ScalingFit')")
        if not any(is_exact_int(payload.get("format"), f) for f in READABLE_FORMATS):
            raise ValueError(f"fit format {payload.get('format')!r} is not one of the supported {READABLE_FORMATS}")
        method = payload.get("method", "pareto")
        if method not in METHODS:
            raise ValueError(f"unknown fit method {method!r}")
        data = TrainingData.from_dict(payload["data"])
        if not np.all(np.isfinite(data.accuracy)):
            raise ValueError("training data column accuracy must hold finite numbers")
        ridge = surface = None
        if method == "surface":
            ridge = Ridge.from_dict(payload["ridge"])
            if payload.get("surface_fidelity") is not None:
                surface = MultiFidelitySurface.from_state(data.c, data.r, data.d, data.w, data.accuracy,
                                                          payload["surface_state"],
                                                          RunFidelity.from_dict(payload["surface_fidelity"]))
            else:
                surface = AccuracySurface.from_state(data.c, data.r, data.d, data.w, data.accuracy,
                                                     payload["surface_state"], payload.get("surface_seed_noise"))
        rungs = payload.get("rungs")
        if rungs is not None and (not isinstance(rungs, list) or not all(type(k) is int and k >= 0 for k in rungs)):
            raise ValueError("the fit's rungs must be a list of whole numbers >= 0")
        fit = cls(
            config=StudyConfig.from_dict(payload["config"]),
            data=data,
            r_model=None,
            d_model=None,
            diagnostics=Diagnostics.from_dict(payload["diagnostics"]),
            k=None if payload.get("k") is None else int(payload["k"]),
            selection_rows=list(payload.get("selection", [])),
            created=float(payload["created"]),
            source=payload.get("source"),
            method=method,
            ridge=ridge,
            surface=surface,
            objective=payload.get("objective", "macs"),
            rungs=None if rungs is None else tuple(int(k) for k in rungs),
        )
        c, r, d = fit.curve_points()
        fit.r_model = load_state(make_gp(np.log(c), np.log(r)), payload["r_state"])
        fit.d_model = load_state(make_gp(np.log(c), np.log(d)), payload["d_state"])
        return fit

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fit as JSON, atomically (a crash leaves the old file or the new one).

        ``path`` may be a study directory (then ``fit.json`` inside it) or a file path.
        """
        path = Path(path)
        if path.is_dir():
            path = path / FIT_FILE
        return write_text_atomically(path, json.dumps(self.to_dict(), indent=1) + "\n")

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
            return cls.from_dict(loads_json(read_bounded(path, MAX_JSON_BYTES, "fit").decode("utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(
                f"the fit file {path} is corrupt or from another version ({type(exc).__name__}: {exc}); "
                f"run `tinyscale fit` on the study again"
            ) from None


def usable_trials(trials: list[Trial]) -> list[Trial]:
    """Completed trials with a finite accuracy and a positive cost (what either method can use)."""
    return [t for t in trials if t.state == "completed" and t.accuracy is not None
            and math.isfinite(t.accuracy) and t.macs > 0 and t.ratio > 0]


def default_pareto_k(n: int) -> int:
    """The paper's share: about 1 in 5 of ``n`` usable trials, never fewer than MIN_MODELS."""
    return max(MIN_MODELS, round(PARETO_FRACTION * n))


def check_pareto_k(k: int, n: int) -> None:
    """ValueError when K would keep most of the ``n`` trials (the Pareto step then selects nothing)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (how many models to select) must be a positive integer, got {k!r}")
    if k < MIN_MODELS:
        raise ValueError(f"--pareto-k {k} is too few: the curves need at least {MIN_MODELS} models (give K >= "
                         f"{MIN_MODELS})")
    limit = max(MIN_MODELS, math.floor(PARETO_MAX_FRACTION * n))
    if k > limit:
        raise ValueError(
            f"--pareto-k {k} would keep {k} of {n} usable trials: the Pareto step must select a small share "
            f"(the paper kept about 1 in 5, here {default_pareto_k(n)}; at most {limit}); "
            "lower K, run more trials, or use --method surface, which uses every trial"
        )


def _data_of(trials: list[Trial]) -> TrainingData:
    return TrainingData(
        numbers=tuple(t.number for t in trials),
        c=np.array([t.ratio for t in trials], dtype=np.float64),
        r=np.array([t.recipe.r for t in trials]),
        w=np.array([t.recipe.w for t in trials]),
        d=np.array([t.recipe.d for t in trials]),
        accuracy=np.array([float(t.accuracy) for t in trials]),
    )


def _check_spread(c: np.ndarray, what: str) -> None:
    if np.log(c.max() / c.min()) < 0.05:
        raise ValueError(
            f"all {len(c)} {what} sit at one FLOPs ratio (c from {c.min():.4g} to {c.max():.4g}); "
            "a curve over c needs models spread across the window"
        )


def ridge_grid(c_range: tuple[float, float], points: int = C_POINTS) -> np.ndarray:
    """The c grid the ridge is traced on: log-spaced over the span of the trials."""
    lo, hi = c_range
    return np.exp(np.linspace(math.log(lo), math.log(hi), points))


def fit_scaling(
    trials: list[Trial],
    config: StudyConfig,
    *,
    method: str = DEFAULT_METHOD,
    k: int | None = None,
    seed: int = 0,
    selection: ParetoSelection | None = None,
    source: str | None = None,
    cost=None,
    objective: str = "macs",
    seed_noise: float | None = None,
    from_rungs: str = "fit",
) -> ScalingFit:
    """Fit c -> r and c -> d on a study's trials (see the module doc for the two methods).

    ``seed_noise`` (method "surface"): the seed noise of one trial's accuracy, as a fraction, when
    it has been measured (`tinyscale.evaluate.fidelity.Fidelity.sigma`); the surface's observation noise
    is then fixed at it instead of inferred (`tinyscale.fit.surface` says why).

    ``k`` (method "pareto"): models to select; default about 1 in 5 usable trials
    (`default_pareto_k`), at most half of them. Raises ValueError when there are fewer than
    MIN_MODELS usable models or the data is degenerate (all at one FLOPs ratio).

    ``cost`` (method "pareto"): trial -> positive number the selection minimises instead of
    MACs (a predicted latency), recorded as ``objective``; the curves stay indexed by c.

    ``from_rungs`` (a study that trains in rungs): "fit" when ``trials`` are one rung's runs (the fit
    rung's, `tinyscale.study.store.Study.fit_trials`), "all" when they are every completed run of
    every rung (`Study.runs`): the surface is then fitted across rungs and read at the top one
    (`tinyscale.fit.multifidelity`); runs of one rung only give the one-rung surface.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if (cost is None) != (objective == "macs"):
        raise ValueError("a cost function goes with objective 'latency' (and only with it)")
    if cost is not None and method != "pareto":
        raise ValueError("the latency objective is for the pareto method: the surface's ridge is indexed by c "
                         "(ask `tinyscale recipe --latency-ms` for a latency)")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if seed_noise is not None and method != "surface":
        raise ValueError("a measured seed noise is for the surface method (the Pareto GPs fit recipe curves, "
                         "not accuracies)")
    check_seed(seed)
    check_rungs(from_rungs, config, method, seed_noise)
    completed = [t for t in trials if t.state == "completed"]
    if not completed:
        raise ValueError("the study has no completed trials yet; run or resume it before fitting")
    usable = usable_trials(completed)
    read = tuple(sorted({t.rung for t in usable}))
    if from_rungs == "fit" and len(read) > 1:
        raise ValueError(f"the trials hold runs of rungs {', '.join(map(str, read))}: fit one rung's "
                         "(Study.fit_trials), or every rung with from_rungs='all'")
    warnings: list[str] = []
    ridge = surface = None
    surface_diag = None
    if method == "pareto":
        n = len(usable)
        if k is None:
            k = default_pareto_k(n)
            if round(PARETO_FRACTION * n) < MIN_MODELS:
                warnings.append(
                    f"the study is small for the Pareto method: about 1 in 5 of {n} trials is fewer than the "
                    f"{MIN_MODELS} models a curve needs, so {k} are kept; run more trials or use the surface method"
                )
        else:
            check_pareto_k(k, n)
        if selection is None:
            selection = select(completed, k, seed=seed, cost=cost)
        chosen = selection.selected
        if len(chosen) < MIN_MODELS:
            raise ValueError(
                f"only {len(chosen)} usable completed trial(s); the fits need at least {MIN_MODELS} models "
                f"(run more trials)"
            )
        if not all(t.ratio > 0 for t in chosen):
            raise ValueError("every selected trial must have a positive FLOPs ratio")
        data = _data_of(chosen)
        _check_spread(data.c, "selected models")
        n_front = sum(1 for e in selection.entries if e.rank == 1)
        if n_front < MIN_MODELS:
            warnings.append(f"only {n_front} model(s) are non-dominated; the fit also uses models from later fronts")
        if len(chosen) < k:
            warnings.append(f"{len(chosen)} models available, fewer than k={k}")
        rows = selection.to_rows()
        c, r, d = data.c, data.r, data.d
    else:
        if len(usable) < MIN_MODELS:
            raise ValueError(
                f"only {len(usable)} usable completed trial(s); the accuracy surface needs at least {MIN_MODELS} "
                f"(run more trials)"
            )
        across = len(read) > 1  # from_rungs "all" on a study with runs above rung 0
        if across:  # each run ranked among its rung's: accuracies of different lengths do not compare
            usable = sorted(usable, key=lambda t: (t.rung, t.macs, t.number))
            ranks = np.concatenate([front_ranks(objectives([t for t in usable if t.rung == k])) for k in read])
        else:
            ranks = front_ranks(objectives(usable))
        n_front = int(np.sum(ranks == 1))
        data = _data_of(usable if across else sorted(usable, key=lambda t: (t.macs, t.number)))
        _check_spread(data.c, "trials")
        if np.ptp(data.accuracy) == 0:
            warnings.append("every trial has the same accuracy: the surface is flat and its ridge says nothing "
                            "about r and d; train longer (--steps) or check the data")
        with expected_jitter():  # posterior samples of the ridge on a fine grid
            if across:
                surface = MultiFidelitySurface.fit(data.c, data.r, data.d, data.w, data.accuracy,
                                                   [t.rung for t in usable])
            else:
                surface = AccuracySurface.fit(data.c, data.r, data.d, data.w, data.accuracy, seed_noise)
            ridge = surface.ridge(config, ridge_grid((float(data.c.min()), float(data.c.max()))), seed=seed)
            surface_diag = surface.diagnostics()
        rows = [
            {"number": t.number, "r": t.recipe.r, "w": t.recipe.w, "d": t.recipe.d, "ratio": t.ratio,
             "macs": t.macs, "accuracy": t.accuracy, "rank": int(rank), "selected": True, "niche": None,
             "distance": None, "reason": f"front {int(rank)}: the accuracy surface uses every completed trial"}
            | ({"rung": t.rung, "steps": t.steps, "reason": f"front {int(rank)} of rung {t.rung}: the accuracy "
                "surface uses every completed run of every rung"} if across else {})
            for t, rank in zip(usable, ranks)
        ]
        c, r, d = ridge.c, ridge.r, ridge.d
        k = None
    x = np.log(c)
    r_model = fit_gp(x, np.log(r))
    d_model = fit_gp(x, np.log(d))
    w = _ridge_widths(config, c, r, d) if method == "surface" else data.w
    diagnostics = Diagnostics(
        n_models=len(data.numbers),
        n_front=n_front,
        loo_r=loo_error(r_model, np.log(r)),
        loo_d=loo_error(d_model, np.log(d)),
        correlation={name: pearson(values, c) for name, values in (("r", r), ("w", w), ("d", d))},
        lengthscale_r=float(lengthscales(r_model)[0]),
        lengthscale_d=float(lengthscales(d_model)[0]),
        noise_r=noise_sd(r_model),
        noise_d=noise_sd(d_model),
        warnings=tuple(warnings),
        surface=surface_diag,
    )
    return ScalingFit(
        config=config, data=data, r_model=r_model, d_model=d_model, diagnostics=diagnostics, k=k,
        selection_rows=rows, source=source, method=method, ridge=ridge, surface=surface, objective=objective,
        rungs=read,
    )


def _ridge_widths(config: StudyConfig, c: np.ndarray, r: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The width solved at each ridge point (NaN where no width reaches its c)."""
    from tinyscale.space.width import solve_width

    out = np.full(len(c), np.nan)
    for i, (cv, rv, dv) in enumerate(zip(c, r, d)):
        try:
            out[i] = solve_width(float(cv), float(rv), float(dv), rules=config.rules,
                                 base_resolution=config.base_resolution, num_classes=config.num_classes).recipe.w
        except ValueError:
            pass
    return out
