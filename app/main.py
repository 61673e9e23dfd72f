"""The tinyscale design assistant: pick a FLOPs budget, get the (r, w, d) recipe of your study.

Start it with `tinyscale app [--study DIR]`. A thin layer: every number comes from the library
(`tinyscale.assistant.answers` for the study-level computations, `tinyscale.assistant.plots` for the figures,
`tinyscale.space.summary` for the recipe fields, `tinyscale.export` for the downloads).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import streamlit as st

from app.panels import (REFRESH_SECONDS, devices_panel, export_panel, no_study_page, recipe_panel, rungs_panel,
                        status_panel, trust_panel)
from tinyscale.defaults import DEMO_STUDY_DIR, DEVICES_ENV, STUDY_ENV


def study_dir_from_args() -> Path:
    """`--study DIR` after `streamlit run app/main.py --`, else $TINYSCALE_STUDY, else the demo's."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--study", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:])
    return Path(args.study or os.environ.get(STUDY_ENV) or DEMO_STUDY_DIR).resolve()


def device_paths_from_env() -> list[str]:
    """Latency tables to offer besides the study's: $TINYSCALE_DEVICES (`tinyscale app --latency-table`)."""
    return [p for p in os.environ.get(DEVICES_ENV, "").split(os.pathsep) if p]


BUDGET_MACS, BUDGET_LATENCY = "MACs ratio", "Latency (ms)"


# ----------------------------------------------------------------------------------- cached
@st.cache_resource(show_spinner="Reading the fit (or fitting the accuracy surface and the curves c → r, c → d)…", max_entries=8)
def cached_fit(study_dir: str, fit_stamp: float, n_completed: int, _trials, _config):
    """Keyed by the fit file's mtime and the completed-trial count: a new trial or a new
    `tinyscale fit` refreshes it, a slider move does not."""
    from tinyscale.assistant.fit_source import load_fit

    return load_fit(study_dir, _trials, _config)


@st.cache_resource(show_spinner="Solving the recipe curves…", max_entries=8)
def cached_curves(study_dir: str, fit_stamp: float, n_completed: int, _fit_source, _config):
    from tinyscale.assistant.answers import curves

    return curves(_fit_source, _config)


def main() -> None:
    st.set_page_config(page_title="tinyscale design assistant", page_icon="🧊", layout="wide")
    st.title("tinyscale design assistant")
    study_dir = study_dir_from_args()

    from tinyscale.study.ordering import describe_promotion
    from tinyscale.study.store import CONFIG_FILE, TRIALS_FILE, Study

    if not (study_dir / CONFIG_FILE).exists() and not (study_dir / TRIALS_FILE).exists():
        no_study_page(study_dir)
        return
    try:
        with Study.open(study_dir) as study:
            config = study.config
            trials = study.trials()
            running = study.progress()
            # A halving study's panels show one run per recipe, at its fit rung
            # (tinyscale.study.halving.fit_rung); the fit may read every rung (load_fit, as
            # `tinyscale fit` does), and the rungs tab shows every run.
            halving = config.schedule == "halving"
            fit_trials = study.fit_trials()
            runs_done = len(study.runs("completed"))
            rungs = (study.runs(), study.rung_summary(), study.fit_rung(),
                     describe_promotion(study)) if halving else None
    except ValueError as exc:
        st.error(f"The study cannot be read. {exc}")
        st.markdown("Move the directory aside and run `bash scripts/demo.sh` (or `tinyscale study`) to create a new one.")
        return
    completed = fit_trials
    from tinyscale.assistant.answers import device_tables
    from tinyscale.assistant.fit_source import plotted_runs

    devices = device_tables(study_dir, device_paths_from_env())
    usable_devices = [d for d in devices if d.table is not None]

    active = running.counts.get("running", 0) + running.counts.get("pending", 0)
    unfinished = bool(active or running.budget_open)
    with st.sidebar:
        st.fragment(status_panel, run_every=REFRESH_SECONDS if unfinished else None)(study_dir, runs_done)
        devices_panel(devices)

    from tinyscale.fit.gp import FIT_FILE

    fit_path = study_dir / FIT_FILE
    stamp = fit_path.stat().st_mtime if fit_path.exists() else 0.0
    try:
        source = cached_fit(str(study_dir), stamp, runs_done, fit_trials, config)
        drawn = cached_curves(str(study_dir), stamp, runs_done, source, config)
    except ValueError as exc:
        st.warning(f"No recipe curves yet: {exc}.")
        source = None
    if source is not None and source.note:
        st.caption(source.note)

    if source is None:
        st.info("The recipe panel opens once the study has enough completed trials to fit.")
    else:
        design_panel(study_dir, source, config, drawn, plotted_runs(source, completed, rungs and rungs[0]),
                     usable_devices)
    trust_panel(study_dir, len(completed), source, None if rungs is None else rungs[1])
    if rungs is not None:
        rungs_panel(*rungs, fit=None if source is None else source.solver.fit)

    names = ["Accuracy vs MACs", *(["Accuracy vs latency"] if usable_devices else []), "Compare", "Trials",
             "Fit diagnostics"]
    tabs = dict(zip(names, st.tabs(names)))
    with tabs["Accuracy vs MACs"]:
        accuracy_tab(completed, source)
    if usable_devices:
        with tabs["Accuracy vs latency"]:
            latency_tab(completed, source, usable_devices)
    with tabs["Compare"]:
        compare_tab(study_dir)
    with tabs["Trials"]:
        st.dataframe([{"trial": t.number, "state": t.state, "proposed by": t.proposed_by, "r": t.recipe.r,
                       "w": t.recipe.w, "d": t.recipe.d, "px": t.recipe.resolution, "ratio": t.ratio, "MACs": t.macs,
                       "params": t.params, "accuracy": t.accuracy, "reason": t.reason} for t in trials],
                     hide_index=True)
    with tabs["Fit diagnostics"]:
        if source is not None:
            from tinyscale.fit.report import format_fit

            st.code(format_fit(source.solver.fit), language=None)


