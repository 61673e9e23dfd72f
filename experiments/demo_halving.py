"""On the Fashion-MNIST demo, does ``--schedule halving`` lose to the demo's uniform schedule?
(issue 25: "the same schedule must not lose to uniform, and the demo must stay <= 10 minutes")

Protocol, fixed on 2026-12-06 before any of these runs (results in benchmarks/RESULTS.md
"halving"):

- U: the demo's study as it is (`tinyscale.study.plan.uniform_demo_config`: 24 trials x 400 steps,
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

Amendment, 2026-12-06 19:15 UTC (session 12), before any of its runs: is `compare`'s new
default length (4x the study's top rung: 4,824 steps on H, which is the demo's study since session
12) out of the brief regime on the demo? (issue 25: "make the default compare length one that
passes [the settled check] on the demo and on Imagenette"). On H, `tinyscale compare --strategies
gp,efficientnet,fast,uniform` at the default length (the gp cells above are reused), seeds 0, 1, 2,
`--settle-check` (seed 0 at c = 1/4 and 1/16 retrained at 9,648 steps). The default passes on the
demo iff the check says settled (every fixed rule's accuracy rises with c within 2 paired SE, and
the longer runs rank the four strategies like the comparison's own, Spearman rho >= 0.9). The
one-axis rules are left out for time (they would double the runs); the result says so.

Resumable: rerun the same command.

    .venv/bin/python experiments/demo_halving.py study U && .venv/bin/python experiments/demo_halving.py study H
    .venv/bin/python experiments/demo_halving.py compare
    .venv/bin/python experiments/demo_halving.py report    # the decision rule above, from the stored comparisons
    .venv/bin/python experiments/demo_halving.py settle    # the amendment: compare's default length, settled?
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
SETTLE_STRATEGIES = "gp,efficientnet,fast,uniform"
SEEDS = 3


def main(argv=None) -> int:
    from tinyscale.study.driver import run_study
    from tinyscale.study.executors import default_workers, make_executor
    from tinyscale.study.plan import DEMO_TRIALS, uniform_demo_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=("study", "compare", "report", "settle"))
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
                study = run_study(directory, uniform_demo_config(), trials=DEMO_TRIALS, resume=resume, executor=executor)
            else:
                from tinyscale.study.store import Study

                with Study.open(out / "U") as u:  # U first: its study time is H's budget
                    minutes = u.progress().elapsed_seconds / 60
                config = replace(uniform_demo_config(), schedule="halving", steps=134, eta=3, rungs=2)
                study = run_study(directory, config, budget_minutes=minutes, resume=resume, executor=executor)
        finally:
            executor.close()
        with study:
            print(json.dumps(study.progress().to_dict()))
        print(tinyscale("fit", str(directory)))
    elif args.stage == "report":
        return report(out)
    elif args.stage == "settle":  # the amendment: no --steps, so compare's default length
        print(tinyscale("compare", str(out / "H"), "--strategies", SETTLE_STRATEGIES, "--ratios", RATIOS,
                        "--seeds", str(SEEDS), "--workers", "2", "--threads", "1", "--settle-check", "--no-progress"))
    else:
        for arm in ("U", "H"):
            print(tinyscale("compare", str(out / arm), "--strategies", "gp", "--ratios", RATIOS, "--steps",
                            str(COMPARE_STEPS), "--seeds", str(SEEDS), "--no-progress"))
    return 0


def report(out: Path) -> int:
    """The decision rule: the paired margin H - U of the gp recipes (interpolated in log c where
    bracketed), per seed the mean over the four ratios, then the mean and SE over the seeds."""
    import math

    from tinyscale.evaluate.compare import load_comparison
    from tinyscale.study.store import Study

    acc = {}
    for arm in ("U", "H"):
        comparison = load_comparison(out / arm)
        if comparison is None:
            print(f"{arm}: no comparison stored yet")
            return 1
        for c in (float(x) for x in RATIOS.split(",")):
            row = comparison.row(c, "gp")
            for seed, value in ({} if row is None else row.accuracy_by_seed).items():
                acc[(arm, c, seed)] = 100 * value
    ratios = [float(x) for x in RATIOS.split(",")]
    seeds = [s for s in range(SEEDS) if all((a, c, s) in acc for a in ("U", "H") for c in ratios)]
    print("| c | " + " | ".join(f"U seed {s} | H seed {s}" for s in seeds) + " | H - U (mean over seeds) |")
    print("|---|" + "---|" * (2 * len(seeds) + 1))
    for c in ratios:
        diffs = [acc[("H", c, s)] - acc[("U", c, s)] for s in seeds]
        cells = " | ".join(f"{acc[('U', c, s)]:.2f} | {acc[('H', c, s)]:.2f}" for s in seeds)
        print(f"| {c:g} | {cells} | {sum(diffs) / len(diffs):+.2f} |" if seeds else f"| {c:g} | |")
    per_seed = [sum(acc[("H", c, s)] - acc[("U", c, s)] for c in ratios) / len(ratios) for s in seeds]
    if len(per_seed) < SEEDS:
        print(f"partial: {len(per_seed)} of {SEEDS} seeds complete; not a decision")
        return 1
    mean = sum(per_seed) / len(per_seed)
    se = math.sqrt(sum((x - mean) ** 2 for x in per_seed) / (len(per_seed) - 1) / len(per_seed))
    print(f"H - U over the four ratios: {mean:+.2f} +- {se:.2f} points (per-seed means {', '.join(f'{x:+.2f}' for x in per_seed)})")
    minutes = {}
    for arm in ("U", "H"):
        with Study.open(out / arm) as study:
            minutes[arm] = study.progress().elapsed_seconds / 60
    loses = mean < -2 * se
    print(f"study minutes: U {minutes['U']:.2f}, H {minutes['H']:.2f}")
    print("decision: " + ("H loses to U (more than 2 SE below zero)" if loses else "H does not lose to U")
          + ("; H replaces the demo's schedule only if its margin is >= 0 and its whole demo stays <= 10 min: "
             + ("margin >= 0, check the demo's time" if mean >= 0 else "margin < 0: the demo stays uniform")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
