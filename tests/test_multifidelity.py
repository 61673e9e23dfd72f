"""The accuracy surface across rungs (tinyscale.fit.multifidelity, `tinyscale fit --from-rungs all`):
on runs whose brief length is biased against depth and whose long length is not, its ridge is
the long runs' one; the option on the command line, its errors, and its place in fit.json."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import numpy as np
import pytest
from _synthetic_halving import CFG, S0, SyntheticExecutor, observed, true_shape

from tinyscale.cli import main
from tinyscale.fit.gp import ScalingFit, fit_scaling
from tinyscale.fit.report import format_fit
from tinyscale.fit.gpmodels import expected_jitter, state_json
from tinyscale.fit.multifidelity import MultiFidelitySurface, RunFidelity
from tinyscale.fit.surface import AccuracySurface
from tinyscale.space.cost import cost, ratio
from tinyscale.space.width import solve_width
from tinyscale.study.driver import run_study
from tinyscale.study.store import Study
from tinyscale.study.trial import Trial

C_GRID = (0.08, 0.16, 0.32, 0.64)


def _run(number: int, rung: int, r: float, w: float, d: float) -> Trial:
    recipe = CFG.recipe(r, w, d)
    steps = S0 * CFG.eta**rung
    c = cost(recipe)
    return Trial(number=number, recipe=recipe, state="completed", macs=c.macs, params=c.params, ratio=ratio(recipe),
                 accuracy=observed(recipe, steps, seed=number), steps=steps, rung=rung)


@pytest.fixture(scope="module")
def rung_runs() -> list[Trial]:
    """30 recipes spread over the window at rung 0 (10 steps: strongly biased against depth),
    every third of them at rung 1 (30 steps) and every ninth at rung 2 (90 steps: nearly the
    truth, best at d = 1), as a halving study's runs."""
    rng = random.Random(7)
    recipes: list[tuple[float, float, float]] = []
    while len(recipes) < 30:
        c = math.exp(rng.uniform(math.log(0.06), math.log(0.7)))
        r, d = math.exp(rng.uniform(math.log(0.5), 0.0)), math.exp(rng.uniform(math.log(0.35), math.log(1.5)))
        try:
            w = solve_width(c, r, d, rules=CFG.rules, base_resolution=CFG.base_resolution,
                            num_classes=CFG.num_classes).recipe.w
        except ValueError:  # no width reaches c at this (r, d)
            continue
        recipes.append((r, w, d))
    return [_run(n, rung, *recipes[n]) for rung, every in ((0, 1), (1, 3), (2, 9)) for n in range(0, 30, every)]


def _ridge_shape(surface) -> tuple[float, np.ndarray]:
    """Mean true shape (0 is best) of the surface's ridge recipes at C_GRID, and the ridge's d."""
    with expected_jitter():
        ridge = surface.ridge(CFG, C_GRID, samples=16)
    return float(np.mean([true_shape(CFG.recipe(float(r), 1.0, float(d))) for r, d in zip(ridge.r, ridge.d)])), ridge.d


def _one_rung(runs: list[Trial], rung: int) -> AccuracySurface:
    at = [t for t in runs if t.rung == rung]
    return AccuracySurface.fit([t.ratio for t in at], [t.recipe.r for t in at], [t.recipe.d for t in at],
                               [t.recipe.w for t in at], [t.accuracy for t in at])


def test_across_rungs_the_ridge_is_the_long_runs_not_the_brief_runs_bias(rung_runs):
    surface = MultiFidelitySurface.fit([t.ratio for t in rung_runs], [t.recipe.r for t in rung_runs],
                                       [t.recipe.d for t in rung_runs], [t.recipe.w for t in rung_runs],
                                       [t.accuracy for t in rung_runs], [t.rung for t in rung_runs])
    assert surface.fidelity.target == surface.fidelity.top == 2 and surface.fidelity.read == [0, 1, 2]
    across, across_d = _ridge_shape(surface)
    brief, brief_d = _ridge_shape(_one_rung(rung_runs, 0))
    # Rung 0 alone (the many brief runs) is pulled to shallow networks by its bias (its optimum
    # is d = 0.72); the surface across rungs reads the same runs at the top length, where the
    # truth's best depth is 1.
    assert np.mean(np.log(brief_d)) < -0.2, brief_d
    assert np.all(np.abs(np.log(across_d)) < 0.15), across_d
    assert across > brief + 0.02, (across, brief)
    # What it predicts at the top rung follows the long runs: at rung 2's recipes, nearer to their
    # accuracy than to the same recipes' brief runs.
    top = [t for t in rung_runs if t.rung == 2]
    brief_of = {t.number: t.accuracy for t in rung_runs if t.rung == 0}
    predicted = surface.accuracy([t.ratio for t in top], [t.recipe.r for t in top], [t.recipe.d for t in top])
    long_error = np.abs(predicted - [t.accuracy for t in top])
    assert np.mean(long_error) < 0.5 * np.mean(np.abs(predicted - [brief_of[t.number] for t in top]))


