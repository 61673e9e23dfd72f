"""Exact reformulations of the network's convolutions for small feature maps.

At the resolutions a study trains (base 32 px, r < 1) most of EfficientNet's blocks run on 1×1
and 2×2 maps, where oneDNN's convolution kernels are dominated by overhead: on this CPU a 5×5
depthwise backward on a 1×1 map took 20× its reformulation below, and a 1×1 convolution on a
1×1 map 6–10× a plain matrix product (benchmarks/RESULTS.md, "train"). The same sums of products,
written for the shapes at hand:

- pointwise (1×1, ungrouped) on a map of at most `POINTWISE_MAX_PIXELS` pixels: one matrix
  product of the channels-last pixels with the weight matrix (`F.linear`);
- depthwise (groups = channels) where (output pixels × input pixels) is at most
  `DEPTHWISE_MAX_PAIRS`: each output pixel is a weighted sum of the few input pixels its window
  meets, so the whole layer is one broadcast multiply and a sum over those pixels, with the
  weights gathered from the taps that meet data (taps that only meet zero padding drop out).

Forward values and gradients equal the convolution's up to float summation order
(tests/test_smallmap.py states the tolerances). Outputs are channels-last, as the trainer's
convolutions are. The reformulations are off unless asked for (`MapAwareConv2d.small_map`): the
exported ONNX graph, FLOP counters and anything else that inspects the network see ordinary
convolutions.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

# Measured on the 1-thread trainer (RESULTS.md, "train"): the matrix product beats oneDNN's
# 1×1 convolution on every map up to 8×8 and loses on 16×16 maps with few input channels.
POINTWISE_MAX_PIXELS = 64
# The broadcast intermediate has N·pairs·C elements: up to 2×2 maps (16 pairs) it is small and
# 3–20× faster than the convolution; at 4×4 (256 pairs) memory traffic makes it slower.
DEPTHWISE_MAX_PAIRS = 16


@functools.lru_cache(maxsize=256)
def window_taps(height: int, width: int, kernel: int, stride: int) -> tuple[torch.Tensor, int, int]:
    """For a k×k window with padding k//2: (taps, out_h, out_w), where ``taps[o, i]`` is the
    flat kernel index (ky·k + kx) that joins input pixel i to output pixel o, or k·k where the
    window of o does not cover i. Shape (out_h·out_w, height·width), long."""
    pad = kernel // 2
    out_h = (height + 2 * pad - kernel) // stride + 1
    out_w = (width + 2 * pad - kernel) // stride + 1
    oy = torch.arange(out_h).view(-1, 1, 1, 1)
    ox = torch.arange(out_w).view(1, -1, 1, 1)
    iy = torch.arange(height).view(1, 1, -1, 1)
    ix = torch.arange(width).view(1, 1, 1, -1)
    ky = iy - (oy * stride - pad)
    kx = ix - (ox * stride - pad)
    inside = (ky >= 0) & (ky < kernel) & (kx >= 0) & (kx < kernel)
    taps = torch.where(inside, ky * kernel + kx, torch.full_like(ky, kernel * kernel))
    return taps.reshape(out_h * out_w, height * width), out_h, out_w


def _channels_last_rows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H·W, C): a view for channels-last input, a copy otherwise."""
    n, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(n, h * w, c)


def pointwise_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1×1, stride-1, ungrouped convolution as a matrix product over channels-last pixels."""
    n, _, h, w = x.shape
    out = weight.shape[0]
    y = F.linear(_channels_last_rows(x), weight.view(out, -1), bias)
    return y.view(n, h, w, out).permute(0, 3, 1, 2)


def depthwise_as_gather(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """A k×k depthwise convolution (padding k//2, no bias) as a broadcast multiply-sum."""
    n, c, h, w = x.shape
    kernel = weight.shape[-1]
    taps, out_h, out_w = window_taps(h, w, kernel, stride)
    # (k·k + 1, C): a zero row for the "window does not cover this pixel" index.
    per_tap = F.pad(weight.view(c, kernel * kernel), (0, 1)).t()
    if h * w == 1:
        # One input pixel: every output pixel sees it through one tap (or none).
        y = _channels_last_rows(x) * per_tap[taps[:, 0]]  # (N, out pixels, C)
    else:
        mixing = per_tap[taps]  # (out pixels, in pixels, C)
        y = (_channels_last_rows(x).unsqueeze(1) * mixing).sum(2)
    return y.view(n, out_h, out_w, c).permute(0, 3, 1, 2)


class MapAwareConv2d(nn.Conv2d):
    """`nn.Conv2d` (same parameters, same state-dict keys) that, when ``small_map`` is on,
    computes pointwise and depthwise convolutions on small maps by the reformulations above.
    Any other case (or ``small_map`` off) is the ordinary convolution."""

    small_map: bool = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        k = self.kernel_size[0]
        square = self.kernel_size == (k, k) and self.stride[0] == self.stride[1]
        plain = square and self.dilation == (1, 1) and self.padding == (k // 2, k // 2) \
            and self.padding_mode == "zeros"
        self._pointwise = plain and k == 1 and self.groups == 1 and self.stride == (1, 1)
        self._depthwise = plain and k % 2 == 1 and self.bias is None \
            and self.groups == self.in_channels == self.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.small_map and x.dim() == 4:
            pixels = x.shape[2] * x.shape[3]
            if self._pointwise and pixels <= POINTWISE_MAX_PIXELS:
                return pointwise_as_matmul(x, self.weight, self.bias)
            if self._depthwise:
                taps, _, _ = window_taps(x.shape[2], x.shape[3], self.kernel_size[0], self.stride[0])
                if taps.numel() <= DEPTHWISE_MAX_PAIRS:
                    return depthwise_as_gather(x, self.weight, self.stride[0])
        return super().forward(x)


def use_small_map_kernels(model: nn.Module, enabled: bool) -> nn.Module:
    """Switch the reformulations on or off in every `MapAwareConv2d` of ``model``."""
    for m in model.modules():
        if isinstance(m, MapAwareConv2d):
            m.small_map = enabled
    return model
