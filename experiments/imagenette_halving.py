"""Issue 25's proof: does a study that trains in rungs (``--schedule halving``) give a better
recipe than a uniform study of the same CPU budget, on a task where the choice matters?

Protocol, fixed on 2026-12-06 before any of these runs (results, whatever they show, in
benchmarks/RESULTS.md "imagenette"):

- Data: Imagenette, the 128-px copy of the shared folder ($TINYSCALE_IMAGENETTE), all 9,469
  training and 3,925 held-out images, decoded at 64 px. Base resolution 64: the pilot
  (shared/reference/imagenette-pilot.md) put the rules ~10 points apart there at c = 1/8, ~5 at
  base 32. Search space: window 0.04..0.6 of B0 (the demo's: room around 1/16..1/2), r 0.35..1,
  d 0.35..1.5, Sobol, seed 0. Trainer: the demo's (batch 64, RMSProp 1.5e-3, zero-initialised
  residual branches).
- Arms, each 75 minutes of study time on one worker (one core), the two run at the same time
  on the 2-core machine so that whatever else runs slows both alike:
  U  ``uniform``: 300 steps per trial (2 epochs; the brief regime today's studies use);
  H  ``halving``: rung 0 100 steps, eta 3, 2 rungs (100 / 300 / 900 steps).
- Fit: `tinyscale fit` with its defaults (the accuracy surface) on each; H's fit reads the rung
  its rule picks (`tinyscale.study.halving.fit_rung`).
- Compare (`tinyscale compare`), c = 1/2, 1/4, 1/8, 1/16, seeds 0, 1, 2, 3,600 steps per run
  (4x H's top rung, 24 epochs: out of the brief regime). On H: gp, efficientnet, fast, uniform,
  and the one-axis rules (width, depth, resolution) where they reach c. On U: gp only, with the
  same trainer settings and seeds, so U's gp pairs with H's rows by (c, seed).
- Settled check (the compare must not re-measure the proxy): every fixed rule's accuracy rises
  with c; and seed 0 at c = 1/4 and 1/16 retrained at 7,200 steps keeps each ratio's ordering
  of the strategies.

Decision rules (issue 25's targets), all paired by seed, means over the four ratios with the
standard error over the three seed means:
1. H's gp beats efficientnet by >= +1.5 points;
2. H's gp beats U's gp (mean paired margin > 0; say whether by more than 2 SE);
3. H's margin over efficientnet is >= 70 % of the hindsight oracle's (best strategy per ratio,
   experiments/compare_ceiling.py);
4. at no ratio is H's gp more than 2 SE below the best fixed rule there;
5. H's own verdict agrees: if its stop rule said a rung was settled, the compare's ranking of
   its recipe against the rules must hold at 2x length (the settled check above).

Amendment, 2026-12-06 14:10 UTC, before any of its cells was trained (session 10; issue 25
item 3 made the fit across every rung the default for halving studies, on synthetic evidence):
- arm Hall: H's study (a copy of its trials) fitted with ``--from-rungs all``; compare gp only,
  same settings and seeds, so Hall's gp pairs with H's rows by (c, seed). Run after U's gp at
  each seed, before the other rules. Reported: Hall gp - H gp and Hall gp - efficientnet, mean
  over the four ratios with SE over seeds (the item-3 claim on real data: it holds if Hall - H
  > 0, and goes against us if it is below 0 by more than 2 SE). Decision rules 1-5 stay H's.
- The compare runs seed by seed, within a seed the cells of rules 1 and 2 first (an order, not
  a change of the cells).

Resumable: every stage resumes from what OUT holds; rerun the same command. (From session 14,
2026-12-07, a compare cell killed part-way, e.g. at a session's end, continues from the progress
its run saved every 5 minutes instead of from step 0: the same cell, bit for bit on one machine;
a cell continued on another machine differs in float order only, as cells of different sessions
always have. A procedure, not a change of the cells or the decision rules.)

    export TINYSCALE_IMAGENETTE=../shared/data/imagenette-128
    .venv/bin/python experiments/imagenette_halving.py study U &   # the two arms at once
    .venv/bin/python experiments/imagenette_halving.py study H &
    .venv/bin/python experiments/imagenette_halving.py fit
    .venv/bin/python experiments/imagenette_halving.py compare     # hours; resumable
    .venv/bin/python experiments/imagenette_halving.py settle      # the settled check, 2x steps
    .venv/bin/python experiments/imagenette_halving.py report
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from active_compare import (
    tinyscale,  # the experiments' one way to run the CLI (scripts import each other by name)
)

MINUTES = 75.0
RATIOS = "0.5,0.25,0.125,0.0625"
COMPARE_STEPS = 3600
SEEDS = 3
RULES = "gp,efficientnet,fast,uniform,width,depth,resolution"


def config(arm: str):
    from tinyscale.study.trial import StudyConfig

    common = dict(data="imagenette", base_resolution=64, num_classes=10, window=(0.04, 0.6), r_range=(0.35, 1.0),
                  d_range=(0.35, 1.5), seed=0, batch_size=64, train_size=None, val_size=None,
                  extra={"zero_init_residual": True})
    if arm == "U":
        return StudyConfig(steps=300, schedule="uniform", **common)
    return StudyConfig(steps=100, schedule="halving", eta=3, rungs=2, **common)


def run_arm(out: Path, arm: str | None, config_of, **budget) -> None:
    """Run (or resume) one arm's study in OUT/arm on one single-threaded worker, with
    ``budget`` (run_study's budget_minutes or budget_steps), and say what it trained."""
    from tinyscale.study.driver import run_study
    from tinyscale.study.executors import make_executor

    if arm is None:
        raise SystemExit("study needs the arm: U or H")
    directory = out / arm
    resume = (directory / "config.json").exists()
    executor = make_executor("local", 1, threads=1)
    try:
        study = run_study(directory, config_of(arm), resume=resume, executor=executor, **budget)
    finally:
        executor.close()
    with study:
        p = study.progress()
        print(f"{arm}: {p.counts['completed']} trials completed, {p.counts['failed']} failed, "
              f"{p.elapsed_seconds / 60:.1f} min of study time")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=("study", "fit", "compare", "settle", "report"))
    ap.add_argument("arm", nargs="?", choices=("U", "H"))
    ap.add_argument("--out", default="runs/imagenette-halving")
    args = ap.parse_args(argv)
    if not os.environ.get("TINYSCALE_IMAGENETTE"):
        raise SystemExit("set TINYSCALE_IMAGENETTE to the Imagenette folder (see the docstring)")
    out = Path(args.out)
    if args.stage == "study":
        run_arm(out, args.arm, config, budget_minutes=MINUTES)
    elif args.stage == "fit":
        # The protocol's fit (fixed before the first run) is the surface on the fit rung alone;
        # reading every rung became the default for halving studies later (issue 25 item 3).
        print(tinyscale("fit", str(out / "U")))
        print(tinyscale("fit", str(out / "H"), "--from-rungs", "fit"))
        hall = out / "Hall"  # the amendment's arm: H's trials, fitted across every rung
        if not (hall / "trials.sqlite").exists():
            import shutil
            import sqlite3

            hall.mkdir(parents=True, exist_ok=True)
            shutil.copy(out / "H" / "config.json", hall / "config.json")
            with sqlite3.connect(out / "H" / "trials.sqlite") as src, sqlite3.connect(hall / "trials.sqlite") as dst:
                src.backup(dst)
        print(tinyscale("fit", str(hall), "--from-rungs", "all"))
    elif args.stage == "compare":
        # Seed by seed, and within a seed the cells of decision rules 1 and 2 first (H's gp and
        # efficientnet, then U's gp), so that an interrupted run (a session ends) holds paired
        # rows at every seed it reached. Same cells as one call with --seeds 3: a cell is keyed
        # by (strategy, c, seed, bracket), and the store keeps what an earlier call trained.
        for seeds in range(1, SEEDS + 1):
            common = ("--ratios", RATIOS, "--steps", str(COMPARE_STEPS), "--seeds", str(seeds), "--workers", "2")
            print(tinyscale("compare", str(out / "H"), "--strategies", "gp,efficientnet", *common))
            print(tinyscale("compare", str(out / "U"), "--strategies", "gp", *common))
            print(tinyscale("compare", str(out / "Hall"), "--strategies", "gp", *common))
            print(tinyscale("compare", str(out / "H"), "--strategies", RULES, *common))
    elif args.stage == "settle":
        # The protocol's settled check: seed 0 at 1/4 and 1/16 (compare's check ratios) at 2x steps.
        print(tinyscale("compare", str(out / "H"), "--strategies", RULES, "--ratios", RATIOS, "--steps",
                        str(COMPARE_STEPS), "--seeds", str(SEEDS), "--workers", "2", "--settle-check"))
    else:
        report(out)
    return 0


