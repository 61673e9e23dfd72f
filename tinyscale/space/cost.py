"""Closed-form cost of a scaled network: MACs and parameters, from the block table alone.

Convention (the papers'): "FLOPs" means multiply-accumulates of convolutions (including the
depthwise convs and the two 1x1 convs of squeeze-excite) and of the classifier. BatchNorm,
activations, pooling, the SE gate multiply and bias adds are not counted. This equals
``torch.utils.flop_counter.FlopCounterMode`` on a forward pass divided by two, and the
parameter count equals ``sum(p.numel())`` of the built module (tested on random recipes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from tinyscale.space.arch import STEM_KERNEL, Architecture, build_architecture
from tinyscale.space.recipe import Recipe


@dataclass(frozen=True)
class Cost:
    macs: int
    params: int


def block_cost(kind: str, k: int, cin: int, mid: int, cout: int, se: int, in_px: int, out_px: int) -> tuple[int, int]:
    """(MACs, params) of one block; ``in_px``/``out_px`` are spatial areas (side squared)."""
    macs = params = 0
    if kind == "ir":
        macs += in_px * cin * mid  # 1x1 expansion
        params += cin * mid + 2 * mid  # conv + BN
    macs += out_px * mid * k * k  # depthwise
    params += mid * k * k + 2 * mid
    macs += 2 * mid * se  # SE reduce + expand on the pooled 1x1 map
    params += 2 * mid * se + se + mid  # two 1x1 convs with bias
    macs += out_px * mid * cout  # 1x1 projection
    params += mid * cout + 2 * cout
    return macs, params


def cost_of_architecture(arch: Architecture) -> Cost:
    stem_px = arch.stem_size * arch.stem_size
    macs = stem_px * 3 * arch.stem_channels * STEM_KERNEL * STEM_KERNEL
    params = 3 * arch.stem_channels * STEM_KERNEL * STEM_KERNEL + 2 * arch.stem_channels
    for b in arch.blocks:
        m, p = block_cost(
            b.kind, b.kernel, b.in_channels, b.mid_channels, b.out_channels, b.se_channels,
            b.in_size * b.in_size, b.out_size * b.out_size,
        )
        macs += m
        params += p
    last = arch.blocks[-1].out_channels
    final_px = arch.final_size * arch.final_size
    macs += final_px * last * arch.head_channels
    params += last * arch.head_channels + 2 * arch.head_channels
    macs += arch.head_channels * arch.num_classes
    params += arch.head_channels * arch.num_classes + arch.num_classes
    return Cost(macs=macs, params=params)


@lru_cache(maxsize=65536)
def cost(recipe: Recipe) -> Cost:
    """MACs and parameters of the network the recipe builds."""
    return cost_of_architecture(build_architecture(recipe))


def macs(recipe: Recipe) -> int:
    return cost(recipe).macs


def params(recipe: Recipe) -> int:
    return cost(recipe).params


def baseline_macs(recipe: Recipe) -> int:
    """MACs of the unscaled B0 in the recipe's context (rules, base resolution, classes)."""
    return macs(recipe.baseline())


def ratio(recipe: Recipe) -> float:
    """The FLOPs ratio c: MACs relative to the unscaled baseline in the same context."""
    return macs(recipe) / baseline_macs(recipe)
