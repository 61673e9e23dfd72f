"""The surface method: an accuracy GP over every trial recovers a known best ridge within its
band, says "I don't know" (wide bands) on pure noise, persists exactly; and the Pareto method's
K is a small share of the trials."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from _fit_fixtures import CONFIG, make_trial, synthetic_trials, write_study
from tinyscale.space.cost import macs, ratio
from tinyscale.fit.gp import FIT_FILE, ScalingFit, check_pareto_k, default_pareto_k, fit_scaling
from tinyscale.fit.report import format_fit
from tinyscale.study.samplers.base import sample_recipes
from tinyscale.fit.solve import RecipeSolver

SPACE = replace(CONFIG, seed=3)  # recipes drawn the way a study draws them


def r_best(c):
    return 0.9 * np.asarray(c, dtype=float) ** 0.2


def d_best(c):
    return 1.0 * np.asarray(c, dtype=float) ** 0.3


def ridge_trials(n: int = 40, noise: float = 0.01, signal: bool = True, seed: int = 0):
    """Sampled recipes whose accuracy peaks at (r_best(c), d_best(c)) for their c (a known
    ridge), plus Gaussian noise; ``signal=False``: accuracy is pure noise around 0.8."""
    rng = np.random.default_rng(seed)
    trials = []
    for i, rec in enumerate(sample_recipes(SPACE, n)):
        c = ratio(rec)
        acc = 0.8
        if signal:
            acc = (0.85 + 0.03 * math.log(c) - 0.25 * math.log(rec.r / r_best(c)) ** 2
                   - 0.15 * math.log(rec.d / d_best(c)) ** 2)
        trials.append(make_trial(i, rec.r, rec.w, rec.d, acc + noise * rng.standard_normal(), SPACE))
    return trials


@pytest.fixture(scope="module")
def ridge_fit():
    return fit_scaling(ridge_trials(), SPACE)


@pytest.fixture(scope="module")
def noise_fit():
    return fit_scaling(ridge_trials(signal=False, noise=0.02), SPACE)


def test_surface_is_the_default_and_uses_every_trial(ridge_fit):
    assert ridge_fit.method == "surface"
    assert len(ridge_fit.data.numbers) == 40 and all(row["selected"] for row in ridge_fit.selection_rows)
    assert ridge_fit.ridge is not None and ridge_fit.surface is not None
    text = format_fit(ridge_fit)
    assert "surface" in text and "all 40 completed trials" in text


def test_the_known_ridge_is_recovered_within_its_band(ridge_fit):
    cs = np.exp(np.linspace(math.log(0.08), math.log(0.4), 5))
    pred = ridge_fit.predict(cs)
    for band, truth in ((pred.r, r_best(cs)), (pred.d, d_best(cs))):
        assert np.all(band.lower <= truth) and np.all(truth <= band.upper)
        assert np.all(np.abs(band.mean / truth - 1) < 0.06)
    # The curve rises with c as the ridge does (r and d are what carries the scaling here).
    assert ridge_fit.diagnostics.correlation["r"] > 0.9 and ridge_fit.diagnostics.correlation["d"] > 0.9


def test_the_ridge_only_uses_recipes_the_study_explored(ridge_fit):
    ridge, fit = ridge_fit.ridge, ridge_fit
    w_lo, w_hi = fit.surface.w_range
    base = macs(SPACE.recipe(1.0, 1.0, 1.0))
    for c, r, d in zip(ridge.c, ridge.r, ridge.d):
        assert macs(SPACE.recipe(r, w_lo, d)) / base <= c <= macs(SPACE.recipe(r, w_hi, d)) / base
        assert SPACE.r_range[0] <= r <= SPACE.r_range[1] and SPACE.d_range[0] <= d <= SPACE.d_range[1]
    assert np.all(ridge.r_lower <= ridge.r) and np.all(ridge.r <= ridge.r_upper)


def test_pure_noise_gives_wide_bands_and_no_predictive_surface(ridge_fit, noise_fit):
    def width(fit, c=0.2):
        p = fit.predict(c)
        return math.log(p.r.upper[0] / p.r.lower[0]) + math.log(p.d.upper[0] / p.d.lower[0])

    assert width(noise_fit) > 3 * width(ridge_fit)
    sd = noise_fit.diagnostics.surface
    assert sd.loo_rmse_points > 0.8 * sd.spread_points  # the surface predicts no better than the mean
    good = ridge_fit.diagnostics.surface
    assert good.loo_rmse_points < 0.5 * good.spread_points


def test_a_surface_fit_saves_and_loads_without_refitting(ridge_fit, tmp_path):
    path = ridge_fit.save(tmp_path / "fit.json")
    payload = json.loads(path.read_text())
    assert payload["method"] == "surface" and payload["format"] == 2
    loaded = ScalingFit.load(path)
    cs = [0.06, 0.2, 0.9]
    a, b = loaded.predict(cs), ridge_fit.predict(cs)
    for x, y in ((a.r, b.r), (a.d, b.d)):
        for name in ("mean", "lower", "upper"):
            np.testing.assert_allclose(getattr(x, name), getattr(y, name), rtol=1e-9)
    np.testing.assert_allclose(loaded.surface.accuracy(0.2, 0.6, 0.7), ridge_fit.surface.accuracy(0.2, 0.6, 0.7),
                               rtol=1e-9)
    assert loaded.diagnostics == ridge_fit.diagnostics  # read back, not recomputed


def test_a_format_1_fit_still_loads_as_the_pareto_method(tmp_path):
    fit = fit_scaling(synthetic_trials(seed=2), CONFIG, method="pareto", k=12)
    payload = fit.to_dict()
    payload["format"] = 1
    for key in ("method", "ridge", "surface_state"):
        payload.pop(key)
    payload["diagnostics"].pop("surface")
    (tmp_path / FIT_FILE).write_text(json.dumps(payload))
    loaded = ScalingFit.load(tmp_path)
    assert loaded.method == "pareto" and loaded.ridge is None
    np.testing.assert_allclose(loaded.predict(0.3).r.mean, fit.predict(0.3).r.mean, rtol=1e-9)


def test_pareto_k_is_a_small_share_of_the_trials():
    assert default_pareto_k(100) == 20 and default_pareto_k(54) == 11 and default_pareto_k(10) == 5
    check_pareto_k(27, 54)
    with pytest.raises(ValueError, match="1 in 5.*--method surface"):
        check_pareto_k(28, 54)
    fit = fit_scaling(synthetic_trials(seed=1), CONFIG, method="pareto")
    assert fit.k == 11 and len(fit.data.numbers) == 11  # of 54 usable trials, not 20
    assert sum(row["selected"] for row in fit.selection_rows) == 11


def test_a_small_study_is_told_the_pareto_method_needs_more_trials():
    few = synthetic_trials(n_good=12, n_decoys=6, seed=1)
    fit = fit_scaling(few, CONFIG, method="pareto")
    assert fit.k == 5 and any("small for the Pareto method" in w for w in fit.diagnostics.warnings)


def test_cli_fit_method_options(tmp_path, capsys):
    from tinyscale.cli import main

    study = write_study(tmp_path / "s", synthetic_trials(seed=1))
    assert main(["fit", str(study), "--pareto-k", "5"]) == 2  # K is for the Pareto method
    assert "--method pareto" in capsys.readouterr().err
    assert main(["fit", str(study), "--method", "pareto", "--pareto-k", "40"]) == 2
    assert "1 in 5" in capsys.readouterr().err
    assert main(["fit", str(study), "--method", "pareto", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "pareto" and len(out["selected"]) == 11
    assert RecipeSolver.load(study).fit.method == "pareto"


def test_the_app_slice_is_the_surface_and_marks_its_best_point(ridge_fit):
    from tinyscale.assistant import plots
    from tinyscale.fit.solve import RecipeSolver

    c = 0.2
    cut = ridge_fit.surface.slice(SPACE, c)
    assert cut.accuracy.shape == (cut.r.size, cut.d.size)
    i, j = 3, 5
    if np.isfinite(cut.accuracy[i, j]):
        assert cut.accuracy[i, j] == pytest.approx(float(ridge_fit.surface.accuracy(c, cut.r[i], cut.d[j])), rel=1e-9)
    assert np.isfinite(cut.accuracy).all()  # mid-window: every (r, d) reaches c with an explored width
    low = ridge_fit.surface.slice(SPACE, 0.06)
    assert np.isnan(low.accuracy).any() and np.isfinite(low.accuracy).any()
    assert np.isnan(low.accuracy[-1, -1])  # the largest input at the deepest depth cannot be that cheap
    assert cut.best_accuracy == pytest.approx(np.nanmax(cut.accuracy))
    # The best point at c is where the ridge runs (same definition, same grid).
    k = int(np.argmin(np.abs(np.log(ridge_fit.ridge.c / c))))
    near_c = ridge_fit.ridge.c[k]
    assert ridge_fit.surface.slice(SPACE, near_c).best_r == pytest.approx(ridge_fit.ridge.r[k])
    answer = RecipeSolver(ridge_fit).solve(c)
    fig = plots.surface_figure(cut, answer, ridge_trials())
    contour = plots.trace(fig, plots.TRACE_SURFACE)
    np.testing.assert_allclose(np.array(contour.z, dtype=float), 100 * cut.accuracy, rtol=1e-12)
    assert list(plots.trace(fig, plots.TRACE_RIDGE).y) == [cut.best_r]
    assert list(plots.trace(fig, plots.TRACE_TARGET).y) == [answer.recipe.r]
    near = plots.trace(fig, plots.TRACE_NEAR)
    assert len(near.x) == sum(1 for t in ridge_trials() if 1 / 1.5 <= t.ratio / c <= 1.5) > 0


def test_one_rule_says_which_trials_a_saved_fit_has_not_seen(tmp_path, capsys):
    from types import SimpleNamespace

    from tinyscale.cli import main
    from tinyscale.study.store import Study

    trials = synthetic_trials(n_good=10, n_decoys=4, seed=4)
    study = write_study(tmp_path / "s", trials)
    assert main(["fit", str(study), "--method", "pareto"]) == 0
    fit = ScalingFit.load(study)
    assert fit.unseen(trials) == []
    with Study.open(study) as s:
        for number in (100, 101):
            s.start_trial(number, SPACE.recipe(0.5, 0.5, 0.5), seed=number)
            s.finish_trial(number, SimpleNamespace(accuracy=0.5, loss=1.0, steps=10))
        s.start_trial(102, SPACE.recipe(0.6, 0.5, 0.5), seed=102)
        s.fail_trial(102, "diverged")  # a failed trial is nothing a fit could have used
        now = s.trials()
    assert fit.unseen(now) == [100, 101]
    capsys.readouterr()
    assert main(["recipe", str(study), "--ratio", "0.2"]) == 0
    assert "2 completed trial(s) the fit has not seen" in capsys.readouterr().err


# ------------------------------------------------------------------ measured seed noise


def test_measured_seed_noise_is_fixed_per_trial_in_log_odds():
    from tinyscale.fit.surface import logit, logit_noise_var

    trials = ridge_trials(n=30, noise=0.012, seed=5)
    fit = fit_scaling(trials, SPACE, seed_noise=0.012)
    model = fit.surface.model
    stdv = float(model.outcome_transform.stdvs.reshape(-1)[0])
    got = model.likelihood.noise.detach().reshape(-1).numpy() * stdv**2  # back in log-odds units
    acc = fit.data.accuracy
    np.testing.assert_allclose(got, logit_noise_var(acc, 0.012), rtol=1e-9)
    # The delta method: a 1.2-point seed sd is 0.012 / (p (1 - p)) in log-odds at accuracy p.
    p = 0.8
    assert math.sqrt(float(logit_noise_var([p], 0.012)[0])) == pytest.approx(
        (logit(p + 1e-6) - logit(p - 1e-6)) / 2e-6 * 0.012, rel=1e-6)
    diag = fit.diagnostics.surface
    assert diag.noise == "measured" and diag.noise_sd_points == pytest.approx(1.2, rel=1e-9)
    assert "fixed at the measured seed noise" in format_fit(fit)
    assert fit_scaling(trials, SPACE).diagnostics.surface.noise == "inferred"
    for bad in (0.0, -0.01, 0.5, float("nan")):
        with pytest.raises(ValueError, match="seed noise"):
            fit_scaling(trials, SPACE, seed_noise=bad)
    with pytest.raises(ValueError, match="surface method"):
        fit_scaling(synthetic_trials(seed=1), CONFIG, method="pareto", seed_noise=0.012)


def test_with_measured_noise_the_known_ridge_is_still_recovered_within_its_band():
    fit = fit_scaling(ridge_trials(), SPACE, seed_noise=0.01)
    cs = np.exp(np.linspace(math.log(0.08), math.log(0.4), 5))
    pred = fit.predict(cs)
    for band, truth in ((pred.r, r_best(cs)), (pred.d, d_best(cs))):
        assert np.all(band.lower <= truth) and np.all(truth <= band.upper)
        assert np.all(np.abs(band.mean / truth - 1) < 0.1)


def test_a_flat_study_with_measured_noise_is_not_fitted_to_its_seeds():
    # Accuracy is 0.8 everywhere; the trials differ by seed noise alone (1.5 points). Told the
    # noise, the surface must stay flat rather than bend through the lucky seeds.
    trials = ridge_trials(n=24, signal=False, noise=0.015, seed=2)
    fit = fit_scaling(trials, SPACE, seed_noise=0.015)
    x = fit.surface.x
    fitted = fit.surface.accuracy(np.exp(x[:, 0]), np.exp(x[:, 1]), np.exp(x[:, 2]))
    assert 100 * np.std(fitted) < 0.6 * 1.5  # the seed spread is 1.5 points (inferred noise: 1.2 here)
    assert abs(100 * np.mean(fitted) - 80) < 1.0
    lo, hi = fit.ridge.d_lower, fit.ridge.d_upper
    assert np.median(np.log(hi / lo)) > 0.5 * math.log(SPACE.d_range[1] / SPACE.d_range[0])  # "don't know" on d


def test_a_measured_noise_fit_saves_and_loads_without_refitting(tmp_path):
    fit = fit_scaling(ridge_trials(n=30, noise=0.012, seed=5), SPACE, seed_noise=0.012)
    path = fit.save(tmp_path / "fit.json")
    assert json.loads(path.read_text())["surface_seed_noise"] == 0.012
    loaded = ScalingFit.load(path)
    assert loaded.surface.seed_noise == 0.012
    np.testing.assert_allclose(loaded.surface.posterior(0.2, [0.5, 0.9], 0.7), fit.surface.posterior(0.2, [0.5, 0.9], 0.7),
                               rtol=1e-9)
    np.testing.assert_allclose(loaded.predict([0.1, 0.3]).d.upper, fit.predict([0.1, 0.3]).d.upper, rtol=1e-9)


def test_cli_fit_uses_the_noise_fidelity_measured(tmp_path, capsys):
    from tinyscale.cli import main
    from tinyscale.evaluate.fidelity import save_fidelity, summarize

    trials = ridge_trials(n=24, noise=0.012, seed=5)
    study = write_study(tmp_path / "s", trials)
    assert main(["fit", str(study), "--noise", "measured"]) == 2
    assert "tinyscale fidelity" in capsys.readouterr().err
    assert main(["fit", str(study)]) == 0  # auto, nothing measured: inferred
    assert "the seed noise it infers" in capsys.readouterr().out
    brief = {t.number: t.accuracy for t in trials}
    c = {t.number: t.ratio for t in trials}
    long = {n: a + 0.05 for n, a in list(brief.items())[:6]}
    groups = {0: (brief[0], brief[0] + 0.02), 1: (brief[1], brief[1] - 0.02)}  # sigma = 0.02 / sqrt(2)
    fidelity = summarize(brief, long, groups, c)
    save_fidelity(fidelity, study)
    assert main(["fit", str(study)]) == 0
    out = capsys.readouterr().out
    assert "fixed at the measured seed noise" in out
    # The surface's own ranking of the check's recipes, beside the single brief runs'.
    from tinyscale.evaluate.fidelity import model_agreement

    agreement = model_agreement(fidelity, RecipeSolver.load(study).fit.trial_accuracy())
    assert agreement.n == 6 and agreement.rho_brief == pytest.approx(fidelity.rho)
    assert (f"surface    the accuracy surface ranks the 6 recipes of the check at Spearman ρ = {agreement.rho:.2f} "
            f"against their long runs (their single brief runs: ρ = {fidelity.rho:.2f})") in out
    assert main(["fit", str(study), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["surface_agreement"] == pytest.approx(
        {"rho": agreement.rho, "rho_brief": agreement.rho_brief, "n": 6})
    assert RecipeSolver.load(study).fit.surface.seed_noise == pytest.approx(fidelity.sigma) == pytest.approx(0.02 / math.sqrt(2))
    assert main(["fit", str(study), "--noise", "inferred", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["diagnostics"]["surface"]["noise"] == "inferred"
    assert main(["fit", str(study), "--method", "pareto", "--noise", "measured"]) == 2
    assert "--method surface" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_surface_ranks_the_trials_truth_better_than_their_single_noisy_runs(seed):
    # Each trial is one noisy run (3 points of seed noise) of a known accuracy; the surface, told
    # the noise, pools neighbouring trials, so its posterior mean at the trials must rank their
    # true accuracies better than the runs themselves do: what `tinyscale fit` reports against
    # the fidelity check's long runs.
    from tinyscale.evaluate.fidelity import spearman

    truth = [t.accuracy for t in ridge_trials(n=30, noise=0.0, seed=seed)]
    runs = ridge_trials(n=30, noise=0.03, seed=seed)
    predicted = fit_scaling(runs, SPACE, seed_noise=0.03).trial_accuracy()
    assert sorted(predicted) == [t.number for t in runs]
    surface_rho = spearman([predicted[t.number] for t in runs], truth)
    single_rho = spearman([t.accuracy for t in runs], truth)
    assert surface_rho > single_rho + 0.015, (surface_rho, single_rho)


def test_the_pareto_method_has_no_trial_accuracies():
    assert fit_scaling(synthetic_trials(seed=1), CONFIG, method="pareto", k=10).trial_accuracy() == {}


def edge_trials(seed: int, n: int = 24, noise: float = 0.01):
    """Sampled recipes whose accuracy peaks at r = 1 (the top of the sampled range) at every c:
    at the window's low end, r = 1 needs narrower networks than any trial used."""
    rng = np.random.default_rng(seed)
    trials = []
    for i, rec in enumerate(sample_recipes(replace(SPACE, seed=seed + 3), n)):
        c = ratio(rec)
        acc = 0.85 + 0.01 * math.log(c) - 0.25 * math.log(rec.r) ** 2 - 0.15 * math.log(rec.d / d_best(c)) ** 2
        trials.append(make_trial(i, rec.r, rec.w, rec.d, acc + noise * rng.standard_normal(), SPACE))
    return trials