def test_runs_of_several_rungs_are_fitted_across_rungs_or_refused(rung_runs):
    with pytest.raises(ValueError, match="runs of rungs 0, 1, 2"):
        fit_scaling(rung_runs, CFG)  # one-rung fit of mixed lengths: refused, not silently mixed
    with pytest.raises(ValueError, match="--from-rungs all is for a study that trains in rungs"):
        fit_scaling(rung_runs, replace(CFG, schedule="uniform"), from_rungs="all")
    with pytest.raises(ValueError, match="--from-rungs all is for --method surface"):
        fit_scaling(rung_runs, CFG, method="pareto", from_rungs="all")
    with pytest.raises(ValueError, match="from_rungs must be one of fit, all"):
        fit_scaling(rung_runs, CFG, from_rungs="every")
    # Runs of rung 0 only: the one-rung surface, whatever was asked.
    only_brief = fit_scaling([t for t in rung_runs if t.rung == 0], CFG, from_rungs="all")
    assert type(only_brief.surface) is AccuracySurface and only_brief.rungs == (0,)


def test_botorchs_multifidelity_gp_fits_and_loads_without_refitting(rung_runs):
    # SingleTaskMultiFidelityGP with its linear truncated kernel: not the default kind (the ARD
    # GP measured better), kept as an option and saved like it.
    kind = "linear-truncated"
    runs = [t for t in rung_runs if t.number < 18]  # 18 + 6 + 2 runs: enough to fit, quick
    columns = ([t.ratio for t in runs], [t.recipe.r for t in runs], [t.recipe.d for t in runs],
               [t.recipe.w for t in runs], [t.accuracy for t in runs])
    surface = MultiFidelitySurface.fit(*columns, [t.rung for t in runs], kind=kind)
    saved = json.loads(json.dumps({"state": state_json(surface.model), "fidelity": surface.fidelity.to_dict()}))
    back = MultiFidelitySurface.from_state(*columns, saved["state"], RunFidelity.from_dict(saved["fidelity"]))
    grid = (np.full(5, 0.2), np.linspace(0.5, 1.0, 5), np.linspace(0.4, 1.4, 5))
    assert back.accuracy(*grid) == pytest.approx(surface.accuracy(*grid), abs=1e-9)
    diagnostics = back.diagnostics()
    assert len(diagnostics.lengthscales) == 3 and all(v > 0 for v in diagnostics.lengthscales)
    assert diagnostics.n_trials == len(runs) and 0 <= diagnostics.loo_coverage <= 1


@pytest.mark.parametrize("damage, words", [
    ({"rungs": [0, 1, True]}, "whole number"),
    ({"top": 1}, "top the highest rung"),
    ({"target": 3}, "target rung"),
    ({"kind": "spline"}, "must be one of"),
])
def test_a_damaged_fidelity_is_refused(damage, words):
    good = {"kind": "linear-truncated", "rungs": [0, 0, 1, 2], "top": 2, "target": 2}
    assert RunFidelity.from_dict(good).read == [0, 1, 2]
    with pytest.raises(ValueError, match=words):
        RunFidelity.from_dict({**good, **damage})


