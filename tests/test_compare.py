"""The head-to-head comparison on generated data: matched FLOPs (bracketing recipes and log-c
interpolation where one recipe misses), determinism, resume, paired margins, tables, plot, the
store's schema, and clear errors for bad input.

The study fixture is a real study directory (tinyscale.study.store) on the generated dataset whose
trials are hand-made (a known smooth r(c), d(c) with w solved against the count) and a real GP
fit over them, so the GP strategy runs through the fit stage without training a study.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sqlite3
import statistics

import numpy as np
import pytest

from _step_oracle import achievable
from baselines.efficientnet import compound_at_phi
from tinyscale.cli import main
from tinyscale.commands.compare import DEFAULT_STRATEGIES as CLI_DEFAULT_STRATEGIES
from tinyscale.evaluate.compare import (
    DEFAULT_STRATEGIES,
    MATCH_TOLERANCE,
    REGISTRY,
    STRATEGIES,
    BuiltRecipe,
    Cell,
    CompareSettings,
    CompareStore,
    Strategy,
    StrategyRecipe,
    build_recipe,
    comparison_csv,
    comparison_figure,
    comparison_markdown,
    comparison_table,
    default_settings,
    load_comparison,
    margin_table,
    parse_ratios,
    parse_strategies,
    run_comparison,
    strategy_builders,
    strategy_recipe,
    write_report,
)
from tinyscale.space.cost import cost, macs
from tinyscale.fit.gp import fit_scaling
from tinyscale.fit.solve import RecipeSolver
from tinyscale.study.store import Study
from tinyscale.train.heartbeat import heartbeat_path, read_heartbeat
from tinyscale.train.trainer import TrainResult
from tinyscale.study.trial import StudyConfig
from tinyscale.space.steps import StepSolution
from tinyscale.space.width import solve_width

REFERENCE_RATIOS = (0.5, 0.25, 0.125, 0.0625)
CONFIG = StudyConfig(data="generated", base_resolution=32, num_classes=10, steps=8, batch_size=32,
                     extra={"warmup": 2})
# Tiny budget: the tests check the machinery, not which strategy wins. At this 32 px base,
# compound scaling cannot come within 2 % of c = 0.5 (checked below), so that row is interpolated.
SETTINGS = CompareSettings(ratios=(0.5, 0.125), strategies=("gp", "efficientnet"), seeds=(0, 1),
                           steps=8, batch_size=32, threads=1)
BASELINE_MACS = macs(CONFIG.recipe(1.0, 1.0, 1.0))


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


def _counted(recipe):
    return macs(recipe) / BASELINE_MACS


def test_every_strategy_is_built_at_matched_cost_or_says_why(fitted_study):
    builders = strategy_builders(fitted_study, CONFIG, STRATEGIES)
    assert set(builders) == {"gp", "gp-pareto", "efficientnet", "uniform", "fast", "width", "depth", "resolution"}
    interpolated = set()
    for c in REFERENCE_RATIOS:
        for name, builder in builders.items():
            built = build_recipe(name, builder, c, CONFIG)
            if built.recipe is None:
                # Only a strategy that cannot reach c may skip it, and it must say so.
                assert built.note.startswith("not built:") and "out of reach" in built.note, (name, c, built.note)
                assert built.parts() == {}
                continue
            achieved = _counted(built.recipe)  # counted independently of the strategy
            assert built.achieved == pytest.approx(achieved, rel=1e-12)
            assert (built.recipe.base_resolution, built.recipe.num_classes) == (32, 10)
            if abs(achieved / c - 1.0) <= MATCH_TOLERANCE:
                assert built.matched and not built.interpolated and list(built.parts()) == ["single"]
                continue
            # More than 2 % off: both achievable steps around c are trained and interpolated.
            assert built.interpolated and built.matched, (name, c, built.note)
            lo, hi = _counted(built.below), _counted(built.above)
            assert (built.achieved_below, built.achieved_above) == pytest.approx((lo, hi), rel=1e-12)
            assert lo < c < hi and achieved in (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
            assert built.parts() == {"below": built.below, "above": built.above}
            assert f"interpolated in log c between the steps at {lo:.4g}" in built.note and f"{hi:.4g}" in built.note
            interpolated.add((name, c))
    # The GP recipe's width is solved against the count: it meets every reference ratio.
    for c in REFERENCE_RATIOS:
        assert build_recipe("gp", builders["gp"], c, CONFIG).matched, c
    # Compound scaling at a 32 px base moves in coarse steps (whole pixels, ceil'd repeats): at
    # c = 0.5 no φ comes within 2 % (a dense scan of φ finds no achievable ratio there), so the
    # row is interpolated between the two steps around c, which are adjacent in the scan.
    scan = achievable(lambda phi: compound_at_phi(phi, base_resolution=32, num_classes=10),
                      np.linspace(-8.0, 0.0, 4000))
    assert not [x for x in scan if abs(x / 0.5 - 1) <= MATCH_TOLERANCE]
    eff = build_recipe("efficientnet", builders["efficientnet"], 0.5, CONFIG)
    below = max(x for x in scan if x < 0.5)
    above = min(x for x in scan if x > 0.5)
    assert (eff.achieved_below, eff.achieved_above) == pytest.approx((below, above), rel=1e-12)
    assert ("efficientnet", 0.5) in interpolated
    assert {name for name, _ in interpolated} >= {"efficientnet", "fast"}


def test_gp_rows_interpolate_between_width_steps_unless_clamped(fitted_study):
    builders = strategy_builders(fitted_study, CONFIG, ("gp",))
    solver = RecipeSolver.load(fitted_study)
    found = 0
    for c in np.geomspace(0.06, 0.2, 60):
        c = float(c)
        answer, built = solver.solve(c), build_recipe("gp", builders["gp"], c, CONFIG)
        assert built.recipe == answer.recipe
        if abs(answer.achieved / c - 1) <= MATCH_TOLERANCE:
            assert not built.interpolated
            continue
        found += 1
        # The two width steps at the GP's (r, d): only w differs, and they are the solver's steps.
        assert built.interpolated and built.below.w < built.above.w
        assert (built.below.r, built.below.d) == (built.above.r, built.above.d) == (answer.recipe.r, answer.recipe.d)
        assert (_counted(built.below), _counted(built.above)) == pytest.approx(
            (answer.ratio_below, answer.ratio_above), rel=1e-12)
    assert found >= 2  # the grid does hit width steps more than 2 % from c
    # Far below the window the width is clamped at its minimum: no step below c exists, so one
    # recipe is trained and the row says it is not matched and why.
    built = build_recipe("gp", builders["gp"], 0.02, CONFIG)
    assert not built.interpolated and not built.matched and list(built.parts()) == ["single"]
    assert built.note.startswith("FLOPs not matched") and "no step on the other side of c" in built.note
    assert "w clamped" in built.note


def test_efficientnet_uses_its_own_rules_and_the_gp_the_studys(fitted_study):
    builders = strategy_builders(fitted_study, CONFIG, ("gp", "efficientnet", "depth"))
    assert build_recipe("efficientnet", builders["efficientnet"], 0.25, CONFIG).recipe.rules == "efficientnet"
    assert build_recipe("gp", builders["gp"], 0.25, CONFIG).recipe.rules == CONFIG.rules
    assert build_recipe("depth", builders["depth"], 0.5, CONFIG).recipe.rules == CONFIG.rules
    # Depth alone bottoms out at one block per stage, far above c = 0.0625: no recipe, a reason.
    built = build_recipe("depth", builders["depth"], 0.0625, CONFIG)
    assert built.recipe is None and "1 block per stage" in built.note


def test_gp_pareto_is_the_papers_fit_of_the_same_trials_whatever_the_saved_fit(fitted_study):
    with Study.open(fitted_study) as study:
        trials = study.trials(state="completed")
    assert RecipeSolver.load(fitted_study).fit.method == "surface"
    paper = RecipeSolver(fit_scaling(trials, CONFIG, method="pareto"))
    assert paper.fit.k == 5 and len(paper.fit.data.numbers) == 5  # 10 trials: the floor of 5, not all 10
    builders = strategy_builders(fitted_study, CONFIG, ("gp", "gp-pareto"))
    for c in (0.25, 0.125):
        built = build_recipe("gp-pareto", builders["gp-pareto"], c, CONFIG)
        assert built.recipe == paper.solve(c).recipe
        assert build_recipe("gp", builders["gp"], c, CONFIG).recipe == RecipeSolver.load(fitted_study).solve(c).recipe


def test_a_strategy_missing_the_target_is_flagged():
    def too_big(c):  # always the unscaled network
        return CONFIG.recipe(1.0, 1.0, 1.0), "fixed"

    built = build_recipe("width", too_big, 0.5, CONFIG)
    assert not built.matched and built.achieved == pytest.approx(1.0)
    assert built.note.startswith("FLOPs not matched: achieved 1 is +100.0% off") and built.note.endswith("fixed")
    assert list(built.parts()) == ["single"]


def test_brackets_are_used_only_when_they_straddle_the_target():
    lo, mid, hi = CONFIG.recipe(1.0, 0.5, 1.0), CONFIG.recipe(1.0, 0.7, 1.0), CONFIG.recipe(1.0, 1.0, 1.0)
    c_lo, c_hi = _counted(lo), _counted(hi)
    c = math.sqrt(c_lo * c_hi)  # far (> 2 %) from both
    assert c / c_lo - 1 > 0.1 and c_hi / c - 1 > 0.1
    built = build_recipe("width", lambda t: StrategyRecipe(hi, "n", lo, hi), c, CONFIG)
    assert built.interpolated and built.matched and built.parts() == {"below": lo, "above": hi}
    assert built.recipe == hi and built.note.endswith("; n")
    # One side missing: today's behaviour, one recipe, flagged, with the reason.
    for below, above in ((None, hi), (lo, None)):
        built = build_recipe("width", lambda t: StrategyRecipe(hi, "", below, above), c, CONFIG)
        assert not built.interpolated and not built.matched and "no step on the other side" in built.note
    # Steps that do not bracket c are not interpolated.
    c_mid = _counted(mid)
    target = math.sqrt(c_mid * c_hi)
    assert target / c_mid - 1 > 0.1
    built = build_recipe("width", lambda t: StrategyRecipe(mid, "", lo, mid), target, CONFIG)
    assert not built.interpolated and not built.matched and "do not bracket c" in built.note
    # Brackets built for another context are an error, as the recipe itself would be.
    other = lo.with_(base_resolution=64)
    with pytest.raises(ValueError, match="base 64 px"):
        build_recipe("width", lambda t: StrategyRecipe(hi, "", other, hi), c, CONFIG)


def test_a_solution_gives_a_strategy_its_steps_only_when_it_has_two():
    lo, hi = CONFIG.recipe(1.0, 0.5, 1.0), CONFIG.recipe(1.0, 1.0, 1.0)
    two = StepSolution(target=0.5, achieved=0.62, below=0.31, above=0.62, recipe=hi, recipe_below=lo,
                       recipe_above=hi, knob=1.0, knob_below=0.5, knob_above=1.0)
    assert strategy_recipe(two, "n") == StrategyRecipe(hi, "n", lo, hi)
    # One step (an exact hit, a clamped width): nothing on the other side to interpolate with.
    assert strategy_recipe(StepSolution.one_step(0.5, 0.62, hi, 1.0), "n") == StrategyRecipe(hi, "n")


# ------------------------------------------------------------------------ running, determinism, resume


def _expected_parts(fitted_study) -> dict:
    """(strategy, ratio) -> the brackets the run must train, from the builds checked above."""
    builders = strategy_builders(fitted_study, CONFIG, SETTINGS.strategies)
    return {(n, c): build_recipe(n, builders[n], c, CONFIG) for n in SETTINGS.strategies for c in SETTINGS.ratios}


def _accuracy_at_target(built, cells: dict, seed: int) -> float:
    """A row's accuracy at one seed, recomputed from the trained cells: the single recipe's, or
    the two steps' interpolated linearly in log c at the target."""
    if not built.interpolated:
        return cells[(built.strategy, built.target, seed, "single")].accuracy
    lo, hi = _counted(built.below), _counted(built.above)
    a = cells[(built.strategy, built.target, seed, "below")].accuracy
    b = cells[(built.strategy, built.target, seed, "above")].accuracy
    return a + (b - a) * math.log(built.target / lo) / math.log(hi / lo)


