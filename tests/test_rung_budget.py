"""Budgets users think in (issue 25): a halving study with ``rungs`` auto chooses its rungs
from its budget (trials, step-units, or minutes with the first runs' measured cost), and a
step budget ends any study at the step-units it names."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
from _synthetic_halving import SyntheticResult

from tinyscale.space.cost import ratio
from tinyscale.space.recipe import Recipe
from tinyscale.study.driver import run_study
from tinyscale.study.executors import TrialOutcome
from tinyscale.study.halving import MIN_PAIRS, choose_rungs, rung_steps, schedule_cost
from tinyscale.study.timing import RunCost
from tinyscale.study.store import CHOSEN_RUNGS, Study
from tinyscale.study.trial import StudyConfig

S0 = 10
CFG = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), window=(0.05, 0.8), steps=S0,
                  batch_size=16, train_size=256, val_size=64, extra={"bn_calibration_images": 64}, seed=3,
                  schedule="halving", eta=3, rungs=None)
SECONDS_PER_STEP, EVAL_SECONDS = 0.5, 1.0  # what the fake executor reports a run cost (no real time passes)


class FakeExecutor:
    """Trains instantly: accuracy from the recipe's cost and shape, a reported cost per step."""

    slots = 1

    def __init__(self) -> None:
        self.queue: list[TrialOutcome] = []
        self.returned: list[int] = []  # the steps of each outcome handed back, in order
        self.first_long: int | None = None  # outcomes returned when the first longer run was submitted

    def submit(self, task) -> None:
        recipe, steps = Recipe.from_dict(task.recipe), task.train["steps"]
        if steps > S0 and self.first_long is None:
            self.first_long = len(self.returned)
        # Seeded noise that fades with steps: short runs do not rank as long ones (no early "settled").
        noise = 0.05 * math.sqrt(S0 / steps) * random.Random(task.seed * 1_000_003 + steps).gauss(0.0, 1.0)
        acc = 0.6 + 0.05 * math.log(ratio(recipe)) - 0.1 * math.log(recipe.d) ** 2 + noise
        self.queue.append(TrialOutcome(task.number, SyntheticResult(acc, steps, train_seconds=SECONDS_PER_STEP * steps, eval_seconds=EVAL_SECONDS)))

    def next_outcome(self):
        outcome = self.queue.pop(0)
        self.returned.append(outcome.result.steps)
        return outcome

    def close(self) -> None:
        pass


def test_schedule_cost_and_choose_rungs_against_hand_computed_budgets():
    # eta 3, 100-step rung 0, 6 recipes at the top: R rungs cost 6 (R+1) 3^R x 100 step-units.
    assert [schedule_cost(r, 3, lambda k: 100 * 3 ** k) for r in range(4)] == [600, 3_600, 16_200, 64_800]
    pick = dict(steps=100, eta=3, max_steps=1_000_000)
    assert [choose_rungs(**pick, step_budget=b) for b in (599, 3_599, 3_600, 16_199, 16_200, 64_800)] == [0, 0, 1, 1, 2, 3]
    # By trials: 6 x 3^R recipes at rung 0.
    assert [choose_rungs(**pick, trials=n) for n in (17, 18, 53, 54, 162)] == [0, 1, 1, 2, 3]
    # By worker-seconds: a run at rung k costs 0.01 x 100 x 3^k + 2 s; R = 1 costs 6x3x3 + 6x5 = 84,
    # R = 2 costs 6x9x3 + 6x3x5 + 6x11 = 318.
    cost = RunCost(0.01, 2.0)
    assert [choose_rungs(**pick, worker_seconds=w, cost=cost) for w in (83.9, 84, 317.9, 318)] == [0, 1, 1, 2]
    # Every budget given binds; so does the longest run allowed.
    assert choose_rungs(**pick, trials=1_000, step_budget=3_600) == 1
    assert choose_rungs(steps=100, eta=3, max_steps=899, trials=10_000) == 1
    with pytest.raises(ValueError, match="measured cost"):
        choose_rungs(**pick, worker_seconds=100.0)
    # Promoted runs that continue from their parent's trunk (at 80 % of its steps) train
    # 100 x 3^k - 80 x 3^(k-1) steps: R = 2 costs 6 x (9 x 100 + 3 x 220 + 660) = 13,320, which
    # retraining (16,200) cannot afford.
    continued = lambda k: 100 * 3 ** k - (80 * 3 ** (k - 1) if k else 0)  # noqa: E731
    assert schedule_cost(2, 3, continued) == 13_320
    assert [choose_rungs(**pick, step_budget=b, trained_steps=continued) for b in (13_319, 13_320)] == [1, 2]
    assert choose_rungs(**pick, step_budget=13_320) == 1


