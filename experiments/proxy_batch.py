"""At equal CPU time, do larger batches (more images, fewer steps) make brief trials rank recipes better?

Why this lever: a 400-step demo trial at batch 64 sees 25,600 images, less than half an epoch of
Fashion-MNIST, and brief runs at this learning rate are chaotic (an ulp changes top-1 by points:
RESULTS "train"), so a single trial's accuracy is mostly its seed (fidelity σ 1.37 points on the
demo study). On the demo's tiny maps a step is mostly per-layer overhead: measured before this
protocol (6 recipes of sampler seed 23, 30 steps, 1 thread, AMD EPYC), images per second at batch
128 are 1.18-1.38x (mean 1.30x) and at batch 256 1.38-1.64x (mean 1.52x) those at batch 64. So for
the same CPU time a trial can see 1.3-1.5x more images in larger, less noisy gradient steps.
Steps per arm are set from those ratios so every arm costs about what 400 steps at batch 64 do.

Protocol, fixed 2026-12-05 (session 7) before any run of this script:
- Recipes and reference: those of experiments/proxy_data.py (the first 10 of a Sobol stream over
  the demo's search space with sampler seed 13; no seed of `tinyscale compare` or of the demo
  study). Reference R = the mean of two 1,600-step runs at batch 64 on all 60,000 images (its
  arms 60k/1600/C and D), and the batch-64 arm is its 60k/400/A and B; those 40 rows are copied
  from proxy_data's output when it has them (same recipes, checked row by row; same seeds, data and trainer by construction),
  else trained here. Data: all 60,000 training images, the 10,000-image test set held out (as
  proxy_data). Trainer: the demo's (`uniform_demo_config`: zero-gamma, PyTorch RMSprop, cosine with
  10 % warm-up).
- Arms, two training seeds each, A = 7000 + i and B = 7100 + i (proxy_data's):
  ``b64`` batch 64, 400 steps, lr 1.5e-3 (the demo today);
  ``b128`` batch 128, 260 steps, lr 2.1e-3 (square-root lr scaling, as usual for adaptive
  optimizers); ``b256`` batch 256, 150 steps, lr 3e-3 (square-root scaling); ``b256-lr1.5e-3``
  batch 256, 150 steps, lr 1.5e-3 (no scaling, in case the larger lr is what hurts).
- Reported per arm: Spearman rho of each seed against R and their mean rho-bar; rho of the
  two-seed mean; the seed sd from the A/B pairs and the recipe share of variance; mean top-1;
  slope of top-1 per doubling of c; mean seconds per run and its ratio to b64's; rho-bar from
  the held-out loss (secondary, no part of the decision).
- Decision rule: among the new arms whose mean seconds per run are at most 1.1x b64's and whose
  mean top-1 is not more than 1 point below b64's, take the one with the largest rho-bar; the
  demo adopts it if its rho-bar is at least b64's + 0.05 and its seed sd at most b64's. Otherwise
  the demo keeps b64. The blind check of an adopted arm is the new demo study's own `tinyscale
  fidelity` run, on recipes and seeds this screen never sees.

Outcome of that screen (RESULTS "proxy"): b128 was the only eligible arm, its rho-bar +0.80 against
b64's +0.76 (+0.04, the rule asked +0.05) with the seed sd 0.88 against 1.60 points: the demo keeps
b64 by the rule as written.

Second protocol, ``--stage confirm``, fixed 2026-12-05 (session 7) after the screen's report and
before any of its runs. Its question is the one the screen answered most clearly, asked on fresh
recipes: does b128 make a single brief run a more reliable measure of its recipe at the same
cost? No reference training: a run's reliability is its recipe share of variance,
var(recipe) / (var(recipe) + var(seed)) from two seeds per recipe, which bounds how well one run
can rank recipes against any reference.
- 10 recipes: the first 10 of a Sobol stream over the demo's search space with sampler seed 29
  (not 0, 7, 11, 13, 17, 23; no compare seed). Data: the demo's own (all 60,000 training images,
  its 5,000 held-out). Arms b64 and b128 as above, seeds A = 9000 + i, B = 9100 + i.
- Decision rule: the demo adopts b128 (batch 128, 260 steps, lr 2.1e-3) if, on these recipes, its
  seed sd is at most 0.8x b64's, its recipe share is larger than b64's, its mean top-1 is not more
  than 0.5 points below b64's and its seconds per run at most 1.1x b64's. Otherwise it keeps b64.
  The blind check is again the new demo study's `tinyscale fidelity`.

Resumable: one JSON line per finished run in OUT; rerun the same command and only missing runs train.

    .venv/bin/python experiments/proxy_batch.py [--out runs/proxy-batch.jsonl] [--reuse runs/proxy-data.jsonl]
        [--workers 2] [--report-only]
    .venv/bin/python experiments/proxy_batch.py --stage confirm [--out runs/proxy-batch-confirm.jsonl]
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from proxy_data import SAMPLER_SEED, N_RECIPES, slope
from proxy_levers import pair_stats
from proxy_steps import load_done, run_arms, run_parser
from tinyscale.evaluate.fidelity import spearman
from tinyscale.study.samplers.base import sample_recipes
from tinyscale.study.plan import data_spec, uniform_demo_config
from tinyscale.train.config import TrainConfig

# arm -> (batch size, steps, lr)
ARMS = {"b64": (64, 400, 1.5e-3), "b128": (128, 260, 2.1e-3), "b256": (256, 150, 3e-3),
        "b256-lr1.5e-3": (256, 150, 1.5e-3)}
SEEDS = (("A", 7000), ("B", 7100))
REFERENCE = (("C", 7200), ("D", 7300))
CONFIRM_SEED, CONFIRM_ARMS, CONFIRM_SEEDS = 29, ("b64", "b128"), (("A", 9000), ("B", 9100))  # 1,600 steps at batch 64
# proxy_data's names for the rows this protocol shares with it
SHARED = {"b64/A": "60k/400/A", "b64/B": "60k/400/B", "ref/C": "60k/1600/C", "ref/D": "60k/1600/D"}


def copy_shared(out: Path, reuse: Path, recipes, done: dict) -> int:
    """Copy proxy_data's rows for this protocol's b64 and reference runs into ``out``."""
    if not reuse.exists():
        return 0
    theirs = {v: k for k, v in SHARED.items()}
    copied = 0
    for line in reuse.read_text().splitlines():
        row = json.loads(line)
        ours = theirs.get(row["arm"])
        if ours is None or (ours, row["i"]) in done or row["error"]:
            continue
        if row["recipe"] != recipes[row["i"]].to_dict():
            raise SystemExit(f"{reuse}: recipe {row['i']} is not this protocol's; pass --reuse ''")
        row = {**row, "arm": ours, "copied_from": f"{reuse}:{row['arm']}"}
        done[(ours, row["i"])] = row
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        copied += 1
    return copied


def main(argv=None) -> int:
    ap = run_parser(__doc__, None, "default runs/proxy-batch.jsonl (screen), runs/proxy-batch-confirm.jsonl (confirm)")
    ap.add_argument("--stage", choices=("screen", "confirm"), default="screen")
    ap.add_argument("--reuse", default="runs/proxy-data.jsonl", help="proxy_data.py's output, for the shared runs")
    args = ap.parse_args(argv)
    if args.stage == "confirm":
        return confirm(args)

    demo = uniform_demo_config()
    recipes = sample_recipes(replace(demo, seed=SAMPLER_SEED), N_RECIPES)
    spec = data_spec(replace(demo, train_size=None, val_size=None))
    out = Path(args.out or "runs/proxy-batch.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = load_done(out, recipes)
    if args.reuse and not args.report_only:
        print(f"copied {copy_shared(out, Path(args.reuse), recipes, done)} runs from {args.reuse}")
    base = TrainConfig.from_study(demo)
    runs = [(f"{arm}/{label}", base.with_(batch_size=bs, steps=steps, lr=lr), seed)
            for arm, (bs, steps, lr) in ARMS.items() for label, seed in SEEDS]
    runs += [(f"ref/{label}", base.with_(steps=1600), seed) for label, seed in REFERENCE]
    todo = [(name, train, seed + i, i) for name, train, seed in runs for i in range(len(recipes))
            if (name, i) not in done]
    if not args.report_only:
        run_arms(todo, recipes, spec, out, done, args.workers)
    report(done, len(recipes))
    return 0


def reliability_screen(recipes, arms: dict, seeds, spec, out: Path, workers: int, report_only: bool) -> dict | None:
    """Train every arm (name -> `TrainConfig`) on every recipe at two seeds (``seeds``: (label,
    base) pairs, seed base + i), resumably in ``out``; print per arm the seed sd from the pairs,
    the recipe share of variance, rho between the seeds, mean top-1 and seconds per run, then the
    per-recipe accuracies. Returns {arm: {"sd", "share", "mean", "seconds"}}, None if runs are missing."""
    out.parent.mkdir(parents=True, exist_ok=True)
    done = load_done(out, recipes)
    todo = [(f"{arm}/{label}", train, base + i, i) for arm, train in arms.items() for label, base in seeds
            for i in range(len(recipes)) if (f"{arm}/{label}", i) not in done]
    if not report_only:
        run_arms(todo, recipes, spec, out, done, workers)
    n = len(recipes)
    names = [f"{arm}/{label}" for arm in arms for label, _ in seeds]
    if any((name, i) not in done or done[(name, i)]["accuracy"] is None for name in names for i in range(n)):
        print("incomplete or failed runs; rerun the command")
        return None

    def col(name, key):
        return np.array([done[(name, i)][key] for i in range(n)], dtype=float)

    print("| arm | seed sd (pp) | recipe share | rho A vs B | mean top-1 % | s per run |")
    print("|---|---|---|---|---|---|")
    stats = {}
    (a_label, _), (b_label, _) = seeds
    for arm in arms:
        a, b = col(f"{arm}/{a_label}", "accuracy") * 100, col(f"{arm}/{b_label}", "accuracy") * 100
        sd, share, rho = pair_stats(a, b)
        seconds = float(np.mean(np.concatenate([col(f"{arm}/{x}", "seconds") for x in (a_label, b_label)])))
        stats[arm] = {"sd": sd, "share": share, "mean": float(np.mean((a + b) / 2)), "seconds": seconds}
        print(f"| {arm} | {sd:.2f} | {share:.2f} | {rho:+.2f} | {stats[arm]['mean']:.2f} | {seconds:.1f} |")
    print("\n| i | r | w | d | c | " + " | ".join(names) + " |")
    print("|---" * (5 + len(names)) + "|")
    for i in range(n):
        rec = done[(names[0], i)]["recipe"]
        row = " | ".join(f"{100 * done[(name, i)]['accuracy']:.2f}" for name in names)
        print(f"| {i} | {rec['r']:.3g} | {rec['w']:.3g} | {rec['d']:.3g} | {done[(names[0], i)]['c']:.3f} | {row} |")
    return stats


def reliability_gain(old: dict, new: dict) -> bool:
    """The confirmation's rule: seed sd at most 0.8x, a larger recipe share, mean top-1 no more
    than 0.5 points lower, at most 1.1x the time."""
    return (new["sd"] <= 0.8 * old["sd"] and new["share"] > old["share"] and new["mean"] >= old["mean"] - 0.5
            and new["seconds"] <= 1.1 * old["seconds"])


def confirm(args) -> int:
    demo = uniform_demo_config()
    recipes = sample_recipes(replace(demo, seed=CONFIRM_SEED), N_RECIPES)
    base = TrainConfig.from_study(demo)
    arms = {arm: base.with_(batch_size=ARMS[arm][0], steps=ARMS[arm][1], lr=ARMS[arm][2]) for arm in CONFIRM_ARMS}
    stats = reliability_screen(recipes, arms, CONFIRM_SEEDS, data_spec(demo),
                               Path(args.out or "runs/proxy-batch-confirm.jsonl"), args.workers, args.report_only)
    if stats is None:
        return 1
    old, new = stats["b64"], stats["b128"]
    print(f"decision: sd ratio {new['sd'] / old['sd']:.2f}, share {new['share']:.2f} vs {old['share']:.2f}, "
          f"mean {new['mean'] - old['mean']:+.2f} points, time ratio {new['seconds'] / old['seconds']:.2f} -> "
          + ("the demo adopts b128" if reliability_gain(old, new) else "the demo keeps b64"))
    return 0


def report(done: dict, n: int) -> None:
    names = [f"{arm}/{label}" for arm in ARMS for label, _ in SEEDS] + [f"ref/{label}" for label, _ in REFERENCE]
    missing = [name for name in names if any((name, i) not in done or done[(name, i)]["accuracy"] is None
                                             for i in range(n))]
    if missing:
        print(f"incomplete or failed: {', '.join(missing)}")
        return

    def col(name, key):
        return np.array([done[(name, i)][key] for i in range(n)], dtype=float)

    c = col("ref/C", "c")
    ref = (col("ref/C", "accuracy") + col("ref/D", "accuracy")) * 50
    print("| arm | batch | steps | lr | rho A vs R | rho B vs R | rho-bar | rho of the A/B mean | seed sd (pp) "
          "| recipe share | mean top-1 % | slope (pp/doubling) | s per run | time vs b64 | rho-bar from loss |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    stats = {}
    for arm, (bs, steps, lr) in ARMS.items():
        a, b = col(f"{arm}/A", "accuracy") * 100, col(f"{arm}/B", "accuracy") * 100
        ra, rb = spearman(a, ref), spearman(b, ref)
        sd, share, _ = pair_stats(a, b)
        s, se = slope(c, (a + b) / 2)
        seconds = np.mean(np.concatenate([col(f"{arm}/A", "seconds"), col(f"{arm}/B", "seconds")]))
        lbar = (spearman(-col(f"{arm}/A", "loss"), ref) + spearman(-col(f"{arm}/B", "loss"), ref)) / 2
        stats[arm] = {"bar": (ra + rb) / 2, "sd": sd, "mean": float(np.mean((a + b) / 2)), "seconds": seconds}
        print(f"| {arm} | {bs} | {steps} | {lr:g} | {ra:+.2f} | {rb:+.2f} | {(ra + rb) / 2:+.2f} "
              f"| {spearman((a + b) / 2, ref):+.2f} | {sd:.2f} | {share:.2f} | {stats[arm]['mean']:.2f} "
              f"| {s:+.2f} ± {se:.2f} | {seconds:.1f} | {seconds / stats['b64']['seconds']:.2f} | {lbar:+.2f} |")
    s, se = slope(c, ref)
    print(f"\nreference R (batch 64, 1600 steps, mean of C and D): {ref.min():.2f}-{ref.max():.2f} %, "
          f"slope {s:+.2f} ± {se:.2f} pp per doubling of c")
    b64 = stats["b64"]
    eligible = {arm: st for arm, st in stats.items() if arm != "b64" and st["seconds"] <= 1.1 * b64["seconds"]
                and st["mean"] >= b64["mean"] - 1.0}
    best = max(eligible, key=lambda arm: eligible[arm]["bar"]) if eligible else None
    adopt = best is not None and eligible[best]["bar"] >= b64["bar"] + 0.05 and eligible[best]["sd"] <= b64["sd"]
    print(f"decision: eligible {sorted(eligible) or 'none'}; best {best}; "
          + (f"adopt {best} (rho-bar {eligible[best]['bar']:+.2f} vs {b64['bar']:+.2f}, sd {eligible[best]['sd']:.2f} "
             f"vs {b64['sd']:.2f})" if adopt else "the demo keeps b64"))
    print("\n| i | r | w | d | c | " + " | ".join(names) + " |")
    print("|---" * (5 + len(names)) + "|")
    for i in range(n):
        rec = done[("ref/C", i)]["recipe"]
        row = " | ".join(f"{100 * done[(name, i)]['accuracy']:.2f}" for name in names)
        print(f"| {i} | {rec['r']:.3g} | {rec['w']:.3g} | {rec['d']:.3g} | {c[i]:.3f} | {row} |")


if __name__ == "__main__":
    sys.exit(main())
