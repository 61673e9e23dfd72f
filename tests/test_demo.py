"""`tinyscale demo`, the README's main job, end to end on generated data (the real run trains on
Fashion-MNIST for minutes; here the demo configuration is swapped for a tiny one)."""

from __future__ import annotations

import json

import pytest

import tinyscale.study
from tinyscale.cli import main
from tinyscale.solve import RecipeSolver
from tinyscale.study import Study
from tinyscale.trial import StudyConfig


@pytest.fixture
def tiny_demo(monkeypatch):
    config = StudyConfig(data="generated", base_resolution=32, num_classes=10, steps=12, batch_size=16,
                         window=(0.05, 1.0), seed=0)
    monkeypatch.setattr(tinyscale.study, "demo_config", lambda: config)
    return config


def test_demo_runs_study_fit_and_recipe_table_then_resumes(tiny_demo, tmp_path, capsys):
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

    # Re-running resumes: no trial is trained again.
    assert main(argv) == 0
    with Study.open(out) as study:
        again = study.trials()
    assert [(t.number, t.state, t.accuracy) for t in again] == [(t.number, t.state, t.accuracy) for t in first]


def test_demo_rejects_a_bad_trial_count(tiny_demo, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--trials", "0", "--no-app"]) == 2
    assert "--trials must be positive" in capsys.readouterr().err
