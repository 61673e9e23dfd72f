"""The head-to-head comparison on generated data: matched FLOPs, determinism, resume, tables, plot,
and clear errors for bad input.

The study fixture is a real study directory (tinyscale.study) on the generated dataset whose
trials are hand-made (a known smooth r(c), d(c) with w solved against the count) and a real GP
fit over them, so the GP strategy runs through the fit stage without training a study.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
import statistics

import numpy as np
import pytest

import baselines
from tinyscale.cli import main
from tinyscale.compare import (
    MATCH_TOLERANCE,
    CompareSettings,
    CompareStore,
    build_recipe,
    comparison_csv,
    comparison_markdown,
    comparison_table,
    default_settings,
    load_comparison,
    parse_ratios,
    parse_strategies,
    run_comparison,
    strategy_builders,
    write_report,
)
from tinyscale.compare_plots import comparison_figure
from tinyscale.cost import cost, macs
from tinyscale.gp import fit_scaling
from tinyscale.study import Study
from tinyscale.train import TrainResult
from tinyscale.trial import StudyConfig
from tinyscale.width import solve_width

REFERENCE_RATIOS = (0.5, 0.25, 0.125, 0.0625)
CONFIG = StudyConfig(data="generated", base_resolution=32, num_classes=10, steps=8, batch_size=32,
                     extra={"warmup": 2})
# Tiny budget: the tests check the machinery, not which strategy wins.
SETTINGS = CompareSettings(ratios=(0.5, 0.125), strategies=("gp", "efficientnet"), seeds=(0, 1),
                           steps=8, batch_size=32, threads=1)


def _make_study(directory, *, fitted: bool) -> None:
    with Study.create(directory, CONFIG) as study:
        for number, c in enumerate(np.geomspace(0.06, 0.9, 10)):
            r = round(min(1.0, 0.45 + 0.55 * math.sqrt(c)), 3)
            d = round(0.4 + 0.9 * c, 3)
            recipe = solve_width(float(c), r, d, rules=CONFIG.rules, base_resolution=CONFIG.base_resolution,
                                 num_classes=CONFIG.num_classes).recipe
            study.start_trial(number, recipe, seed=number)
            accuracy = 0.5 + 0.1 * math.log(c / 0.06)  # rises with c: every trial is non-dominated
            study.finish_trial(number, TrainResult(accuracy, 1.0, 8, 256, 0.1, 0.1, 2560.0))
        if fitted:
            fit_scaling(study.trials(), study.config).save(directory)


@pytest.fixture(scope="module")
def fitted_study(tmp_path_factory):
    directory = tmp_path_factory.mktemp("study")
    _make_study(directory, fitted=True)
    return directory


@pytest.fixture(scope="module")
def unfitted_study(tmp_path_factory):
    directory = tmp_path_factory.mktemp("study-nofit")
    _make_study(directory, fitted=False)
    return directory


@pytest.fixture(scope="module")
def full_run(fitted_study, tmp_path_factory):
    """One uninterrupted comparison in a copy of the fitted study."""
    directory = tmp_path_factory.mktemp("run") / "study"
    shutil.copytree(fitted_study, directory)
    trained = []
    comparison = run_comparison(directory, SETTINGS, progress=False, on_cell=trained.append)
    return directory, comparison, trained


# ------------------------------------------------------------------------ matched FLOPs


def test_every_strategy_is_built_at_matched_cost_or_says_why(fitted_study):
    builders = strategy_builders(fitted_study, CONFIG, ("gp", "efficientnet", "width", "depth", "resolution"))
    baseline = macs(CONFIG.recipe(1.0, 1.0, 1.0))
    for c in REFERENCE_RATIOS:
        for name, builder in builders.items():
            built = build_recipe(name, builder, c, CONFIG)
            if built.recipe is None:
                # Only a strategy that cannot reach c may skip it, and it must say so.
                assert built.note.startswith("not built:") and "out of reach" in built.note, (name, c, built.note)
                continue
            achieved = macs(built.recipe) / baseline  # counted independently of the strategy
            assert built.achieved == pytest.approx(achieved, rel=1e-12)
            off = abs(achieved / c - 1.0)
            assert built.matched == (off <= MATCH_TOLERANCE)
            if not built.matched:
                assert "FLOPs not matched" in built.note and f"{achieved:.4g}" in built.note, (name, c)
            assert (built.recipe.base_resolution, built.recipe.num_classes) == (32, 10)
    # The GP recipe's width is solved against the count: it meets every reference ratio.
    for c in REFERENCE_RATIOS:
        assert build_recipe("gp", builders["gp"], c, CONFIG).matched, c
    # Compound scaling at a 32 px base moves in coarse steps (whole pixels, ceil'd repeats): where
    # it misses, no φ does better, i.e. both achievable ratios around c are more than 2 % away.
    for c in REFERENCE_RATIOS:
        built = build_recipe("efficientnet", builders["efficientnet"], c, CONFIG)
        if not built.matched:
            solved = baselines.compound_recipe(c, base_resolution=32, num_classes=10)
            assert solved.achieved == pytest.approx(built.achieved)
            assert min(abs(solved.ratio_below / c - 1), abs(solved.ratio_above / c - 1)) > MATCH_TOLERANCE
            assert f"rounding steps around c={c:g} are {solved.ratio_below:.4g} and" in built.note


def test_efficientnet_uses_its_own_rules_and_the_gp_the_studys(fitted_study):
    builders = strategy_builders(fitted_study, CONFIG, ("gp", "efficientnet", "depth"))
    assert build_recipe("efficientnet", builders["efficientnet"], 0.25, CONFIG).recipe.rules == "efficientnet"
    assert build_recipe("gp", builders["gp"], 0.25, CONFIG).recipe.rules == CONFIG.rules
    assert build_recipe("depth", builders["depth"], 0.5, CONFIG).recipe.rules == CONFIG.rules
    # Depth alone bottoms out at one block per stage, far above c = 0.0625: no recipe, a reason.
    built = build_recipe("depth", builders["depth"], 0.0625, CONFIG)
    assert built.recipe is None and "1 block per stage" in built.note


def test_a_strategy_missing_the_target_is_flagged():
    def too_big(c):  # always the unscaled network
        return CONFIG.recipe(1.0, 1.0, 1.0), "fixed"

    built = build_recipe("width", too_big, 0.5, CONFIG)
    assert not built.matched and built.achieved == pytest.approx(1.0)
    assert built.note.startswith("FLOPs not matched: achieved 1 is +100.0% off") and built.note.endswith("fixed")


# ------------------------------------------------------------------------ running, determinism, resume


def test_full_run_trains_every_cell_once_with_the_shared_budget(full_run):
    directory, comparison, trained = full_run
    expected = {(n, c, s) for n in SETTINGS.strategies for c in SETTINGS.ratios for s in SETTINGS.seeds}
    assert {(x.strategy, x.ratio, x.seed) for x in trained} == expected and len(trained) == len(expected)
    assert comparison.complete and comparison.cells_done == len(expected)
    for row in comparison.rows:
        assert len(row.accuracies) == 2 and all(0.0 <= a <= 1.0 for a in row.accuracies)
        assert row.mean == pytest.approx(statistics.fmean(row.accuracies))
        assert row.std == pytest.approx(statistics.stdev(row.accuracies))
    assert load_comparison(directory) == comparison


def test_identical_seeds_give_identical_results_and_resume_skips_finished_cells(full_run, fitted_study, tmp_path):
    _, reference, reference_cells = full_run
    directory = tmp_path / "study"
    shutil.copytree(fitted_study, directory)

    class Killed(Exception):
        pass

    first = []

    def kill_after_three(cell):
        first.append(cell)
        if len(first) == 3:
            raise Killed

    with pytest.raises(Killed):
        run_comparison(directory, SETTINGS, progress=False, on_cell=kill_after_three)
    partial = load_comparison(directory)
    assert partial is not None and not partial.complete and partial.cells_done == 3
    assert "Partial: 3 of 8" in comparison_markdown(partial)

    second = []
    resumed = run_comparison(directory, SETTINGS, progress=False, on_cell=second.append)
    done_first = {(x.strategy, x.ratio, x.seed) for x in first}
    assert len(second) == 5 and not done_first & {(x.strategy, x.ratio, x.seed) for x in second}
    # Same seeds, same trainer: every cell equals the uninterrupted run's, bit for bit.
    by_key = {(x.strategy, x.ratio, x.seed): x for x in reference_cells}
    for cell in first + second:
        ref = by_key[(cell.strategy, cell.ratio, cell.seed)]
        assert (cell.state, cell.accuracy, cell.loss) == (ref.state, ref.accuracy, ref.loss)
    assert resumed.rows == reference.rows
    # ... and the seed matters: the two seeds of a row do not all coincide.
    assert any(len(set(row.accuracies)) > 1 for row in reference.rows)

    # Running again trains nothing.
    third = []
    run_comparison(directory, SETTINGS, progress=False, on_cell=third.append)
    assert third == []


def test_worker_processes_give_the_same_cells(full_run, fitted_study, tmp_path):
    from tinyscale.executors import make_executor

    _, reference, _ = full_run
    directory = tmp_path / "study"
    shutil.copytree(fitted_study, directory)
    subset = CompareSettings(**{**SETTINGS.__dict__, "ratios": (0.5,)})
    executor = make_executor("local", 2, threads=1)
    try:
        result = run_comparison(directory, subset, progress=False, executor=executor)
    finally:
        executor.close()
    assert result.rows == tuple(r for r in reference.rows if r.ratio == 0.5)


def test_resume_refuses_another_budget_or_a_changed_recipe(full_run, fitted_study, tmp_path):
    directory, _, _ = full_run
    other = CompareSettings(**{**SETTINGS.__dict__, "steps": 9})
    with pytest.raises(ValueError, match=r"another budget \(steps: 8 -> 9\).*--restart"):
        run_comparison(directory, other, progress=False)

    fresh = tmp_path / "study"
    shutil.copytree(fitted_study, fresh)
    one = CompareSettings(ratios=(0.25,), strategies=("width",), seeds=(0,), steps=4, batch_size=32, threads=1)
    run_comparison(fresh, one, progress=False, builders={"width": lambda c: (CONFIG.recipe(1.0, 0.5, 1.0), "")})
    with pytest.raises(ValueError, match="refitted"):
        run_comparison(fresh, one, progress=False, builders={"width": lambda c: (CONFIG.recipe(1.0, 0.4, 1.0), "")})
    trained = []
    run_comparison(fresh, one, progress=False, restart=True, on_cell=trained.append,
                   builders={"width": lambda c: (CONFIG.recipe(1.0, 0.4, 1.0), "")})
    assert len(trained) == 1


# ------------------------------------------------------------------------ tables and plot


def test_tables_report_every_row_and_the_gp_margin(full_run):
    _, comparison, _ = full_run
    rows = comparison_table(comparison)
    assert [(r["target"], r["strategy"]) for r in rows] == [
        (c, n) for c in SETTINGS.ratios for n in SETTINGS.strategies
    ]
    for r, row in zip(rows, comparison.rows):
        assert r["params"] == cost(row.recipe).params and r["macs"] == cost(row.recipe).macs
        assert r["acc_mean"] == pytest.approx(100 * statistics.fmean(row.accuracies))
    for c in SETTINGS.ratios:
        gp = next(r for r in rows if r["target"] == c and r["strategy"] == "gp")
        eff = next(r for r in rows if r["target"] == c and r["strategy"] == "efficientnet")
        assert gp["margin_vs_efficientnet"] == pytest.approx(gp["acc_mean"] - eff["acc_mean"])
        assert eff["margin_vs_efficientnet"] is None

    parsed = list(csv.DictReader(io.StringIO(comparison_csv(comparison))))
    assert len(parsed) == len(rows) and float(parsed[0]["acc_mean"]) == pytest.approx(rows[0]["acc_mean"])

    md = comparison_markdown(comparison)
    table_lines = [line for line in md.splitlines() if line.startswith("| 0.")]
    assert len(table_lines) == len(rows) + len(SETTINGS.ratios)  # strategy rows + margin rows
    assert f"{rows[0]['acc_mean']:.2f} ± {rows[0]['acc_std']:.2f}" in md


def test_figure_has_one_line_per_strategy_at_counted_macs(full_run, tmp_path):
    _, comparison, _ = full_run
    fig = comparison_figure(comparison)
    assert len(fig.data) == len(SETTINGS.strategies)
    for trace, name in zip(fig.data, SETTINGS.strategies):
        rows = sorted((r for r in comparison.rows if r.strategy == name), key=lambda r: r.macs)
        assert list(trace.x) == [macs(r.recipe) for r in rows]
        assert list(trace.y) == pytest.approx([100 * statistics.fmean(r.accuracies) for r in rows])
    assert fig.layout.xaxis.type == "log"

    paths = write_report(comparison, tmp_path / "report")
    assert paths.markdown.read_text() == comparison_markdown(comparison)
    assert paths.csv.read_text() == comparison_csv(comparison)
    assert "plotly" in paths.html.read_text()[:5000].lower()
    # PNG when kaleido can render; otherwise no file and a message saying why.
    if paths.png is not None:
        assert paths.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths.png_message == ""
    else:
        assert paths.png_message.startswith("PNG skipped")


def test_default_budget_is_longer_than_the_studys_brief_runs(fitted_study):
    settings = default_settings(fitted_study)
    assert settings.steps > CONFIG.steps and settings.batch_size == CONFIG.batch_size
    assert settings.ratios == REFERENCE_RATIOS and settings.seeds == (0, 1, 2)
    assert settings.strategies == ("gp", "efficientnet", "width", "depth", "resolution")


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("text, message", [
    ("0.5,0", "positive"), ("-0.25", "positive"), ("0.5,abc", "not a number"), ("nan", "positive"),
    ("0.5,0.5", "twice"), ("", "at least one"),
])
def test_bad_ratios_are_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_ratios(text)


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown strategy 'tinynet'; choose from gp, efficientnet"):
        parse_strategies("gp,tinynet")


def test_cli_errors(fitted_study, unfitted_study, tmp_path, capsys):
    assert main(["compare", str(fitted_study), "--ratios", "0.5,0"]) == 2
    assert "positive" in capsys.readouterr().err
    assert main(["compare", str(fitted_study), "--strategies", "gp,bogus"]) == 2
    assert "unknown strategy 'bogus'" in capsys.readouterr().err
    assert main(["compare", str(unfitted_study), "--strategies", "gp,efficientnet"]) == 2
    assert f"run `tinyscale fit {unfitted_study}` first" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "nothing")]) == 2
    assert "no study at" in capsys.readouterr().err
    assert main(["compare", str(fitted_study), "--seeds", "0"]) == 2
    assert "seeds" in capsys.readouterr().err
    # Nothing was written into the studies by the refused runs.
    assert load_comparison(fitted_study) is None and load_comparison(unfitted_study) is None


def test_cli_runs_without_a_fit_when_gp_is_left_out(unfitted_study, tmp_path, capsys):
    directory = tmp_path / "study"
    shutil.copytree(unfitted_study, directory)
    code = main(["compare", str(directory), "--ratios", "0.25", "--strategies", "efficientnet,width",
                 "--steps", "4", "--seeds", "1", "--threads", "1", "--workers", "1", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| 0.25 | efficientnet |" in out and "| 0.25 | width |" in out
    for name in ("comparison.md", "comparison.csv", "comparison.html", "compare.sqlite"):
        assert (directory / "compare" / name).is_file()
    with CompareStore.open(directory) as store:
        assert len(store.cells()) == 2
