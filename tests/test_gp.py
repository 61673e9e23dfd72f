"""GP fits c -> r, c -> d: recovery of a known curve, LOO algebra, persistence, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _fit_fixtures import CONFIG, d_true, fitted, make_trial, r_true
from tinyscale.fit.gp import ScalingFit, fit_scaling
from tinyscale.fit.report import format_fit
from tinyscale.fit.gpmodels import loo_predictions


@pytest.mark.parametrize("seed", [0, 1])
def test_gp_recovers_a_known_curve_from_noisy_samples(seed, pareto_fit):
    f = fitted(seed)
    lo, hi = f.c_range
    cs = np.exp(np.linspace(np.log(lo), np.log(hi), 25))
    pred = f.predict(cs)
    for band, truth in ((pred.r, r_true(cs)), (pred.d, d_true(cs))):
        assert np.all(band.lower < band.mean) and np.all(band.mean < band.upper)
        assert np.max(np.abs(band.mean / truth - 1)) < 0.05  # data noise is 3 % per point
        assert np.mean((band.lower <= truth) & (truth <= band.upper)) >= 0.6
        assert np.max(band.upper / band.lower) < 1.2  # the band says something


def test_loo_matches_direct_conditioning(pareto_fit):
    import torch

    model = pareto_fit.r_model
    mean, std = loo_predictions(model)
    with torch.no_grad():
        x = model.train_inputs[0]
        y = model.train_targets
        noise = float(model.likelihood.noise.reshape(-1)[0])
        tf = model.outcome_transform
        m0, s0 = float(tf.means.reshape(-1)[0]), float(tf.stdvs.reshape(-1)[0])
        for i in (0, 7, len(y) - 1):
            keep = [j for j in range(len(y)) if j != i]
            k_rest = model.covar_module(x[keep]).to_dense() + noise * torch.eye(len(keep), dtype=x.dtype)
            k_star = model.covar_module(x[i:i + 1], x[keep]).to_dense()
            k_ii = model.covar_module(x[i:i + 1]).to_dense()
            prior = float(model.mean_module.constant.detach())  # SingleTaskGP's fitted constant mean
            mu = prior + (k_star @ torch.linalg.solve(k_rest, y[keep].reshape(-1, 1) - prior)).item()
            var = (k_ii - k_star @ torch.linalg.solve(k_rest, k_star.T)).item() + noise
            assert mean[i] == pytest.approx(mu * s0 + m0, abs=1e-8)
            assert std[i] == pytest.approx(np.sqrt(var) * s0, rel=1e-6)


def test_loo_matches_gpytorch_conditioning_on_the_other_points(pareto_fit):
    # Oracle independent of the LOO algebra: the same fitted GP conditioned by gpytorch on all
    # points but one, asked for its predictive distribution at the held-out input.
    import copy

    import torch

    data = pareto_fit.data
    for model, y_log in ((pareto_fit.r_model, np.log(data.r)), (pareto_fit.d_model, np.log(data.d))):
        mean, std = loo_predictions(model)
        x_raw = torch.as_tensor(np.log(data.c)).reshape(-1, 1)
        xt, yt = model.train_inputs[0], model.train_targets
        for i in range(len(yt)):
            keep = [j for j in range(len(yt)) if j != i]
            held_out = copy.deepcopy(model)
            held_out.set_train_data(inputs=xt[keep], targets=yt[keep], strict=False)
            with torch.no_grad():
                post = held_out.posterior(x_raw[i:i + 1], observation_noise=True)
            assert mean[i] == pytest.approx(float(post.mean.detach()), abs=1e-9)
            assert std[i] == pytest.approx(float(post.variance.detach().sqrt()), rel=1e-6)
        assert len(mean) == len(y_log)


def test_diagnostics_report_what_the_data_shows(pareto_fit):
    dg = pareto_fit.diagnostics
    assert dg.n_models == 20 and dg.n_front == 24
    # In this synthetic study all three multipliers grow with c.
    assert all(v is not None and v > 0.8 for v in dg.correlation.values())
    # The fixture's r and d carry 3 % log-normal noise: each GP infers a noise of about that size,
    # and its leave-one-out error is of that size too (not smaller: it cannot predict the noise).
    for noise, loo in ((dg.noise_r, dg.loo_r), (dg.noise_d, dg.loo_d)):
        assert 0.02 < noise < 0.045
        assert 0.02 < loo.rmse_log < 0.06
    # Coverage: the share of the 20 models whose own log r (log d) lies inside its 95 % LOO band,
    # recounted from the LOO predictions (checked against conditioning above) and the normal
    # quantile: 18 of 20 for r and 19 of 20 for d in this fixture.
    from scipy.stats import norm

    z95 = norm.ppf(0.975)
    data = pareto_fit.data
    for model, values, loo, inside in ((pareto_fit.r_model, data.r, dg.loo_r, 18),
                                       (pareto_fit.d_model, data.d, dg.loo_d, 19)):
        mean, std = loo_predictions(model)
        assert int(np.sum(np.abs(np.log(values) - mean) <= z95 * std)) == inside
        assert loo.coverage == pytest.approx(inside / dg.n_models)
    text = format_fit(pareto_fit)
    assert "LOO" in text and "Pearson" in text and "r=+" in text


def test_save_and_load_rebuilds_the_same_posterior(pareto_fit, tmp_path):
    path = pareto_fit.save(tmp_path / "fit.json")
    loaded = ScalingFit.load(path)
    cs = np.array([0.03, 0.1, 0.5, 1.2])
    a, b = pareto_fit.predict(cs), loaded.predict(cs)
    for x, y in ((a.r, b.r), (a.d, b.d)):
        assert np.allclose(x.mean, y.mean, rtol=1e-12) and np.allclose(x.upper, y.upper, rtol=1e-12)
    assert loaded.diagnostics == pareto_fit.diagnostics
    assert loaded.config == pareto_fit.config and loaded.data.numbers == pareto_fit.data.numbers


def test_corrupt_or_missing_fit_files_give_clear_errors(pareto_fit, tmp_path):
    with pytest.raises(ValueError, match="run `tinyscale fit"):
        ScalingFit.load(tmp_path)
    path = tmp_path / "fit.json"
    path.write_text('{"kind": "tinyscale.ScalingFit", "format": 1, "data": ')
    with pytest.raises(ValueError, match="corrupt"):
        ScalingFit.load(tmp_path)
    payload = pareto_fit.to_dict()
    payload["r_state"].pop(next(iter(payload["r_state"])))
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="corrupt.*missing"):
        ScalingFit.load(path)
    payload = pareto_fit.to_dict()
    payload["data"]["c"] = payload["data"]["c"][:-1]
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="corrupt"):
        ScalingFit.load(path)


def test_too_few_or_degenerate_models_are_refused():
    with pytest.raises(ValueError, match="no completed trials"):
        fit_scaling([], CONFIG)
    few = [make_trial(i, 0.5 + 0.1 * i, 0.5, 0.5 + 0.1 * i, 0.5 + 0.1 * i) for i in range(4)]
    with pytest.raises(ValueError, match="at least 5"):
        fit_scaling(few, CONFIG)
    same = [make_trial(i, 0.6, 0.5, 0.6, 0.5 + 0.01 * i) for i in range(6)]
    with pytest.raises(ValueError, match="one FLOPs ratio"):
        fit_scaling(same, CONFIG)


def test_predict_refuses_non_positive_ratios(pareto_fit):
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            pareto_fit.predict(bad)
