"""Running a comparison: build every strategy's recipes, train the missing cells through the one
run loop (`tinyscale.study.runner.run_jobs`), store each as it finishes; and reading a stored
comparison back."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tinyscale.evaluate.compare.build import build_recipe, strategy_builders
from tinyscale.evaluate.compare.results import Comparison, assemble_comparison
from tinyscale.evaluate.compare.settings import CompareSettings, read_study_config, settings_from_dict, settings_to_dict
from tinyscale.evaluate.compare.store import STORE_NAME, Cell, CompareStore, compare_dir
from tinyscale.evaluate.compare.strategies import MACS, StrategyBuilder, TargetMeasure
from tinyscale.evaluate.store import study_forecast, trainer_budget
from tinyscale.study.plan import StudyPlan
from tinyscale.study.runner import Job, RunResult, queue_of, run_jobs
from tinyscale.storage import COMPARE_LOCK, PROGRESS_DIR, exclusive_folder, loads_json
from tinyscale.study.trial import StudyConfig


def _train_config(config: StudyConfig, settings: CompareSettings):
    """The study's trainer settings with the comparison's budget."""
    from tinyscale.train.config import TrainConfig

    return TrainConfig.from_study(config).with_(steps=settings.steps, batch_size=settings.batch_size,
                                                threads=settings.threads)


def run_comparison(
    study_dir: str | Path,
    settings: CompareSettings,
    *,
    restart: bool = False,
    progress: bool = True,
    executor=None,
    builders: dict[str, StrategyBuilder] | None = None,
    on_cell: Callable[[Cell], None] | None = None,
    table=None,
    variant: str | None = None,
) -> Comparison:
    """Build every strategy's recipe at every ratio, train every missing (strategy, ratio, seed,
    bracket) cell with the study's trainer, data and the settings' budget, and return the
    comparison. An interpolated row trains two recipes (brackets ``below`` and ``above``) at
    every seed, every other row one (``single``).

    Training goes through the study engine's executors (``executor``: local by default, or
    worker processes / Ray from `tinyscale.study.executors.make_executor`), and this process stores
    each cell as soon as it finishes. Cells are submitted seed-major (all ratios, strategies and
    brackets at the first seed, then the next), so an interrupted run already holds a full table
    at fewer seeds. Finished cells are never retrained, and an unfinished one continues from its
    saved progress (``DIR/compare/progress/``, every few minutes); ``restart`` discards stored
    results and progress first.
    ``builders`` replaces the strategies' recipe builders (tests use it to inject a strategy).
    Under a latency budget (``settings.budget``) ``table`` is the device's
    `tinyscale.latency.LatencyTable` every recipe is solved and matched on; the comparison is
    stored in ``DIR/compare-latency``. A ``variant`` (`compare_dir`) is stored on its own.
    """
    study_dir = Path(study_dir)
    config = read_study_config(study_dir)
    if settings.budget == "latency" and table is None:
        raise ValueError("a latency comparison needs a latency table (--latency-table FILE, or a study kept with one)")
    measure = TargetMeasure("latency", table) if settings.budget == "latency" else MACS
    if builders is None:
        builders = strategy_builders(study_dir, config, settings.strategies, measure)
    missing = [n for n in settings.strategies if n not in builders]
    if missing:
        raise ValueError(f"no builder for strategies {missing}")
    train_config = _train_config(config, settings)
    budget = {**trainer_budget(config, train_config), **measure.fingerprint()}

    folder = compare_dir(study_dir, settings.budget, variant)
    # One process trains a comparison's cells (a second would train every missing cell again).
    with exclusive_folder(folder, STORE_NAME, COMPARE_LOCK, f"the comparison in {folder}"), \
            CompareStore.open(study_dir, budget, restart=restart, kind=settings.budget, variant=variant) as store:
        store.set_meta("settings", json.dumps(settings_to_dict(settings)))
        parts = {}
        for c in settings.ratios:
            for name in settings.strategies:
                b = build_recipe(name, builders[name], c, config, measure)
                store.put_recipe(b)
                parts[(name, c)] = b.parts()
        done = store.cells()
        todo = [(name, c, s, bracket) for s in settings.seeds for c in settings.ratios for name in settings.strategies
                for bracket in parts[(name, c)] if (name, c, s, bracket) not in done]
        if not todo:
            return assemble_comparison(settings, budget, store.recipes(), store.cells())
        plan = StudyPlan.resolve(config, space=False)  # a missing dataset: one clear error before any worker starts

        def record(job: Job, run: RunResult) -> str:
            name, c, seed, bracket = job.key
            cell = Cell.of(name, c, seed, bracket, run)
            store.put_cell(cell, job.recipe)
            if on_cell is not None:
                on_cell(cell)
            acc = "failed" if cell.accuracy is None else f"{100 * cell.accuracy:.2f} %"
            side = "" if bracket == "single" else f" ({bracket} {measure.symbol})"
            return f"last: {name} {measure.symbol}={c:g}{side} seed={seed} {acc}"

        # Each run keeps its progress in the comparison's folder every few minutes, so a killed
        # comparison (cells at 1/2 of B0 on Imagenette train for half an hour) resumes mid-cell.
        saved = folder / PROGRESS_DIR
        if restart:
            shutil.rmtree(saved, ignore_errors=True)
        jobs = [Job(key, parts[key[:2]][key[3]], key[2], train_config,
                    progress=str(saved / f"{key[0]}_{key[1]:.6g}_{key[2]}_{key[3]}.pt")) for key in todo]
        run_jobs(queue_of(jobs), record, data=plan.data, executor=executor, threads=settings.threads,
                 progress=progress, desc=f"compare ({settings.steps:,} steps a run)", total=len(todo),
                 forecast=study_forecast(study_dir, jobs, executor) if progress else None)
        return assemble_comparison(settings, budget, store.recipes(), store.cells())


def load_comparison(study_dir: str | Path, budget: str = "macs", variant: str | None = None) -> Comparison | None:
    """The stored comparison of a study at matched ``budget`` (possibly partial), or None when
    there is none.

    Read-only with respect to training: the UI calls this while a comparison may be running.
    """
    path = compare_dir(study_dir, budget, variant) / STORE_NAME
    if not path.exists():
        return None
    try:
        with CompareStore.open(study_dir, kind=budget, variant=variant) as store:
            raw_settings, raw_budget = store.meta("settings"), store.meta("budget")
            if raw_settings is None or raw_budget is None:
                return None
            settings, budget = settings_from_dict(loads_json(raw_settings)), loads_json(raw_budget)
            if not isinstance(budget, dict):
                raise TypeError(f"its budget is {raw_budget!r:.60}, not a JSON object")
            recipes, cells = store.recipes(), store.cells()
            return assemble_comparison(everything_stored(settings, recipes, cells), budget, recipes, cells)
    except (sqlite3.DatabaseError, json.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"comparison store {path} is unreadable: {exc}") from None


def everything_stored(settings: CompareSettings, recipes, cells) -> CompareSettings:
    """The last run's ``settings`` widened to every strategy, target and seed the store holds: a
    comparison run in several calls (say the decisive strategies first, the rest later) is read
    back whole, not as its last call asked (the steps and batch size are one for every cell: a
    store refuses a call with others). Unchanged when the store holds nothing beyond them; else
    in a fixed order: strategies as `STRATEGIES` lists them, MACs ratios from the largest,
    latencies from the smallest, seeds ascending."""
    from tinyscale.evaluate.compare.strategies import STRATEGIES

    names = {*settings.strategies, *(name for name, _ in recipes)}
    targets = {*settings.ratios, *(c for _, c in recipes)}
    seeds = {*settings.seeds, *(seed for _, _, seed, _ in cells)}
    if (names, targets, seeds) == (set(settings.strategies), set(settings.ratios), set(settings.seeds)):
        return settings
    return replace(settings, strategies=tuple(n for n in STRATEGIES if n in names),
                   ratios=tuple(sorted(targets, reverse=settings.budget == "macs")), seeds=tuple(sorted(seeds)))