def test_full_run_trains_every_cell_once_with_the_shared_budget(full_run, fitted_study):
    directory, comparison, trained = full_run
    builds = _expected_parts(fitted_study)
    assert builds[("efficientnet", 0.5)].interpolated  # the run exercises interpolation
    expected = {(n, c, s, b) for (n, c), built in builds.items() for s in SETTINGS.seeds for b in built.parts()}
    assert len(expected) == 10  # gp 2 ratios, efficientnet 1 single + 1 interpolated (2 recipes), x 2 seeds
    assert {x.key for x in trained} == expected and len(trained) == len(expected)
    assert comparison.complete and comparison.cells_done == comparison.cells_total == len(expected)
    cells = {x.key: x for x in trained}
    for row in comparison.rows:
        built = builds[(row.strategy, row.ratio)]
        assert row.seeds == SETTINGS.seeds and all(0.0 <= a <= 1.0 for a in row.accuracies)
        assert row.accuracies == pytest.approx([_accuracy_at_target(built, cells, s) for s in SETTINGS.seeds],
                                               rel=1e-12, abs=1e-15)
        assert row.mean == pytest.approx(statistics.fmean(row.accuracies))
        assert row.std == pytest.approx(statistics.stdev(row.accuracies))
        assert row.interpolated == built.interpolated and row.matched
        if row.interpolated:
            b = row.bracket
            assert (b.below, b.above) == (built.below, built.above)
            below = [cells[(row.strategy, row.ratio, s, "below")].accuracy for s in SETTINGS.seeds]
            above = [cells[(row.strategy, row.ratio, s, "above")].accuracy for s in SETTINGS.seeds]
            assert (list(b.accuracies_below), list(b.accuracies_above)) == (below, above)
            for acc, lo, hi in zip(row.accuracies, below, above):  # between the two steps' results
                assert min(lo, hi) - 1e-12 <= acc <= max(lo, hi) + 1e-12
            assert row.effective_macs == pytest.approx(row.ratio * BASELINE_MACS, rel=1e-12)
        else:
            assert row.effective_macs == row.macs == macs(row.recipe)
    assert load_comparison(directory) == comparison


