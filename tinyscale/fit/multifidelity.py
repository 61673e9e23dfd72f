"""The accuracy surface over every rung of a study that trains in rungs, with the training length
as an input, and its ridge at the longest length the study reached.

A halving study (`tinyscale.study.halving`) trains every recipe briefly (rung 0) and the
promoted ones again, longer (rung k: ``steps * eta**k``). The one-rung fit
(`tinyscale.fit.surface`) reads a single rung, the top one with enough recipes, so its surface
stands on the 5-15 recipes trained longest and drops the many brief runs, which say where the
surface is high, only with a bias that fades with training (deep networks start slowly). This
surface reads them all: one GP of held-out accuracy (log-odds) over x = (log c, log r, log d) and
the *fidelity* s = rung / top = log(steps / steps_0) / log(steps_top / steps_0), 0 for the
briefest runs and 1 for the top rung reached, and its ridge is taken at the fit's target rung
(the top rung, s = 1): the brief runs place the surface, the long ones say what of it survives
longer training.

Models (`KINDS`), all botorch, the first the default (`DEFAULT_KIND`), chosen on synthetic
studies whose truth is known (experiments/multifidelity_fit.py, tuning seeds 10-21; benchmarks/
RESULTS.md "halving"): the mean true shape of the ridge was -0.006 (ard), -0.009 (linear
truncated), -0.015 (exponential decay) against -0.054 for the one-rung fit:

- ``ard``: a plain ``SingleTaskGP`` with s as a fourth input of its ARD kernel: how far the
  brief runs' surface carries to the top rung is one lengthscale over s, fitted like the others.
- ``linear-truncated``: ``SingleTaskMultiFidelityGP`` with the iteration fidelity s and
  its linear truncated kernel (Wu et al. 2019): f(x, s) = g(x) + (1 - s) * bias(x, s), so the
  brief runs' bias (a surface of its own, over the same x) vanishes at s = 1 and the prediction
  there is g, informed by every run.
- ``exponential-decay``: the same GP with ``linear_truncated=False``: an RBF kernel over x times
  an exponential-decay kernel over s (freeze-thaw's learning-curve kernel).

Inputs x are normalised over the runs (``Normalize`` on the three x columns; s already spans
[0, 1], where the fidelity kernels need it unchanged), outcomes standardised, the observation noise
inferred (one noise for every rung: the measured seed noise of `tinyscale fidelity` is of one
rung's runs; a noise falling with the rung, sigma^2_top * exp(beta (1 - s)), recovered the
synthetic truth's beta but not a better ridge, -0.0013 +- 0.0011 on held-out seeds, so it was not
adopted: experiments/multifidelity_fit.py noise). Saved like the one-rung surface: the runs and
the state dict rebuild it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyscale.fit.gpmodels import fit_seeded, load_state, make_gp
from tinyscale.fit.gpmodels import lengthscales as ard_lengthscales
from tinyscale.fit.surface import AccuracySurface, log_inputs, logit

# Which runs of a study that trains in rungs the fit reads: "fit", the fit rung's (one run per
# recipe, `tinyscale.study.store.Study.fit_trials`), or "all", every run of every rung.
RUNG_CHOICES = ("fit", "all")
# What a fit reads of a study that trains in rungs when not told (`tinyscale fit`, the demo, the
# app's fresh fit, the box check): every rung (on synthetic halving studies its ridge's true shape
# gained +0.074 +- 0.025 over the fit rung's alone, held-out seeds; benchmarks/RESULTS.md
# "halving"). A uniform study has one rung.
DEFAULT_RUNGS = "all"
KINDS = ("ard", "linear-truncated", "exponential-decay")
DEFAULT_KIND = "ard"
FIDELITY_COLUMN = 3  # the inputs are (log c, log r, log d, s)
KERNEL_WORDS = {"ard": "one ARD kernel over x and the rung", "linear-truncated": "linear truncated fidelity kernel",
                "exponential-decay": "exponential-decay fidelity kernel"}


def fidelities(rungs, top: int) -> np.ndarray:
    """The fidelity s = rung / ``top`` of runs at ``rungs``: with steps = steps_0 * eta**rung this
    is log(steps / steps_0) / log(steps_top / steps_0), 0 for rung 0 and 1 for the top rung."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"the top rung of a fit across rungs must be a whole number >= 1, got {top!r}")
    return np.asarray(rungs, dtype=np.float64) / top