FIXED = ("efficientnet", "fast", "uniform", "width", "depth", "resolution")


def _paired(by_seed: dict[int, float]) -> tuple[float, float | None, int]:
    """Mean, standard error and count of per-seed values (SE None below 2 seeds)."""
    import statistics

    values = list(by_seed.values())
    if not values:
        return math.nan, None, 0
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    return statistics.fmean(values), se, len(values)


def _over_ratios(per_ratio: dict[float, dict[int, float]]) -> dict[int, float]:
    """Per seed, the mean over the ratios of a per-(ratio, seed) difference; only seeds present at
    every ratio given (the decision rules' unit: a seed's mean over the four ratios)."""
    import statistics

    seeds = set.intersection(*(set(v) for v in per_ratio.values())) if per_ratio else set()
    return {s: statistics.fmean(v[s] for v in per_ratio.values()) for s in sorted(seeds)}


def _fmt(mean: float, se: float | None, n: int) -> str:
    return f"{100 * mean:+.2f} ± {'n/a' if se is None else f'{100 * se:.2f}'} pp (n = {n} seeds)"


def report(out: Path, seeds: int = SEEDS) -> None:
    """The protocol's five decision rules on whatever cells are stored (a partial comparison
    reports the ratios and seeds it holds, and says so; a decision needs ``seeds`` seeds)."""
    from tinyscale.evaluate.compare import load_comparison

    h, u = load_comparison(out / "H"), load_comparison(out / "U")
    if h is None:
        raise SystemExit("no comparison stored for H yet")
    ratios = [float(c) for c in RATIOS.split(",")]

    def by_seed(comparison, c, strategy) -> dict[int, float]:
        row = None if comparison is None else comparison.row(c, strategy)
        return {} if row is None or not row.accuracies else row.accuracy_by_seed

    def diff(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
        return {s: a[s] - b[s] for s in a if s in b}

    print("| c | H gp | U gp | efficientnet | best fixed rule | oracle (hindsight best) |")
    print("|---|---|---|---|---|---|")
    vs_eff, vs_u, oracle, below_best = {}, {}, {}, []
    for c in ratios:
        gp_h, gp_u, eff = by_seed(h, c, "gp"), by_seed(u, c, "gp"), by_seed(h, c, "efficientnet")
        fixed = {name: by_seed(h, c, name) for name in FIXED if by_seed(h, c, name)}
        pool = {**fixed, "gp": gp_h}  # the protocol's oracle: H's comparison alone (compare_ceiling's pool)

        def mean(v):
            return sum(v.values()) / len(v) if v else math.nan

        best_fixed = max(fixed, key=lambda n: mean(fixed[n]), default=None)
        best = max(pool, key=lambda n: mean(pool[n]) if pool[n] else -1.0)
        cell = lambda v: "-" if not v else f"{100 * mean(v):.2f} ({len(v)})"  # noqa: E731
        print(f"| {c:g} | {cell(gp_h)} | {cell(gp_u)} | {cell(eff)} | "
              f"{'-' if best_fixed is None else best_fixed + ' ' + cell(fixed[best_fixed])} | {best} {cell(pool[best])} |")
        if gp_h and eff:
            vs_eff[c] = diff(gp_h, eff)
            oracle[c] = diff(pool[best], eff)
        if gp_h and gp_u:
            vs_u[c] = diff(gp_h, gp_u)
        if gp_h and best_fixed is not None:
            m, se, n = _paired(diff(gp_h, fixed[best_fixed]))
            below_best.append((c, best_fixed, m, se, n))
    complete = all(c in vs_eff for c in ratios)
    print(f"\nratios with H gp and efficientnet: {sorted(vs_eff)}")
    m1 = _paired(_over_ratios(vs_eff))
    complete = complete and m1[2] == seeds  # a decision needs every ratio at every seed
    print("" if complete else f"partial (fewer than {seeds} seeds at every ratio): not a decision")
    print(f"1. H gp - efficientnet, mean over ratios: {_fmt(*m1)}; target >= +1.50: "
          f"{('met' if m1[0] >= 0.015 else 'missed') if complete else 'not decided (partial)'}")
    m2 = _paired(_over_ratios(vs_u))
    print(f"2. H gp - U gp: {_fmt(*m2)}; {'H ahead' if m2[0] > 0 else 'H not ahead'}"
          + ("" if m2[1] is None else f", {'more' if abs(m2[0]) > 2 * m2[1] else 'less'} than 2 SE"))
    mo = _paired(_over_ratios(oracle))
    share = m1[0] / mo[0] if mo[0] > 0 else math.nan
    print(f"3. oracle - efficientnet: {_fmt(*mo)}; H's share of it {share:.0%} (target >= 70 %)")
    worst = [(c, name, m, se, n) for c, name, m, se, n in below_best if se is not None and m < -2 * se]
    for c, name, m, se, n in below_best:
        print(f"4. at c = {c:g}: H gp - {name} (best fixed rule) {_fmt(m, se, n)}")
    print(f"4. more than 2 SE below the best fixed rule at: {[c for c, *_ in worst] or 'no ratio'}")
    hall = load_comparison(out / "Hall")
    if hall is not None:
        vs_h = {c: diff(by_seed(hall, c, "gp"), by_seed(h, c, "gp")) for c in ratios if by_seed(hall, c, "gp")}
        vs_e = {c: diff(by_seed(hall, c, "gp"), by_seed(h, c, "efficientnet")) for c in ratios
                if by_seed(hall, c, "gp") and by_seed(h, c, "efficientnet")}
        print(f"amendment: Hall gp - H gp {_fmt(*_paired(_over_ratios(vs_h)))} over ratios {sorted(vs_h)}; "
              f"Hall gp - efficientnet {_fmt(*_paired(_over_ratios(vs_e)))}")
    with __import__("tinyscale.study.store", fromlist=["Study"]).Study.open(out / "H") as study:
        settled = [r.rung for r in study.rung_summary() if r.agreement is not None and r.agreement.settled]
    print(f"5. H's stop rule called rungs settled: {settled or 'none'}"
          + ("" if settled else " (no settled claim to hold; the compare's own settled check: `settle` stage)"))
    # The `settle` stage's verdict as far as its re-runs are stored (added 2026-12-07, session 18:
    # a read of what that stage stored, so that one `report` gives everything).
    from tinyscale.evaluate.compare.settle import format_settle_check, stored_settle_check

    stored = stored_settle_check(out / "H", h)
    print("\nsettled check: " + ("not run yet" if stored is None else (
        f"{stored[1]} re-run(s) still missing; " if stored[1] else "") + format_settle_check(stored[0])))
    # A diagnosis beside the decision rules (added 2026-12-07, not one of them): how H's fitted
    # surface ordered the compared recipes against what the 3,600-step runs measured.
    from tinyscale.evaluate.compare.foresight import fit_foresight

    print("\nnot a decision rule: " + (fit_foresight(out / "H", h) or "no foresight (no surface fit)"))


if __name__ == "__main__":
    raise SystemExit(main())
