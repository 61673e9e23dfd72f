"""Recipe query from the saved fit vs refitting from scratch.

    .venv/bin/python benchmarks/bench_recipe_query.py

Builds a synthetic study (54 trials, 24 on a known front), fits it once and saves fit.json, then
times (a) loading the saved fit once and (b) `RecipeSolver.solve(c)` per query, against (c) the
naive way: Pareto selection + both GP fits from the trials for every query. Prints both side by
side with the ratio.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from _fit_fixtures import CONFIG, synthetic_trials  # noqa: E402

from tinyscale.fit.gp import fit_scaling  # noqa: E402
from tinyscale.fit.solve import RecipeSolver  # noqa: E402

# 45 distinct targets, log-spaced over the window: no query is answered from an earlier one's
# cost cache.
TARGETS = [0.05 * 20 ** (i / 44) for i in range(45)]


def main() -> None:
    trials = synthetic_trials(seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        fit_scaling(trials, CONFIG).save(Path(tmp) / "fit.json")
        t0 = time.perf_counter()
        solver = RecipeSolver.load(tmp)
        load_ms = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        solver.solve(0.333)  # the first posterior call builds the GP's prediction caches
        first_ms = (time.perf_counter() - t0) * 1e3
        query_ms = []
        for c in TARGETS:
            t0 = time.perf_counter()
            solver.solve(c)
            query_ms.append((time.perf_counter() - t0) * 1e3)
        refit_ms = []
        for c in TARGETS[:3]:
            t0 = time.perf_counter()
            RecipeSolver(fit_scaling(trials, CONFIG)).solve(c)
            refit_ms.append((time.perf_counter() - t0) * 1e3)
    q, r = statistics.median(query_ms), statistics.median(refit_ms)
    print(f"saved fit: load once {load_ms:.1f} ms, first query {first_ms:.1f} ms; then query median {q:.1f} ms, "
          f"p90 {statistics.quantiles(query_ms, n=10)[-1]:.1f} ms, max {max(query_ms):.1f} ms ({len(query_ms)} distinct targets)")
    print(f"naive (select + fit both GPs + solve, per query): median {r:.0f} ms ({len(refit_ms)} queries)")
    print(f"ratio: saved-fit query is {r / q:.0f}x faster than refitting")


if __name__ == "__main__":
    main()
