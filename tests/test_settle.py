"""`compare --settle-check`: a comparison is settled when no fixed rule falls as c grows and
longer re-runs rank the strategies alike; judged on hand-made cells with known accuracies, and
the re-runs trained end to end through the CLI."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from tinyscale.evaluate.compare import BuiltRecipe, CompareStore, load_comparison
from tinyscale.evaluate.compare.settle import (SettleCheck, check_ratios, falls_with_c, format_settle_check,
                                               reorders)
from tinyscale.evaluate.compare.store import Cell
from tinyscale.study.trial import StudyConfig

CONFIG = StudyConfig(data="generated", base_resolution=32, num_classes=10, steps=8, batch_size=32)
STRATEGIES = ["gp", "efficientnet", "uniform", "width"]


def _comparison(directory, ratios, seeds, accs, variant=None, steps=1):
    """A stored comparison whose every row is one matched recipe with the given accuracies:
    accs[(strategy, ratio)] = one accuracy per seed."""
    settings = {"ratios": ratios, "strategies": STRATEGIES, "seeds": seeds, "steps": steps, "batch_size": 1,
                "threads": None}
    recipe = CONFIG.recipe(1.0, 0.5, 1.0)
    with CompareStore.open(directory, {"steps": steps}, variant=variant) as store:
        store.set_meta("settings", json.dumps(settings))
        for (name, c), values in accs.items():
            store.put_recipe(BuiltRecipe(name, c, recipe, c, ""))
            for seed, a in zip(seeds, values):
                store.put_cell(Cell(name, c, seed, "completed", a, None, 1.0, None, "single"), recipe)
    return load_comparison(directory, variant=variant)


def test_a_fixed_rule_that_falls_with_c_is_named_and_a_changed_order_is_caught(tmp_path):
    ratios = [0.5, 0.25, 0.125]
    short = {
        ("gp", 0.5): [0.80, 0.81, 0.82], ("gp", 0.25): [0.75, 0.76, 0.77], ("gp", 0.125): [0.70, 0.71, 0.72],
        # EfficientNet's bigger network is clearly worse than its smaller one, on every seed.
        ("efficientnet", 0.5): [0.60, 0.61, 0.62], ("efficientnet", 0.25): [0.70, 0.71, 0.72],
        ("efficientnet", 0.125): [0.65, 0.66, 0.67],
        # uniform dips from 0.125 to 0.25 by less than its noise: not a fall.
        ("uniform", 0.5): [0.78, 0.79, 0.80], ("uniform", 0.25): [0.69, 0.76, 0.71],
        ("uniform", 0.125): [0.73, 0.72, 0.74],
        ("width", 0.5): [0.79, 0.80, 0.81], ("width", 0.25): [0.74, 0.75, 0.76], ("width", 0.125): [0.60, 0.61, 0.62],
    }
    comparison = _comparison(tmp_path, ratios, [0, 1, 2], short)
    falls = falls_with_c(comparison)
    assert [(f.strategy, f.low, f.high) for f in falls] == [("efficientnet", 0.25, 0.5)]
    assert falls[0].change == pytest.approx(-0.10) and falls[0].se == pytest.approx(0.0, abs=1e-12)
    assert check_ratios((0.5, 0.25, 0.125, 0.0625)) == (0.25, 0.0625) and check_ratios((0.1, 0.3)) == (0.3, 0.1)
    # Longer runs of seed 0: the same order at 0.25; at 0.125 width overtakes everything.
    longer = _comparison(tmp_path, [0.25, 0.125], [0], {
        ("gp", 0.25): [0.80], ("efficientnet", 0.25): [0.74], ("uniform", 0.25): [0.72], ("width", 0.25): [0.79],
        ("gp", 0.125): [0.72], ("efficientnet", 0.125): [0.70], ("uniform", 0.125): [0.71], ("width", 0.125): [0.75],
    }, variant="settled", steps=2)
    found = {r.ratio: r for r in reorders(comparison, longer, 0)}
    assert found[0.25].rho == pytest.approx(1.0) and found[0.25].holds
    assert found[0.25].strategies == ("gp", "width", "efficientnet", "uniform")
    # seed 0 at 0.125: gp .70, uniform .73, efficientnet .65, width .60 -> longer: width .75 > .72 > .71 > .70
    assert found[0.125].strategies == ("uniform", "gp", "efficientnet", "width")
    assert found[0.125].longer == ("width", "gp", "uniform", "efficientnet")
    assert not found[0.125].holds
    check = SettleCheck(1, 2, 0, tuple(falls), tuple(found.values()))
    assert not check.settled
    assert SettleCheck(1, 2, 0, (), (found[0.25],)).settled
    text = format_settle_check(check)
    assert "not settled" in text and "efficientnet falls from c=0.25 to c=0.5: -10.00 ± 0.00 points" in text
    # Longer runs that tie every strategy rank nothing: the ratio cannot pass, and says why.
    tied = _comparison(tmp_path / "tied", [0.25], [0], {(name, 0.25): [0.75] for name in STRATEGIES},
                       variant="settled", steps=2)
    (flat,) = reorders(comparison, tied, 0)
    assert flat.rho is None and not flat.holds and not SettleCheck(1, 2, 0, (), (flat,)).settled
    assert "c=0.25: rho n/a, every accuracy tied on one side, so it cannot pass" in format_settle_check(
        SettleCheck(1, 2, 0, (), (flat,)))


def test_the_cli_trains_the_longer_reruns_apart_and_reports(tmp_path, capsys):
    from test_compare import _make_study

    from tinyscale.cli import main

    directory = tmp_path / "study"
    _make_study(directory, fitted=False)
    argv = ["compare", str(directory), "--ratios", "0.25,0.125", "--strategies", "efficientnet,width", "--steps", "4",
            "--seeds", "2", "--threads", "1", "--workers", "1", "--no-progress", "--settle-check", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    check = out["settle_check"]
    assert check["steps"] == 4 and check["long_steps"] == 8 and check["seed"] == 0
    assert {r["ratio"] for r in check["reorders"]} == {0.25, 0.125}
    assert {row["strategy"] for row in out["rows"]} == {"efficientnet", "width"}
    with CompareStore.open(directory, kind="macs", variant="settled") as store:
        cells = store.cells()
        assert len(cells) == 4 and {key[2] for key in cells} == {0}  # 2 ratios x 2 strategies, seed 0
        assert json.loads(store.meta("budget"))["steps"] == 8
    with CompareStore.open(directory) as store:
        assert len(store.cells()) == 8  # the comparison itself: 2 ratios x 2 strategies x 2 seeds
    # Rerun: nothing is trained again and the verdict is the same.
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["settle_check"] == check
    # The app reads the same verdict from the stored runs, training nothing; with a re-run's result
    # missing it gives no verdict, only how many are missing.
    from tinyscale.assistant.answers import comparison_words
    from tinyscale.evaluate.compare.settle import stored_settle_check

    comparison = load_comparison(directory)
    stored, missing = stored_settle_check(directory, comparison)
    assert stored.to_dict() == check and missing == 0
    assert comparison_words(directory, comparison) == format_settle_check(stored)
    with sqlite3.connect(directory / "compare-settled" / "compare.sqlite") as conn:
        conn.execute("DELETE FROM cells WHERE rowid = (SELECT MIN(rowid) FROM cells)")
    conn.close()
    assert stored_settle_check(directory, comparison)[1] == 1
    assert comparison_words(directory, comparison) == (
        f"**settled check**: 1 of its 8-step re-runs have no result yet; `tinyscale compare {directory} "
        "--settle-check` trains them, and the verdict shows here.")
    # A comparison whose check never ran says nothing of it.
    shutil.rmtree(directory / "compare-settled")
    assert stored_settle_check(directory, comparison) is None and comparison_words(directory, comparison) == ""
    shutil.rmtree(directory)
