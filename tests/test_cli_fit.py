"""`tinyscale fit`, `recipe` and `export` on a real study directory."""

from __future__ import annotations

import json
import math

import pytest

from _fit_fixtures import CONFIG, write_study
from tinyscale.cli import main

# EfficientNet-B0's stages (reference/scaling.md): repeats and output channels.
B0_REPEATS = (1, 2, 2, 3, 3, 4, 1)
B0_CHANNELS = (16, 24, 40, 80, 112, 192, 320)


def nearest_multiple_of_8(v: float) -> int:
    """The reference's channel rounding: nearest multiple of 8, at least 8, plus 8 if that
    falls below 0.9 v."""
    nearest = max(8, 8 * math.floor(v / 8 + 0.5))
    return nearest if nearest >= 0.9 * v else nearest + 8


@pytest.fixture(scope="module")
def study(synthetic_study):
    assert main(["fit", str(synthetic_study), "--method", "pareto", "--pareto-k", "20", "--show-trials"]) == 0  # the text report
    return synthetic_study


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
    from tinyscale.space.cost import cost
    from tinyscale.space.recipe import Recipe

    # The inspect fields, each from the study's context and the reference's rules (TinyNet).
    r, w, d = out["r"], out["w"], out["d"]
    assert (out["rules"], out["base_resolution"], out["num_classes"]) == (CONFIG.rules, CONFIG.base_resolution,
                                                                          CONFIG.num_classes)
    assert out["resolution"] == math.floor(CONFIG.base_resolution * r)
    assert out["depths"] == [max(1, round(n * d)) for n in B0_REPEATS]
    assert out["widths"] == [nearest_multiple_of_8(ch * w) for ch in B0_CHANNELS]
    assert out["stem"] == 32 and out["head"] == max(1280, nearest_multiple_of_8(1280 * w))
    counted = cost(Recipe(r, w, d, rules=CONFIG.rules, base_resolution=CONFIG.base_resolution,
                          num_classes=CONFIG.num_classes))
    unscaled = cost(Recipe(rules=CONFIG.rules, base_resolution=CONFIG.base_resolution, num_classes=CONFIG.num_classes))
    assert (out["macs"], out["params"]) == (counted.macs, counted.params)
    assert out["ratio"] == pytest.approx(counted.macs / unscaled.macs, rel=1e-12)
    assert out["achieved"] == pytest.approx(out["ratio"], rel=1e-12)
    # `tinyscale inspect` prints the same fields for the same recipe.
    assert main(["inspect", "--r", repr(r), "--w", repr(w), "--d", repr(d), "--base-resolution",
                 str(CONFIG.base_resolution), "--num-classes", str(CONFIG.num_classes), "--json"]) == 0
    inspected = json.loads(capsys.readouterr().out)
    assert {k: out[k] for k in inspected} == inspected
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
