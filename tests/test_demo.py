"""`tinyscale demo`, the README's main job, end to end on generated data (the real run trains on
Fashion-MNIST for minutes; here the demo configuration is swapped for a tiny one)."""

from __future__ import annotations

import pytest

import tinyscale.study.driver
import tinyscale.study.plan
from tinyscale.cli import main
from tinyscale.fit.solve import RecipeSolver
from tinyscale.study.store import Study
from tinyscale.study.trial import StudyConfig


@pytest.fixture
def tiny_demo(monkeypatch):
    # The demo's shape at a tiny size: rungs of 4 / 12 / 36 steps, each the best third of the one below.
    config = StudyConfig(data="generated", base_resolution=32, num_classes=10, steps=4, batch_size=16,
                         window=(0.05, 1.0), seed=0, schedule="halving", eta=3, rungs=2)
    monkeypatch.setattr(tinyscale.study.plan, "demo_config", lambda: config)
    return config


def test_demo_runs_study_fit_and_recipe_table_then_resumes(tiny_demo, tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    budget = 18 * 4 + 6 * 12 + 2 * 36  # 18 recipes at rung 0, 6 promoted (the stop rule's pairs), 2 to the top
    argv = ["demo", "--out", str(out), "--budget-steps", str(budget), "--workers", "1", "--no-app"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    with Study.open(out) as study:
        assert study.config == tiny_demo
        runs = study.runs()
    assert all(t.state in ("completed", "failed") for t in runs)
    assert sum(t.steps for t in runs) <= budget and {t.rung for t in runs} == {0, 1, 2}
    assert "rungs of 4 / 12 / 36 steps" in printed
    solver = RecipeSolver.load(out)
    # The fit is `tinyscale fit`'s default on a study in rungs: every completed run of every rung,
    # the noise inferred (a measured seed noise is of rung 0's runs only; none is measured).
    completed = [t for t in runs if t.state == "completed"]
    assert sorted(solver.fit.data.numbers) == sorted(t.number for t in completed)
    assert solver.fit.rungs == (0, 1, 2) and solver.fit.surface.seed_noise is None
    assert not (out / "seed-noise.json").exists()
    # The table's GP column is the saved fit's answer, not something the command made up.
    for c in ("0.5", "0.25"):
        answer = solver.solve(float(c))
        line = next(line for line in printed.splitlines() if line.startswith(c + " "))
        assert f"r={answer.recipe.r:g} w={answer.recipe.w:g} d={answer.recipe.d:g}" in line
    assert "EfficientNet compound scaling" in printed and "tinyscale app --study" in printed

    # Re-running resumes: nothing is trained again (every run is stored).
    import tinyscale.study.executors

    def no_training(task):
        raise AssertionError("the re-run trained something again")

    monkeypatch.setattr(tinyscale.study.executors, "run_task", no_training)
    assert main(argv) == 0
    with Study.open(out) as study:
        again = study.runs()
    assert [(t.number, t.rung, t.state, t.accuracy) for t in again] == [(t.number, t.rung, t.state, t.accuracy)
                                                                         for t in runs]


def test_demo_rejects_a_bad_budget(tiny_demo, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--budget-steps", "0", "--no-app"]) == 2
    assert "--budget-steps must be positive" in capsys.readouterr().err
    # Less than one rung-0 run (4 steps here) buys nothing: said before anything is created.
    assert main(["demo", "--out", str(tmp_path / "d"), "--budget-steps", "3", "--no-app"]) == 2
    assert "a budget of 3 step-units buys no run: one run at rung 0 trains 4 steps" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    # A bad worker count is one line of error, before the demo announces a study it will not run.
    assert main(["demo", "--out", str(tmp_path / "d"), "--workers", "0", "--no-app"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "workers must be a positive integer, got 0" in err
    assert not (tmp_path / "d").exists()


def test_demo_over_an_older_demo_study_is_a_clear_error_that_keeps_it(tiny_demo, tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from tinyscale.study.executors import SequentialExecutor

    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--budget-steps", "8", "--workers", "1", "--no-app"]
    tinyscale.study.driver.run_study(out, tiny_demo, budget_steps=8, executor=SequentialExecutor(threads=1),
                                     progress=False).close()
    with Study.open(out) as study:
        before = [(t.number, t.accuracy) for t in study.trials()]
    capsys.readouterr()
    # The demo's configuration changes in a later version (here: a trainer setting).
    monkeypatch.setattr(tinyscale.study.plan, "demo_config", lambda: replace(tiny_demo, extra={"zero_init_residual": True}))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "earlier tinyscale version" in err and f"mv {out} {out}-old" in err and "zero_init_residual" in err
    with Study.open(out) as study:
        assert [(t.number, t.accuracy) for t in study.trials()] == before and study.config == tiny_demo


def test_demo_resumes_the_previous_versions_demo_study_that_promoted_async(tiny_demo, tmp_path, capsys):
    """The demo switched to ordered promotion; a demo study started before (async, otherwise the
    same) keeps its runs and resumes as it was; any other difference is still a different study."""
    from dataclasses import replace

    from tinyscale.commands.demo import demo_study_config
    from tinyscale.study.executors import SequentialExecutor

    out = tmp_path / "demo"
    ordered = replace(tiny_demo, promotion="ordered")
    assert demo_study_config(out, ordered) == ordered  # no study there yet
    tinyscale.study.driver.run_study(out, tiny_demo, budget_steps=8, executor=SequentialExecutor(threads=1),
                                     progress=False).close()
    assert demo_study_config(out, ordered) == tiny_demo
    assert "started by an earlier tinyscale that promoted async" in capsys.readouterr().out
    other = replace(ordered, steps=5)
    assert demo_study_config(out, other) == other  # refused later, as a different study
    tinyscale.study.driver.run_study(out, demo_study_config(out, ordered), budget_steps=16, resume=True,
                                     executor=SequentialExecutor(threads=1), progress=False).close()
    with Study.open(out) as study:
        assert study.config == tiny_demo and study.progress().steps_spent > 8  # resumed, and went on
