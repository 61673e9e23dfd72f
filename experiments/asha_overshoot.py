"""How far do the rung schedule's asynchronous promotions overshoot synchronous halving's rung
sizes (N, N/eta, N/eta^2), and what does that do to a study's cost in step-units?

A measurement, not a decision (no rule; nothing changes on its result): on the synthetic study of
tests/_synthetic_halving.py (eta 3, 2 rungs, rung 0 = 10 steps, accuracies and noise known,
trained in no time), N = 27, 81, 243 recipes, study seeds 3 and 4. A recipe completed at rung k is
promoted once it is among the best floor(n/eta) of the n recipes completed there at matched cost
(`tinyscale.study.halving.promotions`); a promotion is never taken back, and the matched-cost
scores move as a rung's trend and the shape correction are refitted, so recipes promoted early on
few results stay promoted. The rung planner (`choose_rungs`) costs a schedule as the synchronous
pyramid. Results: benchmarks/RESULTS.md, "halving".

    .venv/bin/python experiments/asha_overshoot.py    # seconds
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic truth lives with the tests that assert on it


def main() -> None:
    from _synthetic_halving import CFG, SyntheticExecutor

    from tinyscale.study.driver import run_study

    eta = CFG.eta
    print("| N | seed | rung sizes (ours) | synchronous | step-units (ours / synchronous) |")
    print("|---|---|---|---|---|")
    for n in (27, 81, 243):
        for seed in (3, 4):
            with tempfile.TemporaryDirectory() as tmp, run_study(Path(tmp) / "h", replace(CFG, seed=seed), trials=n,
                                                                 executor=SyntheticExecutor(), progress=False) as s:
                sizes = Counter(t.rung for t in s.runs("completed"))
            ours = [sizes.get(k, 0) for k in range(CFG.rungs + 1)]
            sync = [n // eta ** k for k in range(CFG.rungs + 1)]
            units = [sum(c * eta ** k for k, c in enumerate(x)) for x in (ours, sync)]
            print(f"| {n} | {seed} | {' / '.join(map(str, ours))} | {' / '.join(map(str, sync))} | "
                  f"{units[0]} / {units[1]} ({units[0] / units[1]:.2f}x) |")


if __name__ == "__main__":
    main()
