"""Ordered promotion (tinyscale.study.ordering): a study with several workers that decides on
its step clock makes the same study however fast each run is, and resumes to it after a kill;
the default (async) study does not, which is why the option exists."""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import replace

import pytest

from tinyscale.study.driver import run_study
from tinyscale.study.ordering import CLOCK_META, StepClock
from tinyscale.study.store import Study

from _synthetic_halving import CFG, S0, SyntheticExecutor  # the synthetic truth, shared

BUDGET = 40 * S0 + 12 * 3 * S0 + 4 * 9 * S0  # step-units: enough for every rung to fill


class ShuffledExecutor(SyntheticExecutor):
    """Workers whose runs finish in a seeded random order (a busy machine, unequal runs)."""

    def __init__(self, slots: int, order_seed: int, **kwargs) -> None:
        super().__init__(slots, **kwargs)
        self.order = random.Random(order_seed)

    def next_outcome(self):
        return self.queue.pop(self.order.randrange(len(self.queue)))


def _runs(directory) -> list[tuple]:
    with Study.open(directory) as study:
        return sorted((t.number, t.rung, t.state, t.accuracy, t.steps) for t in study.runs())


def _studies(tmp_path, promotion: str, orders=range(4)) -> list[list[tuple]]:
    config = replace(CFG, promotion=promotion)
    out = []
    for k in orders:
        run_study(tmp_path / f"{promotion}-{k}", config, budget_steps=BUDGET, executor=ShuffledExecutor(3, k),
                  progress=False).close()
        out.append(_runs(tmp_path / f"{promotion}-{k}"))
    return out


def test_an_ordered_study_is_the_same_however_its_runs_finish(tmp_path):
    ordered = _studies(tmp_path, "ordered")
    assert all(runs == ordered[0] for runs in ordered)
    assert {rung for _, rung, *_ in ordered[0]} == {0, 1, 2}  # promotions happened, to the top rung
    assert sum(steps for *_, steps in ordered[0]) == BUDGET  # and the budget was spent, not waited away
    # The same order in which a single worker would finish them (first in, first out) too.
    run_study(tmp_path / "fifo", replace(CFG, promotion="ordered"), budget_steps=BUDGET,
              executor=SyntheticExecutor(3), progress=False).close()
    assert _runs(tmp_path / "fifo") == ordered[0]
    # The default decides as runs finish: the finishing order changes the study.
    asynchronous = _studies(tmp_path, "async")
    assert any(runs != asynchronous[0] for runs in asynchronous)


