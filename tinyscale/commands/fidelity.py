"""`tinyscale fidelity`: do the study's brief accuracies carry signal? Seed noise, rank fidelity
against longer training, and signal beyond noise; a verdict, stored in DIR/fidelity.json."""

from __future__ import annotations

import argparse

from tinyscale.commands.options import add_execution_options, check_execution_options, executor_from
from tinyscale.evaluate.fidelity import DEFAULT_FACTOR, DEFAULT_NOISE_TRIALS, DEFAULT_RECIPES, DEFAULT_REPLICATES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fidelity",
        help="measure whether the study's brief accuracies carry signal (seed noise, rank fidelity)",
        description="Retrain a few completed trials with other seeds (seed noise) and about ten of them "
        "longer (Spearman rank correlation with the brief accuracies, FBNetV3's proxy check), relate the "
        "accuracy spread to the noise, and give a verdict. Every finished retraining is stored in "
        "DIR/fidelity/ at once (rerun the same command to resume); the result goes to DIR/fidelity.json.",
    )
    p.add_argument("study_dir", metavar="DIR", help="a study directory (tinyscale study)")
    p.add_argument("--recipes", type=int, default=DEFAULT_RECIPES,
                   help=f"trials trained longer, spread over log c (default {DEFAULT_RECIPES})")
    p.add_argument("--factor", type=float, default=DEFAULT_FACTOR,
                   help=f"the longer training is FACTOR x the steps of the runs checked (default {DEFAULT_FACTOR:g})")
    p.add_argument("--replicates", type=int, default=DEFAULT_REPLICATES,
                   help=f"extra seeds per noise trial, at the steps of the runs checked (default {DEFAULT_REPLICATES})")
    p.add_argument("--noise-trials", type=int, default=DEFAULT_NOISE_TRIALS,
                   help=f"trials retrained for the seed noise, spread over log c (default {DEFAULT_NOISE_TRIALS})")
    p.add_argument("--rung", type=int, default=None,
                   help="a study in rungs: check the runs of this rung (default: its longest runs, the highest rung "
                   "with at least 5 completed recipes, where a fit across rungs reads its ridge)")
    add_execution_options(p, restart="discard stored retrainings first")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tinyscale.evaluate.fidelity import FIDELITY_FILE, checked_rung, format_fidelity, measure
    from tinyscale.limits import MAX_STEPS, MAX_TRIALS
    from tinyscale.storage import finite_json
    from tinyscale.study.store import Study

    check_execution_options(args)  # --device cuda without a GPU: one line before any work
    with Study.open(args.study_dir) as study:  # a missing study or rung is one line before any worker starts
        rung, steps, _ = checked_rung(study, args.rung)
        rung_note = halving_note(study, rung)
    for option, value in (("--recipes", args.recipes), ("--noise-trials", args.noise_trials)):
        if value > MAX_TRIALS:
            raise ValueError(f"{option} must be at most {MAX_TRIALS:,}, got {value:,}")
    if args.factor * steps > MAX_STEPS:  # (nan and inf are refused with the other settings)
        raise ValueError(f"--factor {args.factor:g} trains {args.factor * steps:,.0f} steps (x {steps:,}, the steps of "
                         f"the runs checked); a run may train at most {MAX_STEPS:,}")
    executor = executor_from(args)
    try:
        result = measure(args.study_dir, recipes=args.recipes, factor=args.factor, replicates=args.replicates,
                         noise_trials=args.noise_trials, executor=executor, restart=args.restart,
                         progress=not args.no_progress, rung=rung)
    finally:
        executor.close()
    if args.json:
        print(finite_json(result.to_dict()))
        return 0
    print(format_fidelity(result, args.study_dir))
    if rung_note:
        print(rung_note)
    print(f"saved      {Path(args.study_dir) / FIDELITY_FILE}")
    return 0


def halving_note(study, rung: int) -> str | None:
    """What the check measured on a study that trains in rungs: which rung's runs, and how that
    rung relates to the fit (the fit across rungs reads its ridge at the top rung reached; the
    stop rule compares each rung with the next one up, so only a check like this one judges the
    longest runs against longer training)."""
    from tinyscale.study.halving import longest_rung

    if study.config.schedule != "halving":
        return None
    summary = study.rung_summary()
    longest = longest_rung(summary)
    top = 0 if longest is None else longest.rung
    checked = summary[rung]
    where = (f"rung {rung} ({checked.steps:,} steps, {checked.completed} recipes)" if rung else
             f"its rung-0 trials ({checked.steps:,} steps)")
    if rung == top:
        return (f"rungs      this study trains in rungs: the check measured {where}, its longest runs, where a fit "
                f"across rungs reads its ridge; how each rung ranks against the next: `tinyscale trials "
                f"{study.directory}`")
    return (f"rungs      this study trains in rungs: the check measured {where}, while its longest runs are rung "
            f"{top}'s ({summary[top].steps:,} steps, {summary[top].completed} recipes; the check needs "
            f"5 at a rung); how each rung ranks against the next: `tinyscale trials {study.directory}`")
