#!/usr/bin/env bash
# The GPU check of issue 26, at most 8 minutes on one H100 (16 cores):
#   1. a 16-trial Fashion-MNIST study on cuda, one worker;
#   2. the same study with --trials-per-gpu 4;
#   3. the same study on the machine's CPU cores (one single-threaded worker per core);
#   4. accuracy of 4 of its recipes, CUDA against CPU (the studies train the same recipes with the
#      same seeds), held against seed noise (each retrained twice on CUDA with other seeds);
#   5. a study in rungs on cuda whose promoted runs continue from their checkpoints (--promote
#      continue): trunks saved on the GPU, loaded on the CPU and moved back (45 s);
#   6. a run on cuda killed (SIGKILL) after it first saved its progress, started again: it must
#      continue from that step and end where an uninterrupted run ends, within float noise (30 s).
# Trial throughput is trials completed per minute of the study's wall time, start-up included.
# Numbers go to $OUT/gpu_check.json (and the log to $OUT/gpu_check.log, the one-worker cuda
# study's store to $OUT/cuda_k1_trials.sqlite) when OUT is set, else to stdout only.
#
#   bash scripts/gpu_check.sh             # on a GPU machine
#   bash scripts/gpu_check.sh --dry-run   # every step on the CPU at toy size (generated data): seconds
#
# Without network: the project runs from this checkout (PYTHONPATH), with the torch (CUDA),
# gpytorch and botorch installed there; Fashion-MNIST's four files are found as the data command
# says (TINYSCALE_FASHION_MNIST, else .gpu-data/fashion-mnist/ in this checkout if present).
# Optional: IMAGENETTE=DIR (a 64-px copy with train/ and val/) adds a short Imagenette study on cuda.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -z "${TINYSCALE_FASHION_MNIST:-}" ] && [ -d .gpu-data/fashion-mnist ]; then
    export TINYSCALE_FASHION_MNIST="$PWD/.gpu-data/fashion-mnist"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
LOG="${OUT:+$OUT/gpu_check.log}"
LOG="${LOG:-$WORK/gpu_check.log}"
[ -n "${OUT:-}" ] && mkdir -p "$OUT"

if [ "$DRY" = 1 ]; then
    DEV=cpu; DATA=(--data generated --base-resolution 16 --r-range 0.5,1.0 --train-size 512 --val-size 128
                   --batch-size 32)
    TRIALS=4; STEPS=6; LIMIT=110; K_OPTS=(--workers 2); ONE=(--workers 1)
else
    DEV=cuda; DATA=(--data fashion-mnist --base-resolution 32 --val-size 5000)
    TRIALS=16; STEPS="${STEPS:-300}"; LIMIT=110; K_OPTS=(--trials-per-gpu 4); ONE=()
fi
tinyscale() { "$PY" -m tinyscale.cli "$@"; }

# One study, timed; Ctrl-C (SIGINT) at its time limit leaves it resumable and the summary reads
# what completed. The limits keep the whole check under 9 minutes: 110 + 110 + 170 + 45 s of
# studies, about 30 s of retraining, 60 s for the optional Imagenette study.
run_study() {
    local name="$1" limit="$2"; shift 2
    local start end seconds rc=0
    start=$(date +%s.%N)
    timeout -s INT "$limit" "$PY" -m tinyscale.cli study "${DATA[@]}" --out "$WORK/$name" --trials "$TRIALS" \
        --steps "$STEPS" --quiet "$@" >>"$LOG" 2>&1 || rc=$?
    end=$(date +%s.%N)
    seconds=$(awk "BEGIN { print $end - $start }")
    echo "$name $seconds $rc" >>"$WORK/timings.txt"
    echo "gpu_check: $name done in $seconds s (exit $rc)"
}

{
    echo "== $(date -u +%FT%TZ) gpu_check $([ "$DRY" = 1 ] && echo "(dry run)")"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.device_count())"
    echo "cores $(nproc)"
} >>"$LOG" 2>&1
: >"$WORK/timings.txt"

run_study "cuda_k1" "$LIMIT" --device "$DEV" "${ONE[@]}"
run_study "cuda_k4" "$LIMIT" --device "$DEV" "${K_OPTS[@]}"
run_study "cpu_cores" "$((LIMIT + 60))" --device cpu
# Rungs of STEPS/3 and STEPS steps; a third of rung 0 continues to rung 1 from its trunk.
TRIALS=12 run_study "cuda_continue" 45 --device "$DEV" "${ONE[@]}" --schedule halving --eta 3 --rungs 1 \
    --promote continue --steps "$(( STEPS > 3 ? STEPS / 3 : 1 ))"
