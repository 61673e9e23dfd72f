"""`tinyscale study`: sample recipes under a FLOPs window, train each briefly, store every trial."""

from __future__ import annotations

import argparse

from tinyscale.commands.options import (add_execution_options, add_latency_table_option, add_precision_option,
                                       check_execution_options, executor_from, latency_table_path)
from tinyscale.space.recipe import RULE_SETS
from tinyscale.study.samplers.base import DEFAULT_INIT_TRIALS


def _pair(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers LOW,HIGH, got {text!r}") from None
    return lo, hi


def _rungs(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or auto, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="sample and briefly train recipes under a FLOPs window (resumable)")
    p.add_argument("--data", help="fashion-mnist, generated, or a class-per-folder dataset path")
    p.add_argument("--out", help="study directory")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="DIR",
                   help="continue the study in DIR (or in --out)")
    budget = p.add_argument_group("budget (either or both; the first reached ends the study)")
    budget.add_argument("--trials", type=int, help="number of trials")
    budget.add_argument("--budget-minutes", type=float, help="study time in minutes")
    budget.add_argument("--budget-steps", type=int,
                        help="step-units: training steps summed over every run (of every rung); the same on any machine")
    space = p.add_argument_group("search space and training (fixed when the study is created)")
    space.add_argument("--window", type=_pair, help="FLOPs ratio window LOW,HIGH (default 0.05,1.0)")
    space.add_argument("--r-range", type=_pair, help="resolution multiplier range (default 0.35,1.0)")
    space.add_argument("--d-range", type=_pair, help="depth multiplier range (default 0.35,1.5)")
    space.add_argument("--sampling", choices=("sobol", "random"), help="quasi-random or random draws (default sobol)")
    # No argparse choices: a typo gets the study's one-line error, which names the valid ones.
    space.add_argument("--sampler", help="who proposes trials: sobol (the seeded stream, default) or botorch "
                                         "(the stream's first --init-trials, then a qLogNEHVI acquisition)")
    space.add_argument("--init-trials", type=int,
                       help=f"trials from the stream before botorch steers (--sampler botorch; default {DEFAULT_INIT_TRIALS})")
    space.add_argument("--steps", type=int, help="training steps per trial (per rung-0 run with --schedule halving)")
    space.add_argument("--schedule", help="uniform (every trial --steps, default) or halving: rungs of --steps x "
                                          "--eta^k steps, the best 1/--eta of a rung at matched cost promoted, "
                                          "lengthening stopped once two rungs rank alike (Spearman rho >= 0.9)")
    space.add_argument("--eta", type=int, help="halving: the rung's step factor and promotion ratio (default 3)")
    space.add_argument("--rungs", type=_rungs,
                       help="halving: rungs above rung 0, or auto (default): the most whose 6 recipes at the top "
                            "(and --eta x as many below) fit the budget, from the first runs' measured cost")
    space.add_argument("--promote", choices=PROMOTE_CHOICES,
                       help="halving: a promoted recipe retrains from scratch (default: cosine lr, as the demo and "
                            "the Imagenette proof measured) or continues from its shorter run's checkpoint (warm-up, "
                            "constant lr, then decay over the last 20 %%: the steps before the decay are not "
                            "trained again, 0.8x the step-units at eta 3)")
    space.add_argument("--promotion", help="with several workers, when the next run is decided: async (as runs "
                                           "finish, default: workers never wait, but the study depends on which "
                                           "run finishes first) or ordered (on a clock of step-units: the same "
                                           "seed and --workers give the same study; a worker may wait)")
    space.add_argument("--clock-exponent", type=float,
                       help="ordered: the clock charges a run steps x c^E (default 0.5, a CPU core's; `trials` "
                            "says what a step of the study's runs took, e.g. about 0 on a GPU)")
    space.add_argument("--batch-size", type=int, help="training batch size")
    space.add_argument("--base-resolution", type=int, help="side length r multiplies (default 32)")
    space.add_argument("--rules", choices=RULE_SETS, help="rounding rule set (default tinynet)")
    space.add_argument("--num-classes", type=int, help="classes (default: the dataset's)")
    space.add_argument("--train-size", type=int, help="seeded subset of training images (default all)")
    space.add_argument("--val-size", type=int, help="seeded subset of held-out images (default all)")
    space.add_argument("--seed", type=int, help="sampling and training seed (default 0)")
    add_precision_option(space)
    space.add_argument("--widen-box", action="store_true",
                       help="halfway through the budget, fit the trials so far and, where a recipe at 1/2..1/16 of "
                            "B0 sits at an edge of --r-range/--d-range that the architecture does not impose, spend "
                            "the rest of the budget in a box widened past it (the box's history says where and why)")
    run = p.add_argument_group("execution (may change between runs)")
    add_execution_options(run, unit="trials")
    run.add_argument("--quiet", dest="no_progress", action="store_true", help="the same as --no-progress")
    run.add_argument("--retry-failed", action="store_true",
                     help="with --resume: train the failed trials again (e.g. after a fault of the machine)")
    add_latency_table_option(run, "a latency table (tinyscale latency-table) kept as DIR/latency.json: `trials` "
                                  "and `fit --objective latency` then predict every trial's latency on it", trains=True)
    p.set_defaults(func=run_command)


