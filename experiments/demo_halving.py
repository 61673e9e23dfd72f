"""On the Fashion-MNIST demo, does ``--schedule halving`` lose to the demo's uniform schedule?
(issue 25: "the same schedule must not lose to uniform, and the demo must stay <= 10 minutes")

Protocol, fixed on 2026-12-06 before any of these runs (results in benchmarks/RESULTS.md
"halving"):

- U: the demo's study as it is (`tinyscale.study.plan.demo_config`: 24 trials x 400 steps,
  sobol seed 0, 2 workers), its study time measured.
- H: the same config with ``schedule="halving"``, rung 0 = 134 steps (a third of 400), eta 3,
  2 rungs (134 / 402 / 1,206 steps), and U's measured study time as its budget (2 workers).
- Both fitted with `tinyscale fit` defaults (noted 2026-12-06, session 10, still before any run:
  a halving study's default fit now reads every rung, `--from-rungs all`; H is fitted so); `tinyscale compare --strategies gp` on each at
  c = 1/2, 1/4, 1/8, 1/16, seeds 0, 1, 2, 4,824 steps (4x H's top rung), same trainer, so the two
  gp rows pair by (c, seed).
- Decision rule: H "does not lose" when the mean paired margin H - U over the four ratios is
  not below zero by more than 2 SE (SE over the three seed means). H replaces the demo's
  schedule only if the margin is >= 0 and H's whole demo (study, noise, fit) stays <= 10 minutes.

Resumable: rerun the same command.

    .venv/bin/python experiments/demo_halving.py study U && .venv/bin/python experiments/demo_halving.py study H
    .venv/bin/python experiments/demo_halving.py compare
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from active_compare import (
    tinyscale,  # the experiments' one way to run the CLI (scripts import each other by name)
)

RATIOS = "0.5,0.25,0.125,0.0625"
COMPARE_STEPS = 4 * 134 * 9
SEEDS = 3


def main(argv=None) -> int:
    from tinyscale.study.driver import run_study
    from tinyscale.study.executors import default_workers, make_executor
    from tinyscale.study.plan import DEMO_TRIALS, demo_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=("study", "compare"))
    ap.add_argument("arm", nargs="?", choices=("U", "H"))
    ap.add_argument("--out", default="runs/demo-halving")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.stage == "study":
        directory = out / args.arm
        resume = (directory / "config.json").exists()
        executor = make_executor("local", default_workers())
        try:
            if args.arm == "U":
                study = run_study(directory, demo_config(), trials=DEMO_TRIALS, resume=resume, executor=executor)
            else:
                from tinyscale.study.store import Study

                with Study.open(out / "U") as u:  # U first: its study time is H's budget
                    minutes = u.progress().elapsed_seconds / 60
                config = replace(demo_config(), schedule="halving", steps=134, eta=3, rungs=2)
                study = run_study(directory, config, budget_minutes=minutes, resume=resume, executor=executor)
        finally:
            executor.close()
        with study:
            print(json.dumps(study.progress().to_dict()))
        print(tinyscale("fit", str(directory)))
    else:
        for arm in ("U", "H"):
            print(tinyscale("compare", str(out / arm), "--strategies", "gp", "--ratios", RATIOS, "--steps",
                            str(COMPARE_STEPS), "--seeds", str(SEEDS), "--no-progress"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