if [ -n "${IMAGENETTE:-}" ] && [ "$DRY" = 0 ]; then
    DATA=(--data "$IMAGENETTE" --base-resolution 64 --train-size 6400 --val-size 2000)
    TRIALS=8 run_study "imagenette_cuda" 60 --device "$DEV" --trials-per-gpu 4
fi

# 6. Killed and continued: the run SIGKILLs itself once its progress file exists (saved each
# second), then runs again from it; a third run trains uninterrupted.
progress_run() {
    "$PY" - "$DEV" "$DRY" "$WORK/progress.pt" "$1" <<'PYEOF'
import json
import os
import sys
import threading
import time
from pathlib import Path

import torch

from tinyscale.data.datasets import generate_data
from tinyscale.space.recipe import Recipe
from tinyscale.train.config import TrainConfig
from tinyscale.train.trainer import train_recipe

device, dry, path, mode = sys.argv[1], sys.argv[2] == "1", Path(sys.argv[3]), sys.argv[4]
data = generate_data(num_classes=10, train_size=2048, val_size=512, size=16 if dry else 32, seed=0)
cfg = TrainConfig(steps=300 if dry else 1500, batch_size=64, device=device, translate=2, flip=True,
                  bn_calibration_images=512, threads=1 if dry else None)
recipe = Recipe(1.0, 0.5, 0.5, base_resolution=16 if dry else 32, num_classes=10)
if mode == "killed":
    def kill_once_saved():
        while not path.exists():
            time.sleep(0.05)
        os.kill(os.getpid(), 9)
    threading.Thread(target=kill_once_saved, daemon=True).start()
saved = torch.load(path, weights_only=True)["step"] if mode == "continued" and path.exists() else None
result = train_recipe(recipe, data, cfg, seed=3, progress=None if mode == "whole" else path, progress_every=1.0)
print(json.dumps({"mode": mode, "continued_from_step": saved, "accuracy": result.accuracy, "loss": result.loss,
                  "images_seen": result.images_seen}))
PYEOF
}
rm -f "$WORK/progress.pt" "$WORK/progress.jsonl"
progress_run killed >>"$WORK/progress.jsonl" 2>>"$LOG" || echo "{\"mode\": \"killed\", \"exit\": $?}" >>"$WORK/progress.jsonl"
progress_run continued >>"$WORK/progress.jsonl" 2>>"$LOG" || true
progress_run whole >>"$WORK/progress.jsonl" 2>>"$LOG" || true

# Throughput and the accuracy check, from the studies' stores.
"$PY" - "$WORK" "$DEV" "$DRY" "${OUT:-}" <<'PYEOF' 2>>"$LOG"
import json
import math
import statistics
import sys
from pathlib import Path

from tinyscale.study.executors import worker_data
from tinyscale.study.plan import StudyPlan, trial_seed
from tinyscale.study.store import Study
from tinyscale.train.trainer import train_recipe

