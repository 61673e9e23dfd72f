"""Does training on all 60,000 images instead of 12,800 make brief trials rank recipes better?

Why this lever: it costs nothing per step (a step is 64 images either way). On the demo's 12,800
images a 1,600-step run sees each image 8 times, so long runs may be separated by how much each
network overfits rather than by what it can learn; the demo's fidelity checks found the ten
1,600-step accuracies within about 2 points (RESULTS "proxy"). A user's final model would be
trained on all the data, so that is the reference here.

Protocol, fixed 2026-12-05 (session 5) before any run of this script:
- 10 recipes: the first 10 of a Sobol stream over the demo's search space (`uniform_demo_config`: window
  0.04-0.6, default r and d ranges) with *sampler seed 13*: not the demo's 0, not the proxy
  check's 7, not the trainer screen's 11. Trainer: the demo's (`uniform_demo_config`, zero-gamma).
- Fashion-MNIST at base 32 px. Held-out: the whole 10,000-image test set for every arm, so all
  arms are scored on the same images. Data arms: ``12k`` = the demo's 12,800-image training
  subset (data seed 0), ``60k`` = all 60,000 training images.
- Runs (arm, steps, training seed for recipe i): 12k/400/A (7000 + i), 12k/400/B (7100 + i),
  12k/1600/C (7200 + i), 60k/400/A (7000 + i), 60k/400/B (7100 + i), 60k/1600/C (7200 + i),
  60k/1600/D (7300 + i). No seed of `tinyscale compare` (0..N-1) or of the demo study.
- Reference R: the mean of 60k/1600/C and 60k/1600/D (what a user's longer training on all the
  data gives, with two seeds so the reference's own noise is halved).
- Reported per data arm: Spearman rho of each 400-step seed against R, and their mean rho-bar;
  rho of the arm's 400-step mean; rho of the arm's own 1600/C against R; the seed sd at 400
  steps from the A/B pairs and the recipe share of variance; the slope of top-1 per doubling of
  c (400-step mean and R, with standard errors); minutes per 400-step run. Also rho(60k/1600/C,
  60k/1600/D), the reference's own reliability, and the seed sd at 1,600 steps.
- Secondary, no part of the decision: the same rho computed from the 400-step held-out loss
  (lower is better) instead of top-1.
- Decision rule: the demo trains on all 60,000 images if rho-bar(60k) >= rho-bar(12k) - 0.05
  (more data is free per step; the screen guards against it hurting the ranking) and a 60k
  400-step run takes at most 1.2x the time of a 12k one; otherwise it keeps 12,800.

Resumable: one JSON line per finished run in OUT; rerun the same command and only missing runs train.

    .venv/bin/python experiments/proxy_data.py [--out runs/proxy-data.jsonl] [--workers 2] [--report-only]
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from proxy_levers import pair_stats
from proxy_steps import load_done, run_arms, run_parser
from tinyscale.evaluate.fidelity import spearman
from tinyscale.study.samplers.base import sample_recipes
from tinyscale.study.plan import data_spec, uniform_demo_config
from tinyscale.train.config import TrainConfig

SAMPLER_SEED, N_RECIPES = 13, 10
DATA_ARMS = {"12k": 12_800, "60k": None}  # training images (None: all 60,000)
RUNS = (("12k", 400, "A", 7000), ("12k", 400, "B", 7100), ("12k", 1600, "C", 7200),
        ("60k", 400, "A", 7000), ("60k", 400, "B", 7100), ("60k", 1600, "C", 7200), ("60k", 1600, "D", 7300))


def arm_name(data: str, steps: int, label: str) -> str:
    return f"{data}/{steps}/{label}"


def slope(c, acc) -> tuple[float, float]:
    """Least-squares slope of ``acc`` (points) per doubling of c, and its standard error."""
    x = np.log2(np.asarray(c, dtype=float))
    coef, cov = np.polyfit(x, acc, 1, cov=True)
    return float(coef[0]), float(math.sqrt(cov[0, 0]))


def main(argv=None) -> int:
    ap = run_parser(__doc__, "runs/proxy-data.jsonl")
    args = ap.parse_args(argv)

    demo = uniform_demo_config()
    recipes = sample_recipes(replace(demo, seed=SAMPLER_SEED), N_RECIPES)
    specs = {arm_name(data, steps, label): data_spec(replace(demo, train_size=DATA_ARMS[data], val_size=None))
             for data, steps, label, _ in RUNS}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = load_done(out, recipes)
    base = TrainConfig.from_study(demo)
    # Grouped by data arm (a worker keeps one dataset in memory), short runs first within each.
    todo = [(arm_name(data, steps, label), base.with_(steps=steps), seed + i, i)
            for data, steps, label, seed in sorted(RUNS, key=lambda r: (r[0], r[1]))
            for i in range(len(recipes)) if (arm_name(data, steps, label), i) not in done]
    if not args.report_only:
        run_arms(todo, recipes, specs, out, done, args.workers)
    report(done, len(recipes))
    return 0


def report(done: dict, n: int) -> None:
    missing = [arm_name(d, s, lab) for d, s, lab, _ in RUNS if any((arm_name(d, s, lab), i) not in done for i in range(n))]
    if missing:
        print(f"incomplete: {', '.join(missing)}")
        return

    def acc(arm):
        return np.array([done[(arm, i)]["accuracy"] for i in range(n)], dtype=float) * 100

    def loss(arm):
        return np.array([done[(arm, i)]["loss"] for i in range(n)], dtype=float)

    c = np.array([done[("60k/1600/C", i)]["c"] for i in range(n)])
    ref = (acc("60k/1600/C") + acc("60k/1600/D")) / 2
    print("| data | rho 400/A vs R | rho 400/B vs R | rho-bar | rho of the 400 A/B mean | rho of own 1600/C vs R "
          "| seed sd at 400 (pp) | recipe share | slope at 400 (pp/doubling) | rho-bar from held-out loss "
          "| minutes per 400-step run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    bars = {}
    for data in DATA_ARMS:
        a, b = acc(f"{data}/400/A"), acc(f"{data}/400/B")
        ra, rb = spearman(a, ref), spearman(b, ref)
        bars[data] = (ra + rb) / 2
        sd, share, _ = pair_stats(a, b)
        s, se = slope(c, (a + b) / 2)
        lbar = (spearman(-loss(f"{data}/400/A"), ref) + spearman(-loss(f"{data}/400/B"), ref)) / 2
        minutes = np.mean([done[(f"{data}/400/{x}", i)]["seconds"] for x in "AB" for i in range(n)]) / 60
        print(f"| {data} | {ra:+.2f} | {rb:+.2f} | {bars[data]:+.2f} | {spearman((a + b) / 2, ref):+.2f} "
              f"| {spearman(acc(f'{data}/1600/C'), ref):+.2f} | {sd:.2f} | {share:.2f} | {s:+.2f} ± {se:.2f} "
              f"| {lbar:+.2f} | {minutes:.2f} |")
    cc, dd = acc("60k/1600/C"), acc("60k/1600/D")
    sd1600, share1600, rho_cd = pair_stats(cc, dd)
    s, se = slope(c, ref)
    print(f"\nreference R (60k, 1600 steps, mean of C and D): {ref.min():.2f}-{ref.max():.2f} %, slope {s:+.2f} ± "
          f"{se:.2f} pp per doubling of c; rho C vs D {rho_cd:+.2f}; seed sd at 1600 {sd1600:.2f} pp; recipe share "
          f"{share1600:.2f}")
    print(f"12k/1600/C: {acc('12k/1600/C').min():.2f}-{acc('12k/1600/C').max():.2f} %")
    t12 = np.mean([done[("12k/400/" + x, i)]["seconds"] for x in "AB" for i in range(n)])
    t60 = np.mean([done[("60k/400/" + x, i)]["seconds"] for x in "AB" for i in range(n)])
    adopt = bars["60k"] >= bars["12k"] - 0.05 and t60 <= 1.2 * t12
    print(f"decision: rho-bar 60k {bars['60k']:+.2f} vs 12k {bars['12k']:+.2f}, time ratio {t60 / t12:.2f} -> "
          f"{'train the demo on all 60,000 images' if adopt else 'keep 12,800'}")
    print("\n| i | r | w | d | c | " + " | ".join(arm_name(d, s, lab) for d, s, lab, _ in RUNS) + " |")
    print("|---" * (5 + len(RUNS)) + "|")
    for i in range(n):
        rec = done[("60k/1600/C", i)]["recipe"]
        row = " | ".join(f"{100 * done[(arm_name(d, s, lab), i)]['accuracy']:.2f}" for d, s, lab, _ in RUNS)
        print(f"| {i} | {rec['r']:.3g} | {rec['w']:.3g} | {rec['d']:.3g} | {c[i]:.3f} | {row} |")


if __name__ == "__main__":
    sys.exit(main())
