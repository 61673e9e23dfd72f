"""The run-time forecast (tinyscale.study.timing): a line through a study's measured run times
in log c, and how long a command's runs have left, scaled by what its finished runs took."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from tinyscale.study.timing import Forecast, RunTimeModel, duration


def _run(c, steps=100, start_step=0, device="cpu", state="completed", eval_seconds=None, **kw):
    """A completed run whose step takes 0.02 c^0.5 s and whose evaluation 3 c^0.25 s."""
    trained = steps - start_step
    fields = dict(ratio=c, steps=steps, start_step=start_step, device=device, state=state,
                  train_seconds=trained * 0.02 * c ** 0.5,
                  eval_seconds=3 * c ** 0.25 if eval_seconds is None else eval_seconds)
    return SimpleNamespace(**{**fields, **kw})


def test_the_model_recovers_a_known_power_law_from_the_runs_of_one_device_kind():
    runs = [_run(c) for c in (0.05, 0.1, 0.3, 0.6)] + [_run(0.2, steps=300, start_step=100)]
    # Runs that cannot say anything, or say it of another device, are left out.
    runs += [_run(0.5, device="cuda:0", train_seconds=1.0), _run(0.5, state="failed"),
             _run(0.5, train_seconds=None), _run(0.5, train_seconds=float("nan"))]
    model = RunTimeModel.fit(runs, "cpu")
    assert model.runs == 5 and model.device == "cpu"
    assert model.step[1] == pytest.approx(0.5, abs=1e-9) and math.exp(model.step[0]) == pytest.approx(0.02)
    assert model.evaluation[1] == pytest.approx(0.25, abs=1e-9)
    # A 3,600-step run at c = 1/4: 3,600 x 0.02 x 0.5 s of training and 3 x 0.25^0.25 s of evaluation.
    assert model.seconds(0.25, 3600) == pytest.approx(36.0 + 3 * 0.25 ** 0.25)
    # The GPU's runs are a model of their own (one run is too few), as are runs of one c alone.
    assert RunTimeModel.fit(runs, "cuda") is None and RunTimeModel.fit(runs, "cuda:1") is None
    flat = RunTimeModel.fit([_run(0.3), _run(0.3), _run(0.3)], "cpu")
    assert flat.step[1] == 0.0 and flat.seconds(0.9, 100) == pytest.approx(_run(0.3).train_seconds
                                                                             + _run(0.3).eval_seconds)
    assert RunTimeModel.fit(runs[:2], "cpu") is None  # fewer than MIN_RUNS


def test_the_forecast_scales_by_what_the_finished_runs_took():
    forecast = Forecast({"a": 600.0, "b": 600.0, "c": 1200.0}, slots=2)
    assert forecast.upfront() == "about 20 min"  # 2,400 s over 2 workers
    forecast.finished("a", 1200.0)  # twice as slow as foreseen: a busy machine, say
    assert forecast.seconds_left() == pytest.approx(2 * 1800 / 2) and forecast.words() == "about 30 min left"
    forecast.finished("a", 5.0)  # a run is counted once
    assert forecast.words() == "about 30 min left"
    forecast.finished("b", None)  # finished without a time (failed): it is done, the speed unchanged
    assert forecast.words() == "about 20 min left"
    forecast.finished("c", 2400.0)
    assert forecast.words() == ""  # nothing left to foresee
    # Without a model only finished runs tell the speed.
    blind = Forecast({k: 1.0 for k in "abcd"}, slots=1, modelled=False)
    assert blind.upfront() == "" and blind.words() == ""
    blind.finished("a", 3600.0)
    assert blind.words() == "about 3 h left"


@pytest.mark.parametrize("seconds, words", [(20, "under a minute"), (89, "about 1 min"), (3599, "about 1 h"),
                                            (7800, "about 2 h 10 min"), (36_000, "about 10 h")])
def test_durations_read_as_a_person_would_say_them(seconds, words):
    assert duration(seconds) == words
