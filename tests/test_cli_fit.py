"""`tinyscale fit`, `recipe` and `export` on a real study directory."""

from __future__ import annotations

import json

import pytest

from _fit_fixtures import synthetic_trials, write_study
from tinyscale.cli import main
from tinyscale.space.summary import summarize


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    directory = write_study(tmp_path_factory.mktemp("cli") / "study", synthetic_trials(seed=1))
    assert main(["fit", str(directory), "--method", "pareto", "--pareto-k", "20", "--show-trials"]) == 0  # the text report
    return directory


def test_fit_prints_the_fits_and_saves_them(study, capsys):
    assert (study / "fit.json").is_file()
    assert main(["fit", str(study), "--method", "pareto", "--pareto-k", "12", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["selected"]) == 12 and out["diagnostics"]["n_models"] == 12
    assert set(out["diagnostics"]["correlation"]) == {"r", "w", "d"}
    assert sum(row["selected"] for row in out["trials"]) == 12
    from tinyscale.fit.gp import ScalingFit

    assert ScalingFit.load(study).data.numbers == tuple(out["selected"])  # the saved fit is this one


def test_recipe_json_has_the_inspect_fields_and_the_query_fields(study, capsys):
    assert main(["recipe", str(study), "--ratio", "0.3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    from tinyscale.space.recipe import Recipe

    recipe = Recipe.from_dict(out)
    assert {k: v for k, v in out.items() if k in summarize(recipe).to_dict()} == summarize(recipe).to_dict()
    for key in ("r_band", "d_band", "extrapolated", "achieved", "target"):
        assert key in out
    assert out["target"] == 0.3 and out["ratio_below"] <= 0.3 <= out["ratio_above"]
    assert out["r_band"][0] < out["r_mean"] < out["r_band"][1] and out["extrapolated"] is False
    # The same budget as MACs gives the same recipe.
    assert main(["recipe", str(study), "--macs", str(out["target"] * out["macs"] / out["achieved"]), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    # The MACs round-trip can move c by an ulp; r and d are rounded to 4 decimals (one unit of
    # tolerance in that place), and where they agree the solved width is the same.
    assert again["r"] == pytest.approx(out["r"], abs=1.0001e-4) and again["d"] == pytest.approx(out["d"], abs=1.0001e-4)
    if (again["r"], again["d"]) == (out["r"], out["d"]):
        assert again["w"] == out["w"]
    assert main(["recipe", str(study), "--ratio", "3.0"]) == 0
    assert "extrapolated  yes" in capsys.readouterr().out


def test_export_writes_a_loadable_directory(study, tmp_path, capsys):
    import tinyscale

    out = tmp_path / "exported"
    assert main(["export", str(study), "--ratio", "0.2", "--out", str(out), "--format", "safetensors"]) == 0
    printed = capsys.readouterr().out
    assert "recipe.json" in printed and "model.safetensors" in printed
    model = tinyscale.load_exported(out)
    manifest = json.loads((out / "recipe.json").read_text())
    assert (model.recipe.r, model.recipe.w, model.recipe.d) == (manifest["r"], manifest["w"], manifest["d"])
    assert manifest["provenance"]["study"] == str(study.resolve())


def test_bad_input_gives_one_line_errors(study, tmp_path, capsys):
    assert main(["recipe", str(study), "--ratio", "0"]) == 2
    assert "positive" in capsys.readouterr().err
    assert main(["recipe", str(study), "--macs", "-5"]) == 2
    assert "positive" in capsys.readouterr().err
    empty = write_study(tmp_path / "empty", [])
    assert main(["fit", str(empty)]) == 2
    assert "no completed trials" in capsys.readouterr().err
    assert main(["recipe", str(empty), "--ratio", "0.3"]) == 2
    assert "tinyscale fit" in capsys.readouterr().err
    (empty / "fit.json").write_text('{"kind": "tinyscale.ScalingFit"')
    assert main(["recipe", str(empty), "--ratio", "0.3"]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "nowhere")]) == 2
    assert "no study" in capsys.readouterr().err
    assert main(["export", str(study), "--ratio", "0.2", "--out", str(tmp_path / "x"), "--format", "tflite"]) == 2
    assert "subset" in capsys.readouterr().err