def default_rungs(config, method: str = "surface", noise: str = "auto") -> str:
    """What --from-rungs means when not given: every rung of a study in rungs, unless the fit asked for
    cannot read them (the Pareto method, a measured seed noise); a uniform study's one rung."""
    if config.schedule != "halving" or method != "surface" or noise == "measured":
        return "fit"
    return DEFAULT_RUNGS


def runs_read(study, which_rungs: str) -> list:
    """The runs a fit reading ``which_rungs`` (`RUNG_CHOICES`) of ``study`` (an open
    `tinyscale.study.store.Study`) is given."""
    return study.runs("completed") if which_rungs == "all" else study.fit_trials()


def check_rungs(from_rungs: object, config, method: str, seed_noise: float | None) -> None:
    """ValueError, in the command line's words, when ``from_rungs`` (`RUNG_CHOICES`) does not fit the
    study (``config``), the fit ``method`` or a measured ``seed_noise``."""
    if from_rungs not in RUNG_CHOICES:
        raise ValueError(f"from_rungs must be one of {', '.join(RUNG_CHOICES)}, got {from_rungs!r}")
    if from_rungs == "all":
        if config.schedule != "halving":
            raise ValueError("--from-rungs all is for a study that trains in rungs (--schedule halving); this one "
                             "trains every recipe once")
        if method != "surface":
            raise ValueError("--from-rungs all is for --method surface (the accuracy surface across training lengths)")
        if seed_noise is not None:
            raise ValueError("--from-rungs all infers the observation noise: a measured seed noise is of one rung's "
                             "runs (fit with --noise inferred, or --from-rungs fit)")


def _check_kind(kind: object) -> None:
    if kind not in KINDS:
        raise ValueError(f"the surface across rungs must be one of {', '.join(KINDS)}, got {kind!r}")


def make_multifidelity_gp(x: np.ndarray, y: np.ndarray, kind: str = DEFAULT_KIND):
    """An unfitted GP of ``kind`` on (n, 4) inputs (log c, log r, log d, s) and (n,) outcomes."""
    import warnings

    import torch
    from botorch.exceptions.warnings import InputDataWarning
    from botorch.models import SingleTaskMultiFidelityGP
    from botorch.models.transforms import Normalize, Standardize

    _check_kind(kind)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.ndim != 2 or x.shape[1] != 4 or x.shape[0] != y.size:
        raise ValueError("a surface across rungs needs (n, 4) inputs and n outcomes")
    if kind == "ard":  # the one-rung surface's GP with s as a fourth input (all four normalised)
        return make_gp(x, y)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("the GP's inputs and outcomes must be finite numbers")
    tx, ty = torch.as_tensor(x), torch.as_tensor(y).reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputDataWarning)  # equal outcomes: `tinyscale.fit.gp` says so
        # s stays as it is: the fidelity kernels read it in [0, 1], with 1 the target length.
        return SingleTaskMultiFidelityGP(tx, ty, iteration_fidelity=FIDELITY_COLUMN,
                                         linear_truncated=kind == "linear-truncated",
                                         input_transform=Normalize(d=4, indices=[0, 1, 2]),
                                         outcome_transform=Standardize(m=1))


def fit_multifidelity_gp(x: np.ndarray, y: np.ndarray, kind: str = DEFAULT_KIND):
    """`make_multifidelity_gp` with its hyperparameters fitted, in eval mode (seeded:
    reproducible, as `tinyscale.fit.gpmodels.fit_gp`)."""
    return fit_seeded(lambda: make_multifidelity_gp(x, y, kind))


def x_lengthscales(model, kind: str) -> np.ndarray:
    """The fitted lengthscales over (log c, log r, log d), in those units (of the surface the
    ridge is read from: the linear truncated kernel's unbiased part)."""
    if kind == "ard":
        return ard_lengthscales(model)[:3]
    if kind == "linear-truncated":
        kernel = model.covar_module.base_kernel.kernels[0].covar_module_unbiased
    else:
        kernel = model.covar_module.kernels[0]
    bounds = model.input_transform.bounds.detach().numpy()  # the three normalised columns only
    return kernel.lengthscale.detach().reshape(-1).numpy()[:3] * (bounds[1] - bounds[0])


