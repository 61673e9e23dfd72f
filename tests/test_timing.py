"""The run-time forecast (tinyscale.study.timing): a plane through a study's measured run times
in (log c, log d, log r), how long a command's runs have left, scaled by what its finished runs
took, and how long a study's budget has left."""

from __future__ import annotations

import json
import math
import time
from types import SimpleNamespace

import pytest

from tinyscale.study.timing import Forecast, RunTimeModel, budget_left, duration, step_exponent


def _run(c, r=1.0, d=1.0, steps=100, start_step=0, device="cpu", state="completed", **kw):
    """A completed run whose step takes 0.02 c^0.5 d^0.3 r^0.6 s and whose evaluation 3 c^0.25 s."""
    fields = dict(ratio=c, recipe=SimpleNamespace(r=r, d=d), steps=steps, start_step=start_step, device=device,
                  state=state, train_seconds=(steps - start_step) * 0.02 * c ** 0.5 * d ** 0.3 * r ** 0.6,
                  eval_seconds=3 * c ** 0.25)
    return SimpleNamespace(**{**fields, **kw})


def test_the_model_recovers_a_known_power_law_from_the_runs_of_one_device_kind():
    runs = [_run(c, r, d) for c, r, d in ((0.05, 0.5, 0.4), (0.1, 1.0, 0.4), (0.3, 0.7, 1.2), (0.6, 0.9, 0.8))]
    runs += [_run(0.2, 0.6, 1.5, steps=300, start_step=100)]  # continued from a trunk: 200 steps trained
    # Runs that cannot say anything, or say it of another device, are left out.
    runs += [_run(0.5, device="cuda:0", train_seconds=1.0), _run(0.5, state="failed", train_seconds=9.0),
             _run(0.5, train_seconds=None), _run(0.5, train_seconds=float("nan"))]
    model = RunTimeModel.fit(runs, "cpu")
    assert model.runs == 5 and model.device == "cpu"
    assert model.step == pytest.approx((math.log(0.02), 0.5, 0.3, 0.6), abs=1e-9)
    assert model.evaluation == pytest.approx((math.log(3), 0.25, 0.0, 0.0), abs=1e-9)
    # A 3,600-step run at c = 1/4, r = 0.8, d = 0.5: its steps, then its evaluation.
    assert model.seconds(0.25, 0.8, 0.5, 3600) == pytest.approx(
        3600 * 0.02 * 0.25 ** 0.5 * 0.5 ** 0.3 * 0.8 ** 0.6 + 3 * 0.25 ** 0.25)
    # The GPU's runs are a model of their own (one run is too few).
    assert RunTimeModel.fit(runs, "cuda") is None and RunTimeModel.fit(runs, "cuda:1") is None
    assert RunTimeModel.fit(runs[:2], "cpu") is None  # fewer than MIN_RUNS
    # An input that does not vary over the runs is left out (coefficient 0), not guessed at.
    at_full_r = RunTimeModel.fit([_run(c, 0.7, d) for c, d in ((0.1, 0.4), (0.2, 1.0), (0.4, 0.6))], "cpu")
    assert at_full_r.step[3] == 0.0 and at_full_r.step[1:3] == pytest.approx((0.5, 0.3), abs=1e-9)
    one_recipe = RunTimeModel.fit([_run(0.3), _run(0.3), _run(0.3)], "cpu")
    assert one_recipe.step[1:] == (0.0, 0.0, 0.0)
    assert one_recipe.seconds(0.9, 0.5, 1.4, 100) == pytest.approx(_run(0.3).train_seconds + _run(0.3).eval_seconds)


def test_the_step_exponent_is_c_s_alone_what_an_ordered_clock_charges():
    runs = [_run(c, d=1.0, r=1.0) for c in (0.05, 0.1, 0.3, 0.6)]  # 0.02 c^0.5 s a step at d = r = 1
    assert step_exponent(runs) == (pytest.approx(0.5, abs=1e-9), 4)
    assert step_exponent(runs[:2]) is None and step_exponent([_run(0.3)] * 4) is None  # too few; c the same


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