# --promote: how a promoted run trains, as the trainer's lr schedule (stored in the study's extra).
PROMOTE_CHOICES = ("retrain", "continue")
PROMOTE_SCHEDULES = {"retrain": "cosine", "continue": "wsd"}

# StudyConfig fields settable from the command line (argparse dest == field name).
CONFIG_OPTIONS = ("data", "window", "r_range", "d_range", "sampling", "sampler", "init_trials", "steps",
                  "batch_size", "base_resolution", "rules", "num_classes", "train_size", "val_size", "seed",
                  "schedule", "eta", "rungs", "promotion", "clock_exponent")


def config_from_args(args: argparse.Namespace, stored=None):
    """The StudyConfig the options ask for: the stored one with the given options applied
    (resume) or the defaults with them applied (new study)."""
    from dataclasses import replace

    from tinyscale.study.trial import StudyConfig

    given = {k: getattr(args, k) for k in CONFIG_OPTIONS if getattr(args, k) is not None}
    if given.get("rungs") == "auto":
        given["rungs"] = None  # StudyConfig's word for auto
    elif stored is None and given.get("schedule") == "halving" and "rungs" not in given:
        given["rungs"] = None  # a new study in rungs chooses them from its budget
    precision = getattr(args, "precision", None)
    promote = getattr(args, "promote", None)
    if stored is not None:
        stored_precision = stored.extra.get("precision", "fp32")
        if precision not in (None, stored_precision):
            raise ValueError(f"the study trains in {stored_precision}; resume it with --precision {stored_precision}, "
                             "or start a new study (--out) to train in another precision")
        stored_promote = {v: k for k, v in PROMOTE_SCHEDULES.items()}[stored.extra.get("lr_schedule", "cosine")]
        if promote not in (None, stored_promote):
            raise ValueError(f"the study's promoted runs {stored_promote}; resume it with --promote {stored_promote}, "
                             "or start a new study (--out)")
        if given.get("sampler", stored.sampler) != stored.sampler:
            raise ValueError(f"the study was sampled with --sampler {stored.sampler}; resume it with that sampler, "
                             "or start a new study (--out) to use another")
        return replace(stored, **given)
    if given.get("sampler") == "botorch" and "init_trials" not in given:
        given["init_trials"] = DEFAULT_INIT_TRIALS
    if precision not in (None, "fp32"):  # fp32 is the trainer's default: a study in it stores no setting
        given["extra"] = {"precision": precision}
    if promote is not None and given.get("schedule") != "halving":
        raise ValueError("--promote is for --schedule halving (a uniform study promotes nothing)")
    # A new study in rungs retrains its promotions unless told to continue them: every measured
    # claim (the demo's schedule, the Imagenette proof) retrains, and on the demo's ten check
    # recipes continued runs ranked worse in point estimate (rho +0.43 against +0.76, SE 0.39;
    # experiments/continue_vs_retrain.py, RESULTS "halving").
    if promote == "continue":  # retrain is the trainer's default schedule: nothing stored
        given["extra"] = {**given.get("extra", {}), "lr_schedule": PROMOTE_SCHEDULES[promote]}
    if "data" not in given:
        raise ValueError("--data is required for a new study (fashion-mnist, generated, or a dataset path)")
    if "num_classes" not in given:
        # The dataset says how many classes it has (loaded once; workers in this process reuse it),
        # once the search space it is decoded for is known to make sense.
        from tinyscale.study.executors import worker_data
        from tinyscale.study.samplers.base import check_space
        from tinyscale.study.plan import data_spec

        check_space(StudyConfig(**given))
        given["num_classes"] = worker_data(data_spec(StudyConfig(**given))).num_classes
    return StudyConfig(**given)