def test_identical_seeds_give_identical_results_and_resume_skips_finished_cells(full_run, fitted_study, tmp_path):
    _, reference, reference_cells = full_run
    total = len(reference_cells)
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
    assert f"Partial: 3 of {total}" in comparison_markdown(partial)
    # Seed-major: the first cells are all seed 0.
    assert {x.seed for x in first} == {0}

    second = []
    resumed = run_comparison(directory, SETTINGS, progress=False, on_cell=second.append)
    assert len(second) == total - 3 and not {x.key for x in first} & {x.key for x in second}
    # Same seeds, same trainer: every cell equals the uninterrupted run's, bit for bit.
    by_key = {x.key: x for x in reference_cells}
    for cell in first + second:
        ref = by_key[cell.key]
        assert (cell.state, cell.accuracy, cell.loss) == (ref.state, ref.accuracy, ref.loss)
    assert resumed.rows == reference.rows
    # ... and the seed matters: the two seeds of a row do not all coincide.
    assert any(len(set(row.accuracies)) > 1 for row in reference.rows)

    # Running again trains nothing.
    third = []
    run_comparison(directory, SETTINGS, progress=False, on_cell=third.append)
    assert third == []


def test_a_comparison_killed_mid_cell_continues_that_cell_from_its_progress(full_run, fitted_study, tmp_path,
                                                                           monkeypatch):
    import torch

    import tinyscale.train.trainer as trainer
    from tinyscale.storage import PROGRESS_DIR

    _, _, reference_cells = full_run
    directory = tmp_path / "study"
    shutil.copytree(fitted_study, directory)
    monkeypatch.setattr(trainer, "PROGRESS_EVERY", 0.0)  # save after every step
    real, calls = trainer.F.cross_entropy, {"n": 0}

    class Killed(BaseException):
        pass

    def killed_mid_second_cell(*args, **kwargs):
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == SETTINGS.steps + 6:  # the 6th step of the second cell (5 saved)
                raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer.F, "cross_entropy", killed_mid_second_cell)
    first = []
    with pytest.raises(Killed):
        run_comparison(directory, SETTINGS, progress=False, on_cell=first.append)
    saved = sorted((directory / "compare" / PROGRESS_DIR).glob("*.pt"))
    assert len(first) == 1 and len(saved) == 1  # the first cell's progress went when it was stored
    beat = read_heartbeat(heartbeat_path(saved[0]))  # how far the killed cell had come, as the bar showed it
    assert beat is not None and beat[0] <= 5
    assert torch.load(saved[0], weights_only=True)["step"] == 5
    monkeypatch.setattr(trainer.F, "cross_entropy", real)
    second = []
    run_comparison(directory, SETTINGS, progress=False, on_cell=second.append)
    by_key = {x.key: x for x in reference_cells}
    for cell in first + second:  # the continued cell too: bit for bit the uninterrupted run's
        assert (cell.state, cell.accuracy, cell.loss) == (by_key[cell.key].state, by_key[cell.key].accuracy,
                                                          by_key[cell.key].loss)
    assert not (directory / "compare" / PROGRESS_DIR).exists()  # every run stored: its folder went with them


def test_a_comparison_run_in_several_calls_is_read_back_whole(full_run, fitted_study, tmp_path):
    _, reference, _ = full_run
    directory = tmp_path / "study"
    shutil.copytree(fitted_study, directory)
    run_comparison(directory, SETTINGS, progress=False)
    # A later, narrower call (one strategy, one seed, one ratio): it returns what it asked for...
    narrow = CompareSettings(**{**SETTINGS.__dict__, "strategies": ("gp",), "seeds": (0,), "ratios": (0.125,)})
    asked = run_comparison(directory, narrow, progress=False)
    assert {(r.strategy, r.ratio) for r in asked.rows} == {("gp", 0.125)}
    # ... but what the app and reports read is every stored cell, as the full run gave them.
    whole = load_comparison(directory)
    assert whole.rows == reference.rows and whole.complete


def test_worker_processes_give_the_same_cells(full_run, fitted_study, tmp_path):
    from tinyscale.study.executors import make_executor

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
    assert any(r.interpolated for r in result.rows)


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

    # A row that trained two bracketing recipes cannot silently become a single-recipe row.
    lo, hi = CONFIG.recipe(1.0, 0.3, 1.0), CONFIG.recipe(1.0, 0.6, 1.0)
    c = math.sqrt(_counted(lo) * _counted(hi))
    two = CompareSettings(ratios=(c,), strategies=("width",), seeds=(0,), steps=4, batch_size=32, threads=1)
    trained = []
    run_comparison(fresh, two, progress=False, restart=True, on_cell=trained.append,
                   builders={"width": lambda t: StrategyRecipe(hi, "", lo, hi)})
    assert sorted(x.bracket for x in trained) == ["above", "below"]
    with pytest.raises(ValueError, match=r"\(above\) is now not trained.*refitted.*--restart"):
        run_comparison(fresh, two, progress=False, builders={"width": lambda t: (hi, "")})


