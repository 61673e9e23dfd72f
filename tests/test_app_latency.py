"""The page's latency budget (AppTest): the switch, the slider in milliseconds, the recipe it
shows is the library's recipe for that latency, and every loaded device's latency is shown."""

from __future__ import annotations

import json

import pytest

from _app_fixtures import fitted_study
from _latency_fixtures import small_grid_table
from test_app import metrics, run_app, texts
import tinyscale.latency as L


@pytest.fixture(scope="module")
def study_source(tmp_path_factory):
    return tmp_path_factory.mktemp("app-lat-src")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("app-lat-tables")
    table = small_grid_table()
    own = table.save(d / "own.json")
    data = json.loads(own.read_text())
    data["profile"]["cpu"] = "Edge CPU 7"
    # Another device, twice as slow everywhere.
    for entry in data["entries"].values():
        entry["median_us"] *= 2
    other = d / "edge.json"
    other.write_text(json.dumps(data))
    return own, other


@pytest.fixture
def study(study_source, tmp_path, tables):
    directory = fitted_study(study_source, tmp_path / "study")
    L.keep_with_study(directory, L.LatencyTable.load(tables[0]))
    return directory


def test_without_a_device_there_is_no_budget_switch(monkeypatch, study_source, tmp_path):
    at = run_app(monkeypatch, fitted_study(study_source, tmp_path / "plain"))
    assert not at.radio and not any("latency" in m for m in metrics(at))


def test_latency_budget_gives_the_library_recipe(monkeypatch, study, tables):
    from tinyscale.fit.solve import RecipeSolver

    monkeypatch.setenv("TINYSCALE_DEVICES", str(tables[1]))
    at = run_app(monkeypatch, study)
    assert at.radio[0].options == ["MACs ratio", "Latency (ms)"] and at.radio[0].value == "MACs ratio"
    at.radio[0].set_value("Latency (ms)").run()
    assert not at.exception, [e.value for e in at.exception]
    slider = at.select_slider[0]
    stops = [float(o.split(" ")[0]) for o in slider.options]
    assert stops == sorted(stops) and len(stops) > 20 and all(o.endswith(" ms") for o in slider.options)
    solver = RecipeSolver.load(study)
    own = L.LatencyTable.load(study / L.LATENCY_FILE)
    edge = L.LatencyTable.load(tables[1])
    for ms in (stops[len(stops) // 4], stops[3 * len(stops) // 4]):
        at.select_slider[0].set_value(ms).run()
        assert not at.exception
        device = at.selectbox[0].value
        table = own if device.startswith("study's table") else edge
        ans = solver.solve_latency(ms * 1000, table.predict_us)
        shown = metrics(at)
        assert shown["r (resolution)"] == f"{ans.recipe.r:g}" and shown["w (width)"] == f"{ans.recipe.w:g}"
        assert shown["d (depth)"] == f"{ans.recipe.d:g}"
        assert f"predicted **{ans.predicted_us / 1000:.3f} ms**" in texts(at)
        # The recipe's latency on every loaded device.
        lat = {k: v for k, v in shown.items() if k.startswith("latency · ")}
        assert len(lat) == 2
        for label, value in lat.items():
            t = own if "study's table" in label else edge
            assert value == f"{t.predict_us(ans.recipe) / 1000:.3f} ms"
    # The other device: the same slider position answers a different (faster-device) question.
    at.selectbox[0].set_value([o for o in at.selectbox[0].options if o != at.selectbox[0].value][0]).run()
    assert not at.exception


def test_accuracy_vs_latency_tab_and_bad_tables(monkeypatch, study, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "tinyscale-latency-table", "format_version": 99}')
    monkeypatch.setenv("TINYSCALE_DEVICES", str(bad))
    at = run_app(monkeypatch, study)
    assert any("not loaded" in str(w.value) and "format version 99" in str(w.value) for w in at.sidebar.warning)
    assert "Pareto selection on (accuracy, predicted latency" in texts(at)
    assert not at.exception
