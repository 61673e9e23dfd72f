"""Why did the Imagenette halving study's recipe lose to a fixed rule? Length, or the fit?

Protocol, fixed on 2026-12-07 03:45 UTC before any of these runs (a diagnosis for the next
loop, not one of issue 25's decision rules; results in benchmarks/RESULTS.md "Imagenette"):

At seed 0 of experiments/imagenette_halving.py the H study's `gp` recipe trailed `fast` by
3.03 points at c = 1/16 and `width` by 0.97 at c = 1/4 (3,600-step compare runs), while H's
fitted surface (900-step runs, its top rung) predicted it 4.6 and 8.5 points *above* them
(experiments/surface_vs_compare.py). Two explanations predict different things at 900 steps:

- **length**: at 900 steps the gp recipe really is better, and longer training changes the
  order (brief-run bias that the top rung did not remove);
- **fit**: at 900 steps the gp recipe is not better either: the surface's maximum is where it
  over-predicts (the optimiser's curse), or it extrapolates wrongly at the box's edge.

Runs: H's study copied without its comparison (OUT/H900), then `tinyscale compare` there with
exactly the protocol's compare settings except ``--steps 900`` (H's top rung): gp and fast at
1/16, gp and width at 1/4, seeds 0, 1, 2 (paired by seed, as the compare pairs them).
Decision, per ratio, on the paired gp - rule difference at 900 steps (mean over the 3 seeds,
SE over seeds): > +2 SE: **length**; < +2 SE and its mean <= 0: **fit**; otherwise inconclusive.
The 3,600-step differences of the same seeds are shown beside them as the compare stores them
(seeds 1 and 2 where already trained).

    export TINYSCALE_IMAGENETTE=../shared/data/imagenette-128
    .venv/bin/python experiments/imagenette_length_bias.py run      # ~1 core-hour; resumable
    .venv/bin/python experiments/imagenette_length_bias.py report
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
from pathlib import Path

from active_compare import tinyscale

CELLS = {0.0625: "fast", 0.25: "width"}  # ratio -> the rule the gp recipe lost to at seed 0
STEPS = 900
SEEDS = 3


def run(src: Path, out: Path) -> None:
    dst = out / "H900"
    if not (dst / "config.json").exists():
        dst.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "trials.sqlite", "fit.json"):
            shutil.copy2(src / name, dst / name)
    for c, rule in CELLS.items():
        print(tinyscale("compare", str(dst), "--strategies", f"gp,{rule}", "--ratios", str(c), "--steps",
                        str(STEPS), "--seeds", str(SEEDS), "--workers", "1"))


def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[float, float | None, int]:
    diffs = [100 * (a[s] - b[s]) for s in sorted(set(a) & set(b))]
    if not diffs:
        return math.nan, None, 0
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
    return statistics.fmean(diffs), se, len(diffs)


def report(src: Path, out: Path) -> None:
    from tinyscale.evaluate.compare import load_comparison

    short, long = load_comparison(out / "H900"), load_comparison(src)
    print("| c | rule | gp - rule at 900 steps | gp - rule at 3,600 steps | verdict |")
    print("|---|---|---|---|---|")
    for c, rule in CELLS.items():
        cells = []
        for comparison in (short, long):
            gp, other = comparison.row(c, "gp"), comparison.row(c, rule)
            cells.append(_paired(gp.accuracy_by_seed, other.accuracy_by_seed))
        (m, se, n), (m_long, se_long, n_long) = cells
        verdict = ("inconclusive (fewer than 3 seeds)" if n < SEEDS else
                   "length" if m > 2 * se else "fit" if m <= 0 else "inconclusive")
        fmt = lambda m, se, n: f"{m:+.2f}" + ("" if se is None else f" ± {se:.2f}") + f" (n = {n})"  # noqa: E731
        print(f"| {c:g} | {rule} | {fmt(m, se, n)} | {fmt(m_long, se_long, n_long)} | {verdict} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=("run", "report"))
    ap.add_argument("--study", type=Path, default=Path("runs/imagenette-halving/H"))
    ap.add_argument("--out", type=Path, default=Path("runs/imagenette-length-bias"))
    args = ap.parse_args()
    (run if args.stage == "run" else report)(args.study, args.out)


if __name__ == "__main__":
    main()
