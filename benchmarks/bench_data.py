"""Loading a large class-per-folder dataset: today's in-RAM loader against the decoded cache.

Generates once (under ``--dir``, kept for later runs) a class-per-folder set of 224-px JPEGs,
``--images`` of them in ``--classes`` classes (20,000 in 10 by default), or measures a folder
given with ``--dataset`` (e.g. ../shared/data/imagenette-128). Every measurement runs in a fresh
process, so each one's peak RSS is its own:

- first load: today's loader (decode in RAM, threads) and the cache's first build with threads,
  1 and 2 decode processes (each from an empty cache);
- second load: the cache hit;
- peak RSS per worker while 2 workers load the data as a study's workers do (`worker_data`)
  and train a few steps: in RAM vs mapped from the cache (peak, and anonymous vs file pages);
- training throughput from the map vs from in-RAM tensors (same recipe, seed, steps).

``--parts`` picks some of these (e.g. ``workers-cache`` alone); ``--code DIR`` has the children
import the tinyscale at DIR instead of this checkout's, for a before/after on the same data and
cache (e.g. ``git archive HEAD | tar -x -C /tmp/head``, then ``--code /tmp/head``).

    .venv/bin/python benchmarks/bench_data.py [--images 20000] [--decode-size 224] [--steps 10]
        [--parts loads,workers-ram,workers-cache,train] [--code DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ("loads", "workers-ram", "workers-cache", "train")


# ------------------------------------------------------------------------------ the dataset
def _write_class_images(args: tuple) -> None:
    """JPEGs of smooth colour fields with noise and a class-specific stripe: photo-like sizes."""
    import numpy as np
    from PIL import Image

    folder, label, start, count, side = args
    rng = np.random.default_rng([label, start])
    yy, xx = np.mgrid[0:side, 0:side] / side
    for i in range(start, start + count):
        phase = rng.uniform(0, 6.28, 3)
        base = 0.5 + 0.35 * np.sin(6.28 * (xx[..., None] * (1 + label % 4) + yy[..., None] * (label // 4)) + phase)
        noisy = base + rng.normal(0, 0.08, (side, side, 3))
        pixels = (np.clip(noisy, 0, 1) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(Path(folder) / f"{i:06d}.jpg", quality=85)


def generate(directory: Path, images: int, classes: int, side: int = 224) -> Path:
    """``directory/jpeg{side}-{images}x{classes}/train/class<k>/*.jpg``, made once (a marker says it is complete)."""
    from concurrent.futures import ProcessPoolExecutor

    root = directory / f"jpeg{side}-{images}x{classes}"
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    jobs = []
    for label in range(classes):
        folder = root / "train" / f"class{label}"
        folder.mkdir(parents=True)
        count = images // classes + (label < images % classes)
        jobs += [(str(folder), label, s, min(500, count - s), side) for s in range(0, count, 500)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor() as pool:
        list(pool.map(_write_class_images, jobs))
    (root / ".complete").write_text("")
    print(f"generated {images} JPEGs of {side} px in {time.perf_counter() - t0:.0f} s under {root}", flush=True)
    return root


# ------------------------------------------------------------------------------ one measurement, in a child
def _memory() -> dict:
    """This process's peak and current resident memory (MiB), split into anonymous and file pages."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return {"peak_mib": fields.get("VmHWM"), "rss_mib": fields.get("VmRSS"),
            "anon_mib": fields.get("RssAnon"), "file_mib": fields.get("RssFile")}


def child(kind: str, dataset: str, decode_size: int, resolution: int, steps: int) -> dict:
    """One measurement: ``load`` (time a load), ``worker`` (load as a study worker, train a
    few steps: memory) or ``train`` (training throughput). The cache directory, or 'off', is
    in $TINYSCALE_DATA_CACHE, as the study's workers see it."""
    import torch

    import tinyscale.data.cache as cache
    from tinyscale.study.executors import DataSpec, worker_data

    torch.set_num_threads(1)
    cache.MIN_CACHED_BYTES = 0  # small --images runs measure the cache too
    t0 = time.perf_counter()
    data = worker_data(DataSpec(dataset, decode_size=decode_size))
    out = {"load_seconds": time.perf_counter() - t0, "images": len(data.train_labels) + len(data.val_labels)}
    if kind == "load":
        return {**out, **_memory()}
    from tinyscale.space.recipe import Recipe
    from tinyscale.train.config import TrainConfig
    from tinyscale.train.trainer import train_recipe

    recipe = Recipe(r=resolution / decode_size, w=0.5, d=0.5, base_resolution=decode_size,
                    num_classes=data.num_classes)
    config = TrainConfig(steps=steps, batch_size=32, threads=1, bn_calibration_images=256, eval_batch_size=250)
    val = data.subset(None, 500, seed=0) if kind == "train" else data
    t1 = time.perf_counter()
    result = train_recipe(recipe, val, config, seed=0)
    return {**out, "train_wall_seconds": time.perf_counter() - t1, "images_per_second": result.images_per_second,
            "accuracy": result.accuracy, **_memory()}


def run_children(kind: str, args, cache_dir: str, count: int = 1, extra_env: dict | None = None) -> list[dict]:
    """``count`` children at once, each measuring ``kind``; their JSON results."""
    env = {**os.environ, "PYTHONPATH": str(args.code), "TINYSCALE_DATA_CACHE": cache_dir, **(extra_env or {})}
    cmd = [sys.executable, __file__, "--child", kind, "--dataset", str(args.dataset), "--decode-size",
           str(args.decode_size), "--resolution", str(args.resolution), "--steps", str(args.steps)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a {kind} measurement failed")
    return [json.loads(out.strip().splitlines()[-1]) for out in outs]


# ------------------------------------------------------------------------------ the report
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=20_000, help="generated JPEGs (default 20000)")
    p.add_argument("--classes", type=int, default=10, help="generated classes (default 10)")
    p.add_argument("--dir", default="/tmp/tinyscale-bench-data", help="where the generated set and caches live")
    p.add_argument("--dataset", default=None, help="measure this class-per-folder dataset instead of a generated one")
    p.add_argument("--decode-size", type=int, default=224, help="decode side in px (default 224)")
    p.add_argument("--resolution", type=int, default=112, help="training input side for the throughput runs")
    p.add_argument("--steps", type=int, default=10, help="training steps per throughput/worker run")
    p.add_argument("--parts", default=",".join(PARTS), help=f"what to measure, of {','.join(PARTS)} (default all)")
    p.add_argument("--code", default=str(REPO), help="the checkout whose tinyscale the children import (default this one)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.dataset, args.decode_size, args.resolution, args.steps)))
        return
    parts = args.parts.split(",")
    if set(parts) - set(PARTS):
        raise SystemExit(f"--parts takes some of {','.join(PARTS)}, got {args.parts!r}")
    args.code = Path(args.code).resolve()
    work = Path(args.dir)
    args.dataset = Path(args.dataset).resolve() if args.dataset else generate(work, args.images, args.classes)
    cache_dir = work / "cache"
    print(f"children import tinyscale from {args.code}", flush=True)
    if "loads" in parts:
        loads(args, cache_dir)
    if {"workers-ram", "workers-cache"} & set(parts):
        workers(args, cache_dir, parts)
    if "train" in parts:
        throughput(args, cache_dir)


def loads(args, cache_dir: Path) -> None:
    def first_build(processes: int) -> dict:
        shutil.rmtree(cache_dir, ignore_errors=True)
        (res,) = run_children("load", args, str(cache_dir), extra_env={"TINYSCALE_DECODE_PROCESSES": str(processes)})
        return res

    (today,) = run_children("load", args, "off")
    threads, one, two = first_build(0), first_build(1), first_build(2)
    (hit,) = run_children("load", args, str(cache_dir))
    n = today["images"]
    print(f"\n{n} images from {args.dataset}, decoded at {args.decode_size} px "
          f"({n * 3 * args.decode_size ** 2 / 2 ** 30:.2f} GiB uint8); {os.cpu_count()} CPUs\n")
    print(f"{'load':<34} {'seconds':>8} {'vs today':>9} {'peak RSS MiB':>13}")
    for name, res in (("today (in RAM, threads)", today), ("cache, first build, threads", threads),
                      ("cache, first build, 1 process", one),
                      ("cache, first build, 2 processes", two), ("cache hit", hit)):
        print(f"{name:<34} {res['load_seconds']:>8.2f} {res['load_seconds'] / today['load_seconds']:>8.2f}x "
              f"{res['peak_mib']:>13.0f}")


def workers(args, cache_dir: Path, parts: list[str]) -> None:
    print(f"\n2 workers loading as a study's workers do, then {args.steps} training steps at {args.resolution} px:")
    print(f"{'':<18} {'peak RSS MiB':>13} {'anon MiB':>9} {'file MiB':>9}   (per worker, at the end)")
    modes = [(name, where) for name, where, part in (("today (in RAM)", "off", "workers-ram"),
                                                     ("from the cache", str(cache_dir), "workers-cache")) if part in parts]
    results = {name: run_children("worker", args, where, count=2) for name, where in modes}
    for name, runs in results.items():
        for i, res in enumerate(runs):
            print(f"{name + f' #{i}':<18} {res['peak_mib']:>13.0f} {res['anon_mib']:>9.0f} {res['file_mib']:>9.0f}")
    if len(results) == 2:
        ratio = max(r["peak_mib"] for r in results["from the cache"]) / max(r["peak_mib"] for r in results["today (in RAM)"])
        print(f"peak RSS per worker, cache / today: {ratio:.2f}x (file pages are the shared page cache)")
    for rows in sorted(cache_dir.glob("*/rows-*.u8")):  # a held-out split's rows, mapped by both workers
        print(f"row file {rows.relative_to(cache_dir)}: {rows.stat().st_size / 2**20:,.0f} MiB")


def throughput(args, cache_dir: Path) -> None:
    (ram,) = run_children("train", args, "off")
    (mapped,) = run_children("train", args, str(cache_dir))
    print(f"\ntraining {args.steps} steps at {args.resolution} px, batch 32, 1 thread:")
    for name, res in (("in-RAM tensors", ram), ("from the map", mapped)):
        print(f"{name:<18} {res['images_per_second']:>8.1f} img/s  (train_recipe wall {res['train_wall_seconds']:.1f} s, "
              f"accuracy {res['accuracy']:.4f})")
    print(f"throughput map / RAM: {mapped['images_per_second'] / ram['images_per_second']:.2f}x; same accuracy: "
          f"{mapped['accuracy'] == ram['accuracy']}")


if __name__ == "__main__":
    main()
