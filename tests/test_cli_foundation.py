"""`tinyscale inspect` and `scale` (one rule, and the table), called in-process."""

from __future__ import annotations

import json

import pytest

from baselines import RULES, compound_recipe, fast
from tinyscale.cli import build_parser, main

INSPECT_FIELDS = {"r", "w", "d", "rules", "resolution", "macs", "params", "depths", "widths", "stem", "head", "ratio"}
SCALE_FIELDS = INSPECT_FIELDS | {"target", "achieved"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0 and err == ""
    assert len(out.strip().splitlines()) == 1  # one JSON object
    return json.loads(out)


def test_inspect_json_b0(capsys):
    data = run_json(capsys, "inspect", "--r", "1", "--w", "1", "--d", "1")
    assert INSPECT_FIELDS <= set(data)
    assert (data["macs"], data["params"], data["resolution"], data["ratio"]) == (385_814_752, 5_288_548, 224, 1.0)
    assert data["depths"] == [1, 2, 2, 3, 3, 4, 1] and data["widths"] == [16, 24, 40, 80, 112, 192, 320]
    assert (data["stem"], data["head"], data["rules"]) == (32, 1280, "tinynet")


def test_inspect_json_context(capsys):
    data = run_json(capsys, "inspect", "--r", "0.5", "--w", "0.5", "--d", "0.5", "--rules", "efficientnet",
                    "--base-resolution", "32", "--num-classes", "10")
    assert data["resolution"] == 16 and data["stem"] == 16 and data["head"] == 640
    assert data["base_resolution"] == 32 and data["num_classes"] == 10 and 0 < data["ratio"] < 1


def test_inspect_text(capsys):
    code, out, err = run(capsys, "inspect", "--r", "0.86", "--w", "1.0", "--d", "1.2")
    assert code == 0 and err == ""
    assert "6,187,972" in out and "192x192 px" in out and "tinynet rules" in out


def test_scale_json_efficientnet(capsys):
    data = run_json(capsys, "scale", "--rule", "efficientnet", "--ratio", "0.25")
    assert SCALE_FIELDS <= set(data)
    expected = compound_recipe(0.25)
    assert data["target"] == 0.25 and data["achieved"] == expected.achieved == data["ratio"]
    assert data["rules"] == "efficientnet" and data["phi"] == expected.phi
    assert data["ratio_below"] <= 0.25 <= data["ratio_above"]


def test_scale_offers_the_registrys_rules_with_their_help():
    scale = build_parser()._subparsers._group_actions[0].choices["scale"]
    rule = next(a for a in scale._actions if a.dest == "rule")
    assert list(rule.choices) == [r.name for r in RULES]
    assert all(r.help in rule.help for r in RULES)


@pytest.mark.parametrize("rule", ["uniform", "fast"])
def test_scale_json_dwr(capsys, rule):
    data = run_json(capsys, "scale", "--rule", rule, "--ratio", "0.25")
    assert data["strategy"] == rule and data["rules"] == "tinynet" and data["phi"] is None
    assert data["ratio_below"] <= 0.25 <= data["ratio_above"]
    # d·w²·r² is the nominal factor s before rounding.
    assert data["d"] * data["w"] ** 2 * data["r"] ** 2 == pytest.approx(data["s"], rel=1e-12)
    if rule == "fast":
        assert data["s"] == fast(0.25).s and data["achieved"] == fast(0.25).achieved


@pytest.mark.parametrize("rule", ["width", "depth", "resolution"])
def test_scale_json_single_axis(capsys, rule):
    data = run_json(capsys, "scale", "--rule", rule, "--ratio", "0.6", "--base-resolution", "32", "--num-classes", "10")
    assert data["strategy"] == rule and data["rules"] == "tinynet"
    assert data["base_resolution"] == 32 and data["num_classes"] == 10
    assert abs(data["achieved"] - 0.6) <= (data["ratio_above"] - data["ratio_below"]) / 2 + 1e-12


def test_scale_tinynet_ignores_ratio(capsys):
    a = run_json(capsys, "scale", "--rule", "tinynet-a")
    b = run_json(capsys, "scale", "--rule", "tinynet-a", "--ratio", "3")
    assert a == b and a["target"] is None
    assert (a["params"], a["resolution"]) == (6_187_972, 192)


def test_scale_text(capsys):
    code, out, err = run(capsys, "scale", "--rule", "efficientnet", "--ratio", "0.5")
    assert code == 0 and err == ""
    for word in ("efficientnet rules", "strategy", "target", "achieved", "phi"):
        assert word in out
    code, out, _ = run(capsys, "scale", "--rule", "tinynet-e")
    assert code == 0 and "published recipe" in out and "106x106" in out


def test_scale_table_prints_every_rule(capsys):
    code, out, err = run(capsys, "scale", "--table")
    assert code == 0 and err == ""
    for word in ("tinynet-a", "tinynet-e", "efficientnet", "uniform", "fast", "width", "depth", "resolution",
                 "out of reach"):
        assert word in out
    data = run_json(capsys, "scale", "--table", "--ratios", "0.5", "--base-resolution", "32", "--num-classes", "10")
    assert [row["strategy"] for row in data["rows"]] == ["efficientnet", "uniform", "fast", "width", "depth",
                                                         "resolution"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["inspect", "--r", "0", "--w", "1", "--d", "1"], "r must be positive"),
        (["inspect", "--r", "1", "--w", "nan", "--d", "1"], "w must be finite"),
        (["inspect", "--r", "1", "--w", "1", "--d", "100"], "d must be at most"),
        (["inspect", "--r", "0.02", "--w", "1", "--d", "1"], "at least 8 px"),
        (["inspect", "--r", "1", "--w", "1", "--d", "1", "--num-classes", "1"], "num_classes"),
        (["inspect", "--r", "1", "--w", "1", "--d", "1", "--base-resolution", "0"], "base_resolution"),
        (["scale", "--rule", "width"], "needs a target ratio"),
        (["scale", "--rule", "efficientnet", "--ratio", "-1"], "target ratio c must be"),
        (["scale", "--rule", "efficientnet", "--ratio", "inf"], "target ratio c must be"),
        (["scale", "--rule", "depth", "--ratio", "0.1"], "1 block per stage"),
        (["scale", "--rule", "resolution", "--ratio", "0.001"], "out of reach"),
        (["scale", "--rule", "efficientnet", "--ratio", "0.5", "--num-classes", "0"], "num_classes"),
        (["scale", "--table", "--ratios", "0.5", "0"], "target ratio c must be"),
        (["scale", "--ratio", "0.5"], "give --rule"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err
    assert err.startswith(f"tinyscale {argv[0]}: error:")


@pytest.mark.parametrize(
    "argv",
    [["scale", "--rule", "mobilenet", "--ratio", "0.5"], ["scale", "--rule", "width", "--ratio", "abc"],
     ["inspect", "--r", "1", "--w", "1"], ["inspect", "--r", "x", "--w", "1", "--d", "1"]],
)
def test_argparse_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, named", [
    (["scale", "--rul", "width", "--ratio", "0.5"], "--rul width"),  # once the option --rule
    (["inspect", "--r", "1", "--w", "1", "--d", "1", "--base-res", "64"], "--base-res 64"),
    (["fidelity", "some-study", "--trials", "1"], "--trials 1"),  # once --trials-per-gpu (a GPU option)
    (["inspect", "--r", "1", "--w", "1", "--d", "1", "--nope"], "--nope"),
])
def test_an_option_is_taken_only_as_spelled_and_an_unknown_one_is_the_command_s_error(capsys, argv, named):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == (f"tinyscale {argv[0]}: error: unrecognized arguments: {named} (see tinyscale {argv[0]} --help)\n")


def test_a_missing_command_module_is_an_error(monkeypatch):
    # A command listed in COMMANDS whose module is missing (a broken install) must not be
    # silently left out of the CLI.
    import importlib

    import tinyscale.cli

    real = importlib.import_module

    def without_fit(name, *args, **kwargs):
        if name == "tinyscale.commands.fit":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(tinyscale.cli.importlib, "import_module", without_fit)
    with pytest.raises(ImportError, match=r"tinyscale fit.*tinyscale\.commands\.fit.*reinstall"):
        tinyscale.cli.build_parser()

    # A module that is there but fails on its own missing import still raises that error.
    def broken_dependency(name, *args, **kwargs):
        if name == "tinyscale.commands.fit":
            raise ModuleNotFoundError("No module named 'botorch'", name="botorch")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(tinyscale.cli.importlib, "import_module", broken_dependency)
    with pytest.raises(ModuleNotFoundError, match="botorch"):
        tinyscale.cli.build_parser()