@dataclass(frozen=True)
class RunFidelity:
    """Which run of a fit across rungs each training row is, and where the ridge is read:
    ``rungs`` (n,) per row, ``top`` the highest of them (s = 1), ``target`` the rung the
    surface predicts at."""

    kind: str
    rungs: tuple[int, ...]
    top: int
    target: int

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in self.rungs):
            raise ValueError("the rung of every run must be a whole number >= 0")
        if not self.rungs or self.top != max(self.rungs) or self.top < 1:
            raise ValueError("a fit across rungs needs runs above rung 0, with top the highest rung")
        if isinstance(self.target, bool) or not isinstance(self.target, int) or not 0 <= self.target <= self.top:
            raise ValueError(f"the target rung must be one of the rungs 0..{self.top}, got {self.target!r}")

    @property
    def read(self) -> list[int]:
        """The rungs the fit read, lowest first."""
        return sorted(set(self.rungs))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "rungs": list(self.rungs), "top": self.top, "target": self.target}

    @classmethod
    def from_dict(cls, data: dict) -> RunFidelity:
        if not isinstance(data, dict) or not isinstance(data.get("rungs"), list):
            raise ValueError("the surface's fidelity must be an object with a list of rungs")
        return cls(kind=data.get("kind"), rungs=tuple(data["rungs"]), top=data.get("top"), target=data.get("target"))


class MultiFidelitySurface(AccuracySurface):
    """The accuracy surface over (c, r, d) at the target rung, fitted on every run of every rung
    (build with `fit` or `from_state`); everything that reads a surface (the ridge, slices,
    `ScalingFit.trial_accuracy`) reads it at the target rung."""

    def __init__(self, model, x: np.ndarray, y: np.ndarray, w_range: tuple[float, float],
                 fidelity: RunFidelity) -> None:
        super().__init__(model, x, y, w_range, seed_noise=None)
        self.fidelity = fidelity

    @staticmethod
    def _training(c, r, d, accuracy, fidelity: RunFidelity) -> tuple[np.ndarray, np.ndarray]:
        x = log_inputs(c, r, d)
        if len(fidelity.rungs) != x.shape[0]:
            raise ValueError(f"{len(fidelity.rungs)} rungs for {x.shape[0]} runs: one rung per run")
        return np.column_stack([x, fidelities(fidelity.rungs, fidelity.top)]), logit(accuracy)

    @classmethod
    def fit(cls, c, r, d, w, accuracy, rungs, *, target: int | None = None,  # type: ignore[override]
            kind: str = DEFAULT_KIND) -> MultiFidelitySurface:
        """Fit on runs at ``rungs`` (one per run); ``target``: the rung to predict at (default the top)."""
        rungs = tuple(int(k) for k in rungs)
        top = max(rungs, default=0)
        fidelity = RunFidelity(kind, rungs, top, top if target is None else target)
        x, y = cls._training(c, r, d, accuracy, fidelity)
        w = np.asarray(w, dtype=np.float64)
        return cls(fit_multifidelity_gp(x, y, kind), x, y, (float(w.min()), float(w.max())), fidelity)

    @classmethod
    def from_state(cls, c, r, d, w, accuracy, state: dict, fidelity: RunFidelity  # type: ignore[override]
                   ) -> MultiFidelitySurface:
        x, y = cls._training(c, r, d, accuracy, fidelity)
        w = np.asarray(w, dtype=np.float64)
        model = load_state(make_multifidelity_gp(x, y, fidelity.kind), state)
        return cls(model, x, y, (float(w.min()), float(w.max())), fidelity)

    def features(self, c, r, d) -> np.ndarray:
        x = log_inputs(c, r, d)
        s = self.fidelity.target / self.fidelity.top
        return np.column_stack([x, np.full(x.shape[0], s)])

    def x_lengthscales(self) -> np.ndarray:
        # Of the surface the ridge is read from (the linear truncated kernel's unbiased part).
        return x_lengthscales(self.model, self.fidelity.kind)

    def describe(self, steps_at) -> str:
        """One line for `tinyscale fit`: what was read and where the ridge is; ``steps_at``:
        rung -> training steps (`steps_of`)."""
        counts = {k: self.fidelity.rungs.count(k) for k in self.fidelity.read}
        runs = ", ".join(f"{n} at rung {k} ({steps_at(k):,} steps)" for k, n in counts.items())
        return (f"rungs      the surface reads every rung ({KERNEL_WORDS[self.fidelity.kind]}): {runs}; "
                f"its ridge is read at rung {self.fidelity.target} ({steps_at(self.fidelity.target):,} steps)")


def steps_of(config):
    """rung -> training steps of ``config``'s runs at that rung."""
    from tinyscale.study.halving import rung_steps

    return lambda rung: rung_steps(config.steps, config.eta, rung)
