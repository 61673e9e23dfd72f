"""Does averaging two brief seeds per recipe make the 400-step proxy rank like longer training?
(issue 9, the "more signal per trial" lever), measured on a study's own fidelity runs.

    .venv/bin/tinyscale fidelity demo-study --recipes 10 --noise-trials 10 --replicates 1 --workers 2 --threads 1
    .venv/bin/python experiments/proxy_seed_mean.py demo-study

With ``--noise-trials`` equal to ``--recipes``, `tinyscale fidelity` retrains the *same* ten
trials (both are `tinyscale.evaluate.fidelity.spread` over log c) once more at the study's steps with a
fresh seed, and once at 4x the steps with another. For those ten recipes this prints Spearman ρ
against the long runs of: the study's brief accuracy (seed A), the replicate (seed B), and their
mean (what a study training each recipe twice would see), with the cost of that lever.

Protocol, fixed before the run (2026-11-23, session 4): the lever is worth a demo change
(two seeds per trial at half the trials, or at twice the time) only if ρ(mean) ≥ 0.8 *and* it
beats the mean of the two single-seed ρ by ≥ 0.15. The long runs have their own seed noise, so
ρ against them is capped below 1; the script also reports the long runs' spread for that reason.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
from pathlib import Path

from scipy.stats import spearmanr


def main(study_dir: str) -> int:
    from tinyscale.study.store import Study

    directory = Path(study_dir)
    with Study.open(directory) as study:
        brief = {t.number: t.accuracy for t in study.trials(state="completed")}
    conn = sqlite3.connect(directory / "fidelity" / "fidelity.sqlite")
    rows = conn.execute("SELECT kind, number, accuracy FROM runs WHERE state = 'completed'").fetchall()
    replicate = {n: a for k, n, a in rows if k == "replicate"}
    long = {n: a for k, n, a in rows if k == "long"}
    numbers = sorted(n for n in long if n in replicate and n in brief)
    if len(numbers) < 3:
        sys.exit(f"{len(numbers)} recipes have a brief, a replicate and a long run; run fidelity with "
                 "--noise-trials equal to --recipes and --replicates 1 first")
    a = [brief[n] for n in numbers]
    b = [replicate[n] for n in numbers]
    mean = [(x + y) / 2 for x, y in zip(a, b)]
    target = [long[n] for n in numbers]
    rho = {name: float(spearmanr(v, target).statistic) for name, v in
           (("seed A (the study's run)", a), ("seed B (a fresh seed)", b), ("mean of A and B", mean))}
    rho_ab = float(spearmanr(a, b).statistic)
    out = {"recipes": len(numbers), "rho_vs_long": rho, "rho_seed_A_vs_B": rho_ab,
           "long_range_pts": 100 * (max(target) - min(target)),
           "brief_mean_abs_diff_over_sqrt2_pts": 100 * statistics.fmean(abs(x - y) for x, y in zip(a, b)) / 2 ** 0.5}
    print(json.dumps(out, indent=1))
    single = (rho["seed A (the study's run)"] + rho["seed B (a fresh seed)"]) / 2
    gain = rho["mean of A and B"] - single
    verdict = "ADOPT" if rho["mean of A and B"] >= 0.8 and gain >= 0.15 else "DO NOT ADOPT"
    print(f"rho(mean) {rho['mean of A and B']:+.2f} vs single-seed {single:+.2f} (gain {gain:+.2f}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "demo-study"))
