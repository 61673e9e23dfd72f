"""The torch network for a recipe: EfficientNet-B0 topology, MBConv + squeeze-excite + SiLU.

State-dict keys follow timm's EfficientNet layout, so the names are familiar and stable (they
are the export format):

    conv_stem.weight, bn1.{weight,bias,running_mean,running_var,num_batches_tracked}
    blocks.{stage}.{i}.conv_dw / bn1 / se.conv_reduce / se.conv_expand / conv_pw / bn2
                                              (stage 0, depthwise-separable blocks)
    blocks.{stage}.{i}.conv_pw / bn1 / conv_dw / bn2 / se.conv_reduce / se.conv_expand
                       / conv_pwl / bn3       (stages 1-6, inverted residual blocks)
    conv_head.weight, bn2.*, classifier.{weight,bias}
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tinyscale.space.arch import STEM_KERNEL, STEM_STRIDE, Architecture, BlockSpec, build_architecture
from tinyscale.space.recipe import Recipe
from tinyscale.space.smallmap import MapAwareConv2d

BN_MOMENTUM = 0.01  # PyTorch sense (TF's 0.99 decay)
BN_EPS = 1e-3


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """The network's batch norm (TF EfficientNet's epsilon and momentum)."""
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """The network's convolution: no bias (a batch norm follows), padding ``kernel // 2``."""
    return MapAwareConv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)


class DropPath(nn.Module):
    """Stochastic depth ("drop-connect" in the TF code): drops the residual branch per sample."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0], 1, 1, 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.conv_reduce = MapAwareConv2d(channels, reduced, 1, bias=True)
        self.act = nn.SiLU(inplace=True)
        self.conv_expand = MapAwareConv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.conv_expand(self.act(self.conv_reduce(s)))
        return x * s.sigmoid()


class DepthwiseSeparable(nn.Module):
    """MBConv1: depthwise conv, SE, pointwise projection (no expansion conv)."""

    def __init__(self, spec: BlockSpec, drop_path: float) -> None:
        super().__init__()
        mid = spec.mid_channels
        self.conv_dw = conv(mid, mid, spec.kernel, spec.stride, groups=mid)
        self.bn1 = batch_norm(mid)
        self.act1 = nn.SiLU(inplace=True)
        self.se = SqueezeExcite(mid, spec.se_channels)
        self.conv_pw = conv(mid, spec.out_channels, 1)
        self.bn2 = batch_norm(spec.out_channels)
        self.has_skip = spec.has_skip
        self.drop_path = DropPath(drop_path) if self.has_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv_dw(x)))
        y = self.bn2(self.conv_pw(self.se(y)))
        return x + self.drop_path(y) if self.has_skip else y


class InvertedResidual(nn.Module):
    """MBConv6: 1x1 expansion, depthwise conv, SE, 1x1 linear projection, residual."""

    def __init__(self, spec: BlockSpec, drop_path: float) -> None:
        super().__init__()
        mid = spec.mid_channels
        self.conv_pw = conv(spec.in_channels, mid, 1)
        self.bn1 = batch_norm(mid)
        self.act1 = nn.SiLU(inplace=True)
        self.conv_dw = conv(mid, mid, spec.kernel, spec.stride, groups=mid)
        self.bn2 = batch_norm(mid)
        self.act2 = nn.SiLU(inplace=True)
        self.se = SqueezeExcite(mid, spec.se_channels)
        self.conv_pwl = conv(mid, spec.out_channels, 1)
        self.bn3 = batch_norm(spec.out_channels)
        self.has_skip = spec.has_skip
        self.drop_path = DropPath(drop_path) if self.has_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.act2(self.bn2(self.conv_dw(y)))
        y = self.bn3(self.conv_pwl(self.se(y)))
        return x + self.drop_path(y) if self.has_skip else y


class EfficientNet(nn.Module):
    """A scaled EfficientNet-B0. Build it with `build_model(recipe)`."""

    def __init__(self, arch: Architecture, dropout: float = 0.2, drop_path_rate: float = 0.2) -> None:
        super().__init__()
        self.arch = arch
        self.recipe = arch.recipe
        self.conv_stem = conv(3, arch.stem_channels, STEM_KERNEL, STEM_STRIDE)
        self.bn1 = batch_norm(arch.stem_channels)
        self.act1 = nn.SiLU(inplace=True)
        total = len(arch.blocks)
        stages: list[nn.Sequential] = []
        current: list[nn.Module] = []
        for n, spec in enumerate(arch.blocks):
            if spec.index == 0 and current:
                stages.append(nn.Sequential(*current))
                current = []
            # Stochastic depth grows linearly with block position, as in the reference code.
            rate = drop_path_rate * n / total
            block_type = DepthwiseSeparable if spec.kind == "ds" else InvertedResidual
            current.append(block_type(spec, rate))
        stages.append(nn.Sequential(*current))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = conv(arch.blocks[-1].out_channels, arch.head_channels, 1)
        self.bn2 = batch_norm(arch.head_channels)
        self.act2 = nn.SiLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(arch.head_channels, arch.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # The TF EfficientNet initialisation: fan-out normal for convs, uniform for the FC.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.weight.shape[0])
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def zero_init_residual_branches(self) -> EfficientNet:
        """Set the last BN scale of every residual branch to zero, so each skip block starts
        as the identity (Goyal et al. 2017, "zero-γ"). A training choice, not part of the
        architecture: deep, narrow recipes then start as shallow ones and brief runs no longer
        rank them by how fast they escape a bad start."""
        for block in self.modules():
            if isinstance(block, (DepthwiseSeparable, InvertedResidual)) and block.has_skip:
                last_bn = block.bn3 if isinstance(block, InvertedResidual) else block.bn2
                nn.init.zeros_(last_bn.weight)
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return self.act2(self.bn2(self.conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x).mean((2, 3))
        return self.classifier(self.dropout(x))


def build_model(recipe: Recipe, dropout: float = 0.2, drop_path_rate: float = 0.2) -> EfficientNet:
    """The `nn.Module` for a recipe (randomly initialised)."""
    for name, value in (("dropout", dropout), ("drop_path_rate", drop_path_rate)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    return EfficientNet(build_architecture(recipe), dropout=dropout, drop_path_rate=drop_path_rate)