@st.fragment
def design_panel(study_dir: Path, source, config, drawn, completed, devices=()) -> None:
    """Slider, recipe, downloads and the r/w/d curves with the slider marked (``completed``: one
    run per recipe, fit_source.plotted_runs). A fragment: a slider move reruns only this, not the
    study read, the accuracy plot or the tables."""
    from tinyscale.assistant import plots
    from tinyscale.assistant.answers import noise_sentence
    from tinyscale.assistant.fit_source import fit_models, ridge_rung

    answer = target_controls(source, config, drawn, devices)
    left, right = st.columns([5, 6], gap="large")
    with left:
        if answer is not None:
            recipe_panel(answer, devices)
            export_panel(study_dir, answer, source)
    with right:
        figure = plots.scaling_figure(drawn.answers, completed, fit_models(source, completed), drawn.efficientnet,
                                      drawn.tinynets, answer)
        st.plotly_chart(figure, key="scaling")
        st.caption("EfficientNet compound scaling with φ solved against the counted cost; TinyNet-A..E "
                   "at their counted ratio at this study's base resolution.")
    fit = source.solver.fit
    if answer is not None and fit.surface is not None:
        cut = fit.surface.slice(config, answer.target)
        st.plotly_chart(plots.surface_figure(cut, answer, completed), key="surface")
        read = fit.rungs or ()
        fitted_on = (f"{len(fit.data.numbers)} completed runs of {len(set(fit.data.numbers))} recipes across rungs "
                     f"{', '.join(map(str, read))}, read at rung {ridge_rung(fit)}" if len(read) > 1
                     else f"all {len(fit.data.numbers)} completed trials")
        st.caption(f"The accuracy surface (method `surface`, fitted on {fitted_on}) at this c: contours of the predicted held-out top-1 over resolution and depth, blank "
                   "where no width the study explored reaches c. ★ is the best (r, d) on the surface at c, ✕ the "
                   "recipe (the curves through the ridge, so smoother than ★); white dots are trials within 1.5× "
                   "of c with their measured accuracy on hover. "
                   + noise_sentence(fit.diagnostics.surface, across=len(read) > 1))


def target_controls(source, config, drawn, devices=()):
    """The budget switch (when a device table is loaded), then the MACs controls or the
    latency ones -> the solver's answer."""
    if devices:
        budget = st.radio("Budget", [BUDGET_MACS, BUDGET_LATENCY], horizontal=True, key="budget",
                          help="a FLOPs ratio of B0, or a latency in milliseconds predicted on a device table")
        if budget == BUDGET_LATENCY:
            return latency_controls(source, drawn, devices)
    return macs_controls(source, config, drawn.stops)


