"""What a user is told about a recipe: the fields of `tinyscale inspect` (and of every command
that prints a recipe), computed in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tinyscale.space.arch import build_architecture
from tinyscale.space.cost import baseline_macs, cost
from tinyscale.space.recipe import Recipe


@dataclass(frozen=True)
class RecipeSummary:
    r: float
    w: float
    d: float
    rules: str
    base_resolution: int
    num_classes: int
    resolution: int
    macs: int
    params: int
    depths: list[int]
    widths: list[int]
    stem: int
    head: int
    ratio: float

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(recipe: Recipe) -> RecipeSummary:
    arch = build_architecture(recipe)
    c = cost(recipe)
    return RecipeSummary(
        r=recipe.r,
        w=recipe.w,
        d=recipe.d,
        rules=recipe.rules,
        base_resolution=recipe.base_resolution,
        num_classes=recipe.num_classes,
        resolution=arch.resolution,
        macs=c.macs,
        params=c.params,
        depths=list(arch.depths),
        widths=list(arch.widths),
        stem=arch.stem_channels,
        head=arch.head_channels,
        ratio=c.macs / baseline_macs(recipe),
    )


def format_summary(s: RecipeSummary, extra: dict | None = None) -> str:
    """A human-readable block: one `name  value` line per field."""
    rows = [
        ("recipe", f"r={s.r:g}  w={s.w:g}  d={s.d:g}  ({s.rules} rules)"),
        ("input", f"{s.resolution}x{s.resolution} px (base {s.base_resolution})"),
        ("MACs", f"{s.macs:,} ({s.macs / 1e6:.2f}M)"),
        ("ratio c", f"{s.ratio:.4f} of the unscaled B0"),
        ("params", f"{s.params:,} ({s.params / 1e6:.3f}M), {s.num_classes} classes"),
        ("depths", " ".join(str(x) for x in s.depths) + f"  ({sum(s.depths)} blocks)"),
        ("widths", " ".join(str(x) for x in s.widths)),
        ("stem/head", f"{s.stem} / {s.head} channels"),
    ]
    for key, value in (extra or {}).items():
        rows.append((key, str(value)))
    pad = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(pad)}  {v}" for k, v in rows)
