"""The botorch sampler: proposals seeded, stored before training, resumable, inside the space;
a study mixing stream and proposed trials fits; bad sampler options are one-line errors."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from _synthetic_halving import SyntheticResult

from tinyscale.study.samplers.botorch import hypervolume, hypervolume_reference
from tinyscale.cli import main
from tinyscale.space.cost import ratio
from tinyscale.study.executors import TrialOutcome
from tinyscale.study.samplers.base import architecture_key, sample_recipes
from tinyscale.study.driver import run_study
from tinyscale.study.store import Study
from tinyscale.study.trial import StudyConfig

# The generated data is only loaded (run_study checks it); the fake executor below trains nothing.
CFG = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), window=(0.05, 0.8), steps=12,
                  batch_size=16, train_size=256, val_size=64, extra={"bn_calibration_images": 64},
                  sampler="botorch", init_trials=5, seed=3)
TRIALS = 7


def _accuracy(recipe) -> float:
    """A smooth surface with a ridge (best r grows with c) and a deterministic wobble for noise."""
    c = ratio(recipe)
    x = 1.0 + 0.4 * math.log(c) - 3.0 * (math.log(recipe.r) - 0.2 * math.log(c)) ** 2 - math.log(recipe.d) ** 2
    return 1.0 / (1.0 + math.exp(-x)) + 0.01 * math.sin(1e3 * recipe.w)


class _FakeExecutor:
    """``slots`` workers that 'train' with `_accuracy`, outcomes first in, first out; raises
    KeyboardInterrupt (a stand-in for kill -9) when asked to submit trial ``crash_at``."""

    def __init__(self, slots: int = 2, crash_at: int | None = None) -> None:
        self.slots, self.crash_at, self.queue = slots, crash_at, []

    def submit(self, task) -> None:
        if task.number == self.crash_at:
            raise KeyboardInterrupt
        from tinyscale.space.recipe import Recipe

        self.queue.append(TrialOutcome(task.number, SyntheticResult(_accuracy(Recipe.from_dict(task.recipe)), 12, images_seen=192)))

    def next_outcome(self):
        return self.queue.pop(0)

    def close(self) -> None:
        pass


def _rows(directory):
    with Study.open(directory) as study:
        return study.trials()


def test_proposals_are_seeded_inside_the_space_and_the_study_fits(tmp_path, capsys):
    from tinyscale.fit.gp import fit_scaling

    run_study(tmp_path / "a", CFG, trials=TRIALS, executor=_FakeExecutor(), progress=False).close()
    printed = capsys.readouterr().out
    assert "botorch: proposed trial 6 in " in printed and "(qLogNEHVI on the accuracy surface of 5 trials)" in printed
    run_study(tmp_path / "b", CFG, trials=TRIALS, executor=_FakeExecutor(), progress=False).close()
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [(t.recipe, t.proposed_by) for t in a] == [(t.recipe, t.proposed_by) for t in b]
    assert [t.state for t in a] == ["completed"] * TRIALS
    # The first init_trials are the stream's (a sobol study of this seed trains the same ones).
    assert [t.recipe for t in a[:5]] == sample_recipes(replace(CFG, sampler="sobol", init_trials=None), 5)
    # With two workers trial 4 is still training when trial 5 is due: the surface has only 4
    # trials, so the stream fills in; the acquisition proposes from then on.
    assert [t.proposed_by for t in a] == ["sobol"] * 6 + ["botorch"] * (TRIALS - 6)
    lo, hi = CFG.window
    for t in a:
        assert lo <= t.ratio <= hi and 0.5 <= t.recipe.r <= 1.0 and CFG.d_range[0] <= t.recipe.d <= CFG.d_range[1]
    assert len({architecture_key(t.recipe) for t in a}) == TRIALS
    # Another seed proposes other recipes.
    run_study(tmp_path / "c", replace(CFG, seed=4), trials=TRIALS, executor=_FakeExecutor(), progress=False).close()
    assert [t.recipe for t in _rows(tmp_path / "c")][5:] != [t.recipe for t in a][5:]
    # A study mixing stream and proposed trials fits like any other.
    fit = fit_scaling(a, CFG)
    assert fit.surface is not None and fit.diagnostics.n_models == TRIALS
    assert hypervolume(a, CFG) > hypervolume(a[:5], CFG) > 0.0


def test_interrupted_proposals_resume_as_stored(tmp_path):
    whole = tmp_path / "whole"
    run_study(whole, CFG, trials=TRIALS, executor=_FakeExecutor(), progress=False).close()
    cut = tmp_path / "cut"
    # Trial 6 is proposed and stored while 5 trains; the Ctrl-C hits as 6 is submitted, and
    # both go back to pending (a kill -9, which leaves them 'running', is the CLI test below).
    with pytest.raises(KeyboardInterrupt):
        run_study(cut, CFG, trials=TRIALS, executor=_FakeExecutor(crash_at=6), progress=False)
    before = _rows(cut)
    assert [(t.number, t.state, t.proposed_by) for t in before][-2:] == [(5, "pending", "sobol"),
                                                                       (6, "pending", "botorch")]
    assert before[6].recipe == _rows(whole)[6].recipe  # the same proposal an uninterrupted run made
    # Swap the stored proposal for another network: resume must train what is stored, not
    # propose trial 6 again (which, deterministic, would give the original back).
    other = sample_recipes(replace(CFG, sampler="sobol", init_trials=None), 12)[-1]
    with sqlite3.connect(cut / "trials.sqlite") as conn:
        conn.execute("UPDATE trials SET r = ?, w = ?, d = ? WHERE number = 6", (other.r, other.w, other.d))
    run_study(cut, None, trials=TRIALS, resume=True, executor=_FakeExecutor(), progress=False).close()
    after = _rows(cut)
    assert [t.state for t in after] == ["completed"] * TRIALS
    for t in before[:5]:  # finished before the kill: kept as they were
        assert after[t.number] == t
    assert (after[5].recipe, after[5].accuracy) == (_rows(whole)[5].recipe, _rows(whole)[5].accuracy)
    assert (after[6].recipe, after[6].proposed_by) == (other, "botorch")


def test_hypervolume_of_known_points():
    cfg = replace(CFG, window=(0.1, 1.0), num_classes=10)
    acc_ref, cost_ref = hypervolume_reference(cfg)
    assert acc_ref == pytest.approx(0.1) and cost_ref == pytest.approx(-0.1 * math.log(10))

    class T:
        state, accuracy, ratio = "completed", 0.6, 0.5

    # One point: a rectangle (0.6 - 0.1) x (-log 0.5 - cost_ref).
    assert hypervolume([T()], cfg) == pytest.approx(0.5 * (math.log(2) + 0.1 * math.log(10)))


@pytest.mark.parametrize("options,message", [
    (["--sampler", "botorh"], "--sampler must be one of sobol, botorch, got 'botorh'"),
    (["--sampler", "botorch", "--init-trials", "0"], "--init-trials must be a whole number of at least 5, got 0"),
    (["--init-trials", "8"], "--init-trials is for --sampler botorch"),
])
def test_bad_sampler_options_are_one_line_errors(tmp_path, capsys, options, message):
    out = tmp_path / "s"
    code = main(["study", "--data", "generated", "--out", str(out), "--trials", "2", "--quiet", *options])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not out.exists()  # nothing left behind to trip over


def test_resume_with_another_sampler_is_refused(tmp_path, capsys):
    sobol = replace(CFG, sampler="sobol", init_trials=None)
    run_study(tmp_path / "s", sobol, trials=1, executor=_FakeExecutor(), progress=False).close()
    code = main(["study", "--resume", str(tmp_path / "s"), "--sampler", "botorch", "--trials", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "sampled with --sampler sobol; resume it with that sampler" in err
    with pytest.raises(ValueError, match=r"different configuration \(.*sampler: 'sobol' -> 'botorch'"):
        run_study(tmp_path / "s", CFG, trials=2, resume=True, executor=_FakeExecutor(), progress=False)
    assert len(_rows(tmp_path / "s")) == 1


def _botorch_rows(db):
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT number, state, r, w, d FROM trials WHERE proposed_by = 'botorch' "
                                "ORDER BY number").fetchall()
    except sqlite3.Error:
        return []


def test_kill_after_a_proposal_then_resume_trains_it_as_proposed(tmp_path):
    out = tmp_path / "s"
    n = 6
    cmd = [sys.executable, "-m", "tinyscale.cli", "study", "--data", "generated", "--out", str(out),
           "--trials", str(n), "--steps", "12", "--batch-size", "16", "--base-resolution", "16",
           "--r-range", "0.5,1", "--train-size", "256", "--val-size", "64", "--sampler", "botorch",
           "--init-trials", "5", "--threads", "1", "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not (proposed := _botorch_rows(out / "trials.sqlite")):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no proposal was stored"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # the proposal is stored and not finished: it is training
    proc.wait()
    with Study.open(out) as study:
        before = {t.number: t for t in study.trials("completed")}
        assert len(before) == 5
    [(number, state, r, w, d)] = proposed
    assert number == 5 and state in ("pending", "running")
    done = subprocess.run([sys.executable, "-m", "tinyscale.cli", "study", "--resume", str(out), "--threads", "1",
                           "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with Study.open(out) as study:
        trials = study.trials()
    assert [t.state for t in trials] == ["completed"] * n
    assert [t.proposed_by for t in trials] == ["sobol"] * 5 + ["botorch"]
    assert (trials[5].recipe.r, trials[5].recipe.w, trials[5].recipe.d) == (r, w, d)
    for number, trial in before.items():
        assert trials[number] == trial
