"""The design assistant's panels that stand on their own: the page without a study, the
study's status, the device tables, the recipe at the slider, its downloads, how far to trust it,
and a halving study's rungs. `app/main.py` lays them out; every number comes from the library.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from tinyscale.defaults import DEMO_STUDY_DIR

REFRESH_SECONDS = 3  # how often the status panel re-reads a running study


def no_study_page(study_dir: Path) -> None:
    st.info(f"No study yet at `{study_dir}`.")
    st.markdown(
        "The design assistant shows the recipe curves of a **study**: sampled shrinkings of "
        "EfficientNet-B0, each trained briefly on your data. Create the demo study "
        f"(Fashion-MNIST, resumable; it lands in `./{DEMO_STUDY_DIR}`) with one command from the "
        "repository root:"
    )
    st.code("bash scripts/demo.sh", language="bash")
    st.markdown(
        "It runs `tinyscale demo` (study, fit, then this page). To open another study: "
        "`tinyscale app --study DIR`."
    )


def status_panel(study_dir: Path, n_completed_shown: int) -> None:
    """Trial counts, best so far, progress and failures, and the acquisition's next proposals;
    re-run every few seconds while the study is still running, and the whole page when a new
    run completes (``n_completed_shown``: the completed runs, every rung, the page was drawn with)."""
    from tinyscale.study.samplers.botorch import proposed_by_acquisition
    from tinyscale.study.store import Study
    from tinyscale.study.timing import duration, study_time_left

    try:
        with Study.open(study_dir) as study:
            progress = study.progress()
            failed = study.trials("failed")
            upcoming = study.trials("pending") + study.trials("running")
            runs_done = len(study.runs("completed"))
            halving = study.config.schedule == "halving"
            rungs = study.rung_summary() if halving else []
            left, workers = study_time_left(study)
    except ValueError as exc:
        st.error(str(exc))
        return
    counts = progress.counts
    st.subheader("Study")
    st.caption(f"`{study_dir}`")
    if halving:  # a recipe trains once per rung it reaches: recipes and runs differ
        cols = st.columns(3)
        cols[0].metric("recipes", counts.get("completed", 0), help="completed at rung 0")
        cols[1].metric("runs", runs_done, help="completed at every rung")
        cols[2].metric("failed", counts.get("failed", 0))
    else:
        cols = st.columns(2)
        cols[0].metric("completed", counts.get("completed", 0))
        cols[1].metric("failed", counts.get("failed", 0))
    reached = [r for r in rungs if r.best is not None]
    if halving and reached:
        # The longest runs' best, and each rung's: rung 0's alone stands still at its brief
        # runs' level while the longer runs, the ones the fit reads its ridge at, climb past it.
        top = reached[-1]
        st.metric(f"best accuracy at rung {top.rung}", f"{top.best:.2%}",
                  help=f"the best of the longest runs ({top.steps:,} steps); longer runs score higher, so the "
                       "Rungs panel compares recipes within a rung")
        st.caption("best by rung: " + " / ".join("-" if r.best is None else f"{r.best:.1%}" for r in rungs))
    elif progress.best_accuracy is not None and not halving:
        st.metric("best accuracy so far", f"{progress.best_accuracy:.2%}", help=f"trial {progress.best_trial}")
    target, step_budget = progress.target_trials, progress.budget_steps
    if target:
        st.progress(min(1.0, progress.finished / target), text=f"{progress.finished} of {target} trials")
    elif step_budget:
        st.progress(min(1.0, progress.steps_spent / step_budget),
                    text=f"{progress.steps_spent:,} of {step_budget:,} training steps")
    active = counts.get("running", 0) + counts.get("pending", 0)
    if active or progress.budget_open:
        eta = "" if left is None else (f"; {duration(left)} left at its runs' speed on {workers} "
                                       f"worker{'s' if workers != 1 else ''}")
        st.caption(f"running: {counts.get('running', 0)} trial(s) in flight{eta}; refreshing every {REFRESH_SECONDS} s")
    proposed = [t for t in upcoming if proposed_by_acquisition(t)]
    if proposed:
        st.caption("next, proposed by the botorch acquisition (◆ in the plots): " + "; ".join(
            f"trial {t.number}: r={t.recipe.r:g} w={t.recipe.w:g} d={t.recipe.d:g} (c={t.ratio:.3f})"
            for t in sorted(proposed, key=lambda t: t.number)))
    if failed:
        with st.expander(f"{len(failed)} failed trial(s)"):
            st.dataframe([{"trial": t.number, "r": t.recipe.r, "w": t.recipe.w, "d": t.recipe.d,
                           "reason": t.reason} for t in failed], hide_index=True)
    if runs_done != n_completed_shown:
        st.rerun(scope="app")  # new results: refit and redraw everything


def devices_panel(devices) -> None:
    """The latency tables loaded, and the ones that could not be read."""
    if not devices:
        return
    st.markdown("**Device profiles**")
    for d in devices:
        if d.table is not None:
            st.caption(f"{d.name} ({len(d.table.entries)} parts)")
        else:
            st.warning(f"{d.path} not loaded: {d.error}")


def recipe_panel(answer, devices=()) -> None:
    import pandas as pd

    from tinyscale.fit.solve import NoteKind
    from tinyscale.space.summary import summarize

    s = summarize(answer.recipe)
    cols = st.columns(3)
    cols[0].metric("r (resolution)", f"{s.r:g}")
    cols[1].metric("w (width)", f"{s.w:g}")
    cols[2].metric("d (depth)", f"{s.d:g}")
    cols = st.columns(3)
    cols[0].metric("input", f"{s.resolution} px")
    cols[1].metric("MACs", f"{s.macs / 1e6:.3f}M", help=f"{s.macs:,} MACs, ratio {s.ratio:.4f} of B0")
    cols[2].metric("params", f"{s.params / 1e6:.3f}M", help=f"{s.params:,} parameters")
    st.caption(
        f"achieved ratio **{answer.achieved:.4f}** for target {answer.target:.4f} "
        f"(the channel rounding allows {answer.ratio_below:.4f} or {answer.ratio_above:.4f}) · "
        f"r band [{answer.r_band[0]:.3f}, {answer.r_band[1]:.3f}] around GP mean {answer.r_mean:.3f} · "
        f"d band [{answer.d_band[0]:.3f}, {answer.d_band[1]:.3f}] around GP mean {answer.d_mean:.3f} (95 %)"
    )
    if devices:
        cols = st.columns(min(3, len(devices)))
        for i, d in enumerate(devices):
            ms = d.table.predict_us(answer.recipe) / 1000.0
            cols[i % len(cols)].metric(f"latency · {d.name}", f"{ms:.3f} ms",
                                       help=f"predicted from the table at {d.path}")
    if answer.extrapolated:
        lo, hi = answer.c_range
        st.warning(f"Extrapolation: c = {answer.target:.4g} is outside the studied range "
                   f"{lo:.4g}–{hi:.4g}; the GP curves are guesses here.")
    for note in answer.notes:
        if note.kind != NoteKind.EXTRAPOLATED:  # shown as the warning above
            st.info(note.text)
    columns = ["stem", *(str(i) for i in range(1, len(s.depths) + 1)), "head"]
    st.markdown(f"**Per-stage depths and widths**: stem, stages 1-{len(s.depths)}, head "
                f"({sum(s.depths)} blocks, {s.rules} rules)")
    st.table(pd.DataFrame([[1, *s.depths, 1], [s.stem, *s.widths, s.head]], index=["blocks", "channels"],
                          columns=columns))


def export_panel(study_dir: Path, answer, source) -> None:
    """Download buttons for the library's export of the recipe at the slider. The bytes are
    built only when a button is clicked (deferred), so moving the slider stays fast."""
    from tinyscale.assistant.answers import export_file, export_provenance
    from tinyscale.export import MANIFEST, ONNX, WEIGHTS, onnx_available

    recipe = answer.recipe
    provenance = export_provenance(study_dir, answer, source)
    onnx_missing = onnx_available()
    stem = f"tinyscale-r{recipe.r:g}-w{recipe.w:g}-d{recipe.d:g}"
    cols = st.columns(3)
    buttons = ((MANIFEST, "recipe.json", "application/json"), (WEIGHTS, "safetensors", "application/octet-stream"),
               (ONNX, "ONNX", "application/octet-stream"))
    for col, (name, label, mime) in zip(cols, buttons):
        if name == ONNX and onnx_missing:
            col.caption(onnx_missing)
            continue
        file_name = name if name == MANIFEST else f"{stem}.{name.rsplit('.', 1)[1]}"
        col.download_button(f"⬇ {label}", data=lambda name=name: export_file(recipe, name, provenance),
                            file_name=file_name, mime=mime, key=f"dl-{name}", on_click="ignore",
                            help=f"{name} of this recipe, built when clicked")
    st.caption("Weights are randomly initialised (`tinyscale export DIR --train-steps N` trains them on the "
               "study's data). ONNX is exported with torch and checked against onnxruntime before it is "
               "served, which takes a few seconds.")


def trust_panel(study_dir: Path, n_completed: int, source=None, rungs=None) -> None:
    """How far to trust this recipe: `tinyscale fidelity`'s stored verdict, or how to measure it;
    with the fit (``source``), how its accuracy surface ranks the check's recipes; with a study
    in rungs' summaries (``rungs``), what its stop rule found."""
    from tinyscale.assistant.answers import trust

    t = trust(study_dir, n_completed, None if source is None else source.solver.fit.trial_accuracy(), rungs)
    st.subheader("How far to trust this recipe")
    if t.verdict is None:
        (st.warning if t.note else st.info)(t.summary)
        if t.note:
            st.caption(t.note)
        st.code(t.command, language="bash")
        return
    {"trustworthy": st.success, "weak": st.warning, "untrustworthy": st.error}[t.verdict](t.summary)
    for col, (label, value, help_text) in zip(st.columns(len(t.metrics)), t.metrics):
        col.metric(label, value, help=help_text)
    st.markdown("\n".join(f"- {reason}" for reason in t.reasons))
    if t.note:
        st.caption(f"{t.note}: `{t.command}`")


