"""The scaling table: several strategies side by side at matched FLOPs ratios.

Printed by `tinyscale scale --table` and shared with anything else that wants the plain-text
comparison; out-of-reach targets become rows with the reason instead of an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from baselines.common import ScaledRecipe
from baselines.registry import PUBLISHED, SOLVED, scale
from tinyscale.space.cost import cost
from tinyscale.space.recipe import Recipe


@dataclass(frozen=True)
class TableRow:
    """One strategy at one target ratio; ``scaled`` is None when the target is out of its reach."""

    group: float | None  # the target ratio this row is matched to (None: a published recipe out of reach)
    strategy: str
    scaled: ScaledRecipe | None
    error: str | None = None

    def to_dict(self) -> dict:
        out: dict = {"group": self.group, "strategy": self.strategy, "error": self.error}
        if self.scaled is not None:
            c = cost(self.scaled.recipe)
            out.update(self.scaled.to_dict(), resolution=self.scaled.recipe.resolution,
                       macs=c.macs, params=c.params)
        return out


def _row(group: float, strategy: str, c: float | None, base_resolution: int, num_classes: int) -> TableRow:
    try:
        return TableRow(group, strategy, scale(strategy, c, base_resolution=base_resolution, num_classes=num_classes))
    except ValueError as exc:
        return TableRow(group, strategy, None, str(exc))


def scaling_table(
    ratios: Sequence[float] | None = None,
    *,
    strategies: Sequence[str] = SOLVED,
    base_resolution: int = 224,
    num_classes: int = 1000,
) -> list[TableRow]:
    """Rows grouped by target ratio, each group listing ``strategies`` solved at that ratio.

    Without ``ratios``: one group per published TinyNet-A..E, led by the TinyNet row and with
    the strategies matched to its counted ratio, so every group compares equal FLOPs.
    """
    Recipe(base_resolution=base_resolution, num_classes=num_classes)  # the context itself, checked once
    rows: list[TableRow] = []
    if ratios is None:
        for name in PUBLISHED:
            lead = _row(0.0, name, None, base_resolution, num_classes)
            if lead.scaled is None:
                # Out of reach at this base (e.g. under 8 px at base 16): no ratio to match.
                rows.append(TableRow(None, name, None, lead.error))
                continue
            group = lead.scaled.achieved
            rows.append(TableRow(group, name, lead.scaled))
            rows.extend(_row(group, s, group, base_resolution, num_classes) for s in strategies)
    else:
        for c in ratios:
            rows.extend(_row(c, s, c, base_resolution, num_classes) for s in strategies)
    return rows


def format_scaling_table(rows: Sequence[TableRow]) -> str:
    """Plain-text table: one line per row, a blank line between target groups."""
    header = ("target c", "strategy", "r", "w", "d", "px", "MACs (M)", "params (M)", "achieved", "error")
    lines: list[tuple[str, ...]] = [header]
    breaks: set[int] = set()
    previous = None
    for row in rows:
        if previous is not None and row.group != previous:
            breaks.add(len(lines))
        previous = row.group
        if row.scaled is None:
            group = "-" if row.group is None else f"{row.group:.4f}"
            lines.append((group, row.strategy, "-", "-", "-", "-", "-", "-", "out of reach", ""))
            continue
        s, rc = row.scaled, row.scaled.recipe
        c = cost(rc)
        err = "published" if s.target is None else f"{100 * s.relative_error:+.1f}%"
        lines.append((f"{row.group:.4f}", row.strategy, f"{rc.r:.4g}", f"{rc.w:.4g}", f"{rc.d:.4g}",
                      str(rc.resolution), f"{c.macs / 1e6:.1f}", f"{c.params / 1e6:.3f}", f"{s.achieved:.4f}", err))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        if n in breaks:
            out.append("")
        out.append("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