def test_an_old_store_is_a_clear_error_until_restart(fitted_study, tmp_path):
    directory = tmp_path / "study"
    shutil.copytree(fitted_study, directory)
    path = directory / "compare" / "compare.sqlite"
    path.parent.mkdir()
    conn = sqlite3.connect(path)  # what schema 1 wrote: one cell per (strategy, ratio, seed)
    conn.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE recipes (strategy TEXT NOT NULL, ratio REAL NOT NULL, recipe TEXT, achieved REAL,
            note TEXT NOT NULL, PRIMARY KEY (strategy, ratio));
        CREATE TABLE cells (strategy TEXT NOT NULL, ratio REAL NOT NULL, seed INTEGER NOT NULL, state TEXT NOT NULL,
            accuracy REAL, loss REAL, train_seconds REAL, reason TEXT, recipe TEXT NOT NULL,
            finished_at REAL NOT NULL, PRIMARY KEY (strategy, ratio, seed));
        INSERT INTO meta VALUES ('schema', '1');
        INSERT INTO meta VALUES ('budget', '{}');
        INSERT INTO cells VALUES ('width', 0.25, 0, 'completed', 0.5, 1.0, 1.0, NULL, '{}', 0.0);
    """)
    conn.commit()
    conn.close()
    one = CompareSettings(ratios=(0.25,), strategies=("width",), seeds=(0,), steps=4, batch_size=32, threads=1)
    builders = {"width": lambda c: (CONFIG.recipe(1.0, 0.5, 1.0), "")}
    message = r"another tinyscale version \(store schema 1, this version uses 2.*pass --restart"
    with pytest.raises(ValueError, match=message):
        load_comparison(directory)
    with pytest.raises(ValueError, match=message):
        run_comparison(directory, one, progress=False, builders=builders)
    assert main(["compare", str(directory), "--strategies", "width", "--ratios", "0.25", "--seeds", "1",
                 "--no-progress"]) == 2
    trained = []
    run_comparison(directory, one, progress=False, restart=True, builders=builders, on_cell=trained.append)
    assert [x.key for x in trained] == [("width", 0.25, 0, "single")]
    assert load_comparison(directory).cells_done == 1
    # A schema-1 store from before the version was recorded (no 'schema' key) is recognised too.
    with CompareStore.open(directory) as store:
        store._conn.execute("DELETE FROM meta WHERE key = 'schema'")
        store._conn.commit()
    assert load_comparison(directory) is not None  # current tables: read as current
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE cells; CREATE TABLE cells (strategy TEXT, ratio REAL, seed INTEGER);")
    conn.close()
    with pytest.raises(ValueError, match=r"store schema 1"):
        load_comparison(directory)


# ------------------------------------------------------------------------ margins


def test_margins_are_paired_by_seed_and_interpolation_is_linear_in_log_c(tmp_path):
    """Hand-made cells with known accuracies, through the store: per-seed interpolation, paired
    margins (mean and standard error of per-seed differences), the mean over ratios."""
    gp, wid = CONFIG.recipe(1.0, 0.7, 1.0), CONFIG.recipe(1.0, 0.5, 1.0)
    lo, hi = CONFIG.recipe(0.8, 0.5, 0.5), CONFIG.recipe(0.9, 0.6, 0.6)
    settings = {"ratios": [0.5, 0.25], "strategies": ["gp", "efficientnet", "width"], "seeds": [0, 1, 2],
                "steps": 1, "batch_size": 1, "threads": None}
    accs = {  # (strategy, ratio, bracket) -> accuracy per seed (None: failed)
        ("gp", 0.5, "single"): [0.80, 0.82, 0.78],
        ("efficientnet", 0.5, "below"): [0.70, 0.74, 0.66],  # steps at 0.4 and 0.6 (stored ratios)
        ("efficientnet", 0.5, "above"): [0.80, 0.84, 0.76],
        ("width", 0.5, "single"): [0.75, 0.70, 0.80],
        ("gp", 0.25, "single"): [0.70, 0.72, 0.74],
        ("efficientnet", 0.25, "single"): [0.69, 0.70, None],
    }
    with CompareStore.open(tmp_path, {"budget": 1}) as store:
        store.set_meta("settings", json.dumps(settings))
        for c in (0.5, 0.25):
            store.put_recipe(BuiltRecipe("gp", c, gp, c, ""))
        store.put_recipe(BuiltRecipe("efficientnet", 0.5, hi, 0.6, "", lo, hi, 0.4, 0.6))
        store.put_recipe(BuiltRecipe("efficientnet", 0.25, lo, 0.25, ""))
        store.put_recipe(BuiltRecipe("width", 0.5, wid, 0.5, ""))
        store.put_recipe(BuiltRecipe("width", 0.25, None, None, "not built: out of reach"))
        for (name, c, bracket), values in accs.items():
            recipe = {"below": lo, "above": hi}.get(bracket, gp if name == "gp" else wid if name == "width" else lo)
            for seed, a in enumerate(values):
                state, reason = ("completed", None) if a is not None else ("failed", "boom")
                store.put_cell(Cell(name, c, seed, state, a, None, 1.0, reason, bracket), recipe)
    comparison = load_comparison(tmp_path)
    assert comparison.complete and comparison.cells_done == comparison.cells_total == 18

    # Interpolation at c = 0.5 between 0.4 and 0.6, linear in log c: weight ln(1.25) / ln(1.5).
    w = math.log(1.25) / math.log(1.5)
    eff = comparison.row(0.5, "efficientnet")
    assert eff.interpolated and eff.bracket.weight == pytest.approx(w, rel=1e-12)
    assert eff.accuracies == pytest.approx([0.70 + 0.10 * w, 0.74 + 0.10 * w, 0.66 + 0.10 * w], rel=1e-12)
    failed = comparison.row(0.25, "efficientnet")
    assert failed.seeds == (0, 1) and failed.failed == 1 and "1 run(s) failed: boom" in failed.note

    # GP − EfficientNet at 0.5: differences 0.1 - 0.1w + (0.0, -0.02, +0.02): sd 0.02, se 0.02/√3.
    m = comparison.margin(0.5, "efficientnet")
    assert (m.value, m.stderr, m.n, m.matched) == (pytest.approx(0.10 - 0.10 * w), pytest.approx(0.02 / math.sqrt(3)),
                                                   3, True)
    # Unpaired, the standard error would be sqrt(0.02²/3 + 0.04²/3) ≈ 0.0258: pairing removes the
    # seed effect both rows share.
    # At 0.25 EfficientNet's seed 2 failed: paired over seeds 0 and 1 only.
    m = comparison.margin(0.25, "efficientnet")
    assert (m.value, m.stderr, m.n) == (pytest.approx(0.015), pytest.approx(0.005), 2)
    # GP − width: only at 0.5 (width alone cannot reach 0.25); differences 0.05, 0.12, -0.02.
    assert [x.ratio for x in comparison.margins("width")] == [0.5]
    m = comparison.margin(0.5, "width")
    assert (m.value, m.stderr) == (pytest.approx(0.05), pytest.approx(0.07 / math.sqrt(3)))
    # Mean over ratios, per seed, over the seeds present at every ratio (0 and 1).
    mean = comparison.mean_margin("efficientnet")
    per_seed = [((0.10 - 0.10 * w) + 0.01) / 2, ((0.08 - 0.10 * w) + 0.02) / 2]
    assert mean.ratios == (0.5, 0.25) and mean.n == 2
    assert mean.value == pytest.approx(statistics.fmean(per_seed))
    assert mean.stderr == pytest.approx(statistics.stdev(per_seed) / math.sqrt(2))
    assert comparison.mean_margin("width").ratios == (0.5,)

    # The tables carry the same numbers (percentage points).
    rows = {(r["target"], r["strategy"]): r for r in comparison_table(comparison)}
    assert rows[(0.5, "gp")]["margin_vs_efficientnet"] == pytest.approx(100 * (0.10 - 0.10 * w))
    assert rows[(0.5, "efficientnet")]["gp_margin"] == pytest.approx(100 * (0.10 - 0.10 * w))
    assert rows[(0.5, "gp")]["margin_stderr"] == rows[(0.5, "efficientnet")]["gp_margin_stderr"] == pytest.approx(
        2 / math.sqrt(3))
    assert rows[(0.5, "gp")]["gp_margin"] is None and rows[(0.25, "width")]["gp_margin"] is None
    assert rows[(0.5, "efficientnet")]["acc_below"] == pytest.approx(70.0)
    assert rows[(0.5, "efficientnet")]["acc_above"] == pytest.approx(80.0)
    entries = {(e["baseline"], e["target"]): e for e in margin_table(comparison)}
    assert set(entries) == {("efficientnet", 0.5), ("efficientnet", 0.25), ("efficientnet", None),
                            ("width", 0.5), ("width", None)}
    assert entries[("efficientnet", None)]["margin"] == pytest.approx(100 * statistics.fmean(per_seed))
    md = comparison_markdown(comparison)
    assert f"| width | +5.00 ± {7 / math.sqrt(3):.2f} | – | +5.00 ± {7 / math.sqrt(3):.2f} (c = 0.5, n = 3) |" in md
    eff_line = next(line for line in md.splitlines() if line.startswith("| efficientnet | "))
    assert eff_line.startswith(f"| efficientnet | {100 * (0.10 - 0.10 * w):+.2f} ± 1.15 | +1.50 ± 0.50 | ")
    assert eff_line.endswith(f"{100 * statistics.fmean(per_seed):+.2f} ± "
                             f"{100 * statistics.stdev(per_seed) / math.sqrt(2):.2f} (all c, n = 2) |")
    interp_line = next(line for line in md.splitlines() if line.startswith("| 0.5 | efficientnet |"))
    assert "0.4000 ↔ 0.6000 (interp.)" in interp_line and f"{100 * statistics.fmean(eff.accuracies):.2f}" in interp_line


# ------------------------------------------------------------------------ tables and plot


def test_tables_report_every_row_and_the_gp_margin(full_run, fitted_study):
    _, comparison, trained = full_run
    builds = _expected_parts(fitted_study)
    cells = {x.key: x for x in trained}
    rows = comparison_table(comparison)
    assert [(r["target"], r["strategy"]) for r in rows] == [
        (c, n) for c in SETTINGS.ratios for n in SETTINGS.strategies
    ]
    for r, row in zip(rows, comparison.rows):
        assert r["params"] == cost(row.recipe).params and r["macs"] == cost(row.recipe).macs
        assert r["acc_mean"] == pytest.approx(100 * statistics.fmean(row.accuracies))
        assert r["interpolated"] == row.interpolated and r["matched"]
        if row.interpolated:
            assert (r["macs_below"], r["macs_above"]) == (macs(row.bracket.below), macs(row.bracket.above))
            assert r["achieved_below"] < r["target"] < r["achieved_above"]
    for c in SETTINGS.ratios:
        gp = next(r for r in rows if r["target"] == c and r["strategy"] == "gp")
        eff = next(r for r in rows if r["target"] == c and r["strategy"] == "efficientnet")
        diffs = [_accuracy_at_target(builds[("gp", c)], cells, s) - _accuracy_at_target(builds[("efficientnet", c)],
                                                                                          cells, s)
                 for s in SETTINGS.seeds]
        assert gp["margin_vs_efficientnet"] == pytest.approx(100 * statistics.fmean(diffs))
        assert gp["margin_stderr"] == pytest.approx(100 * statistics.stdev(diffs) / math.sqrt(len(diffs)))
        assert eff["gp_margin"] == pytest.approx(gp["margin_vs_efficientnet"])
        assert eff["margin_vs_efficientnet"] is None and gp["gp_margin"] is None

    parsed = list(csv.DictReader(io.StringIO(comparison_csv(comparison))))
    assert len(parsed) == len(rows) and float(parsed[0]["acc_mean"]) == pytest.approx(rows[0]["acc_mean"])
    assert [p["interpolated"] for p in parsed] == [str(r["interpolated"]) for r in rows]

    md = comparison_markdown(comparison)
    table_lines = [line for line in md.splitlines() if line.startswith("| 0.")]
    assert len(table_lines) == len(rows) + len(SETTINGS.ratios)  # strategy rows + margin rows
    assert f"{rows[0]['acc_mean']:.2f} ± {rows[0]['acc_std']:.2f}" in md
    assert "| strategy | c = 0.5 | c = 0.125 | mean over c |" in md
    vs = next(line for line in md.splitlines() if line.startswith("| efficientnet | "))
    gp_rows = [next(r for r in rows if r["target"] == c and r["strategy"] == "gp") for c in SETTINGS.ratios]
    assert vs.startswith("| efficientnet | " + " | ".join(
        f"{g['margin_vs_efficientnet']:+.2f} ± {g['margin_stderr']:.2f}" for g in gp_rows))


def test_figure_has_one_line_per_strategy_at_the_macs_its_accuracy_applies_to(full_run, fitted_study, tmp_path):
    """The figure and the report files against what is known of the fixture without the plot or
    table code: the registry's labels and colours, the recipes' MACs counted by the cost model,
    the trained cells' accuracies, and which row is interpolated (efficientnet at c = 0.5; the
    other three train one recipe within the tolerance: 10 cells, see the full-run test)."""
    _, comparison, trained = full_run
    builds = _expected_parts(fitted_study)
    assert [k for k, b in builds.items() if b.interpolated] == [("efficientnet", 0.5)]
    cells = {x.key: x for x in trained}

    def seed_accuracies(name, c, bracket="single"):
        return [cells[(name, c, s, bracket)].accuracy for s in SETTINGS.seeds]

    fig = comparison_figure(comparison)
    assert [t.name for t in fig.data] == ["GP recipe (this study's fit)", "EfficientNet compound (φ solved)"]
    assert [t.line.color for t in fig.data] == ["#d62728", "#1f77b4"]
    assert [t.line.width for t in fig.data] == [3, 2]
    assert [t.mode for t in fig.data] == ["lines+markers"] * 2
    gp, eff = fig.data
    # Points run in increasing MACs: c = 0.125, then c = 0.5. A single recipe's accuracy sits at
    # its own counted MACs (within the tolerance of c x B0); its error bar is the std of two
    # seeds, |a - b| / sqrt(2).
    for trace, name, points in ((gp, "gp", (0, 1)), (eff, "efficientnet", (0,))):
        assert len(trace.x) == len(trace.y) == len(trace.error_y.array) == 2
        for i in points:
            c = (0.125, 0.5)[i]
            counted = cost(builds[(name, c)].recipe).macs
            assert trace.x[i] == pytest.approx(counted, rel=1e-12)
            assert abs(trace.x[i] / (c * BASELINE_MACS) - 1) <= MATCH_TOLERANCE
            a, b = seed_accuracies(name, c)
            assert trace.y[i] == pytest.approx(100 * (a + b) / 2)
            assert trace.error_y.array[i] == pytest.approx(100 * abs(a - b) / math.sqrt(2))
    # The interpolated row's accuracy applies at the target itself, not at the recipe closest to
    # it (more than 2 % off), and lies between the two trained steps' mean accuracies.
    built = builds[("efficientnet", 0.5)]
    assert eff.x[1] == pytest.approx(0.5 * BASELINE_MACS, rel=1e-12)
    assert abs(macs(built.recipe) / eff.x[1] - 1) > MATCH_TOLERANCE
    below = 100 * statistics.fmean(seed_accuracies("efficientnet", 0.5, "below"))
    above = 100 * statistics.fmean(seed_accuracies("efficientnet", 0.5, "above"))
    assert min(below, above) - 1e-9 <= eff.y[1] <= max(below, above) + 1e-9
    assert eff.y[1] == pytest.approx(100 * statistics.fmean(_accuracy_at_target(built, cells, s)
                                                            for s in SETTINGS.seeds))
    assert list(gp.marker.symbol) == ["circle", "circle"]
    assert list(eff.marker.symbol) == ["circle", "diamond"]
    assert gp.hovertext[0].startswith("gp at c=0.125<br>r=")
    assert eff.hovertext[1].startswith("efficientnet at c=0.5<br>below c=")
    assert "interpolated in log c at 0.5" in eff.hovertext[1]
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.title.text == "MACs (counted, log scale)"
    assert fig.layout.title.text == "Accuracy vs MACs at matched FLOPs — generated, 8 steps × 2 seeds"

    paths = write_report(comparison, tmp_path / "report")
    assert [p.name for p in (paths.markdown, paths.csv, paths.html)] == [
        "comparison.md", "comparison.csv", "comparison.html"]
    table = {(r["target"], r["strategy"]): r for r in comparison_table(comparison)}
    for (name, c), b in builds.items():
        accs = [_accuracy_at_target(b, cells, s) for s in SETTINGS.seeds]
        assert table[(c, name)]["acc_mean"] == pytest.approx(100 * statistics.fmean(accs))
        assert table[(c, name)]["acc_std"] == pytest.approx(100 * abs(accs[0] - accs[1]) / math.sqrt(2))

    # Markdown: one line per (target, strategy) with the accuracy as the table dict prints it,
    # the seed count, and the counted MACs (both steps' for the interpolated row).
    lines = paths.markdown.read_text().splitlines()
    assert lines[0].startswith("| target c | strategy | recipe (r, w, d) | px | achieved c | MACs |")
    for (name, c), b in builds.items():
        found = [line for line in lines if line.startswith(f"| {c:g} | {name} | ")]
        assert len(found) == 1, (name, c)
        t = table[(c, name)]
        acc = f"{t['acc_mean']:.2f} ± {t['acc_std']:.2f}" + (" (interp.)" if b.interpolated else "")
        assert f" | {acc} | 2 | " in found[0]
        if b.interpolated:
            assert f" | {macs(b.below) / 1e6:.2f}M ↔ {macs(b.above) / 1e6:.2f}M | " in found[0]
        else:
            assert f" | {macs(b.recipe) / 1e6:.2f}M | " in found[0]
    assert "| target c | GP − EfficientNet (pp) | ± stderr | matched FLOPs |" in lines
    assert sum(line.startswith("| efficientnet | ") for line in lines) == 1  # GP over each other strategy
    assert not any(line.startswith("Partial") for line in lines)

    # CSV: the four rows in table order, the counted MACs, which row is interpolated, two seeds each.
    parsed = list(csv.DictReader(io.StringIO(paths.csv.read_text())))
    assert [(float(p["target"]), p["strategy"]) for p in parsed] == [
        (0.5, "gp"), (0.5, "efficientnet"), (0.125, "gp"), (0.125, "efficientnet")]
    for p in parsed:
        b = builds[(p["strategy"], float(p["target"]))]
        assert int(p["macs"]) == macs(b.recipe) and p["seeds"] == "2"
        assert p["interpolated"] == str(b.interpolated)
        assert float(p["acc_mean"]) == pytest.approx(table[(b.target, b.strategy)]["acc_mean"])
        if b.interpolated:
            assert (int(p["macs_below"]), int(p["macs_above"])) == (macs(b.below), macs(b.above))
            assert float(p["effective_macs"]) == pytest.approx(0.5 * BASELINE_MACS, rel=1e-12)
        else:
            assert p["macs_below"] == p["macs_above"] == "" and int(p["effective_macs"]) == macs(b.recipe)

    html = paths.html.read_text()
    assert "plotly" in html[:5000].lower() and "EfficientNet compound" in html
    # PNG when kaleido can render; otherwise no file and a message saying why.
    if paths.png is not None:
        assert paths.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths.png_message == ""
    else:
        assert paths.png_message.startswith("PNG skipped")


def test_default_budget_is_four_times_the_studys_longest_runs(fitted_study, tmp_path):
    settings = default_settings(fitted_study)
    assert settings.steps == 4 * CONFIG.steps and settings.batch_size == CONFIG.batch_size
    assert settings.ratios == REFERENCE_RATIOS and settings.seeds == (0, 1, 2)
    assert settings.strategies == ("gp", "gp-pareto", "efficientnet", "uniform", "fast", "width", "depth", "resolution")
    assert CLI_DEFAULT_STRATEGIES == ",".join(DEFAULT_STRATEGIES) == ",".join(settings.strategies)
    # A study in rungs: 4x its top rung's steps (10 x 3^2 = 90), not its brief rung 0's 10.
    from _synthetic_halving import CFG, SyntheticExecutor

    from tinyscale.study.driver import run_study

    run_study(tmp_path / "h", CFG, trials=2, executor=SyntheticExecutor(), progress=False).close()
    assert default_settings(tmp_path / "h").steps == 4 * 90 and CFG.steps == 10 and CFG.rungs == 2


def test_a_registered_strategy_is_compared_like_the_others(monkeypatch, fitted_study):
    from tinyscale.evaluate.compare import STRATEGY_COLORS

    assert set(STRATEGY_COLORS) == set(REGISTRY) and all(s.label for s in REGISTRY.values())
    fixed = CONFIG.recipe(1.0, 0.5, 1.0)
    monkeypatch.setitem(REGISTRY, "custom", Strategy("custom", "a custom rule", None,
                                                     lambda study_dir, config, measure: lambda c: (fixed, "fixed")))
    assert parse_strategies("gp,custom") == ("gp", "custom")
    built = build_recipe("custom", strategy_builders(fitted_study, CONFIG, ("custom",))["custom"], 0.25, CONFIG)
    assert built.recipe == fixed and built.note.endswith("fixed")


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("text, message", [
    ("0.5,0", "positive"), ("-0.25", "positive"), ("0.5,abc", "not a number"), ("nan", "positive"),
    ("0.5,0.5", "twice"), ("", "at least one"),
])
def test_bad_ratios_are_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_ratios(text)


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown strategy 'tinynet'; choose from gp, gp-pareto, efficientnet"):
        parse_strategies("gp,tinynet")


def test_the_command_says_whether_the_fit_foresaw_the_order_the_runs_measured(full_run, capsys):
    """A rerun of the finished comparison trains nothing and prints, under the table, how the
    study's surface ordered the compared recipes against the runs (foresight's own tests judge
    the numbers on hand-made comparisons)."""
    from tinyscale.evaluate.compare.foresight import foresight
    from tinyscale.fit.gp import ScalingFit

    directory, comparison, _ = full_run
    fit = ScalingFit.load(directory)
    assert fit.surface is not None  # the fixture's fit is the default, an accuracy surface
    found = foresight(comparison, fit.surface)
    assert main(["compare", str(directory), "--strategies", "gp,efficientnet", "--ratios", "0.5,0.125", "--seeds",
                 "2", "--steps", "8", "--batch-size", "32", "--threads", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert found is not None and f"orders {found.agreed} of the {found.judged} strategy pairs" in out
    assert out.index("Did the fit foresee this?") > out.index("| target c")
    # --json: each row carries what the surface predicted for its recipe.
    assert main(["compare", str(directory), "--strategies", "gp,efficientnet", "--ratios", "0.5,0.125", "--seeds",
                 "2", "--steps", "8", "--batch-size", "32", "--threads", "1", "--no-progress", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["target"], r["strategy"]): r["surface_predicted"] for r in rows} == {
        (row.ratio, row.strategy): found.predicted.get((row.ratio, row.strategy)) for row in comparison.rows}


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


def test_cli_progress_says_the_run_length(unfitted_study, tmp_path, capsys):
    directory = tmp_path / "study"
    shutil.copytree(unfitted_study, directory)
    assert main(["compare", str(directory), "--ratios", "0.25", "--strategies", "width", "--seeds", "2",
                 "--threads", "1", "--workers", "1", "--json"]) == 0
    captured = capsys.readouterr()
    # The default length, 4x the study's runs (8 steps), on the progress bar (stderr); stdout stays JSON.
    assert "compare (32 steps a run)" in captured.err
    # And, before it trains, about how long that takes at the speed of the study's runs (0.1 s of
    # training and 0.1 s of evaluation for 8 steps each: under a minute).
    assert "compare (32 steps a run): 2 runs to train, under a minute at the speed of the study's own runs" in captured.err
    assert "seed=0" in captured.err and "under a minute left" in captured.err  # after the first run, on the bar
    assert json.loads(captured.out)[0]["strategy"] == "width"


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



def test_first_seed_trains_the_seeds_from_it_as_a_run_of_more_seeds_trains_them(unfitted_study, tmp_path, capsys):
    """--first-seed K: seeds K..K+N-1 (a replication on fresh seeds); seed K's cell is the one a
    run of K+1 seeds trains for K, bit for bit, and the store keeps both calls' seeds."""
    from_one, all_two = tmp_path / "from-one", tmp_path / "all-two"
    shutil.copytree(unfitted_study, from_one)
    shutil.copytree(unfitted_study, all_two)
    common = ["--ratios", "0.25", "--strategies", "width", "--steps", "4", "--threads", "1", "--workers", "1",
              "--no-progress", "--json"]
    assert main(["compare", str(from_one), "--seeds", "1", "--first-seed", "1", *common]) == 0
    capsys.readouterr()
    with CompareStore.open(from_one) as store:
        assert [cell.seed for cell in store.cells().values()] == [1]
    assert main(["compare", str(all_two), "--seeds", "2", *common]) == 0
    capsys.readouterr()
    with CompareStore.open(from_one) as one, CompareStore.open(all_two) as two:
        (cell,) = one.cells().values()
        twin = two.cells()[cell.key]
        assert cell.seed == 1 and (cell.state, cell.accuracy, cell.loss) == (twin.state, twin.accuracy, twin.loss)
        assert {c.seed for c in two.cells().values()} == {0, 1}
    # A second call from seed 0 adds seed 0 beside seed 1.
    assert main(["compare", str(from_one), "--seeds", "1", *common]) == 0
    capsys.readouterr()
    with CompareStore.open(from_one) as store:
        assert sorted(cell.seed for cell in store.cells().values()) == [0, 1]
    assert main(["compare", str(from_one), "--first-seed", "-1", *common]) == 2
    assert "--first-seed must be from 0" in capsys.readouterr().err

