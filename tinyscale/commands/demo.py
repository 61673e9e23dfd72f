"""`tinyscale demo`: the README's main job on the embedded default.

Runs (or resumes) the demo study on Fashion-MNIST in ./demo-study, measures its seed noise on a
few trials retrained with another seed, fits the GPs on it (the accuracy surface's noise fixed at
the measured one), prints
the GP recipe next to EfficientNet compound scaling at a few budgets, then opens the design
assistant on it. Every step is a library call; interrupting and re-running picks up where the
study stopped (finished trials are never trained again).
"""

from __future__ import annotations

import argparse
import sys

from tinyscale.defaults import DEMO_STUDY_DIR
from tinyscale.study.plan import DEMO_TRIALS

DEMO_RATIOS = (0.5, 0.25, 0.125, 0.0625)
# Trials the demo retrains once with another seed to measure the seed noise its accuracy surface
# is fixed at (24 trials cannot tell noise from shape: the inferred noise came out 6-8x below the
# measured one). One replicate each keeps it to ~1 min on 2 cores; they are runs `tinyscale
# fidelity` plans too, so the full check reuses them.
DEMO_NOISE_TRIALS = 4


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: demo study on Fashion-MNIST (resumable), fit, then the UI")
    p.add_argument("--out", default=DEMO_STUDY_DIR, help=f"study directory (default {DEMO_STUDY_DIR})")
    p.add_argument("--trials", type=int, default=DEMO_TRIALS, help=f"trials in the study (default {DEMO_TRIALS})")
    p.add_argument("--workers", type=int, default=None, help="parallel trials (default: one per core, 1 thread each)")
    p.add_argument("--no-app", action="store_true", help="stop after the fit and the recipe table")
    p.add_argument("--port", type=int, default=8501, help="port of the design assistant (default 8501)")
    p.set_defaults(func=run)


def recipe_rows(solver, ratios, config) -> list[tuple[str, str, str]]:
    """(target, GP recipe, EfficientNet compound recipe) lines at each ratio, in the study's context."""
    from baselines.efficientnet import compound_recipe

    rows = []
    for c in ratios:
        gp = solver.solve(c)
        g = gp.recipe
        gp_text = f"r={g.r:g} w={g.w:g} d={g.d:g} {g.resolution}px c={gp.achieved:.4f}"
        if gp.extrapolated:
            gp_text += " (extrapolated)"
        try:
            e = compound_recipe(c, base_resolution=config.base_resolution, num_classes=config.num_classes)
            r = e.recipe
            eff_text = f"r={r.r:g} w={r.w:g} d={r.d:g} {r.resolution}px c={e.achieved:.4f}"
        except ValueError as exc:
            eff_text = f"out of reach: {exc}"
        rows.append((f"{c:g}", gp_text, eff_text))
    return rows


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tinyscale.commands.app import check_app, launch
    from tinyscale.study.executors import make_executor
    from tinyscale.evaluate.fidelity import MIN_TRIALS, measure_noise, noise_for_fit
    from tinyscale.fit.gp import fit_scaling, format_fit
    from tinyscale.fit.solve import RecipeSolver
    from tinyscale.study.driver import run_study
    from tinyscale.study.plan import demo_config

    if args.trials <= 0:
        raise ValueError(f"--trials must be positive, got {args.trials}")
    if not args.no_app:
        check_app(args.port)  # before the study: a bad port must not cost its training
    out = Path(args.out)
    config = demo_config()
    print(f"demo: study in {out} ({args.trials} trials on {config.data}, base {config.base_resolution} px); "
          "interrupt at any time, re-run to resume")
    executor = make_executor("local", args.workers)
    try:
        try:
            study = run_study(out, config, trials=args.trials, resume=True, executor=executor)
        except ValueError as exc:
            if "created with a different configuration" not in str(exc):
                raise
            # A demo study from an earlier tinyscale whose demo has since changed: keep its trials.
            raise ValueError(f"{exc}. It is a demo study from an earlier tinyscale version; it is left as it "
                             f"is: move it aside (mv {out} {out}-old) or pass --out DIR, and run the demo "
                             "again") from None
        with study:
            trials = study.fit_trials()
        if noise_for_fit(out) is None and len(trials) >= MIN_TRIALS:
            print(f"demo: measuring seed noise ({DEMO_NOISE_TRIALS} trials retrained with another seed), so the "
                  "accuracy surface averages it away instead of fitting it")
            try:
                measure_noise(out, replicates=1, noise_trials=DEMO_NOISE_TRIALS, executor=executor)
            except ValueError as exc:  # e.g. every replicate diverged: the fit can still infer the noise
                print(f"demo: the seed noise could not be measured ({exc}); the fit infers it", file=sys.stderr)
    finally:
        executor.close()
    # The seed noise measured above, or the full check's once `tinyscale fidelity` has run.
    fit = fit_scaling(trials, config, source=str(out.resolve()), seed_noise=noise_for_fit(out))
    fit.save(out)
    print(format_fit(fit))
    solver = RecipeSolver(fit)
    rows = [("c", "GP recipe (this study)", "EfficientNet compound scaling")]
    rows += recipe_rows(solver, DEMO_RATIOS, config)
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    if args.no_app:
        print(f"demo: done. Open the design assistant with: tinyscale app --study {out}")
        return 0
    return launch(str(out), port=args.port)
