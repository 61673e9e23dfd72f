"""The botorch GP plumbing both fits share (a leaf module: `tinyscale.fit.gp` and
`tinyscale.fit.surface` import it, it imports neither).

Every GP here is a ``SingleTaskGP`` on float64 inputs of shape (n, dims), inputs normalised
(``Normalize``), outcomes standardised (``Standardize``), observation noise inferred (or fixed
at known variances), and
hyperparameters fitted with ``fit_gpytorch_mll`` on the exact marginal likelihood. A saved GP is
its ``state_dict`` as nested lists; `load_state` rebuilds the posterior exactly without refitting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95 % normal quantile


def _inputs(x: np.ndarray):
    import torch

    x = np.asarray(x, dtype=np.float64)
    return torch.as_tensor(x.reshape(-1, 1) if x.ndim == 1 else x)


def make_gp(x: np.ndarray, y: np.ndarray, yvar: np.ndarray | None = None):
    """An unfitted SingleTaskGP on (n,) or (n, dims) inputs and (n,) outcomes. ``yvar`` (n,): known
    observation noise variances in the outcome's units (fixed, not fitted); None infers one noise."""
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize

    import warnings

    from botorch.exceptions.warnings import InputDataWarning

    for name, values in (("inputs", x), ("outcomes", y), ("noise variances", yvar)):
        if values is not None and not np.all(np.isfinite(np.asarray(values, dtype=np.float64))):
            raise ValueError(f"the GP's {name} must be finite numbers")  # (botorch's InputDataError otherwise)
    tx = _inputs(x)
    ty = _inputs(np.asarray(y, dtype=np.float64).reshape(-1))
    tvar = None if yvar is None else _inputs(np.asarray(yvar, dtype=np.float64).reshape(-1))
    with warnings.catch_warnings():
        # Outcomes are standardised by the transform; botorch still warns when they are all equal,
        # which `tinyscale.fit.gp` tells the user in its own words.
        warnings.simplefilter("ignore", InputDataWarning)
        return SingleTaskGP(tx, ty, tvar, input_transform=Normalize(d=tx.shape[1]),
                            outcome_transform=Standardize(m=1))


def fit_gp(x: np.ndarray, y: np.ndarray, yvar: np.ndarray | None = None):
    """`make_gp` with its hyperparameters fitted, in eval mode (seeded: reproducible)."""
    return fit_seeded(lambda: make_gp(x, y, yvar))


def fit_seeded(build):
    """The GP ``build()`` makes, its hyperparameters fitted on the exact marginal likelihood, in
    eval mode; seeded, so a refit of the same data gives the same model."""
    import warnings

    import torch
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    with torch.random.fork_rng():
        torch.manual_seed(0)  # fit_gpytorch_mll may retry from random restarts
        model = build()
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # botorch's "data not standardised" hints do not apply in log space
            fit_gpytorch_mll(mll)
    model.eval()
    return model


def state_json(model) -> dict:
    """The model's hyperparameters as nested lists (JSON)."""
    return {k: v.detach().cpu().tolist() for k, v in model.state_dict().items()}


MAX_RAW = 1e6


def _numbers_only(value) -> bool:
    """Whether a saved hyperparameter (a number or nested lists of them) holds only numbers
    (JSON's true would pass as 1.0)."""
    if isinstance(value, list):
        return all(_numbers_only(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_state(model, state: dict):
    """``model`` (an unfitted GP on the right training data) with the saved hyperparameters
    ``state`` (nested lists), in eval mode; ValueError when keys or shapes do not match."""
    import torch

    current = model.state_dict()
    if set(state) != set(current):
        missing, extra = sorted(set(current) - set(state)), sorted(set(state) - set(current))
        raise ValueError(f"hyperparameters do not match the GP (missing {missing}, unexpected {extra})")
    tensors = {}
    for key, ref in current.items():
        if ref.is_floating_point() and not _numbers_only(state[key]):
            raise ValueError(f"hyperparameter {key} holds something other than numbers")
        value = torch.as_tensor(state[key], dtype=ref.dtype)
        if value.shape != ref.shape:
            raise ValueError(f"hyperparameter {key} has shape {tuple(value.shape)}, expected {tuple(ref.shape)}")
        # Finite, but where the model's own value is not (a constraint's upper bound of inf), that value.
        # Raw hyperparameters live in log-like spaces (softplus, log r): beyond MAX_RAW they are
        # no fitted value, and a crafted 1e308 would overflow every prediction made with it.
        fixed = ~torch.isfinite(ref)
        if value.is_floating_point() and (not bool(torch.isfinite(value[~fixed]).all())
                                          or bool((value[~fixed].abs() > MAX_RAW).any())
                                          or not torch.equal(value[fixed], ref[fixed])):
            raise ValueError(f"hyperparameter {key} holds {value.flatten()[:3].tolist()}, not finite numbers "
                             f"within +-{MAX_RAW:g}")
        tensors[key] = value
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model


@contextlib.contextmanager
def expected_jitter() -> Iterator[None]:
    """linear_operator's NumericalWarning ("added jitter to the diagonal") silenced: sampling a
    posterior on a grid finer than its lengthscale meets nearly singular covariances, which the
    jitter handles as designed; nothing for the user to act on."""
    import warnings

    from linear_operator.utils.warnings import NumericalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        yield


def posterior(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation of the latent function at (n,) or (n, dims) inputs."""
    import torch

    with torch.no_grad():
        post = model.posterior(_inputs(x))
        mean = post.mean.reshape(-1).numpy()
        std = post.variance.clamp_min(0.0).sqrt().reshape(-1).numpy()
    return mean, std


def lengthscales(model) -> np.ndarray:
    """Fitted lengthscales in the units of the raw inputs (the kernel sees them normalised)."""
    ls = model.covar_module.lengthscale.detach().reshape(-1).numpy()
    bounds = model.input_transform.bounds.detach().numpy()
    return ls * (bounds[1] - bounds[0])


def noise_sd(model) -> float:
    """Observation noise standard deviation in the outcome's units."""
    return float(model.likelihood.noise.detach().reshape(-1)[0].sqrt() * model.outcome_transform.stdvs.reshape(-1)[0])


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


