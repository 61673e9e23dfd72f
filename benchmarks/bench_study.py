"""The demo study's trial throughput: the first trials of `uniform_demo_config`'s stream trained exactly
as the study trains them (its steps, data, trainer settings, evaluation on 5,000 held-out images),
once with every layer an ordinary convolution (`small_map_kernels=False`, the trainer before
tinyscale/space/smallmap.py) and once as the trainer runs now, alternating which goes first per trial.

    .venv/bin/python benchmarks/bench_study.py [--trials 8] [--threads 1]

Prints each trial's seconds both ways, trials per minute both ways and their ratio, and the
held-out accuracies (equal only up to the float-order differences a few hundred chaotic
training steps amplify: tests/test_smallmap.py pins the first steps).
"""

from __future__ import annotations

import argparse
import time

import torch

from tinyscale.study.executors import worker_data
from tinyscale.study.samplers.base import sample_recipes
from tinyscale.study.plan import data_spec, uniform_demo_config, trial_seed
from tinyscale.train.config import TrainConfig
from tinyscale.train.trainer import train_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    config = uniform_demo_config()
    data = worker_data(data_spec(config))
    base = TrainConfig.from_study(config).with_(threads=args.threads)
    arms = {"convs": base.with_(small_map_kernels=False), "ours": base}
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    print(f"torch {torch.__version__}, {args.threads} thread(s), uniform_demo_config: {config.steps} steps, "
          f"batch {config.batch_size}, {config.val_size} held-out images")
    print(f"{'trial':>5} {'r':>5} {'w':>5} {'d':>5} {'s convs':>8} {'s ours':>7} {'acc convs':>9} {'acc ours':>8}")
    for number, recipe in enumerate(sample_recipes(config, args.trials)):
        order = list(arms) if number % 2 == 0 else list(arms)[::-1]
        accuracy = {}
        for name in order:
            t0 = time.perf_counter()
            result = train_recipe(recipe, data, arms[name], trial_seed(config.seed, number))
            seconds[name].append(time.perf_counter() - t0)
            accuracy[name] = result.accuracy
        print(f"{number:>5} {recipe.r:>5.2f} {recipe.w:>5.2f} {recipe.d:>5.2f} {seconds['convs'][-1]:>8.1f} "
              f"{seconds['ours'][-1]:>7.1f} {accuracy['convs']:>9.4f} {accuracy['ours']:>8.4f}", flush=True)
    per_minute = {name: 60.0 * len(s) / sum(s) for name, s in seconds.items()}
    print(f"trials per minute: convs {per_minute['convs']:.2f}, ours {per_minute['ours']:.2f}, "
          f"ratio {per_minute['ours'] / per_minute['convs']:.2f}x")


if __name__ == "__main__":
    main()