def test_a_job_resumed_part_way_is_forecast_for_the_steps_it_has_left(tmp_path):
    from tinyscale.space.cost import ratio
    from tinyscale.space.recipe import Recipe
    from tinyscale.study.timing import forecast_jobs
    from tinyscale.train.heartbeat import heartbeat_path, write_heartbeat

    runs = [_run(c, r, d) for c, r, d in ((0.05, 0.5, 0.4), (0.1, 1.0, 0.4), (0.3, 0.7, 1.2), (0.6, 0.9, 0.8))]
    model = RunTimeModel.fit(runs, "cpu")
    recipe = Recipe(0.8, 0.6, 0.7, base_resolution=32)
    jobs = [SimpleNamespace(key=k, recipe=recipe, train=SimpleNamespace(steps=1000), progress=str(tmp_path / f"{k}.pt"))
            for k in ("fresh", "resumed", "other length")]
    write_heartbeat(heartbeat_path(jobs[1].progress), 750, 1000)  # killed at step 750 of 1,000
    write_heartbeat(heartbeat_path(jobs[2].progress), 500, 2000)  # another run's: not this job's
    forecast = forecast_jobs(runs, jobs, None)
    whole = model.seconds(ratio(recipe), recipe.r, recipe.d, 1000)
    assert forecast.predicted == {k: pytest.approx(whole) for k in ("fresh", "resumed", "other length")}
    rest = model.seconds(ratio(recipe), recipe.r, recipe.d, 250)  # its last 250 steps, then its evaluation
    assert forecast.seconds_left() == pytest.approx(2 * whole + rest)
    # It reports every attempt's seconds when it ends: the scale compares it whole.
    forecast.finished("resumed", 2 * whole)
    assert forecast.seconds_left() == pytest.approx(2 * (2 * whole))


@pytest.mark.parametrize("seconds, words", [(20, "under a minute"), (89, "about 1 min"), (3599, "about 1 h"),
                                            (7800, "about 2 h 10 min"), (36_000, "about 10 h")])
def test_durations_read_as_a_person_would_say_them(seconds, words):
    assert duration(seconds) == words


def test_a_study_s_budget_left_is_the_first_budget_to_run_out_at_its_runs_speed():
    finished = [_run(0.3, train_seconds=10.0, eval_seconds=2.0), _run(0.1, train_seconds=10.0, eval_seconds=2.0)]
    # 200 steps took 24 s: 0.12 s a step-unit, 12 s a run, over 2 workers.
    assert budget_left(finished, 2, step_units=1000) == pytest.approx(60.0)
    # Runs that measured nothing of the speed are not read (the same rule as the plane's: `timed_runs`).
    unmeasured = [_run(0.2, state="failed", train_seconds=99.0), _run(0.2, train_seconds=None),
                  _run(0.2, train_seconds=float("inf")), _run(0.2, steps=100, start_step=100, train_seconds=5.0)]
    assert budget_left(finished + unmeasured, 2, step_units=1000) == pytest.approx(60.0)
    assert budget_left(finished, 2, trials=5) == pytest.approx(30.0)
    assert budget_left(finished, 2, step_units=1000, trials=5, seconds=20.0) == pytest.approx(20.0)
    assert budget_left(finished, 2, step_units=-50) == 0.0  # spent (the runs in flight count as spent)
    assert budget_left(finished, 2) is None  # no budget given
    assert budget_left([], 2, step_units=1000) is None  # nothing measured yet
    assert budget_left([], 2, step_units=1000, seconds=90.0) == 90.0  # minutes need no measurement


def test_a_study_s_bar_says_how_long_is_left(tmp_path, capsys):
    from dataclasses import replace

    from _synthetic_halving import CFG, SyntheticExecutor
    from tinyscale.study.driver import run_study

    class Unhurried(SyntheticExecutor):  # runs that take long enough for the bar to show each one
        def next_outcome(self):
            time.sleep(0.2)
            return super().next_outcome()

    run_study(tmp_path / "s", replace(CFG, schedule="uniform"), trials=3, executor=Unhurried(),
              progress=True).close()
    err = capsys.readouterr().err
    # 0.01 s of training and evaluation a run: under a minute while trials are left, nothing once spent.
    assert "failed 0; under a minute left" in err.split("2/3")[-1].split("3/3")[0]
    assert err.rstrip().endswith("failed 0]")


