"""Fewer, longer trials: does a demo of 12 trials x 800 steps give a better recipe than 24 x 400?
(issue 9, part 2's "fewer but longer trials" lever; same CPU time per study).

    .venv/bin/python experiments/demo_800.py --reference demo-study --out runs/demo-800

Protocol, fixed 2026-11-23 (session 4) before any of its runs:
- the study: `uniform_demo_config()` with steps 800, 12 trials (the first 12 of the same Sobol stream,
  sampler seed 0, same data, window and zero-gamma trainer), 2 single-thread workers; its default
  fit (the accuracy surface);
- its recipe is compared exactly as the reference demo study's was: `compare` at 600 steps,
  seeds 0, 1, 2, ratios 1/2..1/16, strategies gp, gp-pareto, efficientnet, uniform, fast. The
  baselines do not depend on the study (same context, data, trainer, steps and seeds), so their
  stored cells are copied from the reference study's comparison (checked: the budget must be
  identical) and only the two study-dependent strategies train;
- reported: gp − efficientnet and gp − fast, mean over ratios, per study; and the paired
  difference (800-study gp − 400-study gp) per (ratio, seed), with its SE over the 3 seeds.
  Decision: the demo moves to 12 x 800 only if that difference is > 0 by more than 2 SE.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
from dataclasses import replace
from pathlib import Path

STUDY_DEPENDENT = ("gp", "gp-pareto")


def _copy_baseline_cells(ref: Path, out: Path) -> None:
    """Start the comparison of the study at ``out`` from the finished cells of ``ref``'s, all but
    the study-dependent strategies' (the baselines train the same recipes with the same data,
    trainer, steps and seeds; `run_comparison` refuses the copy if its budget differs)."""
    from tinyscale.evaluate.compare import compare_dir

    target = compare_dir(out) / "compare.sqlite"
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    shutil.copy(compare_dir(ref) / "compare.sqlite", part)
    conn = sqlite3.connect(part)
    try:
        with conn:
            for table in ("cells", "recipes"):
                conn.execute(f"DELETE FROM {table} WHERE strategy IN (?, ?)", STUDY_DEPENDENT)
        conn.execute("PRAGMA journal_mode=DELETE")  # the deletions in the one file, not a -wal beside it
    finally:
        conn.close()
    part.rename(target)


def compare_reusing_baselines(ref: Path, out: Path, settings):
    """`run_comparison` of the study at ``out`` on 2 one-thread workers, its baseline cells
    copied from ``ref``'s finished comparison (only study-dependent strategies train)."""
    from tinyscale.evaluate.compare import run_comparison
    from tinyscale.study.executors import make_executor

    _copy_baseline_cells(ref, out)
    executor = make_executor("local", 2, threads=1)
    try:
        return run_comparison(out, settings, progress=True, executor=executor)  # refuses another budget
    finally:
        executor.close()


def main(argv=None) -> int:
    from tinyscale.evaluate.compare import default_settings
    from tinyscale.study.executors import make_executor
    from tinyscale.fit.gp import fit_scaling
    from tinyscale.study.driver import run_study
    from tinyscale.study.plan import uniform_demo_config
    from tinyscale.study.store import Study

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default="demo-study", help="the 24 x 400 demo study, compared already")
    ap.add_argument("--out", default="runs/demo-800")
    args = ap.parse_args(argv)
    ref, out = Path(args.reference), Path(args.out)
    config = replace(uniform_demo_config(), steps=800)
    executor = make_executor("local", 2, threads=1)
    try:
        run_study(out, config, trials=12, resume=out.exists(), executor=executor)
    finally:
        executor.close()
    with Study.open(out) as study:
        trials = study.trials(state="completed")
    if not (out / "fit.json").exists():
        fit_scaling(trials, config, source=str(out.resolve())).save(out)

    settings = default_settings(out, strategies="gp,gp-pareto,efficientnet,uniform,fast", seeds=3, steps=600,
                                threads=1)
    new = compare_reusing_baselines(ref, out, settings)
    from tinyscale.evaluate.compare import load_comparison

    old = load_comparison(ref)
    report = {}
    for name, comp in (("24x400", old), ("12x800", new)):
        report[name] = {b: None if (m := comp.mean_margin(b)) is None else (100 * m.value, 100 * (m.stderr or 0))
                        for b in ("efficientnet", "fast", "uniform", "gp-pareto")}
    diffs = {s: statistics.fmean(new.row(c, "gp").accuracy_by_seed[s] - old.row(c, "gp").accuracy_by_seed[s]
                                 for c in settings.ratios) for s in settings.seeds}
    value = statistics.fmean(diffs.values())
    se = statistics.stdev(diffs.values()) / len(diffs) ** 0.5
    report["gp 12x800 - gp 24x400 (pp, mean over ratios, paired by seed)"] = (100 * value, 100 * se)
    report["per ratio"] = {c: 100 * statistics.fmean(new.row(c, "gp").accuracy_by_seed[s]
                                                     - old.row(c, "gp").accuracy_by_seed[s] for s in settings.seeds)
                           for c in settings.ratios}
    report["recipes 12x800"] = {c: new.row(c, "gp").recipe.to_dict() for c in settings.ratios}
    print(json.dumps(report, indent=1, default=str))
    print("ADOPT 12 x 800" if value > 2 * se else "KEEP 24 x 400")
    return 0


if __name__ == "__main__":
    sys.exit(main())