# ------------------------------------------------------------------------ matched latency


@pytest.fixture(scope="module")
def latency_table():
    from _latency_fixtures import small_grid_table

    return small_grid_table(CONFIG.base_resolution, CONFIG.num_classes)


def test_latency_targets_default_to_the_fits_recipes_and_are_checked(fitted_study, latency_table):
    from tinyscale.evaluate.compare import default_latency_targets

    targets = default_latency_targets(fitted_study, latency_table)
    solver = RecipeSolver.load(fitted_study)
    want = [float(f"{latency_table.predict_us(solver.solve(c).recipe) / 1000:.3g}") for c in REFERENCE_RATIOS]
    assert list(targets) == list(dict.fromkeys(want))
    assert parse_ratios("2,4.5", "latency") == (2.0, 4.5)
    with pytest.raises(ValueError, match="latency budget"):
        parse_ratios("2,-1", "latency")
    with pytest.raises(ValueError, match="latency target 2 is listed twice"):
        parse_ratios("2,2", "latency")
    with pytest.raises(ValueError, match="budget must be one of macs, latency"):
        CompareSettings(ratios=(0.5,), strategies=("gp",), budget="flops")


def test_a_comparison_at_matched_latency(fitted_study, latency_table, tmp_path):
    """Every strategy solves its recipe for the latency on the table; rows off by more than the
    tolerance train both latency steps and interpolate in log ms; the store is separate from
    the MACs comparison's and refuses another table on resume."""
    from tinyscale.evaluate.compare import compare_dir, default_latency_targets

    directory = tmp_path / "study"
    shutil.copytree(fitted_study, directory)
    targets = default_latency_targets(directory, latency_table)[:2]
    settings = CompareSettings(ratios=targets, strategies=("gp", "efficientnet", "fast"), seeds=(0,), steps=4,
                               batch_size=32, threads=1, budget="latency")
    with pytest.raises(ValueError, match="needs a latency table"):
        run_comparison(directory, settings, progress=False)
    comparison = run_comparison(directory, settings, progress=False, table=latency_table)
    assert comparison.complete and (compare_dir(directory, "latency") / "compare.sqlite").exists()
    assert not (directory / "compare").exists()

    def ms(recipe):
        return latency_table.predict_us(recipe) / 1000

    solver = RecipeSolver.load(directory)
    for row in comparison.rows:
        assert row.recipe is not None and row.achieved == pytest.approx(ms(row.recipe))
        if row.interpolated:
            b = row.bracket
            assert b.ratio_below < row.ratio < b.ratio_above
            assert (b.ratio_below, b.ratio_above) == (pytest.approx(ms(b.below)), pytest.approx(ms(b.above)))
            assert b.weight == pytest.approx(math.log(row.ratio / b.ratio_below) / math.log(b.ratio_above / b.ratio_below))
        else:
            assert abs(row.achieved / row.ratio - 1) <= MATCH_TOLERANCE
        if row.strategy == "gp":
            assert row.recipe == solver.solve_latency(row.ratio * 1000, latency_table.predict_us).recipe
        if row.strategy == "efficientnet":
            assert row.recipe.rules == "efficientnet"
    assert load_comparison(directory, "latency") == comparison and load_comparison(directory) is None
    md = comparison_markdown(comparison)
    assert "| target ms |" in md and "matched latency" in md and "target c" not in md
    fig = comparison_figure(comparison)
    assert "latency" in fig.layout.xaxis.title.text

    other = latency_table.copy()
    other.calibration = type(other.calibration)(slope=1.5)
    with pytest.raises(ValueError, match="budget"):
        run_comparison(directory, settings, progress=False, table=other)


