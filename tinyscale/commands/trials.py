"""`tinyscale trials DIR`: the trials of a study (readable while the study runs)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trials", help="list the trials of a study")
    p.add_argument("directory", help="study directory")
    from tinyscale.trial import TRIAL_STATES

    p.add_argument("--state", choices=TRIAL_STATES, help="only trials in this state")
    p.add_argument("--json", action="store_true", help="print one JSON object (config, progress, trials)")
    p.set_defaults(func=run)


def trial_dict(trial) -> dict:
    out = {"number": trial.number, "state": trial.state, **trial.recipe.to_dict(),
           "resolution": trial.recipe.resolution}
    for key in ("macs", "params", "ratio", "accuracy", "loss", "steps", "images_seen", "train_seconds",
                "eval_seconds", "images_per_second", "reason", "proposed_by"):
        out[key] = getattr(trial, key)
    return out


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def run(args: argparse.Namespace) -> int:
    from tinyscale.study import Study

    with Study.open(args.directory) as study:
        trials = study.trials(args.state)
        progress = study.progress()
        if args.json:
            print(json.dumps({"config": study.config.to_dict(), "progress": progress.to_dict(),
                              "trials": [trial_dict(t) for t in trials]}))
            return 0
        print(f"{'#':>4} {'state':<9} {'r':>7} {'w':>6} {'d':>6} {'px':>4} {'MMACs':>8} {'ratio':>6} "
              f"{'params':>9} {'acc':>6} {'loss':>6} {'img/s':>7} {'by':<7}  reason")
        for t in trials:
            print(f"{t.number:>4} {t.state:<9} {t.recipe.r:>7.4g} {t.recipe.w:>6.4g} {t.recipe.d:>6.4g} "
                  f"{t.recipe.resolution:>4} {t.macs / 1e6:>8.2f} {t.ratio:>6.3f} {t.params:>9,} "
                  f"{_fmt(t.accuracy, '.4f'):>6} {_fmt(t.loss, '.3f'):>6} {_fmt(t.images_per_second, '.0f'):>7}"
                  f" {t.proposed_by or '-':<7}  {t.reason or ''}")
        c = progress.counts
        best = "-" if progress.best_trial is None else f"#{progress.best_trial} ({progress.best_accuracy:.4f})"
        target = "" if progress.target_trials is None else f" of {progress.target_trials}"
        print(f"{progress.finished}{target} finished: {c['completed']} completed, {c['failed']} failed, "
              f"{c['running']} running, {c['pending']} proposed; best {best}")
    return 0
