"""The EfficientNet-B0 block table and the scaling rules applied to it (pure, no torch).

Both the module builder (`tinyscale.space.model`) and the cost model (`tinyscale.space.cost`) read the
`Architecture` this module produces, so the network that is built and the network that is
counted cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from tinyscale.space.recipe import Recipe
from tinyscale.space.rules import rule_set


@dataclass(frozen=True)
class StageSpec:
    """One row of the EfficientNet-B0 table (TF ``blocks_args``)."""

    kind: str  # "ds": depthwise-separable (MBConv1, no expansion conv); "ir": inverted residual
    kernel: int
    stride: int
    expand: int
    channels: int
    repeats: int


B0_STEM_CHANNELS = 32
B0_HEAD_CHANNELS = 1280
B0_STAGES: tuple[StageSpec, ...] = (
    StageSpec("ds", 3, 1, 1, 16, 1),
    StageSpec("ir", 3, 2, 6, 24, 2),
    StageSpec("ir", 5, 2, 6, 40, 2),
    StageSpec("ir", 3, 2, 6, 80, 3),
    StageSpec("ir", 5, 1, 6, 112, 3),
    StageSpec("ir", 5, 2, 6, 192, 4),
    StageSpec("ir", 3, 1, 6, 320, 1),
)
SE_RATIO = 0.25  # of the block's *input* channels
STEM_KERNEL = 3
STEM_STRIDE = 2


def make_divisible(value: float, divisor: int = 8) -> int:
    """Nearest multiple of ``divisor`` (at least ``divisor``), bumped up one step if rounding
    lost more than 10 % of ``value`` (the EfficientNet/MobileNet channel rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def scale_repeats(repeats: int, d: float, rules: str) -> int:
    """Blocks in a stage after depth scaling under the rule set called ``rules``."""
    return rule_set(rules).repeats(repeats, d)


def scale_channels(channels: int, w: float) -> int:
    return make_divisible(channels * w)


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Output side of a conv with padding kernel//2 (odd kernels): ceil(size / stride)."""
    pad = kernel // 2
    return (size + 2 * pad - kernel) // stride + 1


@dataclass(frozen=True)
class BlockSpec:
    """One built block, with every channel count resolved and the spatial sizes it sees."""

    stage: int
    index: int  # position inside its stage
    kind: str
    kernel: int
    stride: int
    in_channels: int
    mid_channels: int  # expanded channels (== in_channels for "ds")
    out_channels: int
    se_channels: int
    in_size: int
    out_size: int

    @property
    def has_skip(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class Architecture:
    """Everything needed to build or count one scaled network."""

    recipe: Recipe
    resolution: int
    stem_channels: int
    stem_size: int  # side length after the stem
    blocks: tuple[BlockSpec, ...]
    head_channels: int
    num_classes: int
    depths: tuple[int, ...]  # blocks per stage
    widths: tuple[int, ...]  # output channels per stage

    @property
    def final_size(self) -> int:
        return self.blocks[-1].out_size if self.blocks else self.stem_size


def build_architecture(recipe: Recipe) -> Architecture:
    """Apply the recipe's rule set to the B0 table."""
    return _build(recipe)


@lru_cache(maxsize=65536)
def _build(recipe: Recipe) -> Architecture:
    rules = rule_set(recipe.rules)
    resolution = recipe.resolution
    stem = B0_STEM_CHANNELS if rules.fix_stem else scale_channels(B0_STEM_CHANNELS, recipe.w)
    head = scale_channels(B0_HEAD_CHANNELS, recipe.w)
    if rules.head_floor:
        head = max(B0_HEAD_CHANNELS, head)
    size = conv_out(resolution, STEM_KERNEL, STEM_STRIDE)
    stem_size = size
    in_ch = stem
    blocks: list[BlockSpec] = []
    depths: list[int] = []
    widths: list[int] = []
    for stage_idx, stage in enumerate(B0_STAGES):
        out_ch = scale_channels(stage.channels, recipe.w)
        n = rules.repeats(stage.repeats, recipe.d)
        depths.append(n)
        widths.append(out_ch)
        for i in range(n):
            stride = stage.stride if i == 0 else 1
            mid = in_ch if stage.kind == "ds" else make_divisible(in_ch * stage.expand)
            out_size = conv_out(size, stage.kernel, stride)
            blocks.append(
                BlockSpec(
                    stage=stage_idx,
                    index=i,
                    kind=stage.kind,
                    kernel=stage.kernel,
                    stride=stride,
                    in_channels=in_ch,
                    mid_channels=mid,
                    out_channels=out_ch,
                    se_channels=max(1, int(in_ch * SE_RATIO)),
                    in_size=size,
                    out_size=out_size,
                )
            )
            in_ch, size = out_ch, out_size
    return Architecture(
        recipe=recipe,
        resolution=resolution,
        stem_channels=stem,
        stem_size=stem_size,
        blocks=tuple(blocks),
        head_channels=head,
        num_classes=recipe.num_classes,
        depths=tuple(depths),
        widths=tuple(widths),
    )