def test_compare_cli_latency_errors(fitted_study, capsys, tmp_path):
    def run(*argv):
        code = main(["compare", str(fitted_study), "--no-progress", *argv])
        return code, capsys.readouterr().err

    code, err = run("--budget", "latency")
    assert code == 2 and "needs a latency table" in err
    code, err = run("--latency-ms", "3")
    assert code == 2 and "needs a latency table" in err
    code, err = run("--budget", "latency", "--ratios", "0.5", "--latency-table", str(tmp_path / "none.json"))
    assert code == 2 and "--ratios sets MACs targets" in err
    code, err = run("--latency-table", str(tmp_path / "none.json"))
    assert code == 2 and "go with --budget latency" in err


def test_a_second_process_on_a_comparison_is_refused_naming_the_holder(fitted_study, tmp_path):
    import os

    from tinyscale.storage import COMPARE_LOCK, FileLock

    directory = tmp_path / "study"
    shutil.copytree(fitted_study, directory)
    (directory / "compare").mkdir(exist_ok=True)
    trained = []
    with FileLock.held(directory / "compare" / COMPARE_LOCK, lambda holder: "busy"):
        with pytest.raises(ValueError, match=f"being run by pid {os.getpid()}.*rerun it to resume"):
            run_comparison(directory, SETTINGS, progress=False, on_cell=trained.append)
    assert trained == []
    # Released with its holder: the comparison runs (a latency or settled comparison has its own lock).
    assert run_comparison(directory, SETTINGS, progress=False, on_cell=trained.append) is not None
    assert trained