def rungs_panel(runs, summary, fit_rung: int, promotion: str = "", fit=None) -> None:
    """A halving study's rungs: each one's steps and recipes, how it ranks like the next (the
    stop rule's rho), how its promotions were decided (``promotion``, a line of text), and every
    run with a marker per rung."""
    from tinyscale.assistant import plots
    from tinyscale.assistant.fit_source import ridge_rung
    from tinyscale.study.halving import SETTLED_RHO

    read = None if fit is None else fit.rungs
    across = bool(read and len(read) > 1)  # a fit across rungs: its ridge is read at the top one
    st.subheader("Rungs: which recipes were trained longer")
    st.caption(f"Rung k trains for {summary[0].steps:,} x eta^k steps; the best of a rung at matched cost are "
               f"promoted. Once two rungs rank the promoted recipes alike (Spearman rho >= {SETTLED_RHO} at "
               f"matched cost) the study stops lengthening. The recipe above is fitted "
               + (f"on every rung's runs (rungs {', '.join(map(str, read))}) and read at rung {ridge_rung(fit)}, "
                  "the longest runs." if across else f"on rung {fit_rung}.")
               + (f" {promotion[0].upper()}{promotion[1:]}." if promotion else ""))
    for col, r in zip(st.columns(len(summary)), summary):
        a = r.agreement
        rho = "" if a is None or a.rho is None else f"rho {a.rho:+.2f} with rung {r.rung + 1} ({a.pairs} recipes)" + (
            f": no better than chance (p = {a.p_value:.2f})" if a.chance else "")
        col.metric(f"rung {r.rung}: {r.steps:,} steps", f"{r.completed} recipes",
                   delta=("settled" if a is not None and a.settled else None), help=rho or None)
        if rho:
            col.caption(rho)
    mark = (ridge_rung(fit), "the ridge") if across else (fit_rung, "the fit")
    st.plotly_chart(plots.rungs_figure(runs, *mark), key="rungs")