def run_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tinyscale.limits import MAX_BATCH, MAX_STEPS, MAX_TRIALS
    from tinyscale.study.halving import format_rungs
    from tinyscale.study.store import CONFIG_FILE, TRIALS_FILE, Study

    # Execution options first: a bad --threads or --device cuda without a GPU must not cost a
    # data load, let alone trials.
    table = latency_table_path(args, trains=True)
    check_execution_options(args)
    directory = args.resume if isinstance(args.resume, str) else args.out
    if directory is None:
        raise ValueError("give the study directory: --out DIR (new study) or --resume DIR")
    if not directory.strip():  # "" would be the current directory
        raise ValueError("the study directory is empty: give --out DIR (new study) or --resume DIR")
    for option, value, limit in (("--trials", args.trials, MAX_TRIALS), ("--steps", args.steps, MAX_STEPS),
                                 ("--batch-size", args.batch_size, MAX_BATCH),
                                 ("--budget-steps", args.budget_steps, MAX_TRIALS * MAX_STEPS)):
        if value is not None and value > limit:
            raise ValueError(f"{option} must be at most {limit:,}, got {value:,}")
    if args.out and isinstance(args.resume, str) and Path(args.out) != Path(args.resume):
        raise ValueError(f"--out {args.out} and --resume {args.resume} name different directories")
    resume = bool(args.resume)
    if args.retry_failed and not resume:
        raise ValueError("--retry-failed is for --resume (a new study has no failed trials)")
    if resume and not (Path(directory) / CONFIG_FILE).exists() and not (Path(directory) / TRIALS_FILE).exists():
        raise ValueError(f"no study at {directory} to resume; start one with --out {directory}")
    if resume:
        with Study.open(directory) as existing:
            stored = existing.config
        config = config_from_args(args, stored)
    else:
        config = config_from_args(args)
    if table is not None:
        from tinyscale.latency import LatencyTable, keep_with_study

        keep_with_study(directory, LatencyTable.load(table))  # validated before any training
    executor = executor_from(args)
    try:
        study = run_with_box_check(directory, config, trials=args.trials, budget_minutes=args.budget_minutes,
                                   budget_steps=args.budget_steps, resume=resume, executor=executor,
                                   progress=not args.no_progress, retry_failed=args.retry_failed,
                                   widen_box=args.widen_box)
    finally:
        executor.close()
    with study:
        p = study.progress()
        best = "none" if p.best_trial is None else f"trial {p.best_trial}, accuracy {p.best_accuracy:.4f}"
        at = " at rung 0" if study.config.schedule == "halving" else ""  # the counts and the best are rung 0's
        print(f"study {directory}: {p.counts['completed']} completed, {p.counts['failed']} failed; best{at} {best}")
        if study.config.schedule == "halving":
            from tinyscale.fit.multifidelity import default_rungs
            from tinyscale.study.ordering import describe_promotion

            print(format_rungs(study.rung_summary(), study.fit_rung(), every_rung=default_rungs(study.config) == "all"))
            print(describe_promotion(study))
        if p.counts["completed"] == 0:
            failed = study.trials(state="failed")
            why = (study.stop_reason if study.stop_reason else
                   f"every trial failed; the first: {failed[0].reason}" if failed else "no trial ran")
            raise ValueError(f"no trial of the study completed: {why}")
    return 0


BOX_CHECK = "box_check"  # study meta: {"state": "planned", "budget": {...}} until the check, then what it found


def run_with_box_check(directory, config, *, trials=None, budget_minutes=None, budget_steps=None, resume=False,
                       executor=None, progress=True, retry_failed=False, widen_box=False):
    """`run_study`, and with ``widen_box`` (or a study created with it whose check is still to
    come) the box check halfway: the study runs to half of each budget, `check_box` fits what it
    has, the box widens past the edges the recipes sit at (`Study.widen_box`, with the check's
    finding as its reason), and the study spends the rest of its budget. The plan is stored before
    the first run, so an interrupted study resumes into the same check."""
    from pathlib import Path

    from tinyscale.fit.multifidelity import default_rungs, runs_read
    from tinyscale.fit.boxcheck import check_box
    from tinyscale.study.driver import run_study
    from tinyscale.study.store import CONFIG_FILE, Study

    def run(config, resume, until=1.0, meta=None, **budget):
        return run_study(directory, config, resume=resume, executor=executor, progress=progress,
                         retry_failed=retry_failed, until=until, meta=meta, **budget)

    full = {"trials": trials, "budget_minutes": budget_minutes, "budget_steps": budget_steps}
    plan = None
    if (Path(directory) / CONFIG_FILE).exists():
        with Study.open(directory) as existing:
            plan = existing.get_meta(BOX_CHECK)
    if not (widen_box and plan is None) and (plan is None or plan.get("state") != "planned"):
        return run(config, resume, **full)  # no check asked, or it is done
    # Half of each budget (the budgets, and rungs chosen from them, stay whole), the plan stored
    # before any run; a study past half already (interrupted after it) comes straight to the check.
    study = run(config, resume, until=0.5, meta={BOX_CHECK: {"state": "planned"}}, **full)
    try:
        which_rungs = default_rungs(study.config)  # as `tinyscale fit` reads the study
        check = check_box(runs_read(study, which_rungs), study.config, from_rungs=which_rungs)
        print(check.text(), flush=True)
        if check.wider:
            from dataclasses import replace

            study.widen_box(replace(study.config, **check.wider), reason=check.text())
        study.set_meta(BOX_CHECK, {"state": "done", "at_trial": len(study.trials()), **check.to_dict()})
    finally:
        study.close()
    return run(None, True, **full)  # the stored (perhaps widened) config and budgets
