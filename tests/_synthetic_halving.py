"""The synthetic truth of the halving tests and experiments: a study whose true accuracies, and
the step-dependent noise and depth bias of brief training, are known (`observed`), and an
executor that "trains" by it in no time (`SyntheticExecutor`). Shared by tests/test_halving.py,
tests/test_multifidelity.py and experiments/multifidelity_fit.py."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from tinyscale.space.cost import ratio
from tinyscale.space.recipe import Recipe
from tinyscale.study.executors import TrialOutcome
from tinyscale.study.trial import StudyConfig

S0 = 10  # rung-0 steps of the synthetic studies
CFG = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), window=(0.05, 0.8), steps=S0,
                  batch_size=16, train_size=256, val_size=64, extra={"bn_calibration_images": 64}, seed=3,
                  schedule="halving", eta=3, rungs=2)


# ------------------------------------------------------------------ a synthetic truth
def true_shape(recipe: Recipe) -> float:
    """What long training rewards at matched cost: depth 1 and resolution 0.8 (0 is the best)."""
    return -0.3 * math.log(recipe.d) ** 2 - 0.3 * (math.log(recipe.r) - math.log(0.8)) ** 2


def observed(recipe: Recipe, steps: int, seed: int, bias: float = 0.2, noise: float = 0.03) -> float:
    """Accuracy after ``steps``: the truth, minus a bias against depth that fades as 1/steps
    (deep networks start slowly), plus seeded noise whose sd shrinks as 1/sqrt(steps)."""
    fade = S0 / steps
    value = 0.6 + 0.05 * math.log(ratio(recipe)) + true_shape(recipe) - bias * fade * math.log(recipe.d / 0.35)
    value += noise * math.sqrt(fade) * random.Random(seed * 1_000_003 + steps).gauss(0.0, 1.0)
    return min(max(value, 0.01), 0.99)


@dataclass(frozen=True)
class SyntheticResult:
    """What a worker reports of a run (the fields the driver stores)."""

    accuracy: float
    steps: int
    loss: float = 0.5
    images_seen: int = 0
    train_seconds: float = 0.01
    eval_seconds: float = 0.01
    images_per_second: float = 1e4


class SyntheticExecutor:
    """``slots`` workers that 'train' by `observed`, first in first out. ``crash_at``: the
    submission (0-based) at which a KeyboardInterrupt stands in for a kill."""

    def __init__(self, slots: int = 1, crash_at: int | None = None, **truth) -> None:
        self.slots, self.crash_at, self.truth, self.queue, self.submitted = slots, crash_at, truth, [], 0

    def submit(self, task) -> None:
        if self.submitted == self.crash_at:
            raise KeyboardInterrupt
        self.submitted += 1
        steps = task.train["steps"]
        acc = observed(Recipe.from_dict(task.recipe), steps, task.seed, **self.truth)
        self.queue.append(TrialOutcome(task.number, SyntheticResult(acc, steps)))

    def next_outcome(self):
        return self.queue.pop(0)

    def close(self) -> None:
        pass
