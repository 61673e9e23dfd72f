"""`tinyscale demo`, the README's main job, end to end on generated data (the real run trains on
Fashion-MNIST for minutes; here the demo configuration is swapped for a tiny one)."""

from __future__ import annotations

import json

import pytest

import tinyscale.study.driver
import tinyscale.study.plan
from tinyscale.cli import main
from tinyscale.fit.solve import RecipeSolver
from tinyscale.study.store import Study
from tinyscale.study.trial import StudyConfig


@pytest.fixture
def tiny_demo(monkeypatch):
    config = StudyConfig(data="generated", base_resolution=32, num_classes=10, steps=12, batch_size=16,
                         window=(0.05, 1.0), seed=0)
    monkeypatch.setattr(tinyscale.study.plan, "demo_config", lambda: config)
    return config


def test_demo_runs_study_fit_and_recipe_table_then_resumes(tiny_demo, tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--trials", "8", "--workers", "1", "--no-app"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    with Study.open(out) as study:
        assert study.config == tiny_demo
        first = study.trials()
    assert len(first) == 8 and all(t.state in ("completed", "failed") for t in first)
    fit = json.loads((out / "fit.json").read_text())
    assert fit  # the solver below reads it back
    solver = RecipeSolver.load(out)
    # The table's GP column is the saved fit's answer, not something the command made up.
    for c in ("0.5", "0.25"):
        answer = solver.solve(float(c))
        line = next(line for line in printed.splitlines() if line.startswith(c + " "))
        assert f"r={answer.recipe.r:g} w={answer.recipe.w:g} d={answer.recipe.d:g}" in line
    assert "EfficientNet compound scaling" in printed and "tinyscale app --study" in printed
    # The seed noise is measured on a few retrained trials and the surface is fixed at it.
    from tinyscale.evaluate.fidelity import load_noise

    noise = load_noise(out)
    assert noise is not None and noise.sigma_df == 4 and "measuring seed noise" in printed
    assert solver.fit.surface.seed_noise == noise.sigma and "fixed at the measured seed noise" in printed

    # Re-running resumes: nothing is trained again (trials and noise replicates are stored).
    import tinyscale.study.executors

    def no_training(task):
        raise AssertionError("the re-run trained something again")

    monkeypatch.setattr(tinyscale.study.executors, "run_task", no_training)
    assert main(argv) == 0
    with Study.open(out) as study:
        again = study.trials()
    assert [(t.number, t.state, t.accuracy) for t in again] == [(t.number, t.state, t.accuracy) for t in first]


def test_demo_rejects_a_bad_trial_count(tiny_demo, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--trials", "0", "--no-app"]) == 2
    assert "--trials must be positive" in capsys.readouterr().err


def test_demo_over_an_older_demo_study_is_a_clear_error_that_keeps_it(tiny_demo, tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from tinyscale.study.executors import SequentialExecutor

    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--trials", "2", "--workers", "1", "--no-app"]
    tinyscale.study.driver.run_study(out, tiny_demo, trials=2, executor=SequentialExecutor(threads=1), progress=False).close()
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
