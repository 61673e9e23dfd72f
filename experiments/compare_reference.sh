#!/usr/bin/env bash
# The reference head-to-head on the embedded default (Fashion-MNIST), one command:
#
#   bash experiments/compare_reference.sh [STUDY_DIR] [compare options...]    (default runs/ref-study)
#
# 1. the demo study and its fit, exactly as `tinyscale demo --no-app` makes them (demo_config,
#    DEMO_BUDGET_STEPS, the default fit), resumed if the directory already holds the study;
# 2. `tinyscale compare` at c = 1/2, 1/4, 1/8, 1/16: the study's recipe (gp: the accuracy
#    surface's ridge), the paper's Pareto-point GP on the same trials (gp-pareto), EfficientNet
#    compound scaling (φ solved), uniform and fast (dWr) compound scaling, width/depth/resolution
#    only; same trainer, data, budget (4x the top rung's steps) and seeds 0-2, recipes more than 2 %
#    off c bracketed and interpolated in log c, margins paired by seed.
# At the default length (4x the demo's 1,206-step top rung: 4,824 steps) this is several hours on
# 2 cores; the earlier reference runs (RESULTS "compare", uniform demo) used 600 steps (--steps 600).
# Every step is resumable: rerun the same command after an interruption (seed-major order, so a
# partial run already has a full table at fewer seeds). Results land in STUDY_DIR/compare/
# (comparison.md, .csv, .html, .png when kaleido works).
#
# Runs go to 2 worker processes with 1 torch thread each: on a machine shared with other jobs,
# 2-thread runs oversubscribe the cores and slow down many times over.
set -euo pipefail
cd "$(dirname "$0")/.."
STUDY=${1:-runs/ref-study}
shift || true
TS=.venv/bin/tinyscale

if [ ! -f "$STUDY/fit.json" ]; then
    $TS demo --out "$STUDY" --no-app --workers 2
fi
time $TS compare "$STUDY" --ratios 0.5,0.25,0.125,0.0625 \
    --strategies gp,gp-pareto,efficientnet,uniform,fast,width,depth,resolution \
    --seeds 3 --workers 2 --threads 1 "$@"
