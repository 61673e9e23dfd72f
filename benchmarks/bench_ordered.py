"""What ordered promotion costs in time: a halving study's makespan with `--promotion ordered`
(decisions on a clock of step-units, reproducible) against `async` (decisions as runs finish,
ASHA's way), run through the real study driver on a simulated clock.

    .venv/bin/python benchmarks/bench_ordered.py [--workers 2,4,8] [--repeats 3]

Each run "trains" by the synthetic truth of the halving tests (tests/_synthetic_halving.py) and
takes the time a cost model fitted on a real study says: seconds a step = a * c^b from the
committed Imagenette halving study (experiments/results/imagenette-v2/H: 102 runs measured on
one core each), times a seeded log-normal factor with that fit's residual sd (the spread of
real runs of one recipe cost: load, the machine), plus its evaluation time fitted the same way.
No CPU is trained on, so the result is the same on any machine and does not disturb timings.

Prints, per worker count, the makespan both ways (simulated hours), the workers' busy share,
and the ratio ordered / async (mean over the repeats' noise seeds, which change the finishing
order and so the async study).
"""

from __future__ import annotations

import argparse
import math
import random
import sqlite3
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic truth the halving tests share

from _synthetic_halving import CFG, SyntheticResult, observed  # noqa: E402

from tinyscale.space.cost import ratio  # noqa: E402
from tinyscale.space.recipe import Recipe  # noqa: E402
from tinyscale.study.driver import run_study  # noqa: E402
from tinyscale.study.executors import TrialOutcome  # noqa: E402

MEASURED = ROOT / "experiments" / "results" / "imagenette-v2" / "H" / "trials.sqlite"
STEPS, BUDGET = 100, 27_000  # the Imagenette proof's rung 0 and step budget


def cost_model(path: Path = MEASURED) -> dict:
    """log(seconds a step) and log(eval seconds) as lines in log c, with the residual sd."""
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    rows = conn.execute("SELECT ratio, steps, train_seconds, eval_seconds FROM trials WHERE state = 'completed'"
                        ).fetchall()
    rows += conn.execute("SELECT t.ratio, u.steps, u.train_seconds, u.eval_seconds FROM rung_runs AS u "
                         "JOIN trials AS t USING (number) WHERE u.state = 'completed'").fetchall()
    data = np.array(rows, dtype=float)
    x = np.c_[np.ones(len(data)), np.log(data[:, 0])]
    out = {"runs": len(data)}
    for name, y in (("step", np.log(data[:, 2] / data[:, 1])), ("eval", np.log(data[:, 3]))):
        coef = np.linalg.lstsq(x, y, rcond=None)[0]
        out[name] = (float(coef[0]), float(coef[1]), float(np.std(y - x @ coef)))
    return out


class SimulatedClockExecutor:
    """``slots`` workers on a simulated clock: a run takes the cost model's time, its result is
    the synthetic truth's, and results arrive in the order the runs finish."""

    def __init__(self, slots: int, model: dict, seed: int) -> None:
        self.slots, self.model, self.noise = slots, model, random.Random(seed)
        self.now, self.busy, self.running, self.count = 0.0, 0.0, [], 0

    def seconds(self, c: float, steps: int) -> float:
        (a, b, sd), (ea, eb, esd) = self.model["step"], self.model["eval"]
        train = steps * math.exp(a + b * math.log(c) + self.noise.gauss(0.0, sd))
        return train + math.exp(ea + eb * math.log(c) + self.noise.gauss(0.0, esd))

    def submit(self, task) -> None:
        recipe = Recipe.from_dict(task.recipe)
        steps = task.train["steps"]
        took = self.seconds(ratio(recipe), steps)
        self.busy += took
        result = SyntheticResult(observed(recipe, steps * CFG.steps // STEPS, task.seed), steps, train_seconds=took)
        self.running.append((self.now + took, self.count, TrialOutcome(task.number, result)))
        self.count += 1

    def next_outcome(self):
        self.running.sort(key=lambda item: item[:2])
        self.now, _, outcome = self.running.pop(0)
        return outcome

    def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="2,4,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measured", type=Path, default=MEASURED,
                        help="the trials.sqlite of a study whose runs' times the cost model is fitted on")
    args = parser.parse_args()
    model = cost_model(args.measured)
    print(f"cost model from {model['runs']} measured runs of {args.measured}: s/step = {math.exp(model['step'][0]):.3f} c^"
          f"{model['step'][1]:.2f} (residual sd {model['step'][2]:.2f} in log), eval s = "
          f"{math.exp(model['eval'][0]):.2f} c^{model['eval'][1]:.2f} (sd {model['eval'][2]:.2f})")
    print(f"halving study: rung 0 {STEPS} steps, eta 3, 2 rungs, {BUDGET:,} step-units")
    print(f"{'workers':>7} {'async h':>8} {'ordered h':>9} {'busy async':>10} {'busy ordered':>12} {'ratio':>6}")
    config = replace(CFG, steps=STEPS)
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (int(w) for w in args.workers.split(",")):
            times: dict[str, list[float]] = {"async": [], "ordered": []}
            busy: dict[str, list[float]] = {"async": [], "ordered": []}
            for seed in range(args.repeats):
                for promotion in times:
                    executor = SimulatedClockExecutor(workers, model, seed)
                    out = Path(tmp) / f"{promotion}-{workers}-{seed}"
                    run_study(out, replace(config, promotion=promotion), budget_steps=BUDGET, executor=executor,
                              progress=False).close()
                    times[promotion].append(executor.now / 3600)
                    busy[promotion].append(executor.busy / (workers * executor.now))
            mean = {k: sum(v) / len(v) for k, v in times.items()}
            ratios = [o / a for o, a in zip(times["ordered"], times["async"])]
            print(f"{workers:>7} {mean['async']:>8.2f} {mean['ordered']:>9.2f} "
                  f"{sum(busy['async']) / args.repeats:>10.0%} {sum(busy['ordered']) / args.repeats:>12.0%} "
                  f"{sum(ratios) / len(ratios):>5.2f}x", flush=True)


if __name__ == "__main__":
    main()