@pytest.mark.parametrize("seed", [0, 2])
def test_a_ridge_held_by_the_narrowest_explored_width_says_so(seed, tmp_path):
    from tinyscale.fit.solve import NoteKind

    trials = edge_trials(seed)
    fit = fit_scaling(trials, SPACE, seed_noise=0.01)
    w_lo = min(t.recipe.w for t in trials)
    assert fit.surface.w_range[0] == w_lo
    limited = fit.ridge.c[fit.ridge.width_limit == -1]
    assert limited.size >= 2 and np.all(limited < 0.1) and not np.any(fit.ridge.width_limit == 1)
    solver = RecipeSolver(fit)
    low = solver.solve(0.0625)
    assert low.recipe.r < 0.9  # the truth is r = 1; the ridge stops where the explored widths do
    (text,) = low.notes_of(NoteKind.WIDTH_LIMITED)
    assert "narrower network than any trial" in text and f"w={w_lo:.3g}" in text
    assert solver.solve(0.25).notes_of(NoteKind.WIDTH_LIMITED) == ()  # r = 1 is reachable there
    # The flags persist; a fit saved before them reads as unlimited.
    loaded = ScalingFit.load(fit.save(tmp_path / "fit.json"))
    np.testing.assert_array_equal(loaded.ridge.width_limit, fit.ridge.width_limit)
    payload = json.loads((tmp_path / "fit.json").read_text())
    del payload["ridge"]["width_limit"]
    assert not ScalingFit.from_dict(payload).ridge.width_limit.any()


def test_a_ridge_inside_the_explored_widths_is_not_flagged(ridge_fit):
    assert not ridge_fit.ridge.width_limit.any()
