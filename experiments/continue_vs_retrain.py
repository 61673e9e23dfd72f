"""Does a promoted run rank recipes as well when it continues from its shorter run's checkpoint
as when it retrains from scratch, per step spent? (issue 25, item 1)

Why: a study in rungs trains its promoted recipes again for eta x the steps. Under a warm-up,
stable, decay lr schedule (`lr_schedule="wsd"`) the promoted run can continue from the state its
shorter run reached where its decay began (`tinyscale.train.checkpoint`), skipping (1 - 0.2) of
the shorter run's steps: with eta = 4, a promoted recipe's two runs cost 400 + 1,280 step-units
instead of 400 + 1,600 (16 % fewer; 27 % at eta = 3). Whether the wsd schedule ranks recipes as
well as the cosine schedule every study so far used is the open question.

Protocol, fixed 2026-12-06 (session 11) before any run of this script:
- Recipes: the ten recipes of RESULTS "The demo's ten check recipes trained 16x longer"
  (session 7); their 6,400-step top-1 from that table is the yardstick (cosine schedule, seed
  11000 + trial, one run each). Each recipe rebuilt must have the printed c to 3 decimals, or
  the script stops before training. Amended before any training: the printed (r, w, d) are
  rounded (r = 0.656 builds 20 px, the study's 0.65625 21 px; the check stopped at trial 22), so
  the recipes are the demo study's stored values (a demo study of this version, /tmp/after3,
  whose ten 400-step top-1 equal the table's); the c check still applies.
- Data and trainer: the demo's (`uniform_demo_config()`: Fashion-MNIST, base 32, all 60,000 training
  images, 5,000 held out, zero-init residuals), one thread, seed 15000 + trial for every arm of a
  recipe (paired; no seed of the yardstick, the study, fidelity or compare).
- Arms: R400 and R1600, the cosine schedule from scratch (retraining: the warm-up is 10 % of
  each run); W400, wsd with its 40-step warm-up, saving its trunk (step 320); W1600, wsd with
  the same 40-step warm-up, continued from W400's trunk (1,280 steps trained).
- Reported: Spearman rho of each arm against the 6,400-step yardstick; the paired differences
  rho(W1600) - rho(R1600) and rho(W400) - rho(R400) with a bootstrap SE over recipes (2,000
  resamples, seed 0); mean top-1 of W1600 - R1600 with its paired SE; step-units and train
  seconds per arm.
- Decision, fixed beforehand: `--promote continue` becomes the default of a new study in rungs
  if both rho differences are above -1 SE (continuation ranks as well within noise at 16 % fewer
  steps, so better per CPU-minute); otherwise retraining stays the default and continuation an
  option. Either way the result goes to RESULTS. Caveat known in advance: ten recipes on a task
  the demo's window saturates (RESULTS "proxy") can only show a large difference.

Resumable: one JSON line per finished run in OUT; rerun the same command and only missing runs
train (a W1600 whose trunk is gone retrains W400 first).

    .venv/bin/python experiments/continue_vs_retrain.py [--out runs/continue-vs-retrain] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tinyscale.ranking import spearman
from tinyscale.space.cost import ratio
from tinyscale.study.executors import worker_data
from tinyscale.study.plan import data_spec, uniform_demo_config
from tinyscale.train.config import TrainConfig

# (trial, r, w, d, c, 6,400-step top-1 %) from RESULTS (session 7, experiments/long_signal.py).
# (r, w, d) as the demo study stored them (the table rounds them; r = 0.656 printed is 0.65625,
# 21 px, and 0.656 would build 20 px).
YARDSTICK = ((6, 0.46875, 0.4, 0.351, 0.066, 89.26), (4, 0.875, 0.226, 0.572, 0.094, 91.50),
             (16, 0.9375, 0.138, 0.942, 0.102, 91.38), (22, 0.65625, 0.553, 0.369, 0.142, 90.48),
             (5, 0.625, 0.38, 1.024, 0.174, 90.70), (15, 0.75, 0.553, 0.517, 0.212, 90.84),
             (23, 0.8125, 0.38, 1.277, 0.279, 91.58), (19, 0.59375, 0.56, 1.165, 0.349, 90.68),
             (1, 0.65625, 0.97, 0.449, 0.403, 90.86), (17, 0.40625, 1.436, 0.388, 0.570, 90.10))
SEED_BASE = 15000
ARMS = ("R400", "W400", "W1600", "R1600")  # in training order per recipe (W1600 needs W400's trunk)


def arm_config(base: TrainConfig, arm: str) -> TrainConfig:
    steps = int(arm[1:])
    if arm.startswith("R"):
        return base.with_(steps=steps, lr_schedule="cosine", threads=1)
    return base.with_(steps=steps, lr_schedule="wsd", warmup=base.with_(steps=400).warmup_steps, threads=1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/continue-vs-retrain")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = uniform_demo_config()
    recipes = {}
    for trial, r, w, d, c, _ in YARDSTICK:
        recipe = config.recipe(r, w, d)
        if round(ratio(recipe), 3) != c:
            raise SystemExit(f"trial {trial}: rebuilt c = {ratio(recipe):.4f}, RESULTS prints {c}: not the same network")
        recipes[trial] = recipe
    log = out / "runs.jsonl"
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            row = json.loads(line)
            done[(row["arm"], row["trial"])] = row
    if not args.report_only:
        from tinyscale.train.trainer import train_recipe

        data = worker_data(data_spec(config))
        base = TrainConfig.from_study(config)
        for trial, *_ in YARDSTICK:
            trunk = out / f"trunk-{trial}.pt"
            for arm in ARMS:
                if (arm, trial) in done and not (arm == "W400" and ("W1600", trial) not in done and not trunk.exists()):
                    continue
                kwargs = {"save_trunk": trunk} if arm == "W400" else {"resume_from": trunk} if arm == "W1600" else {}
                res = train_recipe(recipes[trial], data, arm_config(base, arm), SEED_BASE + trial, **kwargs)
                row = {"arm": arm, "trial": trial, "accuracy": res.accuracy, "steps": res.steps,
                       "start_step": res.start_step, "train_seconds": res.train_seconds, "failed": res.failed}
                done[(arm, trial)] = row
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"trial {trial:>2} {arm:<5}: {100 * (res.accuracy or 0):.2f} % from step {res.start_step} "
                      f"({res.train_seconds:.0f} s)", flush=True)
    return report(done)


def report(done: dict) -> int:
    trials = [t for t, *_ in YARDSTICK]
    if any((arm, t) not in done or done[(arm, t)]["accuracy"] is None for arm in ARMS for t in trials):
        print("incomplete or failed runs; rerun the command")
        return 1
    yard = np.array([y[-1] for y in YARDSTICK])
    acc = {arm: np.array([100 * done[(arm, t)]["accuracy"] for t in trials]) for arm in ARMS}
    rho = {arm: spearman(acc[arm], yard) for arm in ARMS}
    rng = np.random.default_rng(0)
    boot = {pair: [] for pair in (("W1600", "R1600"), ("W400", "R400"))}
    for _ in range(2000):
        idx = rng.integers(0, len(trials), len(trials))
        if len(set(idx.tolist())) < 3:
            continue
        for a, b in boot:
            boot[(a, b)].append(spearman(acc[a][idx], yard[idx]) - spearman(acc[b][idx], yard[idx]))
    print("| arm | rho vs 6,400 | mean top-1 % | step-units (10 recipes) | train s |")
    print("|---|---|---|---|---|")
    for arm in ARMS:
        rows = [done[(arm, t)] for t in trials]
        units = sum(r["steps"] - r["start_step"] for r in rows)
        print(f"| {arm} | {rho[arm]:+.3f} | {acc[arm].mean():.2f} | {units:,} | {sum(r['train_seconds'] for r in rows):.0f} |")
    verdicts = []
    for (a, b), draws in boot.items():
        se = float(np.std([x for x in draws if np.isfinite(x)], ddof=1))
        diff = rho[a] - rho[b]
        verdicts.append(diff > -se)
        print(f"rho({a}) - rho({b}) = {diff:+.3f} (bootstrap SE {se:.3f})")
    d = acc["W1600"] - acc["R1600"]
    print(f"top-1 W1600 - R1600 = {d.mean():+.2f} +- {d.std(ddof=1) / np.sqrt(len(d)):.2f} points (paired SE)")
    print("decision: " + ("continuation ranks as well within noise at fewer steps: --promote continue becomes the "
                          "default" if all(verdicts) else "retraining stays the default; continuation is an option"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
