"""The comparison's figure (accuracy vs MACs, one line per strategy, plotly), its PNG export, and
the report files `tinyscale compare` writes (markdown, CSV, HTML, PNG). This module reads the
comparison (`results`, `tables`, `strategies`); nothing there imports it.

PNG goes through kaleido, which is optional: kaleido 1.x drives a Chrome, which we point at the
system's chromium when one is installed. When either is missing, the caller gets a message, never
an exception; the HTML figure is always written.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tinyscale.evaluate.compare.strategies import REGISTRY
from tinyscale.evaluate.compare.tables import comparison_csv, comparison_markdown
from tinyscale.storage import write_text_atomically

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tinyscale.evaluate.compare.results import Comparison, ComparisonRow

# Fixed colours per strategy (from the strategy registry), so the UI and the saved figures agree.
STRATEGY_COLORS = {name: s.color for name, s in REGISTRY.items()}
CHROME_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def _hover(name: str, r: ComparisonRow, sym: str = "c") -> str:
    acc = (f"top-1 {100 * r.mean:.2f} %" + ("" if r.std is None else f" ± {100 * r.std:.2f}")
           + f" over {len(r.accuracies)} seed(s)")
    if r.bracket is None:
        head = (f"r={r.recipe.r:g} w={r.recipe.w:g} d={r.recipe.d:g} ({r.recipe.rules}, {r.recipe.resolution} px)"
                f"<br>achieved {sym}={r.achieved:.4f}, {r.params / 1e6:.3f}M params<br>{acc}")
    else:
        b = r.bracket
        head = "<br>".join(
            f"{side} {sym}={ratio:.4f}: r={x.r:.4g} w={x.w:.4g} d={x.d:.4g} ({x.resolution} px)"
            for side, ratio, x in (("below", b.ratio_below, b.below), ("above", b.ratio_above, b.above))
        ) + f"<br>{acc}, interpolated in log {sym} at {r.ratio:g}"
    return f"{name} at {sym}={r.ratio:g}<br>{head}" + (f"<br>{r.note}" if r.note else "")


def comparison_figure(comparison: Comparison, title: str | None = None) -> go.Figure:
    """Top-1 accuracy (mean ± std over seeds) against MACs, one line per strategy (against
    predicted latency for a comparison at matched latency).

    A point sits at the MACs its accuracy applies to: the recipe's counted MACs, or, for a row
    interpolated between two steps, the target's (drawn as a diamond). Points whose FLOPs miss
    the target by more than the tolerance are drawn as crosses; hovering a point shows the
    recipe(s), the target and achieved ratio, and the note.
    """
    import plotly.graph_objects as go

    latency = comparison.settings.budget == "latency"
    sym = "ms" if latency else "c"

    def x_of(r: ComparisonRow) -> float:
        # At matched latency the point sits at its predicted latency (the target's when interpolated).
        if latency:
            return r.ratio if r.interpolated else r.achieved
        return r.effective_macs

    fig = go.Figure()
    for name in comparison.settings.strategies:
        rows = sorted((r for r in comparison.rows if r.strategy == name and r.mean is not None and r.macs), key=x_of)
        if not rows:
            continue
        fig.add_trace(go.Scatter(
            x=[x_of(r) for r in rows],
            y=[100 * r.mean for r in rows],
            error_y=dict(type="data", array=[0.0 if r.std is None else 100 * r.std for r in rows], visible=True),
            mode="lines+markers",
            name=REGISTRY[name].label if name in REGISTRY else name,
            line=dict(color=REGISTRY[name].color if name in REGISTRY else None, width=3 if name == "gp" else 2),
            marker=dict(size=9, symbol=["diamond" if r.interpolated else "circle" if r.matched else "x"
                                        for r in rows]),
            hovertext=[_hover(name, r, sym) for r in rows],
            hoverinfo="text",
        ))
    b = comparison.budget
    fig.update_layout(
        title=title or (f"Accuracy vs {'latency' if latency else 'MACs'} at matched {'latency' if latency else 'FLOPs'}"
                        f" — {b.get('data', '?')}, {b.get('steps', '?')} steps × {len(comparison.settings.seeds)} seeds"),
        xaxis=dict(title=(f"predicted latency (ms, log scale) on {b.get('device', 'the device')}" if latency
                          else "MACs (counted, log scale)"), type="log", tickformat="" if latency else "~s"),
        yaxis=dict(title="held-out top-1 accuracy (%)"),
        legend=dict(title="strategy"),
        template="plotly_white",
        width=900,
        height=560,
    )
    return fig


def _find_chrome() -> str | None:
    for env in ("BROWSER_PATH",):
        if os.environ.get(env):
            return os.environ[env]
    for path in CHROME_CANDIDATES:
        if Path(path).exists():
            return path
    return shutil.which("chromium") or shutil.which("google-chrome")


def write_png(fig: go.Figure, path: str | Path) -> tuple[Path | None, str]:
    """Write the figure as PNG with kaleido: (path, "") on success, (None, why not) otherwise."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return None, "PNG skipped: kaleido is not installed (pip install kaleido); the HTML figure has the plot"
    chrome = _find_chrome()
    if chrome is None:
        return None, "PNG skipped: kaleido needs Chrome/Chromium and none was found (set BROWSER_PATH)"
    # kaleido 1.x (through choreographer) finds the browser through BROWSER_PATH.
    os.environ.setdefault("BROWSER_PATH", chrome)
    path = Path(path)
    try:
        fig.write_image(path, format="png")
    except Exception as exc:  # kaleido failures come in many types; none should lose the tables
        return None, f"PNG skipped: kaleido could not render with {chrome} ({type(exc).__name__}: {exc})"
    return path, ""


@dataclass(frozen=True)
class ReportPaths:
    markdown: Path
    csv: Path
    html: Path
    png: Path | None
    png_message: str  # why there is no PNG, or "" when there is one


def write_report(comparison: Comparison, out_dir: str | Path) -> ReportPaths:
    """Markdown + CSV tables, the plotly figure as HTML, and as PNG when kaleido can render it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, cs, html = out / "comparison.md", out / "comparison.csv", out / "comparison.html"
    write_text_atomically(md, comparison_markdown(comparison))
    write_text_atomically(cs, comparison_csv(comparison))
    fig = comparison_figure(comparison)
    write_text_atomically(html, fig.to_html(include_plotlyjs=True, full_html=True))
    png, message = write_png(fig, out / "comparison.png")
    return ReportPaths(md, cs, html, png, message)

