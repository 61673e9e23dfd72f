"""`tinyscale trials DIR`: the trials of a study (readable while the study runs)."""

from __future__ import annotations

import argparse

from tinyscale.commands.options import add_latency_table_option, latency_table_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trials", help="list the trials of a study")
    p.add_argument("directory", help="study directory")
    from tinyscale.study.trial import TRIAL_STATES

    p.add_argument("--state", choices=TRIAL_STATES, help="only trials in this state")
    add_latency_table_option(p, "predict each trial's latency on this latency table (default: the study's, "
                                "if it has one)")
    p.add_argument("--target-ms", type=float, default=None,
                   help="with a latency table: also MnasNet's reward ACC·(LAT/T)^-0.07 at latency target T ms")
    p.add_argument("--json", action="store_true", help="print one JSON object (config, progress, trials)")
    p.set_defaults(func=run)


def trial_dict(trial) -> dict:
    out = {"number": trial.number, "state": trial.state, **trial.recipe.to_dict(),
           "resolution": trial.recipe.resolution}
    for key in ("macs", "params", "ratio", "accuracy", "loss", "steps", "images_seen", "train_seconds",
                "eval_seconds", "images_per_second", "reason", "proposed_by", "rung", "device", "precision", "start_step"):
        out[key] = getattr(trial, key)
    return out


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def latency_columns(trials, table, target_ms: float | None, rung: int = 0) -> dict[int, dict]:
    """Trial number -> {"latency_ms", "reward"} on a device table (reward: MnasNet's, at target_ms,
    from the accuracy at ``rung``: the rung the fit reads)."""
    from tinyscale.latency import mnasnet_reward, trial_latencies

    out = {}
    for number, us in trial_latencies(trials, table).items():
        out[number] = {"latency_ms": us / 1000.0, "reward": None}
    if target_ms is not None:
        for t in trials:
            if t.accuracy is not None and t.rung == rung:
                out[t.number]["reward"] = mnasnet_reward(t.accuracy, out[t.number]["latency_ms"], target_ms)
    return out


