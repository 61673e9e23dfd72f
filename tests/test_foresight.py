"""Did the study's fit foresee the comparison? Judged on hand-made comparisons whose measured
accuracies and surface predictions are known: pairs the runs tell apart (2 paired SE, or 1 point
with one seed), the pairs the surface orders the other way round, rho per ratio, the words."""

from __future__ import annotations

import pytest

from tinyscale.evaluate.compare.foresight import foresight, format_foresight
from tinyscale.evaluate.compare.results import Comparison, ComparisonRow
from tinyscale.evaluate.compare.settings import CompareSettings
from tinyscale.space.recipe import Recipe

# One recipe per strategy, told apart by (r, d): the fake surface reads nothing else.
SHAPES = {"gp": (0.9, 0.35), "efficientnet": (0.5, 0.4), "fast": (0.8, 0.6), "uniform": (0.6, 0.3),
          "width": (1.0, 1.0)}


class Surface:
    """Predicts ``table[(c, strategy)]`` for the strategy whose shape is asked for."""

    def __init__(self, table: dict[tuple[float, str], float]) -> None:
        self.table = table
        self.asked: list[tuple[float, float, float]] = []

    def accuracy(self, c, r, d):
        self.asked.append((c, r, d))
        name = next(n for n, shape in SHAPES.items() if shape == (r, d))
        return self.table[c, name]


def _comparison(measured: dict[tuple[float, str], list[float]], seeds=(0, 1, 2), budget="macs",
                unmatched=()) -> Comparison:
    ratios = tuple(sorted({c for c, _ in measured}, reverse=True))
    strategies = tuple(dict.fromkeys(s for _, s in measured))
    rows = tuple(ComparisonRow(c, name, Recipe(r=SHAPES[name][0], w=0.5, d=SHAPES[name][1], base_resolution=32,
                                               num_classes=10),
                               c, 1000, 100, (c, name) not in unmatched, "", tuple(acc), seeds=tuple(seeds))
                 for (c, name), acc in measured.items())
    settings = CompareSettings(ratios=ratios if budget == "macs" else (1.0, 2.0), strategies=strategies,
                               seeds=tuple(seeds), budget=budget)
    return Comparison(settings, {}, rows, True, 0, 0)


def test_a_surface_that_orders_every_pair_as_the_runs_do_has_no_reversal():
    measured = {(0.5, "gp"): [0.70, 0.71, 0.72], (0.5, "fast"): [0.66, 0.67, 0.68],
                (0.5, "efficientnet"): [0.60, 0.62, 0.61]}
    # Levels differ (the surface is of shorter runs); the order is the same.
    surface = Surface({(0.5, "gp"): 0.55, (0.5, "fast"): 0.50, (0.5, "efficientnet"): 0.40})
    f = foresight(_comparison(measured), surface)
    assert (f.judged, f.agreed, f.reversals) == (3, 3, ())
    assert f.rho == {0.5: pytest.approx(1.0)}
    assert f.predicted[0.5, "fast"] == 0.50
    assert sorted(surface.asked) == sorted((0.5, *SHAPES[n]) for n in ("gp", "fast", "efficientnet"))
    assert "orders 3 of the 3 strategy pairs" in format_foresight(f, 900)
    assert "(900 steps at most)" in format_foresight(f, 900) and "Where it does not" not in format_foresight(f)


def test_a_reversed_pair_is_one_the_runs_tell_apart_by_more_than_two_paired_standard_errors():
    measured = {
        # fast above gp on every seed by 3 points (paired SE 0): told apart.
        (0.0625, "gp"): [0.61, 0.62, 0.60], (0.0625, "fast"): [0.64, 0.65, 0.63],
        # uniform and efficientnet 0.5 points apart in the mean, seed noise 1-2 points: not told apart.
        (0.0625, "uniform"): [0.59, 0.57, 0.58], (0.0625, "efficientnet"): [0.56, 0.59, 0.575],
    }
    surface = Surface({(0.0625, "gp"): 0.60, (0.0625, "fast"): 0.55, (0.0625, "uniform"): 0.40,
                       (0.0625, "efficientnet"): 0.45})
    f = foresight(_comparison(measured), surface)
    # 6 pairs; uniform-efficientnet is not told apart (mean gap 0.5 pt, SE about 1.3 pt).
    assert f.judged == 5
    assert [(r.better, r.worse) for r in f.reversals] == [("fast", "gp")]
    r = f.reversals[0]
    assert (r.ratio, r.measured, r.predicted) == (0.0625, pytest.approx(0.03), pytest.approx(-0.05))
    assert r.stderr == pytest.approx(0.0, abs=1e-12)
    text = format_foresight(f)
    assert "orders 4 of the 5 strategy pairs" in text
    assert "- c=0.0625: fast measured 3.00 ± 0.00 points above gp; the surface put gp 5.00 above" in text


