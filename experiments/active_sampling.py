"""Active sampling: does the botorch sampler reach Sobol's hypervolume with half the trainings? (issue 10)

Protocol, fixed before any outcome was looked at:
- The demo study (`tinyscale.study.plan.uniform_demo_config`: Fashion-MNIST at base 32 px, window 0.04-0.6,
  400 steps x 64 images on 12,800 training images, 5,000 held out) at study seeds 0, 1, 2, run
  twice per seed: ``--sampler sobol`` for 24 trials (the demo's DEMO_TRIALS) and ``--sampler
  botorch`` (default --init-trials) for 16 trials. Both samplers start from the same stream, so a
  seed's first init trials are the same recipes in both arms (paired).
- Score: the hypervolume of the completed trials' (accuracy, -log MACs) above the reference point
  of `tinyscale.study.samplers.botorch.hypervolume_reference` (chance accuracy; a cost 10 % of the window's log
  span above its top), after each number k of finished trials, in the order they finished.
- Target (the issue's): botorch's mean hypervolume reaches Sobol's mean hypervolume at 24 trials
  within <= 12 trials; the table also gives, per seed, the first k at which botorch reaches
  that seed's Sobol 24-trial hypervolume.

Two single-threaded workers, as the demo runs: with two workers a botorch proposal also depends
on which trial finished first, so a rerun on another machine can propose differently after the
initial trials (the stored proposals are what the table scores).

Resumable: each study lives in OUT/<sampler>-seed<k> and is resumed by rerunning the command;
the report (OUT/active_sampling.md, .csv, .html, .png when kaleido works) is rewritten from the
stored trials every time.

    .venv/bin/python experiments/active_sampling.py [--out runs/active-sampling] [--workers 2]
    .venv/bin/python experiments/active_sampling.py --smoke --out /tmp/as-smoke   # minutes, generated data
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tinyscale.study.samplers.botorch import hypervolume
from tinyscale.study.executors import make_executor
from tinyscale.study.samplers.base import DEFAULT_INIT_TRIALS
from tinyscale.storage import write_text_atomically
from tinyscale.study.driver import run_study
from tinyscale.study.plan import DEMO_TRIALS, uniform_demo_config
from tinyscale.study.store import Study
from tinyscale.study.trial import StudyConfig

SEEDS = (0, 1, 2)
SAMPLERS = ("sobol", "botorch")
BOTORCH_TRIALS = 16  # enough to see the <= 12 target met or missed, and a little beyond
TARGET_TRIALS = 12
TABLE_STEPS = (4, 8, 12, 16, 20, 24)


@dataclass(frozen=True)
class Curve:
    """One study's hypervolume after k = 1..n finished trials (``hv[k - 1]``)."""

    sampler: str
    seed: int
    hv: tuple[float, ...]


def smoke_config() -> StudyConfig:
    """Generated data and a dozen steps: the whole pipeline in a few minutes, meaningless numbers."""
    return StudyConfig(data="generated", base_resolution=16, num_classes=10, r_range=(0.5, 1.0), window=(0.05, 0.8),
                       steps=12, batch_size=16, train_size=256, val_size=64, extra={"bn_calibration_images": 64})


def study_config(base: StudyConfig, sampler: str, seed: int, init_trials: int) -> StudyConfig:
    return replace(base, seed=seed, sampler=sampler, init_trials=init_trials if sampler == "botorch" else None)


def curve_of(directory: Path, sampler: str, seed: int) -> Curve:
    """Hypervolume after each finished trial, in the order the trials finished."""
    with Study.open(directory) as study:
        times = study.trial_times()
        finished = [t for t in study.trials() if t.state in ("completed", "failed")]
        config = study.config
    finished.sort(key=lambda t: (times[t.number][1] or math.inf, t.number))
    return Curve(sampler, seed, tuple(hypervolume(finished[:k], config) for k in range(1, len(finished) + 1)))


def at(curve: Curve, k: int) -> float:
    return curve.hv[k - 1] if len(curve.hv) >= k else math.nan


def trials_to_reach(curve: Curve, level: float) -> int | None:
    """The first number of finished trials at which the curve reaches ``level`` (None: never)."""
    return next((k for k, v in enumerate(curve.hv, start=1) if v >= level - 1e-12), None)


