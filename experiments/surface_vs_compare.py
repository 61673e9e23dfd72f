"""Does a study's fitted accuracy surface rank the compared recipes the way the long compare does?

A diagnosis (written 2026-12-07 after Imagenette seed 0 of experiments/imagenette_halving.py,
where H's recipe lost at 1/16 to Dollar's `fast`): the surface is fitted on the study's runs
(H: 900 steps at its fit rung); the compare trains every strategy's recipe for 3,600 steps.
The product says the same under every comparison (`tinyscale.evaluate.compare.foresight`, in
`tinyscale compare` and the app's Compare tab); this script adds the table behind it: per ratio,
each strategy's predicted and measured accuracy.

    .venv/bin/python experiments/surface_vs_compare.py runs/imagenette-halving/H
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    args = parser.parse_args()

    from tinyscale.evaluate.compare import load_comparison
    from tinyscale.evaluate.compare.foresight import fit_foresight, foresight
    from tinyscale.fit.gp import ScalingFit

    comparison = load_comparison(args.study)
    fit = ScalingFit.load(args.study)
    if comparison is None or fit.surface is None:
        raise SystemExit("needs a stored comparison and a fit with an accuracy surface")
    found = foresight(comparison, fit.surface)
    if found is None:
        raise SystemExit("nothing to compare (a comparison at matched latency, or one strategy per ratio)")
    for c in sorted({c for c, _ in found.predicted}, reverse=True):
        rows = sorted((r for r in comparison.rows if (c, r.strategy) in found.predicted and r.ratio == c),
                      key=lambda r: -r.mean)
        print(f"\nc = {c:g}\n| strategy | r | w | d | surface predicts | compare measured | seeds |\n|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r.strategy} | {r.recipe.r:.3g} | {r.recipe.w:.3g} | {r.recipe.d:.3g} | "
                  f"{100 * found.predicted[c, r.strategy]:.2f} | {100 * r.mean:.2f} | {len(r.accuracies)} |")
    print("\n" + fit_foresight(args.study, comparison))


if __name__ == "__main__":
    main()
