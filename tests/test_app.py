"""The Streamlit page driven by streamlit.testing's AppTest: the recipe it shows is the library's
recipe for the same target, the downloads load back, and bad states are explained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _app_fixtures import FAILED_REASON, small_study

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
TIMEOUT = 120  # the first run imports torch and botorch


@pytest.fixture
def media(monkeypatch):
    """The media managers AppTest creates, so a test can fetch what a download button serves
    (deferred downloads are generated exactly as the server would on a click)."""
    import streamlit.testing.v1.app_test as app_test_module
    from streamlit.runtime.media_file_manager import MediaFileManager

    managers: list = []

    class Recording(MediaFileManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            managers.append(self)

    monkeypatch.setattr(app_test_module, "MediaFileManager", Recording)
    return managers


def download(button, managers) -> bytes:
    proto = button.proto
    manager = managers[-1]
    url = manager.execute_deferred(proto.deferred_file_id) if proto.HasField("deferred_file_id") else proto.url
    file_id = url.rsplit("/", 1)[-1].split(".")[0]
    return manager._storage.get_file(file_id).content


def run_app(monkeypatch, study_dir: Path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TINYSCALE_STUDY", str(study_dir))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at) -> str:
    parts = [e.value for kind in ("markdown", "info", "warning", "error", "caption", "code") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def slider_stops(at) -> list[float]:
    return [float(option.split(" ")[0]) for option in at.select_slider[0].options]


def library_recipe(capsys, study: Path, *target: str) -> dict:
    """`tinyscale recipe DIR --ratio C --json` (or --macs M): the library's answer."""
    from tinyscale.cli import main

    capsys.readouterr()
    assert main(["recipe", str(study), *target, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def assert_shows(at, fields: dict) -> None:
    shown = metrics(at)
    assert shown["r (resolution)"] == f"{fields['r']:g}"
    assert shown["w (width)"] == f"{fields['w']:g}"
    assert shown["d (depth)"] == f"{fields['d']:g}"
    assert shown["input"] == f"{fields['resolution']} px"
    assert shown["MACs"] == f"{fields['macs'] / 1e6:.3f}M"
    assert shown["params"] == f"{fields['params'] / 1e6:.3f}M"
    table = at.main.table[0].value
    assert table.loc["blocks"].tolist() == [1, *fields["depths"], 1]
    assert table.loc["channels"].tolist() == [fields["stem"], *fields["widths"], fields["head"]]
    shown_text = texts(at)
    assert f"achieved ratio **{fields['achieved']:.4f}**" in shown_text
    assert f"r band [{fields['r_band'][0]:.3f}, {fields['r_band'][1]:.3f}]" in shown_text
    assert f"d band [{fields['d_band'][0]:.3f}, {fields['d_band'][1]:.3f}]" in shown_text
    assert ("Extrapolation" in shown_text) == fields["extrapolated"]


def test_slider_recipe_is_the_library_recipe(monkeypatch, capsys, fitted_study_dir, media):
    at = run_app(monkeypatch, fitted_study_dir)
    stops = slider_stops(at)
    assert stops == sorted(stops) and len(stops) > 50
    # Log-spaced: consecutive stops have a near-constant ratio.
    steps = [b / a for a, b in zip(stops, stops[1:])]
    assert max(steps) / min(steps) < 1.01
    assert_shows(at, library_recipe(capsys, fitted_study_dir, "--ratio", repr(at.select_slider[0].value)))
    for c in (stops[2], stops[len(stops) // 4], stops[3 * len(stops) // 4]):
        at.select_slider[0].set_value(c).run()
        assert not at.exception
        assert_shows(at, library_recipe(capsys, fitted_study_dir, "--ratio", repr(c)))

    from tinyscale.fit.solve import RecipeSolver

    answer = RecipeSolver.load(fitted_study_dir).solve(c)

    # The downloads are the library's export of that recipe; they load back.
    buttons = {b.label: b for b in at.get("download_button")}
    manifest = json.loads(download(buttons["⬇ recipe.json"], media))
    assert manifest["recipe"] == answer.recipe.to_dict()
    assert manifest["macs"] == answer.macs and manifest["params"] == answer.params
    assert manifest["provenance"]["query"]["target"] == pytest.approx(c)

    import torch
    from safetensors.torch import load

    from tinyscale.space.model import build_model

    state = load(download(buttons["⬇ safetensors"], media))
    model = build_model(answer.recipe)
    model.load_state_dict(state, strict=True)
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == answer.params

    import importlib.util

    if importlib.util.find_spec("onnxruntime") is not None:
        import numpy as np
        import onnxruntime as ort

        session = ort.InferenceSession(download(buttons["⬇ ONNX"], media), providers=["CPUExecutionProvider"])
        px = answer.recipe.resolution
        x = np.random.default_rng(0).standard_normal((2, 3, px, px)).astype(np.float32)
        with torch.no_grad():
            expected = model.eval()(torch.from_numpy(x)).numpy()
        (got,) = session.run(None, {session.get_inputs()[0].name: x})
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_exact_macs_and_out_of_reach_targets(monkeypatch, capsys, fitted_study_dir):
    from tinyscale.fit.solve import RecipeSolver

    at = run_app(monkeypatch, fitted_study_dir)
    solver = RecipeSolver.load(fitted_study_dir)
    at.number_input(key="macs_exact").set_value(0.9).run()
    assert not at.exception
    assert_shows(at, library_recipe(capsys, fitted_study_dir, "--macs", "900000"))
    # Far below the study's window: a GP extrapolation, flagged.
    at.number_input(key="macs_exact").set_value(0.05).run()
    assert "Extrapolation" in texts(at)
    # Beyond anything a width can reach at the GP's (r, d): explained, not a traceback.
    at.number_input(key="macs_exact").set_value(5000.0).run()
    assert not at.exception
    assert "Target outside what the tinynet rule set can build" in texts(at)
    assert solver.solve_macs(5000e6).width_clamped


def test_notes_are_placed_by_kind_not_wording(monkeypatch, fitted_study_dir):
    # The page decides where a note goes (the width-clamp error, the info boxes, or nowhere
    # because the extrapolation warning already says it) from the note's kind: reworded notes
    # of the same kinds land in the same places.
    from dataclasses import replace

    from tinyscale.fit.solve import Note, NoteKind, RecipeSolver

    codes = {NoteKind.CLIPPED: "alpha", NoteKind.EXTRAPOLATED: "beta", NoteKind.WIDTH_CLAMPED: "gamma",
             NoteKind.UNDETERMINED: "delta", NoteKind.WIDTH_LIMITED: "epsilon", NoteKind.BOX_EDGE: "zeta",
             NoteKind.ARCH_LIMIT: "eta"}
    assert set(codes) == set(NoteKind)
    real_solve = RecipeSolver.solve

    def reworded(self, c):
        answer = real_solve(self, c)
        return replace(answer, notes=tuple(Note(n.kind, f"reworded {codes[n.kind]} {i}")
                                           for i, n in enumerate(answer.notes)))

    monkeypatch.setattr(RecipeSolver, "solve", reworded)
    solver = RecipeSolver.load(fitted_study_dir)
    at = run_app(monkeypatch, fitted_study_dir)
    for macs in (0.05, 5000.0):  # far outside the window: extrapolated; at 5000M beyond any width too
        at.number_input(key="macs_exact").set_value(macs).run()
        assert not at.exception
        answer = solver.solve_macs(macs * 1e6)
        assert answer.extrapolated and NoteKind.EXTRAPOLATED in [n.kind for n in answer.notes]
        assert "Extrapolation" in " ".join(w.value for w in at.warning)
        shown = [i.value for i in at.info if i.value.startswith("reworded")]
        assert shown == [n.text for n in answer.notes if n.kind != NoteKind.EXTRAPOLATED]
        errors = " ".join(e.value for e in at.error)
        assert answer.width_clamped or macs != 5000.0
        assert ("Target outside what" in errors) == answer.width_clamped
        for text in answer.notes_of(NoteKind.WIDTH_CLAMPED):
            assert text in errors


def _refit_then_add_better_trials(study: Path):
    """Refit the study with a non-default k and seed (as `tinyscale fit --pareto-k 8 --seed 5`),
    then add three trials that dominate models the fit used: a fresh selection would now differ
    from the saved fit's. Returns (the saved fit, the new trials' numbers)."""
    from types import SimpleNamespace

    from _fit_fixtures import make_trial
    from tinyscale.fit.gp import fit_scaling
    from tinyscale.fit.pareto import select
    from tinyscale.study.store import Study

    with Study.open(study) as s:
        trials = s.trials()
        fit = fit_scaling(trials, s.config, method="pareto", k=8, seed=5, source=str(study))
        fit.save(study)
        used = sorted((t for t in trials if t.number in set(fit.data.numbers)), key=lambda t: t.macs)
        number = max(t.number for t in trials) + 1
        new = []
        for t in (used[0], used[len(used) // 2], used[-1]):  # same network, higher accuracy
            better = make_trial(number, t.recipe.r, t.recipe.w, t.recipe.d, min(0.999, t.accuracy + 0.05), s.config)
            s.start_trial(number, better.recipe, seed=number)
            s.finish_trial(number, SimpleNamespace(accuracy=better.accuracy, loss=1.0, steps=10))
            new.append(number)
            number += 1
        completed = s.trials("completed")
    fresh = {t.number for t in select(completed, fit.k).selected}
    assert fresh != set(fit.data.numbers)  # re-selecting now would highlight other models
    return fit, new


def test_accuracy_selection_is_the_saved_fits(fitted_study_dir):
    from tinyscale.assistant.answers import accuracy_selection
    from tinyscale.assistant.fit_source import load_fit
    from tinyscale.study.store import Study

    fit, new = _refit_then_add_better_trials(fitted_study_dir)
    with Study.open(fitted_study_dir) as s:
        trials, config = s.trials(), s.config
    completed = [t for t in trials if t.state == "completed"]
    selection, note = accuracy_selection(load_fit(fitted_study_dir, trials, config), completed)
    assert {t.number for t in selection.selected} == set(fit.data.numbers)
    assert selection.k == 8
    rows = {row["number"]: row for row in fit.selection_rows}
    assert {e.number: (e.rank, e.reason) for e in selection.entries} == {
        n: (row["rank"], row["reason"]) for n, row in rows.items()}
    assert [n for n, _ in selection.skipped] == new
    assert note.startswith("3 trial(s) completed after the fit are not drawn")
    # Without a fit: what `tinyscale fit` would select now, with its defaults.
    from tinyscale.fit.gp import default_pareto_k
    from tinyscale.fit.pareto import select

    fresh, note = accuracy_selection(None, completed)
    k = default_pareto_k(len(completed))
    assert fresh.k == k and fresh.selected == select(completed, k).selected and "No fit yet" in note


def test_accuracy_tab_highlights_the_models_the_fit_used(monkeypatch, fitted_study_dir):
    import re

    from tinyscale.assistant import plots

    fit, new = _refit_then_add_better_trials(fitted_study_dir)
    at = run_app(monkeypatch, fitted_study_dir)
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    (accuracy,) = [sp for sp in specs if any(t.get("name") == plots.TRACE_FRONT for t in sp["data"])]

    def numbers(name):
        (trace,) = [t for t in accuracy["data"] if t.get("name") == name]
        return {int(re.match(r"trial (\d+)<br>", text).group(1)) for text in trace["text"]}

    assert numbers(plots.TRACE_SELECTED) == set(fit.data.numbers)
    ranked = {row["number"] for row in fit.selection_rows}
    assert numbers(plots.TRACE_OTHER) == ranked - set(fit.data.numbers)
    assert "3 trial(s) completed after the fit are not drawn" in texts(at)


def test_study_status_and_failed_trials(monkeypatch, fitted_study_dir):
    at = run_app(monkeypatch, fitted_study_dir)
    side = {m.label: m.value for m in at.sidebar.get("metric")}
    assert side["completed"] == "24" and side["failed"] == "1"
    failed = at.sidebar.dataframe[0].value
    assert failed["reason"].tolist() == [FAILED_REASON]
    assert "refreshing every" not in texts(at)  # a finished study is not polled

    from tinyscale.study.store import Study

    with Study.open(fitted_study_dir) as s:  # a trial in flight: the panel says it refreshes itself
        s.start_trial(99, s.config.recipe(0.6, 0.6, 0.6), seed=99)
    at = run_app(monkeypatch, fitted_study_dir)
    assert "refreshing every" in texts(at) and " left at its runs' speed" not in texts(at)  # no budget known
    with Study.open(fitted_study_dir) as s:  # an hour's budget, 10 minutes spent, by 2 workers
        s.set_meta("budget_minutes", 60.0)
        s.set_meta("elapsed_seconds", 600.0)
        s.set_meta("workers", 2)
    at = run_app(monkeypatch, fitted_study_dir)
    assert "1 trial(s) in flight; about 50 min left at its runs' speed on 2 workers" in texts(at)


def test_plots_are_drawn(monkeypatch, fitted_study_dir):
    at = run_app(monkeypatch, fitted_study_dir)
    charts = at.get("plotly_chart")
    names = set()
    for chart in charts:
        spec = json.loads(chart.proto.spec)
        names |= {t.get("name") for t in spec["data"]}
    from tinyscale.assistant import plots

    assert {plots.TRACE_GP_MEAN, plots.TRACE_EFFICIENTNET, plots.TRACE_TINYNET, plots.TRACE_FRONT,
            plots.TRACE_TARGET} <= names


def test_no_study_explains_the_demo_command(monkeypatch, tmp_path):
    at = run_app(monkeypatch, tmp_path / "nothing-here")
    shown = texts(at)
    assert "No study yet" in shown and "bash scripts/demo.sh" in shown and "demo-study" in shown


@pytest.mark.parametrize("damage", ["config", "database"])
def test_corrupt_study_is_explained(monkeypatch, fitted_study_dir, damage):
    if damage == "config":
        (fitted_study_dir / "config.json").write_text("{not json", encoding="utf-8")
    else:
        for extra in fitted_study_dir.glob("trials.sqlite-*"):
            extra.unlink()
        (fitted_study_dir / "trials.sqlite").write_bytes(b"this is not a database" * 100)
    at = run_app(monkeypatch, fitted_study_dir)
    errors = " ".join(e.value for e in at.error)
    assert "cannot be read" in errors and ("config.json" in errors if damage == "config" else "trials.sqlite" in errors)


@pytest.mark.parametrize("fit_file", ["missing", "corrupt"])
def test_without_a_usable_saved_fit_the_page_fits(monkeypatch, fitted_study_dir, fit_file):
    from tinyscale.fit.gp import fit_scaling
    from tinyscale.fit.solve import RecipeSolver
    from tinyscale.study.store import Study

    if fit_file == "missing":
        (fitted_study_dir / "fit.json").unlink()
    else:
        (fitted_study_dir / "fit.json").write_text('{"kind": "tinyscale.ScalingFit", "format": 1}', encoding="utf-8")
    at = run_app(monkeypatch, fitted_study_dir)
    shown = texts(at)
    assert "fitted in the app from 24 completed trials" in shown
    assert ("Using a fresh fit instead" in shown) == (fit_file == "corrupt")
    assert not (fitted_study_dir / "fit.json").exists() or fit_file == "corrupt"  # the page never writes the study
    with Study.open(fitted_study_dir) as s:
        fresh = RecipeSolver(fit_scaling(s.trials(), s.config)).solve(at.select_slider[0].value)
    # Two independent fits of the same trials: equal up to floating-point noise, and r is shown
    # rounded to 4 decimals, so one unit in that place is the tolerance.
    assert float(metrics(at)["r (resolution)"]) == pytest.approx(fresh.recipe.r, abs=1.0001e-4)


def test_too_few_trials_is_explained(monkeypatch, tmp_path):
    at = run_app(monkeypatch, small_study(tmp_path / "small", n=3))
    shown = texts(at)
    assert "No recipe curves yet" in shown and "at least 5" in shown
    assert not at.select_slider and not at.get("download_button")
    assert at.get("plotly_chart")  # the trials' accuracy plot is still there


def test_app_command_serves_the_page_headless():
    from tinyscale.cli import build_parser
    from tinyscale.commands.app import DEMO_STUDY_DIR, streamlit_command

    args = build_parser().parse_args(["app"])
    assert args.study == DEMO_STUDY_DIR and args.port == 8501
    cmd = streamlit_command("somewhere", port=8765)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and Path(cmd[4]) == Path(APP)
    assert cmd[cmd.index("--server.headless") + 1] == "true" and cmd[cmd.index("--server.port") + 1] == "8765"
    assert cmd[-2:] == ["--study", str(Path("somewhere").resolve())]
    from tinyscale.cli import main

    assert main(["app", "--port", "0"]) == 2  # bad port: one line, no server


def test_app_command_on_a_busy_port_is_a_clear_error(capsys):
    import socket

    from tinyscale.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["app", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is not available" in err and "--port P" in err
    assert len(err.strip().splitlines()) == 1


def test_compare_results_are_shown(monkeypatch, fitted_study_dir):
    from tinyscale.evaluate.compare import CompareSettings, comparison_table, load_comparison, run_comparison

    # At this 32 px base compound scaling misses c = 0.5 by more than 2 %: its row is interpolated
    # between two trained recipes, and the page shows that too.
    settings = CompareSettings(ratios=(0.5,), strategies=("gp", "efficientnet"), seeds=(0,), steps=3,
                               batch_size=16, threads=1)
    run_comparison(fitted_study_dir, settings, progress=False)
    at = run_app(monkeypatch, fitted_study_dir)
    expected = comparison_table(load_comparison(fitted_study_dir))
    shown = [df.value for df in at.main.dataframe if "strategy" in df.value.columns]
    assert len(shown) == 1 and len(shown[0]) == len(expected) == 2
    assert shown[0]["strategy"].tolist() == [row["strategy"] for row in expected]
    assert shown[0]["interpolated"].tolist() == [row["interpolated"] for row in expected]
    assert expected[1]["strategy"] == "efficientnet" and expected[1]["interpolated"]
    assert shown[0]["acc_mean"].tolist() == pytest.approx([row["acc_mean"] for row in expected])
    from tinyscale.evaluate.compare.plots import comparison_figure

    figure = comparison_figure(load_comparison(fitted_study_dir))
    want = [(t.name, list(t.x), list(t.y)) for t in figure.data]
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    got = [[(t.get("name"), list(t.get("x", [])), list(t.get("y", []))) for t in spec["data"]] for spec in specs]
    assert want in got
    assert not [m.value for m in at.markdown if "settled check" in m.value]  # never ran: not mentioned
    # After `compare --settle-check`, the tab gives its verdict as the command printed it.
    from tinyscale.evaluate.compare.settle import format_settle_check, run_settle_check

    check = run_settle_check(fitted_study_dir, load_comparison(fitted_study_dir), progress=False)
    at = run_app(monkeypatch, fitted_study_dir)
    words = [m.value for m in at.markdown if m.value.startswith(format_settle_check(check))]
    # The verdict, then (the fixture's fit is a surface) whether the fit foresaw the order.
    assert len(words) == 1 and "**Did the fit foresee this?**" in words[0]


def test_a_comparison_at_matched_latency_is_shown_beside_the_macs_one(monkeypatch, fitted_study_dir, tmp_path):
    import shutil

    from _latency_fixtures import small_grid_table
    from tinyscale.evaluate.compare import (CompareSettings, comparison_table, default_latency_targets, load_comparison,
                                   run_comparison)

    directory = tmp_path / "latency-copy"
    shutil.copytree(fitted_study_dir, directory)
    table = small_grid_table()
    targets = default_latency_targets(directory, table)[:1]
    settings = CompareSettings(ratios=targets, strategies=("gp", "efficientnet"), seeds=(0,), steps=3,
                               batch_size=16, threads=1, budget="latency")
    run_comparison(directory, settings, progress=False, table=table)
    at = run_app(monkeypatch, directory)
    assert not at.exception
    expected = comparison_table(load_comparison(directory, "latency"))
    shown = [df.value for df in at.main.dataframe if "strategy" in df.value.columns]
    assert [df["target"].tolist() for df in shown] == [[row["target"] for row in expected]]
    assert "At matched latency" in " ".join(m.value for m in at.markdown)


def test_the_surface_at_the_slider_is_the_fits_surface(monkeypatch, fitted_study_dir):
    import numpy as np

    from tinyscale.assistant import plots
    from tinyscale.fit.gp import ScalingFit

    at = run_app(monkeypatch, fitted_study_dir)
    fit = ScalingFit.load(fitted_study_dir)
    assert fit.method == "surface"
    c = at.select_slider[0].value
    cut = fit.surface.slice(fit.config, c)
    specs = {json.loads(chart.proto.spec)["data"][0].get("name"): json.loads(chart.proto.spec)
             for chart in at.get("plotly_chart")}
    spec = specs[plots.TRACE_SURFACE]
    contour = spec["data"][0]
    z = np.array([[np.nan if v is None else v for v in row] for row in contour["z"]], dtype=float)
    np.testing.assert_allclose(z, 100 * cut.accuracy, rtol=1e-9, equal_nan=True)
    best = next(t for t in spec["data"] if t.get("name") == plots.TRACE_RIDGE)
    assert best["y"] == [pytest.approx(cut.best_r)] and best["x"] == [pytest.approx(cut.best_d)]
    assert "The accuracy surface" in texts(at)
    noise = fit.diagnostics.surface
    said = "fixed at the seed noise measured" if noise.noise == "measured" else "was inferred by the fit, not measured"
    assert said in texts(at) and f"{noise.noise_sd_points:.2f} points" in texts(at)
