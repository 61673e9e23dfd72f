"""A network as the parts a latency table times one by one (FBNet/ChamNet-style): the stem,
every block and the head (1×1 conv, pooling, classifier), each identified by its shapes alone
(`Part.key`: role, block kind, kernel, stride, in/mid/out/SE channels, input side, classes), so
two networks that share a shape share its entry."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tinyscale.space.arch import STEM_KERNEL, STEM_STRIDE, Architecture, BlockSpec, build_architecture, conv_out
from tinyscale.space.cost import block_cost
from tinyscale.space.recipe import Recipe


@dataclass(frozen=True)
class Part:
    """One separately timed piece of a network, identified by its shapes alone.

    ``role`` is "stem" (3×3 stride-2 conv from 3 channels, BN, SiLU), "block" (an MBConv block:
    ``kind`` "ds" or "ir") or "head" (1×1 conv, BN, SiLU, global pooling, classifier).
    ``size`` is the input side; ``classes`` matters for the head only.
    """

    role: str
    kind: str
    kernel: int
    stride: int
    in_channels: int
    mid_channels: int
    out_channels: int
    se_channels: int
    size: int
    classes: int = 0

    @property
    def key(self) -> str:
        return (f"{self.role}:{self.kind}:k{self.kernel}s{self.stride}:c{self.in_channels}-{self.mid_channels}-"
                f"{self.out_channels}:se{self.se_channels}:hw{self.size}:n{self.classes}")

    @property
    def out_size(self) -> int:
        return conv_out(self.size, self.kernel, self.stride)

    @property
    def has_skip(self) -> bool:
        return self.role == "block" and self.stride == 1 and self.in_channels == self.out_channels

    @property
    def group(self) -> tuple:
        """Parts whose latencies are comparable (used to estimate a part the table lacks)."""
        return (self.role, self.kind, self.kernel, self.stride, self.has_skip)

    @property
    def macs(self) -> int:
        if self.role == "stem":
            return self.out_size ** 2 * 3 * self.out_channels * self.kernel ** 2
        if self.role == "head":
            return self.size ** 2 * self.in_channels * self.out_channels + self.out_channels * self.classes
        return block_cost(self.kind, self.kernel, self.in_channels, self.mid_channels, self.out_channels,
                          self.se_channels, self.size ** 2, self.out_size ** 2)[0]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Part:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def input_shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.in_channels, self.size, self.size)

    def block_spec(self) -> BlockSpec:
        """A block part as the architecture's block (its position in the network is not known)."""
        return BlockSpec(stage=0, index=0, kind=self.kind, kernel=self.kernel, stride=self.stride,
                         in_channels=self.in_channels, mid_channels=self.mid_channels,
                         out_channels=self.out_channels, se_channels=self.se_channels,
                         in_size=self.size, out_size=self.out_size)

    def build_module(self):
        """The torch module of this part (eval mode, random weights)."""
        from tinyscale.latency.part_modules import Head, block_module, stem_module

        if self.role == "stem":
            module = stem_module(self.out_channels, self.kernel, self.stride)
        elif self.role == "head":
            module = Head(self.in_channels, self.out_channels, self.classes)
        else:
            module = block_module(self.block_spec())
        return module.eval()


def parts_of(arch: Architecture) -> tuple[Part, ...]:
    """The stem, every block and the head of a built architecture, in order."""
    parts = [Part("stem", "conv", STEM_KERNEL, STEM_STRIDE, 3, 3, arch.stem_channels, 0, arch.resolution)]
    for b in arch.blocks:
        parts.append(Part("block", b.kind, b.kernel, b.stride, b.in_channels, b.mid_channels, b.out_channels,
                          b.se_channels, b.in_size))
    last = arch.blocks[-1].out_channels
    parts.append(Part("head", "conv", 1, 1, last, last, arch.head_channels, 0, arch.final_size, arch.num_classes))
    return tuple(parts)


def recipe_parts(recipe: Recipe) -> tuple[Part, ...]:
    return parts_of(build_architecture(recipe))
