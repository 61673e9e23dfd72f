"""`tinyscale fit`: Pareto selection + GP fits c -> r, c -> d on a study; saves DIR/fit.json."""

from __future__ import annotations

import argparse

from tinyscale.pareto import DEFAULT_K


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="select Pareto models (NSGA-III) and fit the GPs c -> r, c -> d",
        description="Select up to K well-spread models from the study's completed trials (non-dominated "
        "sorting on accuracy and MACs, then NSGA-III niching), fit Gaussian processes c -> r and c -> d "
        "on them, print the fits and their diagnostics, and save DIR/fit.json for `tinyscale recipe`.",
    )
    p.add_argument("study_dir", metavar="DIR", help="a study directory (tinyscale study)")
    p.add_argument("--pareto-k", type=int, default=DEFAULT_K, help=f"models to select (default {DEFAULT_K})")
    p.add_argument("--seed", type=int, default=0, help="tie-break seed of the niching (default 0)")
    p.add_argument("--show-trials", action="store_true", help="also list every trial's front rank and fate")
    p.add_argument("--json", action="store_true", help="print the diagnostics and selection as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from tinyscale.fidelity import describe_stored, stored_dict
    from tinyscale.gp import fit_scaling, format_fit
    from tinyscale.study import Study

    with Study.open(args.study_dir) as study:
        config = study.config
        trials = study.trials(state="completed")
    fit = fit_scaling(trials, config, k=args.pareto_k, seed=args.seed, source=str(Path(args.study_dir).resolve()))
    path = fit.save(Path(args.study_dir))
    if args.json:
        lo, hi = fit.c_range
        print(json.dumps({"fit": str(path), "c_range": [lo, hi], "selected": list(fit.data.numbers),
                          "diagnostics": fit.diagnostics.to_dict(), "trials": fit.selection_rows,
                          "fidelity": stored_dict(args.study_dir)}))
        return 0
    print(format_fit(fit))
    print(describe_stored(args.study_dir, completed=len(trials)))  # `tinyscale fidelity`'s verdict, if measured
    print(f"selected   trials {' '.join(str(n) for n in fit.data.numbers)}")
    if args.show_trials:
        for row in sorted(fit.selection_rows, key=lambda r: (r["rank"], r["macs"])):
            mark = "*" if row["selected"] else " "
            print(f"  {mark} #{row['number']:<4} c={row['ratio']:<8.4g} acc={row['accuracy']:.4f}  {row['reason']}")
    print(f"saved      {path}")
    return 0
