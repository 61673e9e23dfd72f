"""Is the demo's window short of training, or is the task saturated there? Its ten fidelity recipes trained 16x longer.

Why: `tinyscale fidelity demo-study` found the ten recipes it trains 4x longer (1,600 steps)
within 2.1 points of each other, with no rise in c, so neither the 400-step proxy nor any recipe
can show much there (RESULTS "proxy"; the hindsight best strategy in the compare is +0.92 points
over EfficientNet). Whether that is the task (32-px Fashion-MNIST saturating between 1/16 and 1/2
of B0) or the training length decides what would make issue 9's targets reachable: a harder
demo task, or a longer (costlier) one. This measures it on the same ten recipes.

Protocol, fixed 2026-12-05 (session 7) before any run of this script:
- Recipes: the ten trials of `demo-study/fidelity.json`'s rank check (the fidelity check's picks,
  spread over the window's c). Data and trainer: the demo study's (its stored config), 6,400
  steps (16x the study's 400, 4x the check's 1,600), one run per recipe, seed 11000 + trial
  number (no seed of the study, the check or `compare`).
- Reported: the range and sd over the ten of the 6,400-step top-1 beside the 1,600-step ones;
  the slope of top-1 per doubling of c with its standard error; Spearman rho of the 6,400-step
  top-1 with the 1,600-step runs, with the study's 400-step runs, and with the accuracy surface's
  prediction (the demo's saved fit).
- Reading, fixed beforehand: if the sd over the ten at 6,400 steps is at least 1.5x that at 1,600
  and the slope's t >= 2, the window is short of training (capacity shows with more steps); if
  the sd is within 0.75x-1.33x of 1,600's and t < 2, the task is saturated in this window at any
  affordable length; anything else is reported as mixed. Nothing in the product is decided by it.

Resumable: one JSON line per finished run in OUT; rerun the same command and only missing runs train.

    .venv/bin/python experiments/long_signal.py [demo-study] [--out runs/long-signal.jsonl] [--workers 2] [--report-only]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from proxy_data import slope
from proxy_steps import load_done, run_arms, run_parser
from tinyscale.evaluate.fidelity import load_fidelity, spearman
from tinyscale.fit.gp import ScalingFit
from tinyscale.study.plan import data_spec
from tinyscale.study.store import Study
from tinyscale.train.config import TrainConfig

STEPS, SEED_BASE, ARM = 6400, 11000, "6400"


def main(argv=None) -> int:
    ap = run_parser(__doc__, "runs/long-signal.jsonl")
    ap.add_argument("study_dir", nargs="?", default="demo-study")
    args = ap.parse_args(argv)

    fidelity = load_fidelity(args.study_dir)
    if fidelity is None:
        raise SystemExit(f"{args.study_dir}: no fidelity check stored; run `tinyscale fidelity {args.study_dir}` first")
    with Study.open(args.study_dir) as study:
        config = study.config
        by_number = {t.number: t for t in study.trials(state="completed")}
    pairs = list(fidelity.pairs)
    recipes = [by_number[p.number].recipe for p in pairs]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = load_done(out, recipes)
    train = TrainConfig.from_study(config).with_(steps=STEPS)
    todo = [(ARM, train, SEED_BASE + p.number, i) for i, p in enumerate(pairs) if (ARM, i) not in done]
    if not args.report_only:
        run_arms(todo, recipes, data_spec(config), out, done, args.workers)
    if any((ARM, i) not in done or done[(ARM, i)]["accuracy"] is None for i in range(len(pairs))):
        print("incomplete or failed runs; rerun the command")
        return 1

    c = np.array([p.ratio for p in pairs])
    brief = np.array([p.brief for p in pairs]) * 100
    long = np.array([p.long for p in pairs]) * 100
    longer = np.array([done[(ARM, i)]["accuracy"] for i in range(len(pairs))]) * 100
    fit = ScalingFit.from_dict(json.loads((Path(args.study_dir) / "fit.json").read_text()))
    predicted = fit.trial_accuracy()
    surface = np.array([predicted[p.number] for p in pairs]) * 100

    print("| steps | range of top-1 % | sd over the ten (pp) | slope per doubling of c (pp) | t |")
    print("|---|---|---|---|---|")
    rows = {}
    for name, acc in (("400 (the study)", brief), ("1,600 (the check)", long), ("6,400", longer)):
        s, se = slope(c, acc)
        rows[name] = (float(np.std(acc, ddof=1)), s / se)
        print(f"| {name} | {acc.min():.2f}-{acc.max():.2f} | {np.std(acc, ddof=1):.2f} | {s:+.2f} ± {se:.2f} | {s / se:.1f} |")
    print(f"\nSpearman rho with the 6,400-step top-1: 1,600 steps {spearman(long, longer):+.2f}, 400 steps "
          f"{spearman(brief, longer):+.2f}, the accuracy surface {spearman(surface, longer):+.2f} "
          f"(for scale: 400 vs 1,600 {spearman(brief, long):+.2f})")
    sd_ratio = rows["6,400"][0] / rows["1,600 (the check)"][0]
    t = rows["6,400"][1]
    if sd_ratio >= 1.5 and t >= 2:
        reading = "the window is short of training: capacity shows with more steps"
    elif 0.75 <= sd_ratio <= 1.33 and abs(t) < 2:
        reading = "the task is saturated in this window at any affordable length"
    else:
        reading = "mixed"
    print(f"reading: sd ratio 6,400 / 1,600 = {sd_ratio:.2f}, slope t = {t:.1f} -> {reading}")
    print("\n| trial | r | w | d | c | 400 | 1,600 | 6,400 | surface |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, p in enumerate(pairs):
        rec = recipes[i]
        print(f"| {p.number} | {rec.r:.3g} | {rec.w:.3g} | {rec.d:.3g} | {c[i]:.3f} | {brief[i]:.2f} | {long[i]:.2f} "
              f"| {longer[i]:.2f} | {surface[i]:.2f} |")
    if not math.isfinite(sd_ratio):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