def test_a_study_in_rungs_with_a_recipe_target_says_how_long_its_planned_rungs_take(tmp_path, capsys):
    from _cli import cli
    from _synthetic_halving import CFG, S0, SyntheticExecutor
    from tinyscale.study.driver import run_study
    from tinyscale.study.store import Study
    from tinyscale.study.timing import study_time_left, timed_runs

    with pytest.raises(KeyboardInterrupt):  # 18 recipes asked for; killed after 8 runs
        run_study(tmp_path / "s", CFG, trials=18, executor=SyntheticExecutor(2, crash_at=8), progress=False)
    with Study.open(tmp_path / "s") as study:
        runs = study.runs()
        left, workers = study_time_left(study)
    # Planned: 18 recipes at rung 0 (10 steps), 6 at rung 1 (30), 2 at rung 2 (90): 540 step-units.
    spent = sum(S0 * 3 ** t.rung for t in runs if t.state in ("completed", "failed"))
    finished = timed_runs(runs)
    per_unit = sum(t.train_seconds + t.eval_seconds for t in finished) / sum(t.steps for t in finished)
    assert workers == 2 and 0 < spent < 540
    assert left == pytest.approx((540 - spent) * per_unit / 2)
    # A run interrupted part-way continues from its progress: what its heartbeat says it trained is spent.
    from tinyscale.storage import progress_path
    from tinyscale.train.heartbeat import heartbeat_path, write_heartbeat

    begun = next(t for t in runs if t.state not in ("completed", "failed"))
    steps = S0 * 3 ** begun.rung
    write_heartbeat(heartbeat_path(progress_path(tmp_path / "s", begun.number, begun.rung)), steps // 2, steps)
    with Study.open(tmp_path / "s") as study:
        assert study_time_left(study)[0] == pytest.approx((540 - spent - steps // 2) * per_unit / 2)
    code, out, _ = cli(capsys, "trials", tmp_path / "s")
    assert code == 0 and "left: under a minute" in out


def test_a_uniform_study_s_trial_target_counts_a_run_begun_by_its_heartbeat(tmp_path):
    from dataclasses import replace

    from _synthetic_halving import CFG, S0, SyntheticExecutor
    from tinyscale.storage import progress_path
    from tinyscale.study.driver import run_study
    from tinyscale.study.store import Study
    from tinyscale.study.timing import study_time_left, timed_runs
    from tinyscale.train.heartbeat import heartbeat_path, write_heartbeat

    with pytest.raises(KeyboardInterrupt):  # 8 trials asked for; killed after 3
        run_study(tmp_path / "u", replace(CFG, schedule="uniform"), trials=8, executor=SyntheticExecutor(1, crash_at=3),
                  progress=False)
    with Study.open(tmp_path / "u") as study:
        runs, finished = study.runs(), study.progress().finished
        left = study_time_left(study)[0]
    measured = timed_runs(runs)
    per_run = sum(t.train_seconds + t.eval_seconds for t in measured) / len(measured)
    assert left == pytest.approx((8 - finished) * per_run)
    begun = next(t for t in runs if t.state not in ("completed", "failed"))
    write_heartbeat(heartbeat_path(progress_path(tmp_path / "u", begun.number, 0)), S0 // 2, S0)
    with Study.open(tmp_path / "u") as study:
        assert study_time_left(study)[0] == pytest.approx((8 - finished - 0.5) * per_run)  # half of it trained


def test_trials_says_how_long_an_unfinished_study_has_left_and_a_finished_one_nothing(tmp_path, capsys):
    from _cli import cli
    from _synthetic_halving import CFG, S0, SyntheticExecutor
    from tinyscale.study.driver import run_study

    budget = 60 * S0
    with pytest.raises(KeyboardInterrupt):  # killed part-way through its step budget
        run_study(tmp_path / "s", CFG, budget_steps=budget, executor=SyntheticExecutor(2, crash_at=12), progress=False)
    code, out, _ = cli(capsys, "trials", tmp_path / "s")
    assert code == 0 and "left: under a minute to spend the budget, at the speed of its runs so far on 2 workers" in out
    code, out, _ = cli(capsys, "trials", tmp_path / "s", "--json")
    assert json.loads(out)["seconds_left"] > 0
    run_study(tmp_path / "s", None, resume=True, executor=SyntheticExecutor(1), progress=False).close()
    code, out, _ = cli(capsys, "trials", tmp_path / "s")
    assert code == 0 and "left:" not in out
    code, out, _ = cli(capsys, "trials", tmp_path / "s", "--json")
    assert json.loads(out)["seconds_left"] is None