@pytest.mark.parametrize("leave_running", [False, True], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_ordered_study_resumes_to_the_same_study(tmp_path, monkeypatch, leave_running):
    config = replace(CFG, promotion="ordered")
    run_study(tmp_path / "whole", config, budget_steps=BUDGET, executor=ShuffledExecutor(3, 0), progress=False).close()
    if leave_running:  # kill -9 releases nothing: the runs in flight stay 'running' on disk
        monkeypatch.setattr(Study, "release_trials", lambda self, numbers, rung=0: None)
    with pytest.raises(KeyboardInterrupt):  # mid-study, after promotions have started
        run_study(tmp_path / "cut", config, budget_steps=BUDGET, executor=ShuffledExecutor(3, 1, crash_at=30),
                  progress=False)
    monkeypatch.undo()
    cut = _runs(tmp_path / "cut")
    assert any(rung >= 1 for _, rung, *_ in cut) and any(state != "completed" for _, _, state, *_ in cut)
    # Resumed with another finishing order and fewer workers: the clock keeps its three lanes.
    run_study(tmp_path / "cut", None, resume=True, executor=ShuffledExecutor(2, 2), progress=False).close()
    assert _runs(tmp_path / "cut") == _runs(tmp_path / "whole")


def test_the_step_clock_against_a_hand_worked_schedule():
    def size(key):  # (steps, c): c = 1, so a run's clock time is its steps whatever the exponent
        return {0: 10.0, 1: 30.0, 2: 90.0}[key[1]], 1.0

    clock = StepClock(2, size)
    clock.dispatch((0, 0))  # lane 0: 0 -> 10
    clock.dispatch((1, 0))  # lane 1: 0 -> 10
    assert clock.now == 10 and clock.due() == {(0, 0), (1, 0)}
    clock.dispatch((0, 1))  # lane 0: 10 -> 40
    clock.dispatch((2, 0))  # lane 1: 10 -> 20
    assert clock.now == 20 and clock.due() == {(0, 0), (1, 0), (2, 0)}
    assert clock.wait()  # nothing to decide at 20: lane 1 waits for (0, 1) at 40
    assert clock.now == 40 and (0, 1) in clock.due()
    assert clock.free_at == [40.0, 40.0] and not clock.wait()  # nothing finishes after 40: no wait
    with pytest.raises(ValueError, match="already on the clock"):
        clock.dispatch((2, 0))
    again = StepClock.from_dict(json.loads(json.dumps(clock.to_dict())), size)
    assert (again.free_at, again.finish, again.events) == (clock.free_at, clock.finish, clock.events)


def test_a_run_s_clock_time_is_its_steps_times_c_to_the_stored_exponent():
    sizes = {(0, 0): (100, 0.25), (1, 0): (100, 1.0)}
    clock = StepClock(1, sizes.__getitem__, exponent=0.5)
    clock.dispatch((0, 0))
    clock.dispatch((1, 0))
    assert clock.finish == {(0, 0): 50.0, (1, 0): 150.0}  # 100 x 0.25^0.5, then + 100 x 1
    stored = json.loads(json.dumps(clock.to_dict()))
    assert stored["exponent"] == 0.5
    # A record made before the exponent was stored was made with 0.5, whatever today's default.
    del stored["exponent"]
    assert StepClock.from_dict(stored, sizes.__getitem__).finish == clock.finish
    assert StepClock.from_dict({**stored, "exponent": 0}, sizes.__getitem__).finish == {(0, 0): 100.0, (1, 0): 200.0}
    for bad in (-1, 3, "half", True, float("nan")):
        with pytest.raises(ValueError, match="exponent must be a number in \\[0, 2\\]"):
            StepClock.from_dict({**stored, "exponent": bad}, sizes.__getitem__)


def test_a_resumed_study_keeps_the_exponent_it_started_with(tmp_path, monkeypatch):
    import tinyscale.study.ordering as ordering

    config = replace(CFG, promotion="ordered")
    run_study(tmp_path / "whole", config, budget_steps=BUDGET, executor=ShuffledExecutor(3, 0), progress=False).close()
    with pytest.raises(KeyboardInterrupt):  # mid-study, after promotions have started
        run_study(tmp_path / "cut", config, budget_steps=BUDGET, executor=ShuffledExecutor(3, 1, crash_at=30),
                  progress=False)
    monkeypatch.setattr(ordering, "CLOCK_EXPONENT", 0.0)  # a later version charging steps alone
    run_study(tmp_path / "cut", None, resume=True, executor=ShuffledExecutor(3, 2), progress=False).close()
    assert _runs(tmp_path / "cut") == _runs(tmp_path / "whole")
    # The control: a study started with the other exponent decides otherwise.
    run_study(tmp_path / "other", config, budget_steps=BUDGET, executor=ShuffledExecutor(3, 0), progress=False).close()
    assert _runs(tmp_path / "other") != _runs(tmp_path / "whole")


@pytest.mark.parametrize("stored, words", [
    ({"lanes": 2, "events": [[0, "x"]]}, "not a \\(trial, rung\\) pair"),
    ({"lanes": 0, "events": []}, "whole number of lanes"),
    ({"lanes": 2, "events": [[0, 0], [99, 0]]}, "names trial 99, which the study does not hold"),
    ([1, 2], "not a clock's record"),
])
def test_a_damaged_clock_is_a_one_line_error_that_changes_nothing(tmp_path, stored, words):
    config = replace(CFG, promotion="ordered")
    run_study(tmp_path / "s", config, trials=3, executor=SyntheticExecutor(2), progress=False).close()
    with Study.open(tmp_path / "s") as study:
        study.set_meta(CLOCK_META, stored)
    before = _runs(tmp_path / "s")
    with pytest.raises(ValueError, match=words):
        run_study(tmp_path / "s", None, trials=6, resume=True, executor=SyntheticExecutor(2), progress=False)
    assert _runs(tmp_path / "s") == before


def test_an_unknown_promotion_is_refused_before_anything_is_made(tmp_path):
    with pytest.raises(ValueError, match="--promotion must be one of async, ordered, got 'sorted'"):
        run_study(tmp_path / "s", replace(CFG, promotion="sorted"), trials=3, executor=SyntheticExecutor(),
                  progress=False)
    assert not (tmp_path / "s").exists()


def test_the_clock_is_stored_with_the_study(tmp_path):
    run_study(tmp_path / "s", replace(CFG, promotion="ordered"), trials=4, executor=SyntheticExecutor(2),
              progress=False).close()
    stored = dict(sqlite3.connect(tmp_path / "s" / "trials.sqlite").execute("SELECT key, value FROM meta"))
    clock = json.loads(stored[CLOCK_META])
    assert clock["lanes"] == 2 and [e for e in clock["events"] if e is not None][:4] == [[0, 0], [1, 0], [2, 0], [3, 0]]


def test_promotion_on_the_command_line(tmp_path, capsys):
    from _cli import cli

    tiny = ["--data", "generated", "--base-resolution", "16", "--r-range", "0.5,1.0", "--steps", "10", "--batch-size",
            "16", "--train-size", "128", "--val-size", "32", "--workers", "1", "--threads", "1", "--quiet",
            "--trials", "2"]
    code, _, err = cli(capsys, "study", *tiny, "--out", tmp_path / "bad", "--promotion", "sorted")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--promotion must be one of async, ordered" in err, err
    assert not (tmp_path / "bad").exists()
    code, out, err = cli(capsys, "study", *tiny, "--out", tmp_path / "s", "--schedule", "halving", "--promotion",
                         "ordered")
    assert code == 0 and "promotion: ordered, on a clock of 1 lane, a run charged steps x c^0.5 (" in out, err
    with Study.open(tmp_path / "s") as study:
        assert study.config.promotion == "ordered" and study.get_meta(CLOCK_META)["lanes"] == 1


def test_a_uniform_study_of_the_stream_keeps_no_clock(tmp_path):
    """It decides nothing from results (trial k is the stream's k-th recipe), so its workers
    never wait for one; it is the same study either way."""
    uniform = replace(CFG, schedule="uniform")
    for promotion in ("async", "ordered"):
        run_study(tmp_path / promotion, replace(uniform, promotion=promotion), trials=8,
                  executor=ShuffledExecutor(3, 0), progress=False).close()
    with Study.open(tmp_path / "ordered") as study:
        assert study.get_meta(CLOCK_META) is None
    assert _runs(tmp_path / "ordered") == _runs(tmp_path / "async")


def test_trials_says_how_the_study_promoted(tmp_path, capsys):
    from _cli import cli

    for promotion, words in (("ordered", "promotion: ordered, on a clock of 2 lanes, a run charged steps x c^0.5 "
                                         "(the same decisions however fast its runs finished); its runs took c^"),
                             ("async", "promotion: async, as runs finished")):
        run_study(tmp_path / promotion, replace(CFG, promotion=promotion), trials=6, executor=SyntheticExecutor(2),
                  progress=False).close()
        code, text, err = cli(capsys, "trials", tmp_path / promotion)
        assert code == 0 and words in text, err
        code, text, err = cli(capsys, "trials", tmp_path / promotion, "--json")
        assert json.loads(text)["config"]["promotion"] == promotion


def test_an_ordered_botorch_study_proposes_the_same_recipes_however_its_runs_finish(tmp_path):
    """The acquisition reads the finished trials: on the clock it sees the same ones, and takes
    the rest as pending, whichever really finished first."""
    config = replace(CFG, schedule="uniform", sampler="botorch", init_trials=5, promotion="ordered")
    recipes = []
    for k in range(2):
        run_study(tmp_path / str(k), config, trials=9, executor=ShuffledExecutor(3, k), progress=False).close()
        with Study.open(tmp_path / str(k)) as study:
            trials = study.trials()
            recipes.append([(t.number, t.recipe.r, t.recipe.w, t.recipe.d, t.proposed_by) for t in trials])
    assert recipes[0] == recipes[1] and sum(p == "botorch" for *_, p in recipes[0]) >= 2  # the acquisition chose some


def test_a_chosen_clock_exponent_is_the_clock_s_and_fixed_with_the_study(tmp_path, capsys, monkeypatch):
    from _cli import cli

    import tinyscale.study.ordering as ordering

    config = replace(CFG, promotion="ordered", clock_exponent=0.0)
    run_study(tmp_path / "steps", config, budget_steps=BUDGET, executor=ShuffledExecutor(3, 0), progress=False).close()
    with Study.open(tmp_path / "steps") as study:
        assert study.get_meta(CLOCK_META)["exponent"] == 0.0
    monkeypatch.setattr(ordering, "CLOCK_EXPONENT", 0.0)  # the default's clock, made to charge steps alone
    run_study(tmp_path / "default", replace(config, clock_exponent=None), budget_steps=BUDGET,
              executor=ShuffledExecutor(3, 1), progress=False).close()
    assert _runs(tmp_path / "steps") == _runs(tmp_path / "default")
    monkeypatch.undo()

    tiny = ["--data", "generated", "--base-resolution", "16", "--r-range", "0.5,1.0", "--steps", "10", "--batch-size",
            "16", "--train-size", "128", "--val-size", "32", "--workers", "1", "--threads", "1", "--quiet",
            "--trials", "2", "--schedule", "halving"]
    for extra, words in ((["--clock-exponent", "0.2"], "--clock-exponent is for --promotion ordered"),
                         (["--promotion", "ordered", "--clock-exponent", "3"],
                          "--clock-exponent must be a number from 0 to 2, got 3.0")):
        code, _, err = cli(capsys, "study", *tiny, "--out", tmp_path / "bad", *extra)
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
        assert not (tmp_path / "bad").exists()
    code, out, err = cli(capsys, "study", *tiny, "--out", tmp_path / "s", "--promotion", "ordered",
                         "--clock-exponent", "0.25")
    assert code == 0 and "a run charged steps x c^0.25 (" in out, err
    code, _, err = cli(capsys, "study", "--resume", tmp_path / "s", "--clock-exponent", "0.5", "--trials", "3")
    assert code == 2 and "clock_exponent" in err, err
