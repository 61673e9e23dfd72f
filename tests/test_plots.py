"""The design assistant's figures, built from known library results (no Streamlit)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinyscale.assistant import plots
from tinyscale.space.cost import cost, ratio
from tinyscale.space.recipe import Recipe
from tinyscale.study.trial import Trial

# Published TinyNet-A..E multipliers (reference/scaling.md) and EfficientNet's compound bases.
TINYNET_RWD = {"A": (0.86, 1.0, 1.2), "B": (0.84, 0.75, 1.1), "C": (0.825, 0.54, 0.85),
               "D": (0.68, 0.54, 0.695), "E": (0.475, 0.51, 0.60)}
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # d, w, r


@pytest.fixture(scope="module")
def scene(fitted_study_copies, tmp_path_factory):
    from tinyscale.assistant.answers import curve, efficientnet_curve, slider_stops, tinynets
    from tinyscale.assistant.fit_source import load_fit
    from tinyscale.study.store import Study

    directory = fitted_study_copies(tmp_path_factory.mktemp("plots") / "study")
    with Study.open(directory) as study:
        trials, config = study.trials(), study.config
    source = load_fit(directory, trials, config)
    answers = curve(source.solver, config, points=9)
    stops = slider_stops(answers, steps=12)
    completed = [t for t in trials if t.state == "completed"]
    selected = [t for t in completed if t.number in set(source.solver.fit.data.numbers)]
    current = source.solver.solve(0.2)
    fig = plots.scaling_figure(answers, completed, selected, efficientnet_curve(config, stops), tinynets(config), current)
    return dict(source=source, answers=answers, completed=completed, selected=selected, current=current,
                fig=fig, config=config)


def test_gp_traces_are_the_fit_predictions(scene):
    fit, fig = scene["source"].solver.fit, scene["fig"]
    for axis in ("r", "d"):
        mean = plots.trace(fig, plots.TRACE_GP_MEAN, axis)
        pred = fit.predict(np.asarray(mean.x))
        band = getattr(pred, axis)
        np.testing.assert_allclose(mean.y, band.mean, rtol=1e-9)
        poly = plots.trace(fig, plots.TRACE_GP_BAND, axis)
        n = len(mean.x)
        np.testing.assert_allclose(poly.y[:n], band.upper, rtol=1e-9)
        np.testing.assert_allclose(poly.y[n:], band.lower[::-1], rtol=1e-9)
        assert np.all(np.asarray(poly.y[:n]) >= np.asarray(mean.y)) and np.all(np.asarray(poly.y[n:])[::-1] <= mean.y)
    # The curve spans the window widened on both sides, in increasing c.
    xs = list(plots.trace(fig, plots.TRACE_GP_MEAN, "r").x)
    assert xs == sorted(xs) and xs[0] < scene["config"].window[0] < scene["config"].window[1] < xs[-1]


def test_width_row_is_the_solved_width_meeting_the_target(scene):
    solver, fig = scene["source"].solver, scene["fig"]
    w = plots.trace(fig, plots.TRACE_DERIVED_W, "w")
    for c, wv in zip(w.x, w.y):
        answer = solver.solve(c)
        assert answer.recipe.w == wv
        # The plotted w rebuilds a network whose counted cost brackets the target.
        assert answer.ratio_below * (1 - 1e-12) <= ratio(answer.recipe.with_(w=wv)) <= answer.ratio_above * (1 + 1e-12)


def test_points_are_the_trials_and_the_fit_models(scene):
    fig = scene["fig"]
    for axis in ("r", "w", "d"):
        sampled = plots.trace(fig, plots.TRACE_SAMPLED, axis)
        assert list(sampled.x) == [t.ratio for t in scene["completed"]]
        assert list(sampled.y) == [getattr(t.recipe, axis) for t in scene["completed"]]
        chosen = plots.trace(fig, plots.TRACE_SELECTED, axis)
        data = scene["source"].solver.fit.data
        assert sorted(chosen.x) == pytest.approx(sorted(data.c.tolist()))
        assert sorted(chosen.y) == pytest.approx(sorted(getattr(data, axis).tolist()))
    hover = plots.trace(fig, plots.TRACE_SAMPLED, "r").text[0]
    t0 = scene["completed"][0]
    assert f"r={t0.recipe.r:g}" in hover and f"{t0.recipe.resolution}x{t0.recipe.resolution} px" in hover


def test_efficientnet_curve_follows_the_compound_rule(scene):
    fig = scene["fig"]
    rows = {axis: plots.trace(fig, plots.TRACE_EFFICIENTNET, axis) for axis in ("r", "w", "d")}
    assert len(rows["r"].x) >= 5
    for i, c in enumerate(rows["r"].x):
        r, w, d = rows["r"].y[i], rows["w"].y[i], rows["d"].y[i]
        # One φ for all three: r = 1.15^φ, w = 1.1^φ, d = 1.2^φ.
        phi = math.log(d) / math.log(ALPHA)
        assert math.log(w) / math.log(BETA) == pytest.approx(phi, abs=1e-9)
        assert math.log(r) / math.log(GAMMA) == pytest.approx(phi, abs=1e-9)
        recipe = Recipe(r=r, w=w, d=d, rules="efficientnet", base_resolution=32, num_classes=10)
        assert ratio(recipe) == pytest.approx(c, rel=1e-12)


def test_tinynets_at_their_counted_ratio(scene):
    fig = scene["fig"]
    rows = {axis: plots.trace(fig, plots.TRACE_TINYNET, axis) for axis in ("r", "w", "d")}
    assert list(rows["r"].text) == list(TINYNET_RWD)
    for i, name in enumerate(TINYNET_RWD):
        r, w, d = TINYNET_RWD[name]
        assert (rows["r"].y[i], rows["w"].y[i], rows["d"].y[i]) == (r, w, d)
        assert rows["r"].x[i] == pytest.approx(ratio(Recipe(r=r, w=w, d=d, base_resolution=32, num_classes=10)))


def test_current_target_is_marked_in_every_row(scene):
    fig, current = scene["fig"], scene["current"]
    for axis in ("r", "w", "d"):
        mark = plots.trace(fig, plots.TRACE_TARGET, axis)
        assert list(mark.x) == [pytest.approx(current.achieved)]
        assert list(mark.y) == [getattr(current.recipe, axis)]
    assert any(shape.x0 == pytest.approx(current.achieved) for shape in fig.layout.shapes)
    with pytest.raises(KeyError):
        plots.trace(plots.scaling_figure(scene["answers"]), plots.TRACE_TARGET)


def _trial(number: int, r: float, w: float, d: float, accuracy: float) -> Trial:
    recipe = Recipe(r=r, w=w, d=d, base_resolution=32, num_classes=10)
    c = cost(recipe)
    return Trial(number=number, recipe=recipe, state="completed", macs=c.macs, params=c.params,
                 ratio=ratio(recipe), accuracy=accuracy)


def test_accuracy_figure_front_selected_and_hover():
    from tinyscale.fit.pareto import select

    small, mid, big = (0.5, 0.5, 0.5), (0.75, 0.75, 0.75), (1.0, 1.0, 1.0)
    trials = [
        _trial(0, *small, 0.50),
        _trial(1, *mid, 0.70),
        _trial(2, *mid[:2], 0.8, 0.60),  # dominated by trial 1 (no cheaper, less accurate)
        _trial(3, *big, 0.80),
        _trial(4, *big[:2], 0.9, 0.40),  # dominated by trial 1 (cheaper and more accurate)
    ]
    assert trials[2].macs >= trials[1].macs and trials[4].macs > trials[1].macs and trials[0].macs < trials[1].macs < trials[3].macs
    front = {t.number for t in trials
             if not any(o.macs <= t.macs and o.accuracy >= t.accuracy and (o.macs, o.accuracy) != (t.macs, t.accuracy)
                        for o in trials)}
    assert 4 not in front and {0, 1, 3} <= front
    fig = plots.accuracy_figure(select(trials, k=3))
    line = plots.trace(fig, plots.TRACE_FRONT)
    expected = sorted((t for t in trials if t.number in front), key=lambda t: t.macs)
    assert list(line.x) == [t.macs for t in expected] and list(line.y) == [t.accuracy for t in expected]
    chosen = plots.trace(fig, plots.TRACE_SELECTED)
    others = plots.trace(fig, plots.TRACE_OTHER)
    assert len(chosen.x) == 3 and len(chosen.x) + len(others.x) == len(trials)
    assert trials[4].macs in others.x
    assert any("r=0.75" in text and "front 2" in text for text in others.text + chosen.text)
    assert not any("front 2: front 2" in text for text in others.text + chosen.text)  # the reason says it once
    assert fig.layout.xaxis.type == "log"


def test_trials_the_acquisition_proposed_are_marked():
    from dataclasses import replace

    trials = [_trial(0, 0.5, 0.5, 0.5, 0.5), replace(_trial(1, 0.75, 0.75, 0.75, 0.6), proposed_by="botorch")]
    fig = plots.scaling_figure([], trials)
    sampled = plots.trace(fig, plots.TRACE_SAMPLED, "r")
    assert list(sampled.marker.symbol) == ["circle", plots.PROPOSED_SYMBOL]
    assert "botorch" in sampled.text[1] and "botorch" not in sampled.text[0]


def test_the_rungs_figure_draws_every_run_and_names_the_marked_rung():
    recipe = Recipe(r=0.8, w=0.5, d=0.5, base_resolution=32, num_classes=10)
    runs = [Trial(number=n, state="completed", recipe=recipe, macs=1, params=1, ratio=c, accuracy=a, steps=s, rung=k)
            for n, k, c, a, s in [(0, 0, 0.1, 0.50, 10), (1, 0, 0.2, 0.60, 10), (2, 0, 0.4, 0.55, 10),
                                  (1, 1, 0.2, 0.70, 30), (2, 1, 0.4, 0.72, 30), (2, 2, 0.4, 0.80, 90)]]
    runs.append(Trial(number=3, state="failed", recipe=recipe, macs=1, params=1, ratio=0.3, rung=0))
    fig = plots.rungs_figure(runs, 2, "the ridge")
    markers = {t.name: t for t in fig.data if t.mode == "markers"}
    assert list(markers) == ["rung 0 (10 steps)", "rung 1 (30 steps)", "rung 2 (90 steps) - the ridge"]
    assert [list(markers[name].y) for name in markers] == [pytest.approx(v) for v in ([50, 60, 55], [70, 72], [80])]
    # Each promoted recipe's runs are joined, lowest rung first; the failed run is not drawn.
    lines = sorted([list(t.y) for t in fig.data if t.mode == "lines"], key=len)
    assert lines == [pytest.approx([60, 70]), pytest.approx([55, 72, 80])]
    assert "rung 1 (30 steps) - the fit" in [t.name for t in plots.rungs_figure(runs, 1).data]
