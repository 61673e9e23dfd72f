"""Closed-form cost vs tracing the built module, on the same random recipes.

    .venv/bin/python benchmarks/bench_cost.py [--recipes 30] [--seed 0]

Ours: `tinyscale.space.cost.cost(recipe)` with its caches cleared before every call (the cold path:
table -> architecture -> MACs and params). Naive: build the `nn.Module` and count a forward pass
with FlopCounterMode (÷ 2) plus sum(p.numel()), which is what one would do without the closed
form. Both must agree exactly on every recipe; the script fails otherwise.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from tinyscale.space import arch, cost as cost_module
from tinyscale.space.model import build_model
from tinyscale.space.recipe import Recipe


def random_recipes(n: int, seed: int) -> list[Recipe]:
    rng = random.Random(seed)

    def log_uniform(lo: float, hi: float) -> float:
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))

    return [
        Recipe(r=log_uniform(0.3, 1.2), w=log_uniform(0.2, 1.4), d=log_uniform(0.2, 1.6),
               rules=("tinynet", "efficientnet")[i % 2])
        for i in range(n)
    ]


def closed_form(recipe: Recipe) -> tuple[int, int]:
    cost_module.cost.cache_clear()
    arch._build.cache_clear()  # the architecture cache too: time the whole cold path
    c = cost_module.cost(recipe)
    return c.macs, c.params


def traced(recipe: Recipe) -> tuple[int, int]:
    model = build_model(recipe).eval()
    x = torch.zeros(1, 3, recipe.resolution, recipe.resolution)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2, sum(p.numel() for p in model.parameters())


def timed(fn, recipe: Recipe, repeats: int) -> tuple[float, tuple[int, int]]:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(recipe)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    recipes = random_recipes(args.recipes, args.seed)
    traced(Recipe(r=0.3))  # warm-up: first FlopCounterMode use imports and registers a lot
    ours, naive = [], []
    print(f"{'r':>6} {'w':>6} {'d':>6} {'rules':>12} {'px':>4} {'MACs':>12} {'params':>10}"
          f" {'closed form':>12} {'traced':>10} {'speedup':>9}")
    for rc in recipes:
        t_ours, got = timed(closed_form, rc, repeats=20)
        t_naive, want = timed(traced, rc, repeats=1)
        if got != want:
            raise SystemExit(f"MISMATCH on {rc}: closed form {got} vs traced {want}")
        ours.append(t_ours)
        naive.append(t_naive)
        print(f"{rc.r:6.3f} {rc.w:6.3f} {rc.d:6.3f} {rc.rules:>12} {rc.resolution:4d} {got[0]:12,d} {got[1]:10,d}"
              f" {t_ours * 1e6:10.1f}us {t_naive * 1e3:8.1f}ms {t_naive / t_ours:8.0f}x")
    print()
    print(f"{len(recipes)} recipes at base 224, all equal (MACs and params).")
    print(f"closed form: median {statistics.median(ours) * 1e6:.1f} us/recipe, max {max(ours) * 1e6:.1f} us")
    print(f"traced     : median {statistics.median(naive) * 1e3:.1f} ms/recipe, max {max(naive) * 1e3:.1f} ms")
    print(f"speedup    : median {statistics.median([n / o for n, o in zip(naive, ours)]):.0f}x, "
          f"total {sum(naive) / sum(ours):.0f}x")


if __name__ == "__main__":
    main()
