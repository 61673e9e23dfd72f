"""How large a margin over EfficientNet could any strategy of a finished comparison have shown?

Issue 9 asks the study's recipe to beat EfficientNet's compound scaling by >= 1 point on average
over c = 1/2 .. 1/16. This reads a finished `tinyscale compare` (nothing is trained) and, at each
ratio, takes with hindsight the strategy with the highest mean top-1 there, then reports its
paired margin over EfficientNet (mean of per-seed differences ± their standard error) and the
mean over the ratios, paired by seed as the comparison's own margins are. Choosing the best row
after seeing the same seeds flatters this "oracle": it is an upper bound on what picking among
the compared recipes could show on these seeds, not a strategy. If it is below the target, no
recipe in the comparison could have met it.

    .venv/bin/python experiments/compare_ceiling.py demo-study [--baseline efficientnet]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

from tinyscale.evaluate.compare import load_comparison

FIXED_RULES = ("efficientnet", "uniform", "fast", "width", "depth", "resolution")


def ceiling(comparison, baseline: str, pool) -> None:
    seeds = list(comparison.settings.seeds)
    per_seed = {s: [] for s in seeds}
    print(f"\n| c | best of {', '.join(pool)} | its top-1 % | margin over {baseline} (pp) |")
    print("|---|---|---|---|")
    for c in comparison.settings.ratios:
        rows = [r for r in (comparison.row(c, s) for s in pool) if r is not None and r.accuracies and r.matched]
        base = comparison.row(c, baseline)
        if not rows or base is None:
            continue
        best = max(rows, key=lambda r: r.mean)
        diffs = {s: best.accuracy_by_seed[s] - base.accuracy_by_seed[s] for s in seeds
                 if s in best.accuracy_by_seed and s in base.accuracy_by_seed}
        for s, d in diffs.items():
            per_seed[s].append(d)
        values = list(diffs.values())
        se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
        print(f"| {c:g} | {best.strategy} | {100 * best.mean:.2f} | {100 * statistics.fmean(values):+.2f} ± {100 * se:.2f} |")
    means = [statistics.fmean(v) for v in per_seed.values() if len(v) == len(comparison.settings.ratios)]
    if len(means) > 1:
        print(f"\nmean over c: {100 * statistics.fmean(means):+.2f} ± "
              f"{100 * statistics.stdev(means) / math.sqrt(len(means)):.2f} points (n = {len(means)} seeds)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study_dir")
    ap.add_argument("--baseline", default="efficientnet")
    args = ap.parse_args(argv)
    comparison = load_comparison(args.study_dir)
    if comparison is None:
        raise SystemExit(f"{args.study_dir}: no comparison stored; run `tinyscale compare` first")
    strategies = sorted({r.strategy for r in comparison.rows})
    ceiling(comparison, args.baseline, strategies)
    ceiling(comparison, args.baseline, [s for s in strategies if s in FIXED_RULES])
    return 0


if __name__ == "__main__":
    sys.exit(main())
