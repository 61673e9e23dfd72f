"""The fidelity check of a study that trains in rungs: by default it retrains the study's longest
runs (the rung a fit across rungs reads its ridge at, which the stop rule cannot check against
anything longer), or the rung asked for; its seed noise serves a one-rung fit of that rung only."""

from __future__ import annotations

from dataclasses import replace

import pytest

from _synthetic_halving import CFG, S0, SyntheticExecutor
from tinyscale.cli import main
from tinyscale.evaluate.fidelity import FIDELITY_FILE, checked_rung, measure, noise_for_fit, stale_note
from tinyscale.study.driver import run_study
from tinyscale.study.store import Study

SMALL = dict(recipes=5, replicates=1, noise_trials=2, progress=False)


@pytest.fixture(scope="module")
def study_in_rungs(tmp_path_factory):
    """27 synthetic recipes in rungs of 10 / 30 / 90 steps (ASHA's eager promotions leave 15
    recipes at rung 1 and 7 at rung 2)."""
    directory = tmp_path_factory.mktemp("fidelity-rungs") / "h"
    run_study(directory, CFG, trials=27, executor=SyntheticExecutor(), progress=False).close()
    with Study.open(directory) as study:
        by_rung = {}
        for t in study.runs("completed"):
            by_rung.setdefault(t.rung, {})[t.number] = t.accuracy
    assert sorted(by_rung) == [0, 1, 2] and len(by_rung[2]) >= 5
    return directory, by_rung


def test_the_check_retrains_the_longest_runs_by_default(study_in_rungs):
    directory, by_rung = study_in_rungs
    f = measure(directory, executor=SyntheticExecutor(), **SMALL)
    assert f.rung == 2 and f.settings.steps == S0 * 9 and f.settings.long_steps == 4 * S0 * 9
    # The brief side of every pair is the recipe's rung-2 accuracy, not its rung-0 one.
    assert f.pairs and all(p.brief == by_rung[2][p.number] for p in f.pairs)
    assert {r.number for r in f.runs} <= set(by_rung[2]) and f.signal.n == len(by_rung[2])
    assert {r.steps for r in f.runs if r.kind == "long"} == {4 * S0 * 9}
    assert {r.steps for r in f.runs if r.kind == "replicate"} == {S0 * 9}
    # Each noise group starts with the study's own run at that rung.
    assert all(g.accuracies[0] == by_rung[2][g.number] for g in f.noise)


def test_a_rung_asked_for_is_the_one_checked(study_in_rungs, capsys):
    directory, by_rung = study_in_rungs
    for rung in (0, 1):
        capsys.readouterr()
        f = measure(directory, executor=SyntheticExecutor(), rung=rung, restart=True, **SMALL)
        assert "fidelity" not in capsys.readouterr().err  # progress=False: no bar
        assert f.rung == rung and f.settings.steps == S0 * 3 ** rung
        assert all(p.brief == by_rung[rung][p.number] for p in f.pairs) and f.signal.n == len(by_rung[rung])
    # With a bar, the check says first about how long its retraining takes (the study's synthetic
    # runs took 0.01 s to train and 0.01 s to evaluate).
    measure(directory, executor=SyntheticExecutor(), rung=1, restart=True, **{**SMALL, "progress": True})
    assert "fidelity: 7 runs to train, under a minute at the speed of the study's own runs" in capsys.readouterr().err


def test_a_rung_the_study_cannot_check_is_one_line_before_any_training(study_in_rungs, tmp_path, capsys):
    directory, by_rung = study_in_rungs
    few = tmp_path / "few"  # 6 recipes: 3 reach rung 1, none rung 2
    run_study(few, CFG, trials=6, executor=SyntheticExecutor(), progress=False).close()
    uniform = tmp_path / "u"
    run_study(uniform, replace(CFG, schedule="uniform"), trials=6, executor=SyntheticExecutor(), progress=False).close()
    cases = [([str(directory), "--rung", "3"], "trains rungs 0 to 2"),
             ([str(directory), "--rung", "-1"], "trains rungs 0 to 2"),
             ([str(few), "--rung", "1"], "holds 3 completed recipe(s); the fidelity check needs at least 5"),
             ([str(few), "--rung", "2"], "holds 0 completed recipe(s)"),
             ([str(uniform), "--rung", "1"], "trains every recipe at rung 0 only")]
    for argv, message in cases:
        capsys.readouterr()
        assert main(["fidelity", *argv, "--no-progress"]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("tinyscale fidelity: error: ") and message in err and "\n" not in err, err
    assert not (few / FIDELITY_FILE).exists() and not (few / "fidelity").exists()
    # With no rung named, a study whose upper rungs are too thin is checked at rung 0.
    with Study.open(few) as study:
        assert checked_rung(study, None)[:2] == (0, S0)


def test_the_seed_noise_serves_a_one_rung_fit_of_the_rung_it_was_measured_on(study_in_rungs):
    directory, _ = study_in_rungs
    with Study.open(directory) as study:
        fit = study.fit_rung()
    assert fit == 2
    for rung in (0, 1):
        measure(directory, executor=SyntheticExecutor(), rung=rung, **SMALL)
        assert noise_for_fit(directory) is None
        with pytest.raises(ValueError, match=f"measured at rung {rung} .* reads rung 2 .*--rung 2"):
            noise_for_fit(directory, "measured")
    f = measure(directory, executor=SyntheticExecutor(), rung=2, **SMALL)
    assert f.sigma > 0 and noise_for_fit(directory) == noise_for_fit(directory, "measured") == f.sigma


def test_a_stale_check_counts_the_recipes_of_its_own_rung(study_in_rungs):
    directory, by_rung = study_in_rungs
    f = measure(directory, executor=SyntheticExecutor(), rung=2, **SMALL)
    n = len(by_rung[2])
    assert stale_note(f, {0: 100, 1: 50, 2: n}) is None  # more rung-0 trials do not make a rung-2 check stale
    note = stale_note(f, {0: 27, 2: n + 3})
    assert f"measured on {n} completed recipes at rung 2; the study has {n + 3} now" in note


def test_the_trust_panel_names_the_rung_checked(study_in_rungs):
    from tinyscale.assistant.answers import trust

    directory, by_rung = study_in_rungs
    measure(directory, executor=SyntheticExecutor(), rung=2, **SMALL)
    with Study.open(directory) as study:
        rungs = study.rung_summary()
    t = trust(directory, 10_000, None, rungs)  # a count of every run would call the check stale
    text = {name: words for name, _, words in t.metrics}
    assert "rung 2's accuracies and 4x longer training (360 steps)" in text["rank agreement ρ"]
    assert f"at {S0 * 9} steps (rung 2)" in text["seed noise σ"]
    assert t.note is None  # counted at rung 2, where nothing was added since the check
