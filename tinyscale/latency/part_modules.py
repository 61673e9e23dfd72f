"""The torch module of one part of a network, timed alone (`tinyscale.latency.parts.Part`).

The stem and the blocks are built from the model's own layers (`tinyscale.space.model`), so a
part computes what that piece of the network computes. The network's head is not a module of
its own in `EfficientNet` (its layers are attributes of the network, their names the export's
state-dict keys), so `Head` gathers the same layers, built by the same helpers, into one:
1×1 conv, batch norm, SiLU, global average pooling, classifier (the network's dropout before
the classifier does nothing in eval mode, where parts are timed).

Imported only when a part is built: this module loads torch.
"""

from __future__ import annotations

from torch import nn

from tinyscale.space.arch import BlockSpec
from tinyscale.space.model import DepthwiseSeparable, InvertedResidual, batch_norm, conv


class Head(nn.Module):
    """conv_head, bn2, SiLU, global average pooling, classifier: EfficientNet's tail."""

    def __init__(self, cin: int, cout: int, classes: int) -> None:
        super().__init__()
        self.conv_head = conv(cin, cout, 1)
        self.bn2 = batch_norm(cout)
        self.act2 = nn.SiLU(inplace=True)
        self.classifier = nn.Linear(cout, classes)

    def forward(self, x):
        return self.classifier(self.act2(self.bn2(self.conv_head(x))).mean((2, 3)))


def stem_module(out_channels: int, kernel: int, stride: int) -> nn.Module:
    """The stem: a ``kernel``×``kernel`` conv from 3 channels, batch norm, SiLU."""
    return nn.Sequential(conv(3, out_channels, kernel, stride), batch_norm(out_channels), nn.SiLU(inplace=True))


def block_module(spec: BlockSpec) -> nn.Module:
    """One MBConv block as the network builds it (no stochastic depth)."""
    return (DepthwiseSeparable if spec.kind == "ds" else InvertedResidual)(spec, 0.0)
