"""`tinyscale demo`: the README's main job on the embedded default.

Runs (or resumes) the demo study on Fashion-MNIST in ./demo-study, a study that trains in rungs
(`tinyscale.study.plan.demo_config`), fits its accuracy surface as `tinyscale fit` does (every
run of every rung), prints the GP recipe next to EfficientNet compound scaling at a few budgets,
then opens the design assistant on it. Every step is a library call; interrupting and
re-running picks up where the study stopped (finished runs are never trained again).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyscale.defaults import DEMO_STUDY_DIR
from tinyscale.study.plan import DEMO_BUDGET_STEPS

DEMO_RATIOS = (0.5, 0.25, 0.125, 0.0625)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: demo study on Fashion-MNIST (resumable), fit, then the UI")
    p.add_argument("--out", default=DEMO_STUDY_DIR, help=f"study directory (default {DEMO_STUDY_DIR})")
    p.add_argument("--budget-steps", type=int, default=DEMO_BUDGET_STEPS,
                   help=f"training steps the study spends, summed over every run of every rung (default "
                        f"{DEMO_BUDGET_STEPS:,}); more buys more recipes and promotions")
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
    from tinyscale.commands.app import check_app, launch
    from tinyscale.evaluate.fidelity import noise_for_fit
    from tinyscale.fit.gp import fit_scaling
    from tinyscale.fit.multifidelity import default_rungs, runs_read
    from tinyscale.fit.report import format_fit
    from tinyscale.fit.solve import RecipeSolver
    from tinyscale.study.driver import run_study
    from tinyscale.study.executors import make_executor
    from tinyscale.study.plan import demo_config

    if args.budget_steps <= 0:
        raise ValueError(f"--budget-steps must be positive, got {args.budget_steps}")
    if not args.no_app:
        check_app(args.port)  # before the study: a bad port must not cost its training
    out = Path(args.out)
    config = demo_study_config(out, demo_config())
    shape = f"{config.steps} steps per trial"
    if config.schedule == "halving":
        from tinyscale.study.halving import rung_steps

        top = config.rungs if config.rungs is not None else 0
        shape = f"rungs of {' / '.join(f'{rung_steps(config.steps, config.eta, k):,}' for k in range(top + 1))} steps"
    executor = make_executor("local", args.workers)  # a bad worker count is refused before the demo's line
    try:
        print(f"demo: study in {out} ({config.data}, base {config.base_resolution} px, {shape}, "
              f"{args.budget_steps:,} steps in all); interrupt at any time, re-run to resume")
        study = run_study(out, config, budget_steps=args.budget_steps, resume=True, executor=executor)
    except ValueError as exc:
        if "created with a different configuration" not in str(exc):
            raise
        # A demo study from an earlier tinyscale whose demo has since changed: keep its trials.
        raise ValueError(f"{exc}. It is a demo study from an earlier tinyscale version; it is left as it "
                         f"is: move it aside (mv {out} {out}-old) or pass --out DIR, and run the demo "
                         "again") from None
    finally:
        executor.close()
    with study:  # what `tinyscale fit` reads by default: every rung of a study in rungs
        which_rungs = default_rungs(config)
        runs = runs_read(study, which_rungs)
    # A measured seed noise (`tinyscale fidelity`) is for a fit of one rung; across rungs the fit infers it.
    fit = fit_scaling(runs, config, source=str(out.resolve()), from_rungs=which_rungs,
                      seed_noise=noise_for_fit(out) if which_rungs == "fit" else None)
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


def demo_study_config(out: Path, config):
    """The config the demo runs in ``out``: the demo's, or the stored one of a demo study that
    an earlier version started and that differs only in when it decided its promotions (the
    demo promoted as runs finished before it promoted ordered; the runs keep their meaning, so
    the study resumes as it was, and says so)."""
    from dataclasses import replace

    from tinyscale.study.store import CONFIG_FILE, Study

    if not (out / CONFIG_FILE).is_file():
        return config
    with Study.open(out) as existing:
        stored = existing.config
    if stored != config and replace(stored, promotion=config.promotion) == config:
        print(f"demo: {out} was started by an earlier tinyscale that promoted {stored.promotion} (as runs "
              "finished); resumed as it was")
        return stored
    return config