@pytest.fixture(scope="module")
def halving_study(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mf") / "h"
    run_study(directory, replace(CFG, seed=11), trials=18, executor=SyntheticExecutor(), progress=False).close()
    return directory


def test_cli_fit_reads_every_rung_by_default_and_saves_which(halving_study, capsys):
    with Study.open(halving_study) as study:
        runs, fit_trials, fit_rung = study.runs("completed"), study.fit_trials(), study.fit_rung()
    read = sorted({t.rung for t in runs})
    assert len(read) > 1
    capsys.readouterr()
    # --from-rungs fit: the fit rung's runs only, as before the option (with the Pareto method, a
    # quick fit that reads one rung whatever the study holds).
    assert main(["fit", str(halving_study), "--from-rungs", "fit", "--method", "pareto", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rungs_read"] == [fit_rung] == [out["ridge_rung"]] and out["fit_rung"] == fit_rung
    assert {row["number"] for row in out["trials"]} == {t.number for t in fit_trials}
    saved = json.loads((halving_study / "fit.json").read_text())
    assert saved["rungs"] == [fit_rung] and saved["surface_fidelity"] is None
    # The default on a study in rungs: every run of every rung, the ridge read at the top one.
    assert main(["fit", str(halving_study), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rungs_read"] == read and out["ridge_rung"] == read[-1]
    assert sorted((row["number"], row["rung"]) for row in out["trials"]) == sorted((t.number, t.rung) for t in runs)
    saved = json.loads((halving_study / "fit.json").read_text())
    assert saved["rungs"] == read and saved["surface_fidelity"]["target"] == read[-1]
    # The saved fit rebuilds the same surface without refitting (its ridge's accuracies are the
    # posterior's), nothing the study holds is unseen, and the commands that read it work.
    fit = ScalingFit.load(halving_study)
    assert isinstance(fit.surface, MultiFidelitySurface) and fit.rungs == tuple(read)
    assert len(fit.data.numbers) == len(runs) and fit.surface.fidelity.rungs == tuple(sorted(t.rung for t in runs))
    assert f"its ridge is read at rung {read[-1]} ({S0 * CFG.eta ** read[-1]} steps)" in format_fit(fit)
    ridge = fit.ridge
    assert fit.surface.accuracy(ridge.c, ridge.r, ridge.d) == pytest.approx(ridge.accuracy, abs=1e-9)
    assert fit.unseen(fit_trials) == [] and fit.unseen(runs) == []
    assert main(["recipe", str(halving_study), "--ratio", "0.25", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["achieved"] == pytest.approx(0.25, rel=0.05)
    # What the recipe rests on: no fidelity check, and the stop rule's rho between the rungs.
    with Study.open(halving_study) as study:
        rho = study.rung_summary()[0].agreement.rho
    assert answer["fidelity_verdict"] is None
    assert answer["stop_rule"].startswith(f"The study's stop rule: rung 0 ({S0} steps) against rung 1: ρ {rho:+.2f}")
    assert not any("not seen" in note for note in answer["notes"])
    # What an exported recipe.json records: each recipe once, and every run with its rung.
    from tinyscale.assistant.answers import export_provenance
    from tinyscale.assistant.fit_source import load_fit

    source = load_fit(halving_study, fit_trials, CFG)
    provenance = export_provenance(halving_study, source.solver.solve(0.25), source)["fit"]
    assert sorted(provenance["models"]) == sorted({t.number for t in runs})
    assert sorted(map(tuple, provenance["runs"])) == sorted((t.number, t.rung) for t in runs)
    assert provenance["ridge_rung"] == read[-1]


def test_cli_rungs_all_on_a_uniform_study_is_a_one_line_error(tmp_path, capsys):
    directory = tmp_path / "u"
    run_study(directory, replace(CFG, schedule="uniform"), trials=6, executor=SyntheticExecutor(),
              progress=False).close()
    assert main(["fit", str(directory), "--from-rungs", "all"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--from-rungs all is for a study that trains in rungs" in err and len(err.splitlines()) == 1
    assert not (directory / "fit.json").exists()


def test_cli_rungs_all_with_measured_noise_is_a_one_line_error(halving_study, capsys):
    assert main(["fit", str(halving_study), "--from-rungs", "all", "--noise", "measured"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--noise measured is for --from-rungs fit" in err and len(err.splitlines()) == 1


def test_the_accuracy_tab_of_a_fit_across_rungs_draws_the_fit_rung_s_runs_with_their_own_rows(tmp_path):
    """The tab draws the fit rung's runs; a fit across rungs ranked every run, a recipe once per
    rung: each drawn run gets its own rung's row, and the recipes the fit read at lower rungs
    only are not "used trials the study does not hold"."""
    from tinyscale.assistant.answers import accuracy_selection
    from tinyscale.assistant.fit_source import load_fit

    directory, config = tmp_path / "h", replace(CFG, seed=11)
    run_study(directory, config, trials=18, executor=SyntheticExecutor(), progress=False).close()
    with Study.open(directory) as study:
        fit_trials, runs = study.fit_trials(), study.runs("completed")
    source = load_fit(directory, fit_trials, config)
    assert len(source.solver.fit.rungs) > 1 and len(fit_trials) < len({t.number for t in runs})
    selection, note = accuracy_selection(source, fit_trials)
    assert note is None
    rows = {(row["number"], row["rung"]): row for row in source.solver.fit.selection_rows}
    assert sorted((e.trial.number, e.trial.rung) for e in selection.entries) == sorted(
        (t.number, t.rung) for t in fit_trials)
    for e in selection.entries:
        assert (e.rank, e.selected) == (rows[e.trial.number, e.trial.rung]["rank"],
                                         rows[e.trial.number, e.trial.rung]["selected"])
    # A run the study no longer holds as completed is still named.
    selection, note = accuracy_selection(source, fit_trials[1:])
    assert note == (f"the fit used trial(s) {fit_trials[0].number}, which the study does not hold as completed")


def test_the_apps_fit_of_a_study_in_rungs_reads_every_rung_as_tinyscale_fit_does(tmp_path, capsys):
    from tinyscale.assistant.fit_source import fit_models, load_fit, plotted_runs

    directory, config = tmp_path / "h", replace(CFG, seed=11)
    run_study(directory, config, trials=18, executor=SyntheticExecutor(), progress=False).close()
    with Study.open(directory) as study:
        runs, fit_trials, study_runs = study.runs("completed"), study.fit_trials(), study.runs()
    assert len({t.rung for t in runs}) > 1 and len(fit_trials) < len(runs)
    # No saved fit: the page fits what `tinyscale fit` reads by default, every run of every rung.
    fresh = load_fit(directory, fit_trials, config)
    assert not fresh.saved and fresh.solver.fit.rungs == tuple(sorted({t.rung for t in runs}))
    assert fresh.n_models == len(runs) and f"from {len(runs)} completed runs of every rung" in fresh.note
    assert not (directory / "fit.json").exists()
    # The r/w/d plot draws every recipe that fit read, once, at its longest run, and marks all of
    # them as the fit's models (the fit rung's runs alone would leave out the recipes never
    # promoted that far).
    drawn = plotted_runs(fresh, fit_trials, study_runs)
    longest = {n: max(t.rung for t in runs if t.number == n) for n in {t.number for t in runs}}
    assert sorted((t.number, t.rung) for t in drawn) == sorted(longest.items())
    assert {t.number for t in fit_models(fresh, drawn)} == set(fresh.solver.fit.data.numbers) == set(longest)
    assert len(fit_models(fresh, fit_trials)) < len(longest)
    # A uniform study (no runs) draws the trials it was given; so does a fit of the fit rung alone.
    assert plotted_runs(fresh, fit_trials, None) == fit_trials
    assert main(["fit", str(directory), "--from-rungs", "fit", "--method", "pareto"]) == 0
    one_rung = load_fit(directory, fit_trials, config)
    assert one_rung.saved and plotted_runs(one_rung, fit_trials, study_runs) == fit_trials
    # A saved fit across rungs is stale once any rung gains a run, even one the fit rung lacks.
    assert main(["fit", str(directory)]) == 0
    assert load_fit(directory, fit_trials, config).note is None
    run_study(directory, trials=24, resume=True, executor=SyntheticExecutor(), progress=False).close()
    with Study.open(directory) as study:
        newer = len(study.runs("completed")) - len(runs)
    assert newer > 0
    note = load_fit(directory, fit_trials, config).note
    assert note is not None and f"predates {newer} newer completed run(s)" in note
    # `recipe` says the same, counting runs of every rung, not the fit rung's trials alone.
    capsys.readouterr()
    assert main(["recipe", str(directory), "--ratio", "0.25"]) == 0
    stale = f"the study has {newer} completed run(s) the fit has not seen"
    assert stale in capsys.readouterr().err
    # So do `export` and `compare`, before the compare trains the saved fit's recipe.
    assert main(["export", str(directory), "--ratio", "0.25", "--out", str(tmp_path / "x"), "--format",
                 "safetensors"]) == 0
    assert f"note     {stale}" in capsys.readouterr().out
    assert main(["compare", str(directory), "--strategies", "gp", "--ratios", "0.25", "--steps", "2",
                 "--no-progress"]) == 0
    assert stale in capsys.readouterr().err
    assert main(["fit", str(directory)]) == 0  # refitted: the recipe may have changed, so the cells start anew
    assert main(["compare", str(directory), "--strategies", "gp", "--ratios", "0.25", "--steps", "2", "--no-progress",
                 "--restart"]) == 0
    assert "has not seen" not in capsys.readouterr().err
