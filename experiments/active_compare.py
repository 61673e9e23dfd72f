"""Is the recipe fitted on a 12-trial botorch study as good as the one from a 24-trial Sobol study?
(issue 10, second half of the proof)

Protocol, fixed before any of these comparisons was run:
- The studies of experiments/active_sampling.py (OUT_AS, default runs/active-sampling), study
  seeds 0, 1, 2: the ``sobol`` arm with all its 24 trials, the ``botorch`` arm cut to its first
  12 trials by number (8 Sobol initial trials + the first 4 proposals), copied to OUT, so the
  originals stay as they are.
- Each copy is fitted with the default method (`tinyscale fit`, the accuracy surface), then
  `tinyscale compare --strategies gp --seeds 2` at the default ratios (1/2, 1/4, 1/8, 1/16) and the
  default compare budget (1.5x the study's steps). The two arms of one study seed use the same data
  (data seed = study seed) and the same compare seeds 0, 1 (same initial weights for the same
  network, same data order), so each (study seed, ratio, compare seed) is a pair.
- Reported: per ratio, the mean paired margin botorch-12 minus Sobol-24 over the 6 pairs; overall,
  the mean margin with two standard errors: over the 24 pairs (treats them as independent, which
  they are not), and over the 3 study-seed means (the honest replicate, 2 df).
- "No worse" (the issue's target) is read as: the overall margin is not below zero by more than
  2 standard errors (study-seed SE).

Resumable: fit and compare resume from what OUT holds; rerun the same command.

    .venv/bin/python experiments/active_compare.py [--from runs/active-sampling] [--out runs/active-compare]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

SEEDS = (0, 1, 2)
ARMS = (("sobol", 24), ("botorch", 12))
COMPARE_SEEDS = 2


def prepare(src: Path, dst: Path, trials: int) -> None:
    """Copy the study at ``src`` to ``dst`` keeping trials numbered below ``trials``."""
    if (dst / "trials.sqlite").exists():
        return
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "config.json", dst / "config.json")
    part = dst / "trials.sqlite.part"
    source, copy = sqlite3.connect(src / "trials.sqlite"), sqlite3.connect(part)
    try:
        source.backup(copy)
        n = copy.execute("SELECT COUNT(*) FROM trials WHERE number < ? AND state = 'completed'", (trials,)).fetchone()[0]
        if n != trials:
            raise SystemExit(f"{src}: only {n} of its first {trials} trials completed")
        with copy:
            copy.execute("DELETE FROM trials WHERE number >= ?", (trials,))
        # The copy inherits the study's WAL mode; back to a rollback journal so the cut lands in
        # the one file that is renamed (a left-behind -wal file would hold it otherwise).
        copy.execute("PRAGMA journal_mode=DELETE")
    finally:
        source.close()
        copy.close()
    part.rename(dst / "trials.sqlite")


def tinyscale(*args: str, progress: bool = False) -> str:
    """The CLI, its stdout returned. ``progress``: its stderr (the progress bar, every 60 s into
    a log, with the runs in flight) passes through, so a call of hours is seen moving."""
    done = subprocess.run([sys.executable, "-m", "tinyscale.cli", *args], stdout=subprocess.PIPE,
                          stderr=None if progress else subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"tinyscale {' '.join(args)} failed:\n{done.stderr or '(its error is above)'}")
    return done.stdout


def gp_accuracy(study: Path) -> dict[tuple[float, int], float]:
    """(ratio, compare seed) -> top-1 of the gp strategy (interpolated in log c where bracketed),
    read from the finished comparison (nothing left to train: it only assembles the table)."""
    from tinyscale.evaluate.compare import default_settings, run_comparison

    settings = default_settings(study, strategies="gp", seeds=COMPARE_SEEDS, threads=1)
    comparison = run_comparison(study, settings, progress=False)
    return {(c, seed): acc for c in settings.ratios
            for seed, acc in comparison.row(c, "gp").accuracy_by_seed.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="source", default="runs/active-sampling")
    ap.add_argument("--out", default="runs/active-compare")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    source, out = Path(args.source), Path(args.out)
    accuracy = {}
    for seed in SEEDS:
        for arm, trials in ARMS:
            study = out / f"{arm}{trials}-seed{seed}"
            prepare(source / f"{arm}-seed{seed}", study, trials)
            if not (study / "fit.json").exists():
                tinyscale("fit", str(study))
            print(f"comparing {study} ...", flush=True)
            tinyscale("compare", str(study), "--strategies", "gp", "--seeds", str(COMPARE_SEEDS), "--workers",
                      str(args.workers), "--threads", "1", "--no-progress")
            accuracy[(arm, seed)] = gp_accuracy(study)
    report(accuracy)
    return 0


def report(accuracy: dict) -> None:
    ratios = sorted({r for (r, _) in accuracy[("sobol", SEEDS[0])]}, reverse=True)
    pairs = {}
    for seed in SEEDS:
        for r in ratios:
            for s in range(COMPARE_SEEDS):
                pairs[(seed, r, s)] = 100 * (accuracy[("botorch", seed)][(r, s)] - accuracy[("sobol", seed)][(r, s)])
    print("\n| ratio | botorch-12 top-1 % | Sobol-24 top-1 % | margin (pp), mean of 6 pairs | per study seed |")
    print("|---|---|---|---|---|")
    for r in ratios:
        b = [100 * accuracy[("botorch", seed)][(r, s)] for seed in SEEDS for s in range(COMPARE_SEEDS)]
        a = [100 * accuracy[("sobol", seed)][(r, s)] for seed in SEEDS for s in range(COMPARE_SEEDS)]
        m = [pairs[(seed, r, s)] for seed in SEEDS for s in range(COMPARE_SEEDS)]
        per_seed = ", ".join(f"{statistics.mean(pairs[(seed, r, s)] for s in range(COMPARE_SEEDS)):+.2f}" for seed in SEEDS)
        print(f"| {r:g} | {statistics.mean(b):.2f} | {statistics.mean(a):.2f} | {statistics.mean(m):+.2f} | {per_seed} |")
    all_pairs = list(pairs.values())
    seed_means = [statistics.mean(v for k, v in pairs.items() if k[0] == seed) for seed in SEEDS]
    se_pairs = statistics.stdev(all_pairs) / math.sqrt(len(all_pairs))
    se_seeds = statistics.stdev(seed_means) / math.sqrt(len(seed_means))
    mean = statistics.mean(all_pairs)
    print(f"\noverall margin botorch-12 - Sobol-24: {mean:+.2f} pp; SE over the {len(all_pairs)} pairs {se_pairs:.2f}, "
          f"over the {len(SEEDS)} study-seed means {se_seeds:.2f} (per seed: {', '.join(f'{m:+.2f}' for m in seed_means)})")
    verdict = "no worse (within 2 SE)" if mean >= -2 * se_seeds else "worse (more than 2 SE below)"
    print(f"target (no worse than the 24-trial Sobol recipe): {verdict}")


if __name__ == "__main__":
    sys.exit(main())