work, device, dry, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4]
report = {"dry_run": dry, "device": device, "studies": {}}
try:
    import torch

    report["torch"] = torch.__version__
    report["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
except Exception as exc:  # noqa: BLE001 - the report says what it could not read
    report["gpu"] = f"unknown ({exc})"

trials = {}
for line in (work / "timings.txt").read_text().splitlines():
    name, seconds, rc = line.split()
    directory = work / name
    if not (directory / "config.json").exists():
        report["studies"][name] = {"exit": int(rc), "completed": 0, "seconds": float(seconds)}
        continue
    with Study.open(directory) as study:
        done = study.trials()
    completed = [t for t in done if t.state == "completed"]
    trials[name] = {t.number: t for t in completed}
    ips = [t.images_per_second for t in completed if t.images_per_second]
    report["studies"][name] = {
        "exit": int(rc), "seconds": round(float(seconds), 1), "completed": len(completed),
        "failed": [t.reason for t in done if t.state == "failed"],
        "trials_per_minute": round(len(completed) / float(seconds) * 60, 2),
        "median_images_per_second": round(statistics.median(ips)) if ips else None,
        "mean_accuracy": round(statistics.mean(t.accuracy for t in completed), 4) if completed else None,
    }
studies = report["studies"]
if "cuda_continue" in trials:  # the study in rungs: which promoted runs continued from a trunk
    with Study.open(work / "cuda_continue") as study:
        promoted = [t for t in study.runs() if t.rung > 0]
    studies["cuda_continue"]["promoted_runs"] = {
        "completed": sum(t.state == "completed" for t in promoted),
        "continued": sum(t.state == "completed" and t.start_step > 0 for t in promoted),
        "failed": [t.reason for t in promoted if t.state == "failed"]}
cpu = studies.get("cpu_cores", {}).get("trials_per_minute")
for name in ("cuda_k1", "cuda_k4"):
    if cpu and studies.get(name, {}).get("trials_per_minute"):
        report[f"speedup_{name}_vs_cpu"] = round(studies[name]["trials_per_minute"] / cpu, 2)

# Accuracy: the same recipe and seed on CUDA and on the CPU, against the spread of two other
# seeds on CUDA (seed noise). fp32 on both: the kernels differ only in summation order, which a
# brief run amplifies into differences the size of seed noise, not beyond it.
common = sorted(set(trials.get("cuda_k1", {})) & set(trials.get("cpu_cores", {})))[:4]
rows = []
if common:
    with Study.open(work / "cuda_k1") as study:
        config = study.config
    plan = StudyPlan.resolve(config, space=False, load=False)
    data = worker_data(plan.data)
    train = plan.train.with_(device="cuda:0" if device == "cuda" else "cpu")
    for number in common:
        seed = trial_seed(config.seed, number)
        others = [train_recipe(trials["cuda_k1"][number].recipe, data, train, seed + 7919 * k).accuracy
                  for k in (1, 2)]
        rows.append({"trial": number, "cuda": trials["cuda_k1"][number].accuracy,
                     "cpu": trials["cpu_cores"][number].accuracy, "cuda_other_seeds": others})
if rows:
    device_gap = math.sqrt(statistics.mean((r["cuda"] - r["cpu"]) ** 2 for r in rows))
    # Seed-to-seed differences of one recipe (three seeds on CUDA: its pairs).
    pairs = [(a - b) for r in rows for a, b in ((r["cuda"], r["cuda_other_seeds"][0]),
                                                (r["cuda"], r["cuda_other_seeds"][1]),
                                                tuple(r["cuda_other_seeds"]))]
    seed_gap = math.sqrt(statistics.mean(d * d for d in pairs))
    report["accuracy"] = {
        "recipes": rows, "rms_cuda_minus_cpu": round(device_gap, 4), "rms_seed_to_seed": round(seed_gap, 4),
        # Four recipes: within noise when the device gap is no larger than 1.5x the seed gap.
        "within_seed_noise": bool(device_gap <= 1.5 * seed_gap + 1e-9),
    }
runs = {}
for line in (work / "progress.jsonl").read_text().splitlines() if (work / "progress.jsonl").exists() else ():
    try:
        runs[json.loads(line)["mode"]] = json.loads(line)
    except (ValueError, KeyError):
        pass
cont, whole = runs.get("continued", {}), runs.get("whole", {})
report["progress"] = {
    "runs": runs, "killed_exit": runs.get("killed", {}).get("exit"),
    "continued_from_step": cont.get("continued_from_step"),
    "accuracy_gap": None if cont.get("accuracy") is None or whole.get("accuracy") is None
    else round(cont["accuracy"] - whole["accuracy"], 4),
    # cudnn picks its algorithms per process: the same run differs in float order between two
    # processes, which a run amplifies, so the continued run is held to the uninterrupted one
    # within 3 points (on the CPU, one thread: equal).
    "same_result": bool(cont.get("accuracy") is not None and whole.get("accuracy") is not None
                        and abs(cont["accuracy"] - whole["accuracy"]) <= 0.03
                        and cont.get("images_seen") == whole.get("images_seen")),
}
text = json.dumps(report, indent=2)
print(text)
if out:
    Path(out, "gpu_check.json").write_text(text + "\n")
# A study that stopped at its time limit (timeout's 124) still counts; any other exit is a fault.
broken = {name: s["exit"] for name, s in studies.items() if s["exit"] not in (0, 124)}
if broken:
    sys.exit(f"gpu_check: studies that failed: {broken} (see the log)")
PYEOF
# The one-worker cuda study's runs, timed per recipe: what a step costs against c on this GPU
# (`benchmarks/bench_ordered.py --measured FILE` fits it; the ordered clock assumes c^0.5, a CPU's).
if [ -n "${OUT:-}" ] && [ -f "$WORK/cuda_k1/trials.sqlite" ]; then
    "$PY" -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))" \
        "$WORK/cuda_k1/trials.sqlite" "$OUT/cuda_k1_trials.sqlite"
fi
echo "gpu_check: studies and log in $WORK${OUT:+; numbers in $OUT/gpu_check.json}"
