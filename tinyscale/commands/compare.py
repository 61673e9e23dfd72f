"""`tinyscale compare`: the study's GP recipe against EfficientNet compound scaling, uniform and
fast (dWr) scaling and single-axis scaling at matched FLOPs, same trainer, budget, data and seeds."""

from __future__ import annotations

import argparse

from baselines.registry import SOLVED
from tinyscale.commands.options import (TABLE_HELP, add_execution_options, add_latency_table_option,
                                       check_execution_options, executor_from, latency_table_path)

DEFAULT_RATIOS = "0.5,0.25,0.125,0.0625"
# tinyscale.evaluate.compare.DEFAULT_STRATEGIES: the GP strategies, named here so that the CLI
# parser does not import the compare stage, then every solved rule of the baseline registry.
DEFAULT_STRATEGIES = ",".join(("gp", "gp-pareto", *SOLVED))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="GP recipe vs EfficientNet, uniform, fast (dWr) and single-axis scaling at matched FLOPs",
        description="Train every strategy's recipe at each target FLOPs ratio with the study's trainer and "
        "data, the same budget and seeds. A recipe more than 2 % off the target is replaced by the two "
        "achievable steps around it, both trained, and top-1 interpolated in log c. Results persist in "
        "DIR/compare/ (resumable) as SQLite, Markdown, CSV and a plotly figure (HTML, PNG when kaleido works). "
        "With --budget latency the targets are milliseconds predicted on a device table, every strategy solves "
        "its recipe for them, and the results go to DIR/compare-latency/.",
    )
    p.add_argument("study_dir", metavar="DIR", help="a study directory with a fit (tinyscale study, tinyscale fit)")
    p.add_argument("--ratios", default=None, help=f"target FLOPs ratios (default {DEFAULT_RATIOS})")
    p.add_argument("--budget", choices=("macs", "latency"), default=None,
                   help="match MACs (default) or latency predicted on a latency table (implied by --latency-ms)")
    p.add_argument("--latency-ms", default=None,
                   help="with --budget latency: target latencies in ms, e.g. 2,4,8 (default: the fitted recipe's "
                        "predicted latency at each default ratio)")
    add_latency_table_option(p, f"{TABLE_HELP} (default: the study's DIR/latency.json)", trains=True)
    p.add_argument("--strategies", default=DEFAULT_STRATEGIES,
                   help=f"comma-separated strategy names (default {DEFAULT_STRATEGIES})")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per run (default: 4x the steps of the study's longest runs, its top rung)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: the study's)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per recipe: 0..N-1 (default 3)")
    p.add_argument("--first-seed", type=int, default=0, metavar="K",
                   help="start the seeds at K: K..K+N-1 (default 0; e.g. fresh seeds for a replication)")
    p.add_argument("--settle-check", action="store_true",
                   help="also retrain the first seed at two ratios for 2x the steps (DIR/compare-settled/) and say "
                        "whether the comparison is out of the brief regime: no fixed rule falls as c grows, and "
                        "the longer runs rank the strategies alike (Spearman rho >= 0.9)")
    add_execution_options(p, restart="discard stored comparison results first")
    p.add_argument("--json", action="store_true", help="print the table as JSON instead of Markdown")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from tinyscale.evaluate.compare import (
        compare_dir,
        comparison_markdown,
        comparison_table,
        default_settings,
        run_comparison,
        write_report,
    )

    from tinyscale.evaluate.compare.foresight import format_foresight, study_foresight
    from tinyscale.limits import MAX_BATCH, MAX_SEED, MAX_SEEDS, MAX_STEPS
    from tinyscale.storage import finite_json

    table_path = latency_table_path(args, trains=True)
    check_execution_options(args)  # --device cuda without a GPU: one line before any work
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    if not 0 <= args.first_seed <= MAX_SEED - args.seeds + 1:
        raise ValueError(f"--first-seed must be from 0 to {MAX_SEED - args.seeds + 1:,} "
                         f"(the last seed at most {MAX_SEED:,}), got {args.first_seed:,}")
    for option, value, limit in (("--seeds", args.seeds, MAX_SEEDS), ("--steps", args.steps, MAX_STEPS),
                                 ("--batch-size", args.batch_size, MAX_BATCH)):
        if value is not None and value > limit:
            raise ValueError(f"{option} must be at most {limit:,}, got {value:,}")
    budget = args.budget or ("latency" if args.latency_ms is not None else "macs")
    table = None
    if budget == "latency":
        from tinyscale.evaluate.compare import default_latency_targets
        from tinyscale.latency import study_table

        if args.ratios is not None:
            raise ValueError("--ratios sets MACs targets; with --budget latency give --latency-ms")
        table = study_table(args.study_dir, table_path)
        if table is None:
            raise ValueError("--budget latency needs a latency table: --latency-table FILE (tinyscale latency-table), "
                             "or a study kept with one (tinyscale study --latency-table)")
        targets = args.latency_ms if args.latency_ms is not None else default_latency_targets(args.study_dir, table)
    else:
        if args.latency_ms is not None or table_path is not None:
            raise ValueError("--latency-ms and --latency-table go with --budget latency")
        targets = args.ratios if args.ratios is not None else DEFAULT_RATIOS
    settings = default_settings(args.study_dir, ratios=targets, strategies=args.strategies, seeds=args.seeds,
                                first_seed=args.first_seed, steps=args.steps, batch_size=args.batch_size,
                                threads=args.threads, budget=budget)
    if args.settle_check and args.steps is not None and 2 * args.steps > MAX_STEPS:
        raise ValueError(f"--settle-check retrains at 2x --steps, more than {MAX_STEPS:,}")
    if "gp" in settings.strategies:  # hours of training on a recipe the study has outgrown: say so first
        from tinyscale.assistant.fit_source import stale_fit_note
        from tinyscale.fit.gp import ScalingFit

        stale = stale_fit_note(args.study_dir, ScalingFit.load(args.study_dir))
        if stale:
            print(f"note: {stale} (the gp rows train the saved fit's recipe)", file=sys.stderr)
    executor = executor_from(args)
    settle = None
    try:
        comparison = run_comparison(args.study_dir, settings, restart=args.restart,
                                    progress=not args.no_progress, executor=executor, table=table)
        if args.settle_check:
            from tinyscale.evaluate.compare.settle import run_settle_check

            settle = run_settle_check(args.study_dir, comparison, executor=executor,
                                      progress=not args.no_progress, table=table)
    finally:
        executor.close()
    paths = write_report(comparison, compare_dir(args.study_dir, budget))
    if comparison.cells_done and not any(row.accuracies for row in comparison.rows):
        failed = next((row.note for row in comparison.rows if row.failed), "") or "see the report"
        raise ValueError(f"no run of the comparison gave an accuracy ({comparison.cells_done} finished; "
                         f"{failed.splitlines()[0]}): {paths.markdown}")
    foreseen = study_foresight(args.study_dir, comparison)
    if args.json:
        rows = comparison_table(comparison)
        for row in rows:  # what the study's surface predicted for the row's recipe (None: no prediction)
            row["surface_predicted"] = None if foreseen is None else foreseen[0].predicted.get(
                (row["target"], row["strategy"]))
        # With --settle-check: one object, the rows and the check (without it, the rows as before).
        print(finite_json(rows if settle is None else {"rows": rows, "settle_check": settle.to_dict()}))
    else:
        print(comparison_markdown(comparison))
        if foreseen is not None:
            print(format_foresight(*foreseen) + "\n")
        if settle is not None:
            from tinyscale.evaluate.compare.settle import format_settle_check

            print(format_settle_check(settle, "c" if budget == "macs" else "ms"))
        print(f"tables: {paths.markdown}  {paths.csv}")
        print(f"plot:   {paths.html}" + (f"  {paths.png}" if paths.png else ""))
        if paths.png_message:
            print(paths.png_message)
    return 0
