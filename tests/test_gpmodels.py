"""tinyscale.fit.gpmodels, the GP plumbing both fits share, on functions with known answers:
a fitted GP recovers a smooth function, infers the noise the data was given (or keeps the noise
it is told), reports lengthscales in raw input units, and saves and reloads exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinyscale.fit.gpmodels import (Z_95, fit_gp, lengthscales, load_state, loo_predictions, make_gp, noise_sd,
                                    posterior, state_json)

X = np.linspace(0.0, 6.0, 30)
NOISE = 0.1


def noisy_sine(seed: int = 0, noise: float = NOISE) -> np.ndarray:
    return np.sin(X) + noise * np.random.default_rng(seed).standard_normal(X.shape)


@pytest.fixture(scope="module")
def sine_gp():
    """A GP fitted to sin(x) on [0, 6] with Gaussian noise of sd 0.1 (noise inferred)."""
    return fit_gp(X, noisy_sine())


def test_z_95_is_the_two_sided_95_percent_normal_quantile():
    from scipy.stats import norm

    assert Z_95 == pytest.approx(norm.ppf(0.975), rel=1e-12)


def test_a_fitted_gp_recovers_a_smooth_function_inside_its_band(sine_gp):
    grid = np.linspace(0.3, 5.7, 40)
    mean, std = posterior(sine_gp, grid)
    assert mean.shape == std.shape == (40,)
    truth = np.sin(grid)
    # 30 points with sd 0.1 noise pin the latent function to a few hundredths (the grid's
    # errors are correlated, so the band's coverage along it is loose).
    assert np.sqrt(np.mean((mean - truth) ** 2)) < 0.07 and np.max(np.abs(mean - truth)) < 0.15
    assert np.mean(np.abs(mean - truth) <= Z_95 * std) >= 0.75
    assert np.all(std > 0) and np.all(std < 0.1)
    # Far outside the data the GP knows it does not know: the band widens.
    _, far = posterior(sine_gp, np.array([20.0]))
    assert far[0] > 5 * np.max(std)


def test_inferred_noise_is_the_noise_the_data_was_given(sine_gp):
    assert noise_sd(sine_gp) == pytest.approx(NOISE, rel=0.35)
    quiet = fit_gp(X, noisy_sine(noise=0.01))
    assert noise_sd(quiet) == pytest.approx(0.01, rel=0.5)
    assert noise_sd(quiet) < noise_sd(sine_gp) / 4


def test_a_fixed_noise_gp_keeps_the_noise_it_is_given():
    y = noisy_sine(seed=1)
    for sd in (0.05, 0.3):
        model = fit_gp(X, y, yvar=np.full(X.shape, sd**2))
        assert noise_sd(model) == pytest.approx(sd, rel=1e-6)  # in the outcome's units, not fitted
    # The fixed noise is what the posterior trusts: told the data is noisier, the GP smooths
    # more, and its mean at the data moves further from the observations.
    tight = posterior(fit_gp(X, y, yvar=np.full(X.shape, 0.01**2)), X)[0]
    loose = posterior(fit_gp(X, y, yvar=np.full(X.shape, 0.5**2)), X)[0]
    assert np.sqrt(np.mean((tight - y) ** 2)) < 0.5 * np.sqrt(np.mean((loose - y) ** 2))


def test_known_noise_may_differ_per_point():
    y = noisy_sine(seed=2)
    yvar = np.where(X < 3.0, 0.02**2, 0.4**2)
    model = make_gp(X, y, yvar)
    noise = model.likelihood.noise.detach().numpy().reshape(-1)  # standardised units
    scale = float(model.outcome_transform.stdvs.reshape(-1)[0])
    np.testing.assert_allclose(noise * scale**2, yvar, rtol=1e-6)


def test_lengthscales_are_in_raw_input_units():
    # The same data with inputs stretched 10x: the kernel sees identical normalised inputs, so
    # the fit is the same and the raw lengthscale is 10x longer.
    y = noisy_sine(seed=3)
    short, long = lengthscales(fit_gp(X, y)), lengthscales(fit_gp(10 * X, y))
    assert short.shape == (1,)
    assert long[0] == pytest.approx(10 * short[0], rel=1e-4)
    # sin over [0, 6] varies on a scale of about one radian.
    assert 0.3 < short[0] < 5.0


def test_two_inputs_get_one_lengthscale_each_and_the_irrelevant_one_is_long():
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.uniform(0, 6, 60), rng.uniform(0, 100, 60)])
    y = np.sin(x[:, 0]) + 0.05 * rng.standard_normal(60)  # the second input does not matter
    model = fit_gp(x, y)
    ls = lengthscales(model)
    assert ls.shape == (2,)
    assert ls[1] > 100 and ls[0] < 5.0  # beyond the second input's whole range; the first's is short
    mean, _ = posterior(model, np.array([[1.5, 10.0], [1.5, 90.0]]))
    assert mean[0] == pytest.approx(np.sin(1.5), abs=0.1) and mean[1] == pytest.approx(mean[0], abs=0.02)


def test_fitting_is_reproducible_and_leaves_the_global_rng_alone():
    import torch

    y = noisy_sine(seed=5)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = state_json(fit_gp(X, y))
    assert torch.equal(torch.rand(3), expected)  # the fit's own seeding did not move ours
    assert state_json(fit_gp(X, y)) == a


def test_saved_hyperparameters_rebuild_the_same_posterior_without_refitting(sine_gp):
    saved = json.loads(json.dumps(state_json(sine_gp)))  # survives JSON
    rebuilt = load_state(make_gp(X, noisy_sine()), saved)
    grid = np.linspace(-1.0, 7.0, 17)
    for a, b in zip(posterior(sine_gp, grid), posterior(rebuilt, grid)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert noise_sd(rebuilt) == pytest.approx(noise_sd(sine_gp), rel=1e-12)


def test_mismatched_hyperparameters_are_refused_by_name(sine_gp):
    saved = state_json(sine_gp)
    key = next(k for k in saved if "lengthscale" in k)
    missing = {k: v for k, v in saved.items() if k != key}
    with pytest.raises(ValueError, match=rf"missing \['{key}'\]"):
        load_state(make_gp(X, noisy_sine()), missing)
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        load_state(make_gp(X, noisy_sine()), {**saved, "extra": [1.0]})
    with pytest.raises(ValueError, match=rf"{key} has shape \(1, 2\)"):
        load_state(make_gp(X, noisy_sine()), {**saved, key: [[1.0, 2.0]]})


def test_leave_one_out_predicts_each_point_from_the_others(sine_gp):
    y = noisy_sine()
    mean, std = loo_predictions(sine_gp)
    assert mean.shape == std.shape == (len(X),)
    # Held out, a point is predicted from its neighbours: near sin(x), about as far from its own
    # noisy value as the noise, and less certainly than the posterior that saw it.
    assert np.max(np.abs(mean - np.sin(X))) < 0.15
    assert np.sqrt(np.mean((mean - y) ** 2)) == pytest.approx(NOISE, rel=0.4)
    _, seen = posterior(sine_gp, X)
    assert np.all(std > seen)
