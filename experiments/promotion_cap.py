"""Should a rung's promotions be capped at the synchronous count? (issue 25; session 17)

Asynchronous promotion overshoots synchronous halving's rung sizes (RESULTS, "Asynchronous
promotion overshoots the synchronous pyramid": the upper rungs hold 1.2-1.7x floor(n/eta)), so
a budget buys fewer rung-0 recipes than the planner expects. A cap promotes from rung k only
while rung k+1 holds fewer than floor(n_k / eta) runs (n_k: recipes completed at rung k): the
final pyramid is the synchronous one, and the step-units saved buy more rung-0 recipes; but a
promotion is still never taken back, so the early, least-informed picks fill the cap.

Protocol, fixed in this docstring and committed before any of its runs:
- Studies: the synthetic halving study of tests/_synthetic_halving.py (its `CFG`: eta 3, 2 rungs,
  10 rung-0 steps) with its default truth (depth bias 0.2, noise 0.03 at rung 0), one worker
  (`SyntheticExecutor()`, first in first out), a budget of 2,430 step-units (the synchronous
  pyramid of 81 recipes: 81 x 10 + 27 x 30 + 9 x 90), study seed = each seed below.
- Arms, paired by study seed: "asha" (the library's promotions, `promotions`) and "capped" (the
  same, each rung's due promotions cut to floor(n_k / eta) minus those already started there).
- Metric: the library's default fit of a study in rungs (`fit_scaling(runs, CFG,
  from_rungs="all")`), its ridge recipe at c = 0.08, 0.16, 0.32, 0.64 scored by `true_shape`
  (0 is the best; `multifidelity_fit.ridge_score`), the mean over the four c.
- Seeds: 40-55 (16 study seeds never used by an earlier experiment: 0-7, 10-21 and 30-37 were).
  Nothing is tuned.
- Decision: the cap becomes the library's promotion iff the mean paired gain (capped - asha) is
  > 0 and > 2 SE (SE = sd of the 16 differences / 4); otherwise the promotions stay as they
  are and the result is reported. Reported, not in the rule: each arm's rung sizes and rung-0
  recipes, and the gain with no depth bias (`SyntheticExecutor(bias=0.0)`) on the same seeds.

    .venv/bin/python experiments/promotion_cap.py           # minutes, one core
"""

from __future__ import annotations

import math
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic truth lives with the tests that assert on it
sys.path.insert(0, str(ROOT / "experiments"))

SEEDS = tuple(range(40, 56))
BUDGET = 81 * 10 + 27 * 30 + 9 * 90


def capped_promotions(results, started, *, eta, top):
    """The library's promotions, each rung's cut to floor(n_k / eta) minus those started there."""
    from tinyscale.study.halving import by_rung, promotions

    completed = {k: len(done) for k, done in by_rung(results).items()}
    due = promotions(results, started, eta=eta, top=top)
    out, room = [], {}
    for p in due:  # highest target rung first, best score first within a rung
        k = p.rung - 1
        room.setdefault(k, completed.get(k, 0) // eta - len(started.get(p.rung, set())))
        if room[k] > 0:
            out.append(p)
            room[k] -= 1
    return out


def one_study(directory: Path, seed: int, capped: bool, bias: float) -> dict:
    from _synthetic_halving import CFG, SyntheticExecutor
    from multifidelity_fit import ridge_score

    import tinyscale.study.driver as driver
    from tinyscale.fit.gp import fit_scaling
    from tinyscale.study.halving import promotions

    driver.promotions = capped_promotions if capped else promotions
    try:
        with driver.run_study(directory, replace(CFG, seed=seed), budget_steps=BUDGET,
                              executor=SyntheticExecutor(bias=bias), progress=False) as study:
            runs = study.runs("completed")
    finally:
        driver.promotions = promotions
    score, r, d = ridge_score(fit_scaling(runs, CFG, from_rungs="all").surface)
    sizes = Counter(t.rung for t in runs)
    return {"score": score, "sizes": [sizes.get(k, 0) for k in range(CFG.rungs + 1)], "r": r, "d": d}


def main() -> None:
    for bias in (0.2, 0.0):
        print(f"\nbias {bias} ({'the decision' if bias else 'reported only'}), budget {BUDGET:,} step-units")
        print("| seed | asha sizes | capped sizes | asha shape | capped shape | capped - asha |")
        print("|---|---|---|---|---|---|")
        gains = []
        for seed in SEEDS:
            with tempfile.TemporaryDirectory() as tmp:
                a = one_study(Path(tmp) / "a", seed, False, bias)
                c = one_study(Path(tmp) / "c", seed, True, bias)
            gains.append(c["score"] - a["score"])
            print(f"| {seed} | {'/'.join(map(str, a['sizes']))} | {'/'.join(map(str, c['sizes']))} | "
                  f"{a['score']:+.4f} | {c['score']:+.4f} | {gains[-1]:+.4f} |", flush=True)
        g = np.array(gains)
        se = float(g.std(ddof=1) / math.sqrt(len(g)))
        print(f"mean paired gain (capped - asha): {g.mean():+.4f} +- {se:.4f} (SE, n = {len(g)})"
              + ("" if not bias else f"; decision: {'adopt the cap' if g.mean() > 0 and g.mean() > 2 * se else 'keep the promotions as they are'}"))


if __name__ == "__main__":
    main()