def mean_se(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan


def report_markdown(curves: list[Curve], sobol_trials: int, steps: tuple[int, ...]) -> str:
    lines = ["| sampler | " + " | ".join(f"HV @ {k}" for k in steps) + " |",
             "|---|" + "---|" * len(steps)]
    for sampler in SAMPLERS:
        mine = [c for c in curves if c.sampler == sampler]
        cells = []
        for k in steps:
            m, se = mean_se([at(c, k) for c in mine])
            cells.append("-" if math.isnan(m) else f"{m:.4f} ± {se:.4f}" if not math.isnan(se) else f"{m:.4f}")
        lines.append(f"| {sampler} (n={len(mine)}) | " + " | ".join(cells) + " |")
    lines += ["", "(mean ± standard error over seeds of the hypervolume of (accuracy, -log MACs) after k finished "
              "trials)", "", f"| seed | Sobol HV @ {sobol_trials} | botorch trials to reach it | botorch HV @ "
              f"{TARGET_TRIALS} |", "|---|---|---|---|"]
    reached = []
    sobol_levels, botorch_at_target = [], []
    for seed in sorted({c.seed for c in curves}):
        sobol = next((c for c in curves if c.sampler == "sobol" and c.seed == seed), None)
        bo = next((c for c in curves if c.sampler == "botorch" and c.seed == seed), None)
        if sobol is None or bo is None or len(sobol.hv) < sobol_trials:
            continue
        level = at(sobol, sobol_trials)
        k = trials_to_reach(bo, level)
        reached.append(k)
        sobol_levels.append(level)
        botorch_at_target.append(at(bo, TARGET_TRIALS))
        lines.append(f"| {seed} | {level:.4f} | {k if k is not None else f'not within {len(bo.hv)}'} | "
                     f"{at(bo, TARGET_TRIALS):.4f} |")
    if reached:
        mean_sobol = float(np.mean(sobol_levels))
        bo_mean = [float(np.mean([at(c, k) for c in curves if c.sampler == "botorch"]))
                   for k in range(1, max(len(c.hv) for c in curves if c.sampler == "botorch") + 1)]
        k_mean = next((k for k, v in enumerate(bo_mean, start=1) if v >= mean_sobol - 1e-12), None)
        verdict = "met" if k_mean is not None and k_mean <= TARGET_TRIALS else "missed"
        lines += ["", f"Mean over seeds: botorch reaches Sobol's {sobol_trials}-trial hypervolume "
                  f"({mean_sobol:.4f}) after {k_mean if k_mean is not None else 'more than ' + str(len(bo_mean))} "
                  f"trials (target <= {TARGET_TRIALS}: {verdict})."]
    return "\n".join(lines) + "\n"


def report_csv(curves: list[Curve]) -> str:
    rows = ["sampler,seed,finished_trials,hypervolume"]
    rows += [f"{c.sampler},{c.seed},{k},{v:.6f}" for c in curves for k, v in enumerate(c.hv, start=1)]
    return "\n".join(rows) + "\n"


def report_figure(curves: list[Curve], sobol_trials: int):
    import plotly.graph_objects as go

    colors = {"sobol": "#7f7f7f", "botorch": "#1f77b4"}
    fig = go.Figure()
    for sampler in SAMPLERS:
        mine = [c for c in curves if c.sampler == sampler]
        for c in mine:
            fig.add_trace(go.Scatter(x=list(range(1, len(c.hv) + 1)), y=list(c.hv), mode="lines",
                                     line=dict(color=colors[sampler], width=1), opacity=0.35, showlegend=False,
                                     name=f"{sampler} seed {c.seed}",
                                     hovertemplate=f"{sampler} seed {c.seed}<br>%{{x}} trials: HV %{{y:.4f}}<extra></extra>"))
        if mine:
            n = max(len(c.hv) for c in mine)
            mean = [mean_se([at(c, k) for c in mine])[0] for k in range(1, n + 1)]
            fig.add_trace(go.Scatter(x=list(range(1, n + 1)), y=mean, mode="lines+markers", name=f"{sampler} (mean)",
                                     line=dict(color=colors[sampler], width=3)))
    sobol_levels = [at(c, sobol_trials) for c in curves if c.sampler == "sobol"]
    level = mean_se(sobol_levels)[0] if sobol_levels else math.nan
    if not math.isnan(level):
        fig.add_hline(y=level, line=dict(dash="dash", color=colors["sobol"]),
                      annotation_text=f"Sobol after {sobol_trials} (mean)", annotation_position="bottom right")
    fig.add_vline(x=TARGET_TRIALS, line=dict(dash="dot", color="#d62728"),
                  annotation_text=f"target: botorch by {TARGET_TRIALS}")
    fig.update_layout(title="Hypervolume of (accuracy, -log MACs) vs finished trials",
                      xaxis_title="finished trials", yaxis_title="hypervolume", height=480)
    return fig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/active-sampling")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="study seeds, comma-separated")
    ap.add_argument("--sobol-trials", type=int, default=DEMO_TRIALS)
    ap.add_argument("--botorch-trials", type=int, default=BOTORCH_TRIALS)
    ap.add_argument("--init-trials", type=int, default=DEFAULT_INIT_TRIALS)
    ap.add_argument("--smoke", action="store_true", help="generated data, 12 steps: checks the pipeline only")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from the stored studies")
    args = ap.parse_args(argv)

    # The demo's trainer as it was when these studies ran (no zero-gamma): they stay resumable.
    base = smoke_config() if args.smoke else replace(uniform_demo_config(), extra={})
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trials = {"sobol": args.sobol_trials, "botorch": args.botorch_trials}
    curves = []
    # Seed-major, sobol first: a partial run already pairs some seeds.
    for seed in seeds:
        for sampler in SAMPLERS:
            directory = out / f"{sampler}-seed{seed}"
            if not args.report_only:
                print(f"== {sampler}, seed {seed}: {trials[sampler]} trials in {directory}", flush=True)
                executor = make_executor("local", args.workers, threads=1)
                try:
                    run_study(directory, study_config(base, sampler, seed, args.init_trials), trials=trials[sampler],
                              resume=True, executor=executor).close()
                finally:
                    executor.close()
            if directory.exists():
                curves.append(curve_of(directory, sampler, seed))
    markdown = report_markdown(curves, args.sobol_trials, tuple(k for k in TABLE_STEPS if k <= max(trials.values())))
    header = (f"# Active sampling: {'SMOKE (generated data) ' if args.smoke else ''}seeds {args.seeds}, "
              f"sobol {args.sobol_trials} trials, botorch {args.botorch_trials} (init {args.init_trials})\n\n")
    write_text_atomically(out / "active_sampling.md", header + markdown)
    write_text_atomically(out / "active_sampling.csv", report_csv(curves))
    fig = report_figure(curves, args.sobol_trials)
    write_text_atomically(out / "active_sampling.html", fig.to_html(include_plotlyjs=True, full_html=True))
    from tinyscale.evaluate.compare.plots import write_png

    png, why = write_png(fig, out / "active_sampling.png")
    print(header + markdown)
    print(f"report: {out / 'active_sampling.md'}, .csv, .html" + (", .png" if png else f" ({why})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