def test_with_one_seed_a_gap_under_one_point_is_not_judged_and_the_study_recipe_comes_first():
    measured = {(0.5, "gp"): [0.700], (0.5, "width"): [0.695], (0.5, "fast"): [0.68],
                (0.25, "gp"): [0.60], (0.25, "uniform"): [0.65]}
    surface = Surface({(0.5, "gp"): 0.5, (0.5, "width"): 0.6, (0.5, "fast"): 0.7,
                       (0.25, "gp"): 0.7, (0.25, "uniform"): 0.5})
    f = foresight(_comparison(measured, seeds=(0,)), surface)
    # At 0.5: gp-width 0.5 pt (not judged), gp-fast 2 pt and width-fast 1.5 pt (both reversed);
    # at 0.25: uniform 5 points above gp, reversed.
    assert f.judged == 3 and f.agreed == 0
    assert f.rho == {0.5: pytest.approx(-1.0)}  # 0.25 has two strategies: no rho
    lines = format_foresight(f).splitlines()[1:]
    assert [line.split(":")[0] for line in lines] == ["- c=0.25", "- c=0.5", "- c=0.5"]  # gp's first, then by gap
    assert "uniform measured 5.00 points above gp" in lines[0] and "±" not in lines[0]
    assert "width measured 1.50 points above fast" in lines[2]


def test_nothing_is_foreseen_at_matched_latency_and_unmatched_rows_are_left_out():
    measured = {(0.5, "gp"): [0.7, 0.7, 0.7], (0.5, "fast"): [0.6, 0.6, 0.6], (0.5, "width"): [0.5, 0.5, 0.5]}
    surface = Surface({(0.5, n): 0.5 for n in SHAPES})
    assert foresight(_comparison(measured, budget="latency"), surface) is None
    f = foresight(_comparison(measured, unmatched={(0.5, "width")}), surface)
    assert set(f.predicted) == {(0.5, "gp"), (0.5, "fast")} and f.judged == 1
    # Tied predictions are not a reversal (the surface does not order the pair the other way).
    assert f.reversals == () and f.rho == {}
    assert foresight(_comparison({(0.5, "gp"): [0.7, 0.7, 0.7]}), surface) is None  # nothing to compare


def test_the_compare_tab_says_it_under_a_stored_comparison(fitted_study_dir):
    """The app's words under a comparison (`comparison_words`) carry the foresight of the
    study's saved fit, read from a stored comparison."""
    import json

    from tinyscale.assistant.answers import comparison_words
    from tinyscale.evaluate.compare import BuiltRecipe, CompareStore, load_comparison
    from tinyscale.evaluate.compare.store import Cell
    from tinyscale.fit.gp import ScalingFit
    from tinyscale.study.store import Study

    with Study.open(fitted_study_dir) as study:
        config = study.config
    shapes = {"gp": (1.0, 0.6, 0.5), "width": (1.0, 0.4, 1.0), "depth": (0.6, 1.0, 0.6)}
    accs = {"gp": [0.80, 0.81], "width": [0.70, 0.72], "depth": [0.75, 0.74]}
    settings = {"ratios": [0.25], "strategies": list(shapes), "seeds": [0, 1], "steps": 1, "batch_size": 1,
                "threads": None}
    with CompareStore.open(fitted_study_dir, {"steps": 1}) as store:
        store.set_meta("settings", json.dumps(settings))
        for name, (r, w, d) in shapes.items():
            recipe = config.recipe(r, w, d)
            store.put_recipe(BuiltRecipe(name, 0.25, recipe, 0.25, ""))
            for seed, a in enumerate(accs[name]):
                store.put_cell(Cell(name, 0.25, seed, "completed", a, None, 1.0, None, "single"), recipe)
    comparison = load_comparison(fitted_study_dir)
    fit = ScalingFit.load(fitted_study_dir)
    found = foresight(comparison, fit.surface)
    assert found.judged == 3 and set(found.predicted) == {(0.25, n) for n in shapes}
    words = comparison_words(fitted_study_dir, comparison)
    assert words.startswith("**Did the fit foresee this?**")
    assert f"orders {found.agreed} of the 3 strategy pairs" in words
    assert [line for line in words.splitlines() if line.startswith("- ")] == [
        line for line in format_foresight(found).splitlines() if line.startswith("- ")]