def _step_units(study: Study) -> int:
    return sum(t.steps for t in study.runs("completed"))


def test_a_step_budget_chooses_the_rungs_and_ends_the_study_where_it_says(tmp_path, capsys):
    budget = 2_000  # 6 x 3 x 3 x 10 + ... : R = 1 costs 360 step-units, R = 2 1,620, R = 3 6,480
    with run_study(tmp_path / "h", CFG, budget_steps=budget, executor=FakeExecutor(), progress=True) as study:
        assert study.get_meta(CHOSEN_RUNGS) == 2 == study.top_rung
        assert [r.rung for r in study.rung_summary()] == [0, 1, 2]
        spent = _step_units(study)
        assert budget - S0 < spent <= budget  # spent to the last rung-0 run that fits
        assert max(t.rung for t in study.runs()) == 2
    assert "2 rungs above rung 0, the top training 90 steps" in "".join(capsys.readouterr())
    # A uniform study on a step budget trains budget // steps trials.
    uniform = replace(CFG, schedule="uniform", rungs=2)
    with run_study(tmp_path / "u", uniform, budget_steps=95, executor=FakeExecutor(), progress=False) as study:
        assert study.progress().counts["completed"] == 9 and _step_units(study) == 90
    # Resumed with a larger budget, the study goes on; the rungs stay as chosen.
    with run_study(tmp_path / "h", None, budget_steps=budget + 300, resume=True, executor=FakeExecutor(),
                   progress=False) as study:
        assert budget + 300 - S0 < _step_units(study) <= budget + 300 and study.top_rung == 2


def test_a_budget_in_minutes_chooses_the_rungs_from_the_first_runs_measured_cost(tmp_path):
    # A rung-0 run reports 0.5 s a step and 1 s of evaluation: at rung k it costs 5 x 3^k + 1 s.
    # R = 1 costs 6x3x6 + 6x16 = 204 worker-seconds, R = 2 6x9x6 + 6x3x16 + 6x46 = 888: five minutes buy one rung
    # (the 60 trials alone would allow two: 54 <= 60). No real time passes.
    executor = FakeExecutor()
    with run_study(tmp_path / "m", CFG, trials=60, budget_minutes=5, executor=executor, progress=False) as study:
        assert study.get_meta(CHOSEN_RUNGS) == 1
        assert max(t.rung for t in study.runs()) == 1
    # No promotion before the choice: the first MIN_PAIRS rung-0 runs measured the cost.
    assert executor.first_long is not None and executor.returned[:MIN_PAIRS] == [S0] * MIN_PAIRS
    assert executor.first_long >= MIN_PAIRS
    with run_study(tmp_path / "m2", CFG, trials=60, budget_minutes=15, executor=FakeExecutor(),
                   progress=False) as study:
        assert study.get_meta(CHOSEN_RUNGS) == 2 and rung_steps(S0, 3, study.top_rung) == 90


def test_rungs_auto_on_the_command_line_and_its_errors(tmp_path, capsys):
    from tinyscale.cli import main
    from tinyscale.commands.study import CONFIG_OPTIONS, config_from_args
    import argparse

    args = argparse.Namespace(**{k: None for k in CONFIG_OPTIONS}, precision=None)
    args.schedule = "halving"
    args.data, args.num_classes = "generated", 10
    assert config_from_args(args).rungs is None  # a new study in rungs: auto
    args.rungs = 3
    assert config_from_args(args).rungs == 3
    args.rungs = "auto"
    assert config_from_args(replace_namespace(args, schedule=None), StudyConfig(data="x", rungs=2)).rungs is None
    with pytest.raises(SystemExit) as usage:
        main(["study", "--data", "generated", "--out", str(tmp_path / "s"), "--rungs", "two", "--budget-steps", "100"])
    assert usage.value.code == 2
    assert "expected a whole number or auto" in capsys.readouterr().err
    assert main(["study", "--data", "generated", "--out", str(tmp_path / "s"), "--budget-steps", "0"]) == 2
    assert "budget_steps must be a positive" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def replace_namespace(args, **changes):
    import argparse

    return argparse.Namespace(**{**vars(args), **changes})
