"""Does a study's fitted accuracy surface rank the compared recipes the way the long compare does?

A diagnosis, not a claim (no decision rule; written 2026-12-07 after Imagenette seed 0 of
experiments/imagenette_halving.py, where H's recipe lost at 1/16 to Dollar's `fast`): the surface
is fitted on the study's runs (H: 900 steps at its fit rung); the compare trains every strategy's
recipe for 3,600 steps. If the surface predicted its own recipe above `fast` at 1/16 while the
long runs put it 3 points below, the recipe was chosen by a brief-run bias the rungs did not
remove; if the surface already predicted `fast` as good, the fault is elsewhere (the ridge search,
the box).

For each compared cell the surface is read at the cell's target c with the recipe's (r, d)
(an interpolated rule's shape below the target, within a few percent of the one above), so no
training is needed. Per ratio it prints the predicted and measured accuracy of every strategy
and Spearman's rho between the two (over the strategies present); overall, the share of
strategy pairs (within a ratio) that the surface orders as the compare does, the pairs whose
measured difference is below 1 point set apart.

    .venv/bin/python experiments/surface_vs_compare.py runs/imagenette-halving/H
"""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path

import numpy as np


def cells(study: Path) -> list[dict]:
    """The compared cells as the study's comparison table stores them: each (target c, strategy)
    with its recipe and its accuracy (the mean over the seeds stored)."""
    with open(study / "compare" / "comparison.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["acc_mean"]]
    return [{"c": float(r["target"]), "strategy": r["strategy"], "r": float(r["r"]), "d": float(r["d"]),
             "measured": float(r["acc_mean"]), "seeds": int(r["seeds"])} for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    args = parser.parse_args()

    from scipy.stats import spearmanr

    from tinyscale.fit.gp import ScalingFit

    fit = ScalingFit.load(args.study)
    if fit.surface is None:
        raise SystemExit("the study's fit has no accuracy surface (fit it with --method surface)")
    rows = cells(args.study)
    for row in rows:
        row["predicted"] = 100 * float(fit.surface.accuracy(row["c"], row["r"], row["d"]))
    agree = disagree = close = 0
    rhos = []
    for c in sorted({row["c"] for row in rows}, reverse=True):
        here = sorted((row for row in rows if row["c"] == c), key=lambda row: -row["measured"])
        print(f"\nc = {c:g}")
        print("| strategy | r | d | surface predicts | compare measured | seeds |")
        print("|---|---|---|---|---|---|")
        for row in here:
            print(f"| {row['strategy']} | {row['r']:.3g} | {row['d']:.3g} | {row['predicted']:.2f} | "
                  f"{row['measured']:.2f} | {row['seeds']} |")
        if len(here) >= 3:
            rho = spearmanr([row["predicted"] for row in here], [row["measured"] for row in here])[0]
            rhos.append(rho)
            print(f"Spearman rho (surface vs compare, {len(here)} strategies): {rho:+.2f}")
        for a, b in itertools.combinations(here, 2):
            measured = a["measured"] - b["measured"]
            if abs(measured) < 1.0:
                close += 1
            elif np.sign(measured) == np.sign(a["predicted"] - b["predicted"]):
                agree += 1
            else:
                disagree += 1
                print(f"  reversed: compare {a['strategy']} {measured:+.2f} over {b['strategy']}, surface "
                      f"{a['predicted'] - b['predicted']:+.2f}")
    print(f"\npairs (>= 1 point apart in the compare) the surface orders as the compare does: {agree} of "
          f"{agree + disagree}; {close} pairs within 1 point set apart; mean rho over ratios "
          f"{np.mean(rhos):+.2f}")


if __name__ == "__main__":
    main()
