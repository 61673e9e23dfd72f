"""Does evaluating the average of the last iterates (tail averaging) make a brief run a more reliable measure of its recipe?

Why this lever: brief runs at the demo's learning rate are chaotic (an ulp changes top-1 by points:
RESULTS "train"), and four trainer levers have left the 400-step seed sd at 1-1.6 points
(zero-gamma adopted; TF RMSProp, all the data, larger batches not). Those levers changed how the
run moves; this one changes what is measured at its end: the uniform average of the weights over
the last part of the run (SWA's tail averaging; `TrainConfig.average_tail`), with BatchNorm
statistics re-estimated for the averaged weights as for any run. Averaging smooths the end of the
trajectory a seed happens to take, at the cost of one fused running-mean update per step.

Protocol, fixed 2026-12-05 (session 7) before any run of this script:
- 10 recipes: the first 10 of a Sobol stream over the demo's search space with sampler seed 31
  (not 0, 7, 11, 13, 17, 23, 29; no compare seed). Data: the demo's own (all 60,000 training
  images, its 5,000 held out). Trainer: the demo's (`uniform_demo_config`: batch 64, 400 steps, zero-gamma).
- Arms, two training seeds each, A = 9500 + i and B = 9600 + i: ``final`` (the final weights: the
  demo today), ``avg25`` (the average over the last 25 % of the steps), ``avg50`` (the last 50 %).
- Reported per arm (`proxy_batch.reliability_screen`): seed sd from the A/B pairs, recipe share of
  variance (a single run's reliability as a measure of its recipe), rho A vs B, mean top-1, seconds.
- Decision rule: of avg25 and avg50, the arm with the smaller seed sd is adopted by the demo if,
  against ``final``, its seed sd is at most 0.8x, its recipe share larger, its mean top-1 no more
  than 0.5 points lower and its time at most 1.1x (`proxy_batch.reliability_gain`, the rule the
  batch-size confirmation used). Otherwise the demo keeps the final weights. The blind check of an
  adopted arm is the new demo study's own `tinyscale fidelity` run (rho and sigma against the
  current demo's +0.22 and 1.37 points), on recipes and seeds this screen never sees.

Resumable: one JSON line per finished run in OUT; rerun the same command and only missing runs train.

    .venv/bin/python experiments/proxy_average.py [--out runs/proxy-average.jsonl] [--workers 2] [--report-only]
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from proxy_batch import reliability_gain, reliability_screen
from proxy_data import N_RECIPES
from proxy_steps import run_parser
from tinyscale.study.samplers.base import sample_recipes
from tinyscale.study.plan import data_spec, uniform_demo_config
from tinyscale.train.config import TrainConfig

SAMPLER_SEED = 31
ARMS = {"final": 0.0, "avg25": 0.25, "avg50": 0.5}  # arm -> average_tail
SEEDS = (("A", 9500), ("B", 9600))


def main(argv=None) -> int:
    ap = run_parser(__doc__, "runs/proxy-average.jsonl")
    args = ap.parse_args(argv)

    demo = uniform_demo_config()
    recipes = sample_recipes(replace(demo, seed=SAMPLER_SEED), N_RECIPES)
    base = TrainConfig.from_study(demo).with_(batch_size=64, steps=400, lr=1.5e-3)  # the demo's trainer of this protocol
    arms = {arm: base.with_(average_tail=tail) for arm, tail in ARMS.items()}
    stats = reliability_screen(recipes, arms, SEEDS, data_spec(demo), Path(args.out), args.workers, args.report_only)
    if stats is None:
        return 1
    best = min(("avg25", "avg50"), key=lambda arm: stats[arm]["sd"])
    old, new = stats["final"], stats[best]
    print(f"decision: {best} (smaller sd), sd ratio {new['sd'] / old['sd']:.2f}, share {new['share']:.2f} vs "
          f"{old['share']:.2f}, mean {new['mean'] - old['mean']:+.2f} points, time ratio "
          f"{new['seconds'] / old['seconds']:.2f} -> "
          + (f"the demo adopts {best}" if reliability_gain(old, new) else "the demo keeps the final weights"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
