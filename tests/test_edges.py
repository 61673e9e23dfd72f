"""A recipe at the edge of the sampled box (issue 25 item 6): the architecture's own limits
(derived by hand from B0's stage repeats and the rounding rules), the notes a recipe gets, and
a study resumed in a wider box."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from _synthetic_halving import SyntheticExecutor

from tinyscale.fit.edges import depth_floor, recipe_edges
from tinyscale.fit.solve import NoteKind, RecipeSolver
from tinyscale.space.arch import B0_STAGES, scale_repeats
from tinyscale.space.recipe import resolution_for
from tinyscale.study.driver import run_study
from tinyscale.study.store import Study
from tinyscale.study.trial import StudyConfig


def test_the_depth_floor_is_where_every_stage_has_one_block():
    # B0's deepest stage has 4 blocks. TinyNet rounds half to even, max 1: round(4 d) = 1 while
    # 4 d < 1.5, so every d < 0.375 builds one block per stage (round(3 x 0.37) = 1 too).
    # EfficientNet takes the ceiling: ceil(4 d) = 1 while d <= 0.25.
    assert depth_floor("tinynet") == pytest.approx(0.375, abs=1e-9)
    assert depth_floor("efficientnet") == pytest.approx(0.25, abs=1e-9)
    for rules, floor in (("tinynet", 0.375), ("efficientnet", 0.25)):
        assert all(scale_repeats(s.repeats, floor - 1e-6, rules) == 1 for s in B0_STAGES)
        assert any(scale_repeats(s.repeats, floor + 1e-6, rules) == 2 for s in B0_STAGES)


def test_recipe_edges_tell_the_box_from_the_architecture():
    box = dict(r_range=(0.35, 1.0), d_range=(0.35, 1.5), rules="tinynet", base_resolution=64)
    assert recipe_edges(0.7, 0.8, **box) == []
    # d = 0.36 at the default box's floor: the shallowest network there is, nothing past it.
    [edge] = recipe_edges(0.7, 0.36, **box)
    assert (edge.axis, edge.side, edge.limit, edge.wider) == ("d", "low", True, None)
    assert "single block" in edge.text() and "--resume" not in edge.text()
    # r = 0.36 (23 px): smaller inputs exist; the wider box goes 1.5x lower, here to 15 px.
    [edge] = recipe_edges(0.36, 0.8, **box)
    assert (edge.axis, edge.side, edge.limit) == ("r", "low", False)
    assert edge.wider == (0.233, 1.0) and resolution_for(0.233, 64) == 14
    assert "--r-range 0.233,1" in edge.text()
    # A box whose depth stops above the floor: extend to just below the floor (all one-block).
    [edge] = recipe_edges(0.7, 0.5, **{**box, "d_range": (0.5, 1.5)})
    assert not edge.limit and edge.wider == (0.374, 1.5) and depth_floor("tinynet") > 0.374
    # The smallest input: 8 px at base 64 is r = 0.125.
    [edge] = recipe_edges(0.125, 0.8, **{**box, "r_range": (0.125, 1.0)})
    assert edge.limit and "8 px" in edge.text()
    # The top of the box (and a GP mean past it) is an edge too.
    [edge] = recipe_edges(0.7, 1.6, **box)
    assert (edge.axis, edge.side, edge.wider) == ("d", "high", (0.35, 2.25))


def _solver(r, d, band=0.02):
    """A solver over a fit stub that predicts (r, d) at every c with a narrow band."""
    config = StudyConfig(data="generated", base_resolution=64, r_range=(0.35, 1.0), d_range=(0.35, 1.5))

    def axis(mean):
        return SimpleNamespace(mean=np.array([mean]), lower=np.array([mean * (1 - band)]),
                               upper=np.array([mean * (1 + band)]))

    fit = SimpleNamespace(config=config, predict=lambda cs: SimpleNamespace(r=axis(r), d=axis(d)), ridge=None,
                          surface=None, c_range=(0.05, 0.6))
    return RecipeSolver(fit)


def test_a_recipe_says_where_it_meets_the_box_and_the_architecture():
    answer = _solver(0.36, 0.36).solve(0.1)
    kinds = [n.kind for n in answer.notes]
    assert NoteKind.BOX_EDGE in kinds and NoteKind.ARCH_LIMIT in kinds
    assert "--r-range 0.233,1" in str(answer.notes[kinds.index(NoteKind.BOX_EDGE)])
    assert [(e.axis, e.limit) for e in answer.edges] == [("r", False), ("d", True)]
    assert answer.to_dict()["edges"] == [{"axis": "r", "side": "low", "limit": False, "wider": [0.233, 1.0]},
                                         {"axis": "d", "side": "low", "limit": True, "wider": None}]
    assert [n.kind for n in _solver(0.7, 0.8).solve(0.1).notes] == []
    # An axis the data do not determine gets no edge note (its value is the fit's guess).
    loose = _solver(0.36, 0.8, band=2.0).solve(0.1)  # r band [0, 1.08]: all of r_range
    assert NoteKind.UNDETERMINED in [n.kind for n in loose.notes]
    assert NoteKind.BOX_EDGE not in [n.kind for n in loose.notes]


def test_a_study_resumed_in_a_wider_box_keeps_its_trials_and_draws_past_the_edge(tmp_path, capsys):
    config = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), d_range=(0.5, 1.5),
                         window=(0.05, 0.8), steps=10, batch_size=16, train_size=256, val_size=64,
                         extra={"bn_calibration_images": 64})
    directory = tmp_path / "s"
    run_study(directory, config, trials=12, executor=SyntheticExecutor(), progress=False).close()
    with Study.open(directory) as study:
        before = [(t.number, t.recipe, t.accuracy) for t in study.trials()]
    wider = replace(config, d_range=(0.374, 1.5))
    with run_study(directory, wider, trials=40, resume=True, executor=SyntheticExecutor(), progress=False) as study:
        assert study.config.d_range == (0.374, 1.5)
        trials = study.trials()
        assert [(t.number, t.recipe, t.accuracy) for t in trials[:12]] == before
        assert len(trials) == 40 and any(t.recipe.d < 0.5 for t in trials[12:])
        [entry] = study.box_extensions()
        assert entry == {"from_trial": 12, "d_range": {"from": [0.5, 1.5], "to": [0.374, 1.5]}}
    assert "the sampled box widened at trial 12 (d_range: 0.5,1.5 -> 0.374,1.5)" in capsys.readouterr().out
    assert json.loads((directory / "config.json").read_text())["d_range"] == [0.374, 1.5]
    with Study.open(directory) as study:  # reopened: the wider box is the study's
        assert study.config.d_range == (0.374, 1.5)
    from tinyscale.cli import main

    assert main(["trials", str(directory)]) == 0
    assert "box widened at trial 12: d_range 0.5,1.5 -> 0.374,1.5" in capsys.readouterr().out
    assert main(["trials", str(directory), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["box_extensions"] == [entry]
    # Narrowing, or changing anything else with it, is refused, and nothing changes.
    with pytest.raises(ValueError, match="narrows"):
        run_study(directory, replace(wider, d_range=(0.6, 1.5)), trials=41, resume=True,
                  executor=SyntheticExecutor(), progress=False)
    with pytest.raises(ValueError, match="different configuration"):
        run_study(directory, replace(wider, d_range=(0.3, 1.5), steps=20), trials=41, resume=True,
                  executor=SyntheticExecutor(), progress=False)
    with Study.open(directory) as study:
        assert study.config.d_range == (0.374, 1.5) and len(study.trials()) == 40


def test_a_study_with_widen_box_checks_halfway_and_samples_past_the_edge_it_finds(tmp_path, capsys):
    from tinyscale.commands.study import BOX_CHECK, run_with_box_check

    # The synthetic truth prefers d = 1 at every c; a box that stops at d = 0.6 puts the ridge on its edge.
    config = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), d_range=(0.35, 0.6),
                         window=(0.05, 0.8), steps=10, batch_size=16, train_size=256, val_size=64,
                         extra={"bn_calibration_images": 64})
    directory = tmp_path / "s"
    with run_with_box_check(directory, config, trials=30, executor=SyntheticExecutor(), progress=False,
                            widen_box=True) as study:
        trials = study.trials()
        [entry] = study.box_extensions()
        check = study.get_meta(BOX_CHECK)
        assert study.config.d_range == (0.35, 0.9) and study.config.r_range == (0.5, 1.0)
    out = capsys.readouterr().out
    assert "box check on 15 runs: d=" in out and "at its highest sampled value 0.6" in out
    assert entry["from_trial"] == 15 and entry["d_range"] == {"from": [0.35, 0.6], "to": [0.35, 0.9]}
    assert entry["reason"].startswith("box check on 15 runs")
    assert check["state"] == "done" and check["wider"] == {"d_range": [0.35, 0.9]}
    assert {e["axis"] for e in check["edges"]} == {"d"}
    assert len(trials) == 30 and all(t.recipe.d <= 0.6 for t in trials[:15])
    assert any(t.recipe.d > 0.6 for t in trials[15:])  # the rest of the budget looked past the edge
    # Resumed later (no --widen-box needed, a bigger budget): the check is not repeated.
    with run_with_box_check(directory, None, trials=33, resume=True, executor=SyntheticExecutor(),
                            progress=False) as study:
        assert len(study.trials()) == 33 and len(study.box_extensions()) == 1
    assert "box check" not in capsys.readouterr().out


def test_a_box_check_that_finds_no_edge_leaves_the_box(tmp_path, capsys):
    from tinyscale.commands.study import BOX_CHECK, run_with_box_check

    config = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), d_range=(0.35, 1.5),
                         window=(0.05, 0.8), steps=10, batch_size=16, train_size=256, val_size=64,
                         extra={"bn_calibration_images": 64})
    with run_with_box_check(tmp_path / "s", config, trials=30, executor=SyntheticExecutor(), progress=False,
                            widen_box=True) as study:
        assert study.box_extensions() == [] and study.config == config
        assert study.get_meta(BOX_CHECK)["wider"] == {} and len(study.trials()) == 30
    assert "the box stays" in capsys.readouterr().out


def test_widen_box_on_the_command_line(tmp_path, capsys):
    from _cli import cli

    out = tmp_path / "s"
    code, text, err = cli(capsys, "study", "--data", "generated", "--base-resolution", "16", "--r-range", "0.5,1.0",
                          "--d-range", "0.35,0.6", "--steps", "4", "--batch-size", "16", "--train-size", "128",
                          "--val-size", "32", "--workers", "1", "--threads", "1", "--quiet", "--out", out,
                          "--trials", "12", "--widen-box")
    assert code == 0, err
    assert "box check on 6 runs:" in text
    code, fit_text, err = cli(capsys, "fit", out)
    assert code == 0, err
    from tinyscale.commands.study import BOX_CHECK

    with Study.open(out) as study:
        history, check = study.box_extensions(), study.get_meta(BOX_CHECK)
        assert len(study.trials()) == 12 and check["state"] == "done"
    # What 4-step runs find is theirs to say; the fit and trials report it, whichever it was.
    assert len(history) == (1 if check["wider"] else 0)
    code, trials_text, err = cli(capsys, "trials", out)
    for entry in history:
        assert "box        widened at trial 6: " in fit_text and entry["reason"] in fit_text
        assert "box widened at trial 6: " in trials_text and entry["reason"] in trials_text
    if not history:
        assert "the box stays" in text and "widened" not in fit_text + trials_text


def test_an_interrupted_widen_box_study_resumes_into_its_check_and_chooses_rungs_from_the_whole_budget(tmp_path,
                                                                                                       capsys):
    from tinyscale.commands.study import BOX_CHECK, run_with_box_check
    from tinyscale.study.store import CHOSEN_RUNGS

    config = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), d_range=(0.35, 0.6),
                         window=(0.05, 0.8), steps=10, batch_size=16, train_size=256, val_size=64,
                         extra={"bn_calibration_images": 64})
    directory = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):  # killed in the first half
        run_with_box_check(directory, config, trials=30, executor=SyntheticExecutor(crash_at=7), progress=False,
                           widen_box=True)
    with Study.open(directory) as study:
        assert study.get_meta(BOX_CHECK) == {"state": "planned"} and study.progress().finished == 7
    # Resumed without the option: the stored plan brings the check at half the budget, once.
    with run_with_box_check(directory, None, trials=30, resume=True, executor=SyntheticExecutor(),
                            progress=False) as study:
        assert study.get_meta(BOX_CHECK)["state"] == "done" and study.box_extensions()[0]["from_trial"] == 15
    assert capsys.readouterr().out.count("box check on 15 runs") == 1
    # A study in rungs with rungs auto: 54 recipes buy two rungs, half of them one; the choice is
    # made from the whole budget, before the check.
    halving = replace(config, schedule="halving", eta=3, rungs=None)
    with run_with_box_check(tmp_path / "h", halving, trials=54, executor=SyntheticExecutor(), progress=False,
                            widen_box=True) as study:
        assert study.get_meta(CHOSEN_RUNGS) == 2
        assert study.get_meta(BOX_CHECK)["state"] == "done"