def latency_controls(source, drawn, devices):
    """Device choice and the slider in milliseconds -> the recipe meeting that latency."""
    from tinyscale.assistant.answers import latency_answer, latency_stops

    names = [d.name for d in devices]
    name = st.selectbox("Device profile", names, key="device") if len(devices) > 1 else names[0]
    device = devices[names.index(name)]
    stops = latency_stops(drawn.answers, device.table)
    default = stops[len(stops) // 2]
    ms = st.select_slider("Target latency (log scale), predicted on the device", options=stops, value=default,
                          key=f"latency::{device.path}", format_func=lambda v: f"{v:g} ms")
    try:
        answer, lat = latency_answer(source.solver, device.table, ms)
    except ValueError as exc:
        st.error(str(exc))
        return None
    steps = (f"; the rounding allows {lat.below_us / 1000:.3f} or {lat.above_us / 1000:.3f} ms"
             if lat.below_us is not None else "; no width meets it at the fit's r and d, the fit's answer is shown")
    st.caption(f"target **{ms:g} ms** on {device.name}: predicted **{lat.predicted_us / 1000:.3f} ms**{steps} · "
               f"found at c = {lat.at_ratio.target:.4g}, w solved for the latency")
    return answer


def macs_controls(source, config, stops):
    """The target slider (log-spaced ratios) and the optional exact budget -> the solver's answer."""
    from tinyscale.fit.solve import NoteKind

    solver = source.solver
    base = solver.baseline_macs
    lo, hi = config.window
    default = min(stops, key=lambda s: abs((s / (lo * hi) ** 0.5) - 1))

    def clear_exact() -> None:
        st.session_state["macs_exact"] = None

    slider_col, exact_col = st.columns([4, 1])
    c = slider_col.select_slider(
        "Target FLOPs (log scale): ratio of EfficientNet-B0 · MACs", options=stops, value=default, key="target",
        format_func=lambda c: f"{c:.4g} × B0 · {c * base / 1e6:.3g}M MACs", on_change=clear_exact,
    )
    exact = exact_col.number_input("…or exact M MACs", help="an exact budget in millions of MACs; empty: use the slider",
                            min_value=0.0, value=None, step=0.1, format="%.4f", key="macs_exact")
    try:
        answer = solver.solve_macs(exact * 1e6) if exact else solver.solve(c)
    except ValueError as exc:
        st.error(str(exc))
        return None
    if answer.width_clamped:
        st.error(f"Target outside what the {config.rules} rule set can build around this study: "
                 + "; ".join(answer.notes_of(NoteKind.WIDTH_CLAMPED))
                 + ". The recipe shown is the closest buildable one.")
    return answer


def accuracy_tab(completed, source) -> None:
    from tinyscale.assistant import plots
    from tinyscale.assistant.answers import accuracy_selection

    if not completed:
        st.info("No completed trials yet.")
        return
    try:
        selection, note = accuracy_selection(source, completed)
    except ValueError as exc:
        st.warning(str(exc))
        return
    if note:
        st.caption(note)
    st.plotly_chart(plots.accuracy_figure(selection), key="accuracy")


def latency_tab(completed, source, devices) -> None:
    from tinyscale.assistant import plots
    from tinyscale.assistant.answers import latency_selection

    if not completed:
        st.info("No completed trials yet.")
        return
    names = [d.name for d in devices]
    name = st.selectbox("Device profile", names, key="accuracy_device") if len(devices) > 1 else names[0]
    table = devices[names.index(name)].table
    try:
        selection = latency_selection(source, completed, table)
    except ValueError as exc:
        st.warning(str(exc))
        return
    st.caption(f"Pareto selection on (accuracy, predicted latency on {name}), k={selection.k}; the fit's own "
               "selection is on MACs unless it was made with `tinyscale fit --objective latency`.")
    st.plotly_chart(plots.accuracy_figure(selection, latency_ms=lambda r: table.predict_us(r) / 1000.0),
                    key="accuracy_latency")


def compare_tab(study_dir: Path) -> None:
    try:
        from tinyscale.assistant.answers import comparison_words
        from tinyscale.evaluate.compare import comparison_figure, comparison_table, load_comparison

        comparisons = {budget: load_comparison(study_dir, budget) for budget in ("macs", "latency")}
        words = {budget: comparison_words(study_dir, c, "c" if budget == "macs" else "ms")
                 for budget, c in comparisons.items()}
    except (ImportError, ValueError) as exc:
        st.warning(f"The comparison results cannot be read: {exc}")
        return
    if comparisons["macs"] is None and comparisons["latency"] is None:
        st.info(words["macs"])
        return
    for budget, comparison in comparisons.items():
        if comparison is None:
            continue
        if budget == "latency":
            st.markdown(f"**At matched latency** (ms predicted on {comparison.budget.get('device', 'the device table')})")
        elif comparisons["latency"] is not None:
            st.markdown("**At matched FLOPs**")
        st.dataframe(comparison_table(comparison), hide_index=True)
        st.plotly_chart(comparison_figure(comparison), key=f"compare_{budget}")
        if words[budget]:  # the settled check (as far as its re-runs are stored); did the fit foresee the order?
            st.markdown(words[budget])

main()
