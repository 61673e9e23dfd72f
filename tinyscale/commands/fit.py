"""`tinyscale fit`: the accuracy surface (default) or the paper's Pareto selection, then GP fits
c -> r, c -> d on a study; saves DIR/fit.json."""

from __future__ import annotations

import argparse

from tinyscale.commands.options import add_latency_table_option, latency_table_path
from tinyscale.evaluate.fidelity import NOISE_CHOICES
from tinyscale.fit.gp import DEFAULT_METHOD, METHODS
from tinyscale.fit.multifidelity import DEFAULT_RUNGS, RUNG_CHOICES, default_rungs, runs_read


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="fit the recipe curves c -> r, c -> d (accuracy surface over all trials, or Pareto models)",
        description="Fit the recipe curves of a study and save DIR/fit.json for `tinyscale recipe`. Method "
        "'surface' (default): a GP of held-out accuracy over (log c, log r, log d) on every completed trial; "
        "the curves go through its ridge, the best (r, d) at each c, with bands from posterior samples of "
        "the argmax. Method 'pareto' (TinyNet's): select K well-spread Pareto models (non-dominated sorting "
        "on accuracy and MACs, then NSGA-III niching) and fit the curves on them. A study that trains in rungs "
        "is fitted on every run of every rung by default (--from-rungs).",
    )
    p.add_argument("study_dir", metavar="DIR", help="a study directory (tinyscale study)")
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD, help=f"default {DEFAULT_METHOD}")
    p.add_argument("--pareto-k", type=int, default=None,
                   help="method pareto: models to select (default about 1 in 5 trials, at most half)")
    p.add_argument("--objective", choices=("macs", "latency"), default="macs",
                   help="method pareto: the cost the selection minimises beside error (latency: predicted on "
                        "the study's latency table, DIR/latency.json, or --latency-table)")
    add_latency_table_option(p, "with --objective latency: a latency table instead of the study's")
    p.add_argument("--noise", choices=NOISE_CHOICES, default="auto",
                   help="method surface: the observation noise of the accuracy GP. 'measured' fixes it at the "
                        "seed noise `tinyscale fidelity DIR` measured (DIR/fidelity.json, or DIR/seed-noise.json from "
                        "the demo), 'inferred' lets the fit choose it, 'auto' (default) is measured when either exists")
    p.add_argument("--from-rungs", choices=RUNG_CHOICES, default=None,
                   help="a study that trains in rungs (--schedule halving): 'fit' fits the surface on the one rung "
                        "the study trusts (the settled rung, else the highest with 5 recipes), 'all' on every run "
                        "of every rung, with the training length as an input, and reads its ridge at the top rung "
                        f"(noise inferred); default {DEFAULT_RUNGS} on a study in rungs fitted by the surface with "
                        "no measured noise asked for, else fit")
    p.add_argument("--seed", type=int, default=0, help="seed of the niching tie-breaks and of the ridge's posterior samples (default 0)")
    p.add_argument("--show-trials", action="store_true", help="also list every trial's front rank and fate")
    p.add_argument("--json", action="store_true", help="print the diagnostics and selection as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tinyscale.assistant.fit_source import ridge_rung
    from tinyscale.evaluate.fidelity import (describe_stored, format_model_agreement, load_fidelity, model_agreement,
                                             noise_for_fit, stored_dict)
    from tinyscale.fit.gp import fit_scaling
    from tinyscale.fit.report import format_fit
    from tinyscale.storage import FIT_FILE, finite_json
    from tinyscale.study.store import Study

    with Study.open(args.study_dir) as study:
        config = study.config
        which_rungs = args.from_rungs or default_rungs(config, args.method, args.noise)
        if which_rungs == "all" and config.schedule != "halving":
            raise ValueError(f"--from-rungs all is for a study that trains in rungs (--schedule halving); "
                             f"{args.study_dir} trains every recipe once")
        trials = runs_read(study, which_rungs)
        fit_trials = trials if which_rungs == "fit" else study.fit_trials()
        rungs = study.rung_summary() if config.schedule == "halving" else None
        fit_rung = study.fit_rung()
        box_history = study.box_extensions()
    if which_rungs == "all" and args.noise == "measured":
        raise ValueError("--noise measured is for --from-rungs fit: a measured seed noise is of one rung's runs, "
                         "and --from-rungs all infers one noise for every rung")
    if args.pareto_k is not None and args.method != "pareto":
        raise ValueError("--pareto-k is for --method pareto (the surface method uses every trial)")
    cost = None
    if args.objective == "latency":
        from tinyscale.latency import study_table

        table = study_table(args.study_dir, latency_table_path(args))
        if table is None:
            raise ValueError("--objective latency needs a latency table: --latency-table FILE, or a study run "
                             "with --latency-table")
        cost = lambda t: table.predict_us(t.recipe)  # noqa: E731
    elif latency_table_path(args) is not None:
        raise ValueError("--latency-table goes with --objective latency")
    if args.method != "surface" and args.noise == "measured":
        raise ValueError("--noise measured is for --method surface (the accuracy GP)")
    noise = noise_for_fit(args.study_dir, args.noise) if args.method == "surface" and which_rungs == "fit" else None
    fit = fit_scaling(trials, config, method=args.method, k=args.pareto_k, seed=args.seed,
                      source=str(Path(args.study_dir).resolve()), cost=cost, objective=args.objective,
                      seed_noise=noise, from_rungs=which_rungs)
    across = getattr(fit.surface, "fidelity", None)  # the surface across rungs (None: it read one rung)
    ridge = ridge_rung(fit)
    # Everything printed is composed before fit.json is replaced, so nothing read back from the
    # study (a damaged fidelity.json) can fail after it was rewritten.
    path = Path(args.study_dir) / FIT_FILE
    try:
        agreement = model_agreement(load_fidelity(args.study_dir), fit.trial_accuracy())
    except ValueError:  # an unreadable check: describe_stored says so
        agreement = None
    if args.json:
        lo, hi = fit.c_range
        lines = [finite_json({"fit": str(path), "method": fit.method, "objective": fit.objective, "c_range": [lo, hi],
                              "selected": list(fit.data.numbers), "diagnostics": fit.diagnostics.to_dict(),
                              "trials": fit.selection_rows, "fidelity": stored_dict(args.study_dir),
                              "surface_agreement": None if agreement is None else agreement.to_dict(),
                              "fit_rung": fit_rung, "rungs": None if rungs is None else [r.to_dict() for r in rungs],
                              "rungs_read": list(fit.rungs), "ridge_rung": ridge, "box_extensions": box_history})]
    else:
        completed = len(fit_trials) if rungs is None else {r.rung: r.completed for r in rungs}
        lines = [format_fit(fit), describe_stored(args.study_dir, completed=completed)]  # the check's verdict
        if rungs is not None:
            from tinyscale.study.halving import format_rungs

            if across is None:
                lines.insert(1, f"rungs      the fit reads rung {fit_rung}'s {len(trials)} recipes\n"
                                + format_rungs(rungs, fit_rung))
            else:  # no single rung is read: no rung is marked, the surface's own line says what was
                lines.insert(1, format_rungs(rungs, fit=-1))
        if agreement is not None:
            lines.append(format_model_agreement(agreement))
        if across is None:
            lines.append(f"{'used' if fit.method == 'surface' else 'selected':<10} trials "
                         f"{' '.join(str(n) for n in fit.data.numbers)}")
        else:
            lines.append(f"used       {len(fit.data.numbers)} runs of {len(set(fit.data.numbers))} recipes: every "
                         f"completed run of rungs {', '.join(map(str, fit.rungs))}")
        if args.show_trials:
            for row in sorted(fit.selection_rows, key=lambda r: (r.get("rung", 0), r["rank"], r["macs"])):
                mark = "*" if row["selected"] else " "
                run = f"#{row['number']}" + (f"@{row['rung']}" if "rung" in row else "")
                lines.append(f"  {mark} {run:<5} c={row['ratio']:<8.4g} acc={row['accuracy']:.4f}  {row['reason']}")
        from tinyscale.study.trial import describe_box_widening

        # Where the box grew, and why: the recipes' edge notes are of the final box.
        lines += [f"box        {describe_box_widening(widened)}" for widened in box_history]
        lines.append(f"saved      {path}")
    fit.save(path)
    print("\n".join(lines))
    return 0