def run(args: argparse.Namespace) -> int:
    from tinyscale.latency import check_latency_ms, study_table
    from tinyscale.storage import finite_json
    from tinyscale.study.store import Study
    from tinyscale.study.timing import duration, study_time_left

    table = study_table(args.directory, latency_table_path(args))
    if args.target_ms is not None:
        check_latency_ms(args.target_ms)
        if table is None:
            raise ValueError("--target-ms needs a latency table: --latency-table FILE, or a study run with "
                             "--latency-table")
    with Study.open(args.directory) as study:
        halving = study.config.schedule == "halving"
        # A halving study lists every run: each recipe's rung-0 trial, then its promoted runs.
        trials = study.runs(args.state) if halving else study.trials(args.state)
        progress = study.progress()
        fit_rung = study.fit_rung()
        lat = {} if table is None else latency_columns(trials, table, args.target_ms, fit_rung)
        if args.json:
            rows = [{**trial_dict(t), **lat.get(t.number, {})} for t in trials]
            for row in rows:
                if row["rung"] != fit_rung and "reward" in row:
                    row["reward"] = None
            out = {"config": study.config.to_dict(), "progress": progress.to_dict(), "trials": rows,
                   "seconds_left": study_time_left(study)[0]}
            if halving:
                out["rungs"] = [r.to_dict() for r in study.rung_summary()]
                out["fit_rung"] = study.fit_rung()
            if study.box_extensions():
                out["box_extensions"] = study.box_extensions()
            if table is not None:
                out["device"] = table.profile.to_dict()
            print(finite_json(out))
            return 0
        extra = "" if table is None else f" {'lat ms':>7}" + ("" if args.target_ms is None else f" {'reward':>6}")
        rung = (lambda t: f" {t.rung:>4}") if halving else (lambda t: "")
        print(f"{'#':>4}{' rung' if halving else ''} {'state':<9} {'r':>7} {'w':>6} {'d':>6} {'px':>4} {'MMACs':>8} {'ratio':>6} "
              f"{'params':>9} {'acc':>6} {'loss':>6} {'img/s':>7}{extra} {'by':<7}  reason")
        for t in trials:
            cols = ""
            if table is not None:
                cols = f" {lat[t.number]['latency_ms']:>7.3f}"
                if args.target_ms is not None:
                    cols += f" {_fmt(lat[t.number]['reward'] if t.rung == fit_rung else None, '.4f'):>6}"
            print(f"{t.number:>4}{rung(t)} {t.state:<9} {t.recipe.r:>7.4g} {t.recipe.w:>6.4g} {t.recipe.d:>6.4g} "
                  f"{t.recipe.resolution:>4} {t.macs / 1e6:>8.2f} {t.ratio:>6.3f} {t.params:>9,} "
                  f"{_fmt(t.accuracy, '.4f'):>6} {_fmt(t.loss, '.3f'):>6} {_fmt(t.images_per_second, '.0f'):>7}"
                  f"{cols} {t.proposed_by or '-':<7}  {t.reason or ''}")
        if table is not None:
            print(f"latency: predicted on {table.profile.describe()}")
            rewarded = [t for t in trials if lat[t.number]["reward"] is not None and t.rung == fit_rung]
            if rewarded:
                best_t = max(rewarded, key=lambda t: lat[t.number]["reward"])
                print(f"best MnasNet reward at {args.target_ms:g} ms: #{best_t.number} "
                      f"({lat[best_t.number]['reward']:.4f}: accuracy {best_t.accuracy:.4f}, "
                      f"{lat[best_t.number]['latency_ms']:.3f} ms)")
        c = progress.counts
        best = "-" if progress.best_trial is None else f"#{progress.best_trial} ({progress.best_accuracy:.4f})"
        target = "" if progress.target_trials is None else f" of {progress.target_trials}"
        at = " at rung 0" if halving else ""  # the counts and the best are the recipes' rung-0 runs
        print(f"{progress.finished}{target} finished{at}: {c['completed']} completed, {c['failed']} failed, "
              f"{c['running']} running, {c['pending']} proposed; best {best}")
        if progress.budget_steps:
            print(f"steps: {progress.steps_spent:,} of the budget's {progress.budget_steps:,} trained "
                  "(every run of every rung)")
        left, workers = study_time_left(study)
        if left is not None:
            print(f"left: {duration(left)} to spend the budget, at the speed of its runs so far on {workers} "
                  f"worker{'s' if workers != 1 else ''}")
        if halving:
            from tinyscale.fit.multifidelity import default_rungs
            from tinyscale.study.halving import format_rungs
            from tinyscale.study.ordering import describe_promotion

            print(format_rungs(study.rung_summary(), fit_rung, every_rung=default_rungs(study.config) == "all"))
            print(describe_promotion(study))
            continued = [t for t in trials if t.start_step and t.steps]
            if continued:
                print(f"{len(continued)} promoted run{'s' if len(continued) > 1 else ''} continued from the shorter "
                      f"run's checkpoint: {sum(t.steps - t.start_step for t in continued):,} of their "
                      f"{sum(t.steps for t in continued):,} steps trained")
            from tinyscale.storage import CHECKPOINT_DIR

            kept = sorted((study.directory / CHECKPOINT_DIR).glob("*.pt"))
            if kept:  # each run not (yet) promoted keeps one; a later promotion may still read it
                size = sum(p.stat().st_size for p in kept) / 1e6
                print(f"checkpoints: {len(kept)} in {study.directory / CHECKPOINT_DIR} ({size:,.1f} MB); deleting "
                      "them frees the space, and a later promotion of their recipes then retrains")
        from tinyscale.study.trial import describe_box_widening

        for widened in study.box_extensions():
            print(f"box {describe_box_widening(widened)}")
    return 0
