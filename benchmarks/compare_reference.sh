#!/usr/bin/env bash
# The reference head-to-head on the embedded default (Fashion-MNIST), one command:
#
#   bash benchmarks/compare_reference.sh [STUDY_DIR]      (default runs/ref-study)
#
# 1. the demo study (the study engine's defaults), resumed if the directory already holds one;
# 2. the GP fit (skipped when the study already has one, so a rerun keeps the same recipes);
# 3. `tinyscale compare` at c = 1/2, 1/4, 1/8, 1/16: GP recipe vs EfficientNet compound scaling
#    (φ solved), uniform and fast (dWr) scaling and width/depth/resolution only, same trainer,
#    data, budget and 3 seeds; rows more than 2 % off c train both bracketing recipes.
# Every step is resumable: rerun the same command after an interruption. Results land in
# STUDY_DIR/compare/ (comparison.md, .csv, .html, .png when kaleido works).
#
# The compare budget is its default (1.5x the study's steps per trial, i.e. 300 steps of 64 images
# on the demo study), sized so the five-strategy comparison took about 10 minutes on a 2-core
# machine; the seven strategies with bracketing train about twice as many runs.
# Runs go to 2 worker processes with 1 torch thread each: on a machine shared with other jobs,
# 2-thread runs oversubscribe the cores and slow down many times over.
set -euo pipefail
cd "$(dirname "$0")/.."
STUDY=${1:-runs/ref-study}
TS=.venv/bin/tinyscale

if [ -f "$STUDY/config.json" ]; then
    $TS study --resume "$STUDY" --workers 2
else
    # The study engine's demo configuration (tinyscale.study.demo_config, DEMO_TRIALS), spelled out.
    $TS study --data fashion-mnist --out "$STUDY" --base-resolution 32 --steps 200 --batch-size 64 \
        --train-size 12800 --val-size 2000 --seed 0 --trials 24 --workers 2
fi
if [ ! -f "$STUDY/fit.json" ]; then
    $TS fit "$STUDY"
fi
time $TS compare "$STUDY" --ratios 0.5,0.25,0.125,0.0625 \
    --strategies gp,gp-pareto,efficientnet,uniform,fast,width,depth,resolution \
    --seeds 3 --workers 2 --threads 1
