"""Issue 25's proof, second run: does a halving study's recipe, fitted as the product fits it,
beat a uniform study's and the published rules on Imagenette? (fresh seeds, step budgets)

Why a second run. The first (experiments/imagenette_halving.py, protocol of 2026-12-06) lost its
stores on 2026-12-07: they lived in runs/, which git ignores, and a session's new checkout holds
only what was committed. Seed 0 was complete and seed 1 partial; those numbers stay in
benchmarks/RESULTS.md as measured, but no decision rule can be read from them. Between the two
runs the first one's seed 0 was seen, so this run uses seeds none of it used.

Protocol, fixed on 2026-12-07 before any of these runs (results, whatever they show, in
benchmarks/RESULTS.md "Imagenette, second run"):

- As the first run: Imagenette, the 128-px copy ($TINYSCALE_IMAGENETTE), all 9,469 training and
  3,925 held-out images decoded at 64 px; base resolution 64; window 0.04..0.6 of B0, r 0.35..1,
  d 0.35..1.5; the demo's trainer (batch 64, RMSProp 1.5e-3, zero-initialised residual branches);
  arms U (``uniform``, 300 steps per trial) and H (``halving``: rung 0 100 steps, eta 3, 2 rungs:
  100 / 300 / 900 steps), each on one worker (one core), the two at the same time.
- Changed, and why:
  1. Study seed 1 (Sobol draw and trial seeds), compare seeds 3, 4, 5: fresh seeds.
  2. Budgets in step-units (steps summed over every run): 27,000 each, about what the first run's
     75 minutes bought (U 27,900, H 26,400). Other work on the machine then changes how long a
     study takes, not what it trains.
  3. Both studies are fitted as the product fits them (`tinyscale fit DIR`, its defaults: for the
     halving study the surface across every rung, the default since 2026-12-06 on synthetic
     evidence, the first run's amendment arm "Hall"). The decision rules judge that recipe: the
     one a user gets. The first run's single-rung fit (its arm H) is not run again; its diagnosis
     (RESULTS "Length or fit?") stands.
- Compare (`tinyscale compare`), c = 1/2, 1/4, 1/8, 1/16, seeds 3, 4, 5, 3,600 steps (4x H's top
  rung). On H: gp, efficientnet, fast, uniform and the one-axis rules where they reach c. On U:
  gp only, same settings and seeds (paired with H's rows by c and seed). Seed by seed; within a
  seed H's gp and efficientnet first, then U's gp, then H's other rules.
- Settled check: `compare --settle-check` on H (seed 3 at 1/4 and 1/16, 7,200 steps).

Decision rules (issue 25's targets), unchanged from the first run: paired by seed, means over the
four ratios, standard error over the three seed means:
1. H's gp beats efficientnet by >= +1.5 points;
2. H's gp beats U's gp (mean paired margin > 0; say whether by more than 2 SE);
3. H's margin over efficientnet is >= 70 % of the hindsight oracle's (best strategy per ratio);
4. at no ratio is H's gp more than 2 SE below the best fixed rule there;
5. H's own verdict agrees: a rung its stop rule called settled must hold in the settled check.

Stores outlive the session: ``save`` copies every store of OUT (sqlite by its backup API; not the
checkpoints and progress files) to experiments/results/imagenette-v2/, to be committed; every
stage first restores OUT from there when OUT lacks it. The compare saves after each of its calls.

    export TINYSCALE_IMAGENETTE=../shared/data/imagenette-128
    .venv/bin/python experiments/imagenette_v2.py study U &   # the two arms at once
    .venv/bin/python experiments/imagenette_v2.py study H &
    .venv/bin/python experiments/imagenette_v2.py fit
    .venv/bin/python experiments/imagenette_v2.py compare     # about 16 machine-hours; resumable
    .venv/bin/python experiments/imagenette_v2.py settle
    .venv/bin/python experiments/imagenette_v2.py report
    .venv/bin/python experiments/imagenette_v2.py save        # then commit experiments/results/

In a new checkout (a new session), from a snapshot of the committed tree so that later edits of
the working tree cannot change cells in flight, both cores, detached:

    rm -rf /work/snap && mkdir -p /work/snap && git archive HEAD | tar -x -C /work/snap
    ln -s "$PWD/.venv" /work/snap/.venv && mkdir -p runs/imagenette-v2
    (cd /work/snap && TINYSCALE_IMAGENETTE=/work/shared/data/imagenette-128 setsid nohup .venv/bin/python \
        experiments/imagenette_v2.py compare --out "$OLDPWD/runs/imagenette-v2" \
        --saved "$OLDPWD/experiments/results/imagenette-v2" >> "$OLDPWD/runs/imagenette-v2/compare.log" 2>&1 &)

(--saved: the checkout's results folder, not the snapshot's, is restored from and saved to.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from active_compare import tinyscale
from imagenette_halving import COMPARE_STEPS, RATIOS, RULES, report, run_arm
from imagenette_halving import config as first_run_config

STUDY_SEED = 1
FIRST_SEED = 3
SEEDS = 3
STEP_BUDGET = 27_000
ARMS = ("U", "H")
SAVED = Path(__file__).resolve().parent / "results" / "imagenette-v2"
NOT_SAVED = ("checkpoints", "progress")  # large, and only a run in flight needs them


def config(arm: str):
    return replace(first_run_config(arm), seed=STUDY_SEED)


def save(out: Path, saved: Path = SAVED) -> int:
    """Copy every store of ``out`` to ``saved`` (a consistent copy of a store being written);
    returns the number of files copied."""
    copied = 0
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if not path.is_file() or any(part in NOT_SAVED for part in rel.parts) or path.name.endswith(
                ("-wal", "-shm", "-journal", ".lock", ".html", ".png")):  # plots: megabytes, redrawn from the store
            continue
        target = saved / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".sqlite", ".db"):
            tmp = target.with_name(target.name + ".tmp")
            tmp.unlink(missing_ok=True)
            with closing(sqlite3.connect(path)) as src, closing(sqlite3.connect(tmp)) as dst:
                src.backup(dst)
            tmp.replace(target)
        else:
            shutil.copy2(path, target)
        copied += 1
    return copied


def restore(out: Path, saved: Path = SAVED) -> None:
    """Put each arm saved back into ``out`` where ``out`` lacks it (a new checkout)."""
    for arm in ARMS:
        if (saved / arm).is_dir() and not (out / arm / "trials.sqlite").exists():
            shutil.copytree(saved / arm, out / arm, dirs_exist_ok=True)
            print(f"restored {out / arm} from {saved / arm}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=("study", "fit", "compare", "settle", "report", "save"))
    ap.add_argument("arm", nargs="?", choices=ARMS)
    ap.add_argument("--out", default="runs/imagenette-v2")
    ap.add_argument("--saved", default=str(SAVED), help="where the stores are saved to and restored from")
    args = ap.parse_args(argv)
    out, saved = Path(args.out), Path(args.saved)
    if args.stage == "save":
        print(f"saved {save(out, saved)} files to {saved}")
        return 0
    if not os.environ.get("TINYSCALE_IMAGENETTE"):
        raise SystemExit("set TINYSCALE_IMAGENETTE to the Imagenette folder (see the docstring)")
    restore(out, saved)
    if args.stage == "study":
        run_arm(out, args.arm, config, budget_steps=STEP_BUDGET)
    elif args.stage == "fit":
        for arm in ARMS:  # the product's defaults (the halving study: the surface across every rung)
            print(tinyscale("fit", str(out / arm)))
    elif args.stage == "compare":
        for seeds in range(1, SEEDS + 1):
            common = ("--ratios", RATIOS, "--steps", str(COMPARE_STEPS), "--seeds", str(seeds),
                      "--first-seed", str(FIRST_SEED), "--workers", "2")
            for arm, strategies in (("H", "gp,efficientnet"), ("U", "gp"), ("H", RULES)):
                print(tinyscale("compare", str(out / arm), "--strategies", strategies, *common, progress=True))
                save(out, saved)
    elif args.stage == "settle":
        print(tinyscale("compare", str(out / "H"), "--strategies", RULES, "--ratios", RATIOS, "--steps",
                        str(COMPARE_STEPS), "--seeds", str(SEEDS), "--first-seed", str(FIRST_SEED),
                        "--workers", "2", "--settle-check", progress=True))
        save(out, saved)
    else:
        print("H: the halving study fitted with the product's defaults (across every rung); "
              f"seeds {FIRST_SEED}..{FIRST_SEED + SEEDS - 1}")
        report(out, seeds=SEEDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
