"""The design assistant's figures: pure functions from library results to plotly figures.

Nothing here computes a recipe, a fit or a selection: every number drawn comes from the stage
that owns it (`tinyscale.fit.solve.RecipeAnswer`, `tinyscale.fit.pareto.ParetoSelection`,
`baselines.ScaledRecipe`, `tinyscale.study.trial.Trial`), so the figures can be tested on known inputs
without Streamlit.

Trace names are stable (the ``TRACE_*`` constants) so tests and the page can find a trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tinyscale.study.samplers.botorch import proposed_by_acquisition

if TYPE_CHECKING:  # type names only; plotting must not import torch/botorch
    from baselines.common import ScaledRecipe
    from tinyscale.fit.pareto import ParetoSelection
    from tinyscale.fit.solve import RecipeAnswer
    from tinyscale.fit.surface import SurfaceSlice
    from tinyscale.study.trial import Trial

TRACE_GP_MEAN = "GP mean"
TRACE_GP_BAND = "GP 95% band"
TRACE_DERIVED_W = "w solved from r(c), d(c)"
TRACE_SAMPLED = "sampled trials"
TRACE_SELECTED = "models the fit used"
TRACE_EFFICIENTNET = "EfficientNet compound scaling"
TRACE_TINYNET = "TinyNet-A..E (published)"
TRACE_TARGET = "your target"
TRACE_FRONT = "Pareto front"
TRACE_OTHER = "other trials"
TRACE_SURFACE = "accuracy surface"
TRACE_RIDGE = "best (r, d) on the surface"
TRACE_NEAR = "trials near this c"

AXES = ("r", "w", "d")
AXIS_TITLES = {"r": "resolution r", "w": "width w", "d": "depth d"}
COLORS = {
    "gp": "#1f77b4",
    "band": "rgba(31, 119, 180, 0.18)",
    "sampled": "rgba(120, 120, 120, 0.45)",
    "selected": "#ff7f0e",
    "efficientnet": "#2ca02c",
    "tinynet": "#9467bd",
    "target": "#d62728",
    "front": "#ff7f0e",
}


def _recipe_hover(r: float, w: float, d: float, resolution: int) -> str:
    return f"r={r:g}  w={w:g}  d={d:g}<br>{resolution}x{resolution} px"


PROPOSED_SYMBOL = "diamond"  # trials the botorch acquisition proposed; stream trials are circles


def _trial_hover(t: Trial, extra: str = "") -> str:
    acc = "n/a" if t.accuracy is None else f"{t.accuracy:.2%}"
    text = (
        f"trial {t.number}<br>{_recipe_hover(t.recipe.r, t.recipe.w, t.recipe.d, t.recipe.resolution)}"
        f"<br>c={t.ratio:.4f}  {t.macs / 1e6:.2f}M MACs  {t.params / 1e6:.3f}M params<br>accuracy {acc}"
    )
    if t.rung:
        text += f"<br>rung {t.rung}" + ("" if t.steps is None else f": {t.steps:,} steps")
    if proposed_by_acquisition(t):
        text += "<br>proposed by the botorch acquisition"
    return text + (f"<br>{extra}" if extra else "")


def trial_symbols(trials: Sequence[Trial]) -> list[str]:
    """A marker symbol per trial: which sampler proposed it."""
    return [PROPOSED_SYMBOL if proposed_by_acquisition(t) else "circle" for t in trials]


def scaling_figure(
    curve: Sequence[RecipeAnswer],
    trials: Sequence[Trial] = (),
    selected: Sequence[Trial] = (),
    efficientnet: Sequence[ScaledRecipe] = (),
    tinynets: Sequence[ScaledRecipe] = (),
    current: RecipeAnswer | None = None,
) -> go.Figure:
    """r(c), w(c), d(c) on one log-c axis, three rows.

    ``curve``: solver answers along a grid of targets; r and d rows draw their GP means and
    95 % bands (before clipping), the w row the width solved at each target. ``trials``: every
    completed trial (grey); ``selected``: the Pareto models the GPs were fitted on.
    ``efficientnet``: compound-scaling recipes along c; ``tinynets``: the published recipes at
    their counted ratio in this context. ``current``: the answer at the slider, marked in
    every row.
    """
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=[AXIS_TITLES[a] for a in AXES])
    curve = sorted(curve, key=lambda a: a.target)
    cs = [a.target for a in curve]
    for row, axis in enumerate(AXES, start=1):
        first = row == 1
        if curve and axis in ("r", "d"):
            mean = [a.r_mean if axis == "r" else a.d_mean for a in curve]
            band = [a.r_band if axis == "r" else a.d_band for a in curve]
            fig.add_trace(go.Scatter(
                x=cs + cs[::-1], y=[b[1] for b in band] + [b[0] for b in band][::-1],
                fill="toself", fillcolor=COLORS["band"], line=dict(width=0), hoverinfo="skip",
                name=TRACE_GP_BAND, legendgroup="band", showlegend=first, meta=axis,
            ), row=row, col=1)
            fig.add_trace(go.Scatter(
                x=cs, y=mean, mode="lines", line=dict(color=COLORS["gp"], width=2.5),
                name=TRACE_GP_MEAN, legendgroup="gp", showlegend=first, meta=axis,
                hovertemplate=f"c=%{{x:.4f}}<br>{axis}=%{{y:.3f}}<extra>GP mean</extra>",
            ), row=row, col=1)
        elif curve:
            fig.add_trace(go.Scatter(
                x=cs, y=[a.recipe.w for a in curve], mode="lines",
                line=dict(color=COLORS["gp"], width=2.5, dash="dot"),
                name=TRACE_DERIVED_W, legendgroup="w", showlegend=True, meta=axis,
                hovertemplate="c=%{x:.4f}<br>w=%{y:.3f}<extra>solved width</extra>",
            ), row=row, col=1)
        if trials:
            fig.add_trace(go.Scatter(
                x=[t.ratio for t in trials], y=[getattr(t.recipe, axis) for t in trials], mode="markers",
                marker=dict(color=COLORS["sampled"], size=6, symbol=trial_symbols(trials)), name=TRACE_SAMPLED,
                legendgroup="sampled",
                showlegend=first, meta=axis, text=[_trial_hover(t) for t in trials],
                hovertemplate="%{text}<extra></extra>",
            ), row=row, col=1)
        if selected:
            fig.add_trace(go.Scatter(
                x=[t.ratio for t in selected], y=[getattr(t.recipe, axis) for t in selected], mode="markers",
                marker=dict(color=COLORS["selected"], size=9, line=dict(color="black", width=1),
                            symbol=trial_symbols(selected)),
                name=TRACE_SELECTED, legendgroup="selected", showlegend=first, meta=axis,
                text=[_trial_hover(t) for t in selected], hovertemplate="%{text}<extra></extra>",
            ), row=row, col=1)
        if efficientnet:
            eff = sorted(efficientnet, key=lambda s: s.achieved)
            fig.add_trace(go.Scatter(
                x=[s.achieved for s in eff], y=[getattr(s.recipe, axis) for s in eff], mode="lines",
                line=dict(color=COLORS["efficientnet"], width=2, dash="dash"),
                name=TRACE_EFFICIENTNET, legendgroup="eff", showlegend=first, meta=axis,
                text=[f"φ={s.phi:.3f}<br>" + _recipe_hover(s.recipe.r, s.recipe.w, s.recipe.d, s.recipe.resolution)
                      for s in eff],
                hovertemplate="c=%{x:.4f}<br>%{text}<extra>EfficientNet</extra>",
            ), row=row, col=1)
        if tinynets:
            fig.add_trace(go.Scatter(
                x=[s.achieved for s in tinynets], y=[getattr(s.recipe, axis) for s in tinynets],
                mode="markers+text", marker=dict(color=COLORS["tinynet"], size=11, symbol="star"),
                text=[s.strategy.replace("tinynet-", "").upper() for s in tinynets], textposition="top center",
                name=TRACE_TINYNET, legendgroup="tinynet", showlegend=first, meta=axis,
                customdata=[_recipe_hover(s.recipe.r, s.recipe.w, s.recipe.d, s.recipe.resolution) for s in tinynets],
                hovertemplate="TinyNet-%{text}  c=%{x:.4f}<br>%{customdata}<extra></extra>",
            ), row=row, col=1)
        if current is not None:
            value = getattr(current.recipe, axis)
            fig.add_trace(go.Scatter(
                x=[current.achieved], y=[value], mode="markers",
                marker=dict(color=COLORS["target"], size=14, symbol="diamond", line=dict(color="white", width=1)),
                name=TRACE_TARGET, legendgroup="target", showlegend=first, meta=axis,
                hovertemplate=f"your recipe: c=%{{x:.4f}}, {axis}=%{{y:.3f}}<extra></extra>",
            ), row=row, col=1)
    if current is not None:
        fig.add_vline(x=current.achieved, line=dict(color=COLORS["target"], width=1, dash="dot"), row="all", col=1)
    fig.update_xaxes(type="log")
    fig.update_xaxes(title_text="FLOPs ratio c (MACs / B0's)", row=3, col=1)
    for row, axis in enumerate(AXES, start=1):
        fig.update_yaxes(title_text=axis, row=row, col=1)
    fig.update_layout(height=760, margin=dict(l=50, r=20, t=40, b=40), legend=dict(orientation="h", y=-0.08),
                      hovermode="closest")
    return fig


def accuracy_figure(selection: ParetoSelection, current: RecipeAnswer | None = None, *,
                    latency_ms=None) -> go.Figure:
    """Accuracy vs MACs of every ranked trial: the Pareto front as a line, the models the fit
    used highlighted, the rest grey; hover shows each trial's recipe and why it was (not)
    selected. ``current`` marks the MACs of the recipe at the slider. With ``latency_ms``
    (recipe -> predicted ms on a device) the x axis is that latency instead of MACs."""
    entries = list(selection.entries)
    if latency_ms is None:
        xs = {e.trial.number: e.trial.macs for e in entries}
        hover = {e.trial.number: e.reason for e in entries}
        title = "MACs"
        mark = None if current is None else (current.macs, f"your target ({current.macs / 1e6:.2f}M MACs)")
    else:
        xs = {e.trial.number: latency_ms(e.trial.recipe) for e in entries}
        hover = {e.trial.number: f"{xs[e.trial.number]:.3f} ms predicted · {e.reason}" for e in entries}
        title = "predicted latency (ms)"
        ms = None if current is None else latency_ms(current.recipe)
        mark = None if ms is None else (ms, f"your recipe ({ms:.2f} ms)")
    fig = go.Figure()
    others = [e for e in entries if not e.selected]
    if others:
        fig.add_trace(go.Scatter(
            x=[xs[e.trial.number] for e in others], y=[e.trial.accuracy for e in others], mode="markers",
            marker=dict(color=COLORS["sampled"], size=7, symbol=trial_symbols([e.trial for e in others])),
            name=TRACE_OTHER,
            text=[_trial_hover(e.trial, hover[e.trial.number]) for e in others],
            hovertemplate="%{text}<extra></extra>",
        ))
    front = sorted((e for e in entries if e.rank == 1), key=lambda e: (xs[e.trial.number], e.trial.number))
    if front:
        fig.add_trace(go.Scatter(
            x=[xs[e.trial.number] for e in front], y=[e.trial.accuracy for e in front], mode="lines",
            line=dict(color=COLORS["front"], width=2, shape="hv"), name=TRACE_FRONT, hoverinfo="skip",
        ))
    chosen = [e for e in entries if e.selected]
    if chosen:
        fig.add_trace(go.Scatter(
            x=[xs[e.trial.number] for e in chosen], y=[e.trial.accuracy for e in chosen], mode="markers",
            marker=dict(color=COLORS["selected"], size=10, line=dict(color="black", width=1),
                        symbol=trial_symbols([e.trial for e in chosen])),
            name=TRACE_SELECTED, text=[_trial_hover(e.trial, hover[e.trial.number]) for e in chosen],
            hovertemplate="%{text}<extra></extra>",
        ))
    if mark is not None:
        fig.add_vline(x=mark[0], line=dict(color=COLORS["target"], width=1.5, dash="dot"),
                      annotation_text=mark[1], annotation_position="top")
    fig.update_xaxes(type="log", title_text=title)
    fig.update_yaxes(title_text="held-out accuracy", tickformat=".0%")
    fig.update_layout(height=420, margin=dict(l=50, r=20, t=30, b=40), hovermode="closest",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def surface_figure(cut: SurfaceSlice, current: RecipeAnswer | None = None,
                   trials: Sequence[Trial] = ()) -> go.Figure:
    """Contours of the surface's posterior mean accuracy over (r, d) at one c (blank where no
    explored width reaches c), its best point there, the recipe at the slider, and the trials
    whose c is within a factor 1.5 of it (their own accuracies, for a sense of the noise)."""
    fig = go.Figure()
    fig.add_trace(go.Contour(
        x=list(cut.d), y=list(cut.r), z=(100 * cut.accuracy).tolist(), name=TRACE_SURFACE,
        colorscale="Viridis", contours=dict(showlabels=True, labelfont=dict(size=10, color="white")),
        colorbar=dict(title="top-1 %"), connectgaps=False,
        hovertemplate="r=%{y:.3f}  d=%{x:.3f}<br>predicted top-1 %{z:.1f} %<extra></extra>",
    ))
    near = [t for t in trials if t.accuracy is not None and 1 / 1.5 <= t.ratio / cut.c <= 1.5]
    if near:
        fig.add_trace(go.Scatter(
            x=[t.recipe.d for t in near], y=[t.recipe.r for t in near], mode="markers", name=TRACE_NEAR,
            marker=dict(color="white", size=8, line=dict(color="black", width=1)),
            text=[_trial_hover(t) for t in near], hovertemplate="%{text}<extra></extra>",
        ))
    if cut.best_r == cut.best_r:  # not NaN: some (r, d) reaches c
        fig.add_trace(go.Scatter(
            x=[cut.best_d], y=[cut.best_r], mode="markers", name=TRACE_RIDGE,
            marker=dict(symbol="star", size=16, color=COLORS["selected"], line=dict(color="black", width=1)),
            hovertemplate=f"best on the surface at c={cut.c:.4g}<br>r=%{{y:.3f}}  d=%{{x:.3f}}"
                          f"<br>predicted top-1 {100 * cut.best_accuracy:.1f} %<extra></extra>",
        ))
    if current is not None:
        fig.add_trace(go.Scatter(
            x=[current.recipe.d], y=[current.recipe.r], mode="markers", name=TRACE_TARGET,
            marker=dict(symbol="x", size=14, color=COLORS["target"], line=dict(width=2)),
            hovertemplate="the recipe (curve through the ridge)<br>r=%{y:.4g}  d=%{x:.4g}<extra></extra>",
        ))
    fig.update_xaxes(title_text="depth d", type="log")
    fig.update_yaxes(title_text="resolution r", type="log")
    fig.update_layout(height=440, margin=dict(l=50, r=20, t=30, b=40), legend=dict(orientation="h", y=-0.2),
                      title=dict(text=f"predicted held-out accuracy at c = {cut.c:.4g}", font=dict(size=13)))
    return fig


def trace(fig: go.Figure, name: str, axis: str | None = None) -> go.Scatter:
    """The trace called ``name`` (in row ``axis`` of a scaling figure); KeyError if absent."""
    for t in fig.data:
        if t.name == name and (axis is None or t.meta == axis):
            return t
    raise KeyError(f"no trace {name!r}" + (f" in row {axis}" if axis else ""))


RUNG_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "star", "hexagon", "cross", "x", "pentagon")


def rungs_figure(runs: Sequence[Trial], fit_rung: int, mark: str = "the fit") -> go.Figure:
    """Every completed run of a halving study: accuracy against c, one marker per rung, each
    promoted recipe's runs joined by a thin line (how much longer training moved it); the rung
    ``fit_rung`` is named in the legend with ``mark`` (the fit's rung, or the rung a fit across
    rungs reads its ridge at)."""
    fig = go.Figure()
    done = [t for t in runs if t.state == "completed"]
    by_number: dict[int, list[Trial]] = {}
    for t in done:
        by_number.setdefault(t.number, []).append(t)
    for chain in by_number.values():
        if len(chain) > 1:
            chain = sorted(chain, key=lambda t: t.rung)
            fig.add_trace(go.Scatter(x=[t.ratio for t in chain], y=[100 * t.accuracy for t in chain], mode="lines",
                                     line={"width": 0.6, "color": "rgba(120,120,120,0.5)"}, hoverinfo="skip",
                                     showlegend=False))
    for rung in sorted({t.rung for t in done}):
        at = [t for t in done if t.rung == rung]
        steps = at[0].steps
        name = f"rung {rung}" + (f" ({steps:,} steps)" if steps else "") + (f" - {mark}" if rung == fit_rung else "")
        fig.add_trace(go.Scatter(
            x=[t.ratio for t in at], y=[100 * t.accuracy for t in at], mode="markers", name=name,
            marker={"symbol": RUNG_SYMBOLS[rung % len(RUNG_SYMBOLS)], "size": 7 + 2 * rung},
            text=[_trial_hover(t, f"rung {rung}") for t in at], hoverinfo="text"))
    fig.update_layout(xaxis={"title": "FLOPs ratio c", "type": "log"}, yaxis={"title": "held-out top-1 %"},
                      height=420, margin={"t": 30}, legend={"orientation": "h"})
    return fig
