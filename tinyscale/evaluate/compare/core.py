"""Head-to-head at matched FLOPs: the study's GP recipe against published scaling rules
(EfficientNet compound scaling, uniform and fast dWr scaling) and single-axis scaling, each
trained with the same trainer, budget, data and seeds.

The flow is: a *strategy* (one entry of `REGISTRY`) turns a target ratio c into a recipe in the
study's context; every (strategy, ratio, seed, bracket) *cell* is trained once and stored in
``DIR/compare/compare.sqlite`` as soon as it finishes, so a killed run resumes without
retraining anything; the cells fold into a `Comparison` (one row per ratio and strategy:
recipe, achieved ratio, params, accuracy mean ± std over seeds) with the GP recipe's margins
over every other strategy, paired by seed.

A comparison can match latency instead (``CompareSettings.budget = "latency"``, `tinyscale
compare --budget latency`): the targets are milliseconds predicted on a device table
(`tinyscale.latency.core`), every strategy solves its recipe for the latency (the GP through
`RecipeSolver.solve_latency`, the baselines their own knob through `baselines.scale_latency`),
and bracketing and interpolation work in log ms. Such a comparison is stored apart
(``DIR/compare-latency/``), with the table's fingerprint in its budget, so a resume on another
table is refused.

Matched FLOPs is the point of the comparison. A strategy whose recipe lands within
`MATCH_TOLERANCE` of c trains that recipe (bracket ``single``). Where it lands further off and
its solver knows the achievable steps on both sides of c, *both* step recipes are trained at
every seed (brackets ``below`` and ``above``) and the row's accuracy is, per seed, the linear
interpolation in log c between them at the target. Only a strategy that can reach one side of
c trains its single recipe and is marked as not matched, with the reason.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tinyscale.space.cost import cost, macs
from tinyscale.space.recipe import Recipe
from tinyscale.evaluate.store import TrainerResultStore
from tinyscale.study.plan import StudyPlan
from tinyscale.study.runner import Job, RunResult, queue_of, run_jobs
from tinyscale.study.trial import StudyConfig
from tinyscale.space.width import check_ratio

DEFAULT_RATIOS: tuple[float, ...] = (0.5, 0.25, 0.125, 0.0625)
MATCH_TOLERANCE = 0.02  # |achieved / target - 1| allowed for one recipe to count as matched FLOPs
COMPARE_DIRNAME = "compare"
BUDGETS = ("macs", "latency")  # what a target is: a MACs ratio c of B0, or milliseconds on a device
STORE_NAME = "compare.sqlite"
# 2: cells per (strategy, ratio, seed, bracket), bracketing recipes stored with each strategy's recipe.
SCHEMA_VERSION = 2
# Default compare budget: STEP_FACTOR x the study's steps per trial. Longer than the study's
# brief runs, yet the reference run (13 recipes x 3 seeds on the demo study, before uniform, fast and
# bracketing; about twice the runs now) took ~10 min on 2 cores.
STEP_FACTOR = 1.5
BRACKETS = ("single", "below", "above")  # which recipe of a row a cell trained


# --------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class StrategyRecipe:
    """What a strategy builds at a target c: the recipe closest to c, a note, and, where the
    solver knows them, the recipes of the achievable steps just below and just above c (the
    comparison trains those two when ``recipe`` misses c by more than `MATCH_TOLERANCE`)."""

    recipe: Recipe
    note: str = ""
    below: Recipe | None = None
    above: Recipe | None = None


@dataclass(frozen=True)
class TargetMeasure:
    """What a comparison's targets measure: ``macs`` (the counted ratio c to the study's B0) or
    ``latency`` (ms predicted on ``table``, a `tinyscale.latency.core.LatencyTable`)."""

    kind: str = "macs"
    table: object | None = None

    def __post_init__(self) -> None:
        if self.kind not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {self.kind!r}")
        if (self.kind == "latency") != (self.table is not None):
            raise ValueError("a latency budget needs a device table (and only it)")

    @property
    def symbol(self) -> str:
        return "ms" if self.kind == "latency" else "c"

    def value(self, recipe: Recipe, config: StudyConfig) -> float:
        if self.kind == "latency":
            return self.table.predict_us(recipe) / 1000.0
        return macs(recipe) / _baseline_macs(config)

    def latency_us(self) -> Callable[[Recipe], float]:
        return self.table.predict_us

    def fingerprint(self) -> dict:
        """What the budget records about the measure (nothing for MACs, so MACs comparisons stored
        before latency budgets existed still resume): the device and a hash of the table."""
        if self.kind == "macs":
            return {}
        import hashlib

        text = json.dumps(self.table.to_dict(), sort_keys=True)
        return {"target_measure": "latency", "device": self.table.profile.describe(),
                "latency_table_sha256": hashlib.sha256(text.encode()).hexdigest()}


MACS = TargetMeasure()


# A strategy's builder: target ratio c -> StrategyRecipe in the study's context (a plain
# ``(recipe, note)`` tuple is accepted too: one recipe, nothing to interpolate with). It raises
# ValueError when it cannot build anything near c; the message becomes the row's note.
StrategyBuilder = Callable[[float], "StrategyRecipe | tuple[Recipe, str]"]


@dataclass(frozen=True)
class Strategy:
    """One entry of the strategy registry: its name, how tables and plots label and colour it,
    and ``builder(study_dir, config, measure)``, which returns its `StrategyBuilder` for a study
    and a `TargetMeasure` (targets in c or in ms)."""

    name: str
    label: str
    color: str | None
    builder: Callable[[Path, StudyConfig, TargetMeasure], StrategyBuilder]


def gp_answer_recipe(answer, context: dict) -> StrategyRecipe:
    """A `tinyscale.fit.solve.RecipeAnswer` as a strategy's recipe: its notes, and the two width
    steps around c at the answer's (r, d) when the solved width misses c by more than the
    tolerance (none when the width was clamped: then no step lies on the other side)."""
    from tinyscale.space.width import solve_width

    below = above = None
    if abs(answer.achieved / answer.target - 1.0) > MATCH_TOLERANCE and not answer.width_clamped:
        sol = solve_width(answer.target, answer.recipe.r, answer.recipe.d, **context)
        below, above = sol.recipe_below, sol.recipe_above
    return StrategyRecipe(answer.recipe, "; ".join(answer.note_texts), below, above)


def gp_latency_recipe(answer, target_us: float, latency, context: dict) -> StrategyRecipe:
    """A `tinyscale.fit.solve.LatencyAnswer` as a strategy's recipe: as `gp_answer_recipe`, with the
    two width steps around the latency target when the solved width misses it by more than
    the tolerance (none when no width reached it)."""
    from tinyscale.latency.core import solve_width_latency

    below = above = None
    if answer.width_solved and abs(answer.predicted_us / target_us - 1.0) > MATCH_TOLERANCE:
        sol = solve_width_latency(target_us, answer.recipe.r, answer.recipe.d, latency, **context)
        below, above = sol.recipe_below, sol.recipe_above
    return StrategyRecipe(answer.recipe, "; ".join(answer.at_ratio.note_texts), below, above)


def _solver_builder(solver, config: StudyConfig, measure: TargetMeasure) -> StrategyBuilder:
    """A fitted `RecipeSolver` as a builder: its answer at c, or at a latency in ms."""
    context = dict(rules=config.rules, base_resolution=config.base_resolution, num_classes=config.num_classes)
    if measure.kind == "latency":
        latency = measure.latency_us()

        def build_latency(ms: float) -> StrategyRecipe:
            return gp_latency_recipe(solver.solve_latency(ms * 1000.0, latency), ms * 1000.0, latency, context)

        return build_latency

    def build(c: float) -> StrategyRecipe:
        return gp_answer_recipe(solver.solve(c), context)

    return build


def _gp_builder(study_dir: Path, config: StudyConfig, measure: TargetMeasure = MACS) -> StrategyBuilder:
    from tinyscale.fit.solve import RecipeSolver

    # ValueError naming `tinyscale fit` when there is no fit
    return _solver_builder(RecipeSolver.load(study_dir), config, measure)


def _gp_pareto_builder(study_dir: Path, config: StudyConfig, measure: TargetMeasure = MACS) -> StrategyBuilder:
    """The paper's method on the same study, whatever its saved fit: Pareto selection (the
    default K, about 1 in 5 trials) and GPs c -> r, c -> d on the selected models, fitted here
    from the study's trials (deterministic: the same trials give the same recipes)."""
    from tinyscale.fit.gp import fit_scaling
    from tinyscale.fit.solve import RecipeSolver
    from tinyscale.study.store import Study

    with Study.open(study_dir) as study:
        trials = study.trials(state="completed")
    return _solver_builder(RecipeSolver(fit_scaling(trials, config, method="pareto")), config, measure)


def _knob_note(phi: float | None, s: float | None) -> str:
    """A baseline row's note: its solved φ or s."""
    return "; ".join(([f"φ={phi:.4g}"] if phi is not None else []) + ([f"s={s:.4g}"] if s is not None else []))


def _baseline(function: str, rule: str, *, study_rules: bool = True
              ) -> Callable[[Path, StudyConfig, TargetMeasure], StrategyBuilder]:
    """A registry builder for ``baselines.<function>(c, ...)`` in the study's context, or for
    ``baselines.scale_latency(rule, ...)`` under a latency budget. With ``study_rules`` the
    recipe is built under the study's rule set (rules about how to split the budget); without,
    under the baseline's own (EfficientNet's, as the TF reference does)."""

    def builder(study_dir: Path, config: StudyConfig, measure: TargetMeasure = MACS) -> StrategyBuilder:
        import baselines

        kwargs: dict = dict(base_resolution=config.base_resolution, num_classes=config.num_classes)
        if study_rules:
            kwargs["rules"] = config.rules
        if measure.kind == "latency":
            latency = measure.latency_us()

            def build_latency(ms: float) -> StrategyRecipe:
                sol, knob = baselines.scale_latency(rule, ms * 1000.0, latency, **kwargs)
                fields = baselines.knob_fields(knob, sol.knob)
                note = _knob_note(fields.get("phi"), fields.get("s")) or f"{knob}={sol.knob:.4g}"
                return StrategyRecipe(sol.recipe, note, sol.recipe_below, sol.recipe_above)

            return build_latency
        solve = getattr(baselines, function)

        def build(c: float) -> StrategyRecipe:
            result = solve(c, **kwargs)
            return StrategyRecipe(result.recipe, _knob_note(result.phi, result.s), result.recipe_below,
                                  result.recipe_above)

        return build

    return builder


# The strategies `tinyscale compare` knows, in table order. Adding one is one entry here.
REGISTRY: dict[str, Strategy] = {s.name: s for s in (
    Strategy("gp", "GP recipe (this study's fit)", "#d62728", _gp_builder),
    Strategy("gp-pareto", "GP on Pareto models (TinyNet's method)", "#e377c2", _gp_pareto_builder),
    Strategy("efficientnet", "EfficientNet compound (φ solved)", "#1f77b4",
             _baseline("compound_recipe", "efficientnet", study_rules=False)),
    Strategy("uniform", "uniform compound (d, w², r² equal shares)", "#17becf", _baseline("uniform", "uniform")),
    Strategy("fast", "fast dWr (Dollár et al., α = 0.8)", "#8c564b", _baseline("fast", "fast")),
    Strategy("width", "width only", "#2ca02c", _baseline("width_only", "width")),
    Strategy("depth", "depth only", "#9467bd", _baseline("depth_only", "depth")),
    Strategy("resolution", "resolution only", "#ff7f0e", _baseline("resolution_only", "resolution")),
)}
STRATEGIES: tuple[str, ...] = tuple(REGISTRY)
STRATEGY_LABELS: dict[str, str] = {name: s.label for name, s in REGISTRY.items()}
DEFAULT_STRATEGIES: tuple[str, ...] = ("gp", "gp-pareto", "efficientnet", "uniform", "fast", "width", "depth",
                                       "resolution")


# --------------------------------------------------------------------------- settings


def parse_ratios(text: str | Sequence[float], budget: str = "macs") -> tuple[float, ...]:
    """'0.5,0.25' -> (0.5, 0.25); every ratio a positive finite number, no duplicates. Under a
    latency budget the targets are milliseconds ('2,4.5')."""
    what = "latency target" if budget == "latency" else "ratio"
    items: Iterable = text.split(",") if isinstance(text, str) else text
    ratios: list[float] = []
    for item in items:
        raw = item.strip() if isinstance(item, str) else item
        if raw == "":
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{what} {raw!r} is not a number") from None
        if budget == "latency":
            from tinyscale.latency.core import check_latency_ms

            check_latency_ms(value)
        else:
            check_ratio(value)
        if value in ratios:
            raise ValueError(f"{what} {value:g} is listed twice")
        ratios.append(value)
    if not ratios:
        raise ValueError("give at least one latency target in ms (e.g. --latency-ms 2,4)" if budget == "latency"
                         else "give at least one target ratio (e.g. --ratios 0.5,0.25)")
    return tuple(ratios)


def parse_strategies(text: str | Sequence[str]) -> tuple[str, ...]:
    """'gp,efficientnet' -> ('gp', 'efficientnet'); unknown names are an error listing the known."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names: list[str] = []
    for item in items:
        name = item.strip().lower()
        if not name:
            continue
        if name not in REGISTRY:
            raise ValueError(f"unknown strategy {item.strip()!r}; choose from {', '.join(REGISTRY)}")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"give at least one strategy from {', '.join(REGISTRY)}")
    return tuple(names)


@dataclass(frozen=True)
class CompareSettings:
    """What one comparison asks: target ratios, strategies, seeds and the shared training budget.

    ``budget`` says what the targets in ``ratios`` are: MACs ratios c (``macs``) or latencies
    in ms on a device table (``latency``).

    ``steps``/``batch_size`` are the budget every strategy gets; the rest of the trainer
    settings come from the study. Cells trained under another budget are not comparable, so a
    resume with a different budget is an error (ratios, strategies and seeds may grow).
    """

    ratios: tuple[float, ...] = DEFAULT_RATIOS
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 600
    batch_size: int = 64
    threads: int | None = None  # torch threads per run; a runtime choice, not part of the budget
    budget: str = "macs"

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {self.budget!r}")
        object.__setattr__(self, "ratios", parse_ratios(list(self.ratios), self.budget))
        object.__setattr__(self, "strategies", parse_strategies(list(self.strategies)))
        seeds = tuple(self.seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds!r}")
        object.__setattr__(self, "seeds", seeds)
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"threads must be a positive integer, got {self.threads!r}")


# --------------------------------------------------------------------------- building recipes


@dataclass(frozen=True)
class BuiltRecipe:
    """One strategy's recipe at one target ratio, or why there is none.

    ``below``/``above`` are set when the row is interpolated: ``recipe`` misses c by more than
    the tolerance, and these two achievable steps (counted ratios ``achieved_below`` < c <
    ``achieved_above``) are what is trained.
    """

    strategy: str
    target: float
    recipe: Recipe | None
    achieved: float | None  # counted MACs / baseline MACs of the study's context
    note: str = ""
    below: Recipe | None = None
    above: Recipe | None = None
    achieved_below: float | None = None
    achieved_above: float | None = None

    @property
    def interpolated(self) -> bool:
        return self.below is not None and self.above is not None

    @property
    def matched(self) -> bool:
        """The row's accuracy is at matched FLOPs: one recipe within the tolerance, or interpolated."""
        if self.interpolated:
            return True
        return self.achieved is not None and abs(self.achieved / self.target - 1.0) <= MATCH_TOLERANCE

    def parts(self) -> dict[str, Recipe]:
        """The recipes this row trains, by bracket: {"below", "above"} when interpolated,
        {"single"} for one recipe, nothing when none was built."""
        if self.recipe is None:
            return {}
        if self.interpolated:
            return {"below": self.below, "above": self.above}
        return {"single": self.recipe}


def _baseline_macs(config: StudyConfig) -> int:
    return macs(config.recipe(1.0, 1.0, 1.0))


def _check_context(name: str, recipe: Recipe, config: StudyConfig) -> None:
    if (recipe.base_resolution, recipe.num_classes) != (config.base_resolution, config.num_classes):
        raise ValueError(
            f"strategy {name} built a recipe for base {recipe.base_resolution} px / {recipe.num_classes} "
            f"classes, but the study uses {config.base_resolution} px / {config.num_classes} classes"
        )


def build_recipe(name: str, builder: StrategyBuilder, target: float, config: StudyConfig,
                 measure: TargetMeasure = MACS) -> BuiltRecipe:
    """Run one strategy at one target and check the result against the study's context.

    Every achieved ratio is counted here, against the study's own baseline, for every strategy
    alike (B0 is the same network under both rule sets, so ratios are comparable); under a
    latency budget every achieved latency is predicted here on the one table. A recipe more
    than `MATCH_TOLERANCE` off the target becomes an interpolated row when the builder gave the
    steps on both sides of it; otherwise it stays a single recipe, marked as not matched.
    """
    try:
        out = builder(target)
    except ValueError as exc:
        return BuiltRecipe(name, target, None, None, f"not built: {exc}")
    if not isinstance(out, StrategyRecipe):
        recipe, note = out
        out = StrategyRecipe(recipe, note)
    _check_context(name, out.recipe, config)
    sym = measure.symbol
    achieved = measure.value(out.recipe, config)
    off = achieved / target - 1.0
    notes = [out.note] if out.note else []
    if abs(off) <= MATCH_TOLERANCE:
        return BuiltRecipe(name, target, out.recipe, achieved, "; ".join(notes))
    if out.below is not None and out.above is not None:
        _check_context(name, out.below, config)
        _check_context(name, out.above, config)
        lo, hi = measure.value(out.below, config), measure.value(out.above, config)
        if lo < target < hi:
            near = "c" if sym == "c" else "the target"
            notes.insert(0, f"no recipe within {MATCH_TOLERANCE:.0%} of {near}: top-1 interpolated in log {sym} between "
                            f"the steps at {lo:.4g} ({lo / target - 1:+.1%}) and {hi:.4g} ({hi / target - 1:+.1%}), "
                            "both trained at every seed")
            return BuiltRecipe(name, target, out.recipe, achieved, "; ".join(notes), out.below, out.above, lo, hi)
        why = f"its steps {lo:.4g} and {hi:.4g} do not bracket {sym}"
    else:
        why = f"no step on the other side of {sym} to interpolate with"
    what = "latency" if measure.kind == "latency" else "FLOPs"
    notes[:0] = [f"{what} not matched: achieved {achieved:.4g} is {off:+.1%} off the target", why]
    return BuiltRecipe(name, target, out.recipe, achieved, "; ".join(notes))


def strategy_builders(study_dir: str | Path, config: StudyConfig, names: Sequence[str],
                      measure: TargetMeasure = MACS) -> dict[str, StrategyBuilder]:
    """The builders of the named strategies in the study's context, for targets in ``measure``'s
    units (ValueError for unknown names or for ``gp`` on a study without a fit)."""
    return {name: REGISTRY[name].builder(Path(study_dir), config, measure) for name in parse_strategies(list(names))}


# --------------------------------------------------------------------------- store


@dataclass(frozen=True)
class Cell:
    """One trained (strategy, ratio, seed, bracket); ``bracket`` says which of the row's recipes."""

    strategy: str
    ratio: float
    seed: int
    state: str  # "completed" or "failed"
    accuracy: float | None
    loss: float | None
    train_seconds: float | None
    reason: str | None = None
    bracket: str = "single"

    @property
    def key(self) -> tuple[str, float, int, str]:
        return (self.strategy, self.ratio, self.seed, self.bracket)

    @classmethod
    def of(cls, strategy: str, ratio: float, seed: int, bracket: str, run: RunResult) -> Cell:
        """A finished run as a stored cell (a failed run keeps its time, not its loss)."""
        return cls(strategy, ratio, seed, run.state, run.accuracy, run.loss if run.completed else None,
                   run.train_seconds, run.reason, bracket)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recipes (
    strategy TEXT NOT NULL, ratio REAL NOT NULL, recipe TEXT, achieved REAL, note TEXT NOT NULL,
    below TEXT, achieved_below REAL, above TEXT, achieved_above REAL,
    PRIMARY KEY (strategy, ratio));
CREATE TABLE IF NOT EXISTS cells (
    strategy TEXT NOT NULL, ratio REAL NOT NULL, seed INTEGER NOT NULL, bracket TEXT NOT NULL,
    state TEXT NOT NULL, accuracy REAL, loss REAL, train_seconds REAL, reason TEXT, recipe TEXT NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (strategy, ratio, seed, bracket));
"""


def compare_dir(study_dir: str | Path, budget: str = "macs") -> Path:
    """Where a study's comparison lives: ``DIR/compare`` at matched MACs, ``DIR/compare-latency``
    at matched latency (two comparisons of one study never share a store)."""
    return Path(study_dir) / (COMPARE_DIRNAME if budget == "macs" else f"{COMPARE_DIRNAME}-{budget}")


def _recipe_json(recipe: Recipe | None) -> str | None:
    return None if recipe is None else json.dumps(recipe.to_dict(), sort_keys=True)


def _stored_schema(conn: sqlite3.Connection) -> int | None:
    """The schema version of an existing store (None for a new one). Stores from before the
    version was recorded have a ``cells`` table without a bracket column: version 1."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is not None:
        try:
            return int(row[0])
        except ValueError:
            return -1
    columns = {r[1] for r in conn.execute("PRAGMA table_info(cells)")}
    return 1 if columns and "bracket" not in columns else None


class CompareStore(TrainerResultStore):
    """The comparison's cells (the `tinyscale.storage.ResultStore` contract: one transaction per
    finished cell, refused under another budget). A store written under another schema version
    is refused too; ``restart`` discards it."""

    SCHEMA = _SCHEMA
    SCHEMA_VERSION = SCHEMA_VERSION
    RESULT_TABLES = ("cells", "recipes")

    @classmethod
    def open(cls, study_dir: str | Path, budget: dict | None = None, *, restart: bool = False,
             kind: str = "macs") -> CompareStore:
        """Open (creating when ``budget`` is given) the store of a study's comparison at matched
        ``kind`` (`BUDGETS`)."""
        path = compare_dir(study_dir, kind) / STORE_NAME
        if budget is None and not path.exists():
            raise FileNotFoundError(path)

        def check_version(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            version = _stored_schema(conn)
            if version is not None and version != SCHEMA_VERSION:
                if not (restart and budget is not None):
                    raise ValueError(
                        f"comparison store {path} was written by another tinyscale version (store schema "
                        f"{version}, this version uses {SCHEMA_VERSION}: cells per strategy, ratio, seed and "
                        "bracketing recipe); pass --restart to discard it and retrain"
                    )
                with conn:
                    conn.execute("DROP TABLE IF EXISTS cells")
                    conn.execute("DROP TABLE IF EXISTS recipes")
                    conn.execute("DELETE FROM meta")

        return cls.open_at(path, budget, restart=restart, prepare=check_version)

    def put_recipe(self, built: BuiltRecipe) -> None:
        """Record a strategy's recipes at a ratio. Where cells already exist, each must have
        trained what the row now trains under its bracket: a different recipe (the study was
        refitted) or a bracket the row no longer has is an error, since those cells trained
        another network."""
        parts = {bracket: _recipe_json(recipe) for bracket, recipe in built.parts().items()}
        for bracket, trained in self._conn.execute(
            "SELECT DISTINCT bracket, recipe FROM cells WHERE strategy = ? AND ratio = ? ORDER BY bracket",
            (built.strategy, built.target),
        ):
            if parts.get(bracket) != trained:
                now = parts.get(bracket) or "not trained"
                raise ValueError(
                    f"the {built.strategy} recipe at c={built.target:g} ({bracket}) is now {now}, but stored "
                    f"results trained {trained} (was the study refitted?); pass --restart to retrain"
                )
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO recipes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (built.strategy, built.target, _recipe_json(built.recipe), built.achieved, built.note,
                 _recipe_json(built.below), built.achieved_below, _recipe_json(built.above), built.achieved_above),
            )

    def recipes(self) -> dict[tuple[str, float], BuiltRecipe]:
        def load(text: str | None) -> Recipe | None:
            return None if text is None else Recipe.from_dict(json.loads(text))

        out = {}
        for strategy, ratio, recipe, achieved, note, below, a_below, above, a_above in self._conn.execute(
            "SELECT strategy, ratio, recipe, achieved, note, below, achieved_below, above, achieved_above FROM recipes"
        ):
            out[(strategy, ratio)] = BuiltRecipe(strategy, ratio, load(recipe), achieved, note, load(below),
                                                 load(above), a_below, a_above)
        return out

    def put_cell(self, cell: Cell, recipe: Recipe) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cell.strategy, cell.ratio, cell.seed, cell.bracket, cell.state, cell.accuracy, cell.loss,
                 cell.train_seconds, cell.reason, _recipe_json(recipe), time.time()),
            )

    def cells(self) -> dict[tuple[str, float, int, str], Cell]:
        rows = self._conn.execute(
            "SELECT strategy, ratio, seed, state, accuracy, loss, train_seconds, reason, bracket FROM cells"
        )
        cells = (Cell(*r) for r in rows)
        return {cell.key: cell for cell in cells}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Bracket:
    """An interpolated row's two trained recipes and what each scored.

    ``weight`` is the share of the upper step in the interpolation, (ln c − ln c_below) /
    (ln c_above − ln c_below); ``accuracies_below``/``accuracies_above`` are per seed, over the
    seeds where both completed (the row's ``seeds``).
    """

    below: Recipe
    above: Recipe
    ratio_below: float
    ratio_above: float
    weight: float
    accuracies_below: tuple[float, ...]
    accuracies_above: tuple[float, ...]


def interpolation_weight(target: float, below: float, above: float) -> float:
    """Where ``target`` lies between ``below`` and ``above`` in log c (0 at below, 1 at above)."""
    return (math.log(target) - math.log(below)) / (math.log(above) - math.log(below))


@dataclass(frozen=True)
class ComparisonRow:
    """One strategy at one target ratio, over all its seeds.

    ``recipe``/``achieved``/``macs``/``params`` describe the strategy's recipe closest to c.
    For an interpolated row (``bracket`` set) that recipe is one of the two trained steps and
    ``accuracies`` are interpolated at c per seed; ``matched`` says whether the accuracy is
    at matched FLOPs (one recipe within the tolerance, or interpolated).
    """

    ratio: float
    strategy: str
    recipe: Recipe | None
    achieved: float | None
    macs: int | None
    params: int | None
    matched: bool
    note: str
    accuracies: tuple[float, ...]  # per seed in ``seeds``: measured, or interpolated at c
    failed: int = 0  # failed training runs of this row
    seeds: tuple[int, ...] = ()  # the seeds of ``accuracies``, in settings order
    bracket: Bracket | None = None

    @property
    def interpolated(self) -> bool:
        return self.bracket is not None

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.accuracies) if self.accuracies else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (None with fewer than two)."""
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else None

    @property
    def accuracy_by_seed(self) -> dict[int, float]:
        return dict(zip(self.seeds, self.accuracies))

    @property
    def effective_macs(self) -> float | None:
        """The MACs the row's accuracy applies to: for an interpolated row, the two steps' MACs
        interpolated in log with the accuracy's weight (at matched MACs exactly the target's),
        the recipe's counted MACs otherwise."""
        if self.recipe is None:
            return None
        if self.bracket is not None:
            lo, hi = macs(self.bracket.below), macs(self.bracket.above)
            return math.exp(math.log(lo) + self.bracket.weight * (math.log(hi) - math.log(lo)))
        return self.macs


@dataclass(frozen=True)
class Margin:
    """``strategy`` minus ``baseline`` at one ratio, in accuracy (fraction), paired by seed: the
    mean over the seeds both rows have of the per-seed differences."""

    ratio: float
    value: float
    stderr: float | None  # sd of the per-seed differences / sqrt(n); None when n < 2
    matched: bool  # both rows at matched FLOPs
    baseline: str = "efficientnet"
    n: int = 0  # paired seeds
    strategy: str = "gp"


@dataclass(frozen=True)
class MeanMargin:
    """``strategy`` minus ``baseline`` averaged over the ratios where both have results: per
    seed, the mean over those ratios of the differences; then mean and standard error over the
    seeds present at every one of them."""

    baseline: str
    ratios: tuple[float, ...]
    value: float
    stderr: float | None
    n: int
    matched: bool  # every included ratio at matched FLOPs on both sides
    strategy: str = "gp"


def _paired(diffs: Sequence[float]) -> tuple[float, float | None]:
    value = statistics.fmean(diffs)
    stderr = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
    return value, stderr


@dataclass(frozen=True)
class Comparison:
    settings: CompareSettings
    budget: dict
    rows: tuple[ComparisonRow, ...]
    complete: bool  # every requested cell trained
    cells_done: int
    cells_total: int

    def row(self, ratio: float, strategy: str) -> ComparisonRow | None:
        return next((r for r in self.rows if r.ratio == ratio and r.strategy == strategy), None)

    def _differences(self, c: float, baseline: str, strategy: str) -> dict[int, float]:
        a, b = self.row(c, strategy), self.row(c, baseline)
        if a is None or b is None:
            return {}
        acc_a, acc_b = a.accuracy_by_seed, b.accuracy_by_seed
        return {s: acc_a[s] - acc_b[s] for s in self.settings.seeds if s in acc_a and s in acc_b}

    def margin(self, c: float, baseline: str = "efficientnet", strategy: str = "gp") -> Margin | None:
        """``strategy`` − ``baseline`` at ratio c, paired by seed (None without a paired seed)."""
        diffs = self._differences(c, baseline, strategy)
        if not diffs:
            return None
        value, stderr = _paired(list(diffs.values()))
        matched = self.row(c, strategy).matched and self.row(c, baseline).matched
        return Margin(c, value, stderr, matched, baseline, len(diffs), strategy)

    def margins(self, baseline: str = "efficientnet", strategy: str = "gp") -> list[Margin]:
        """``strategy`` − ``baseline`` at every ratio where both have a paired seed."""
        found = (self.margin(c, baseline, strategy) for c in self.settings.ratios)
        return [m for m in found if m is not None]

    def mean_margin(self, baseline: str, strategy: str = "gp") -> MeanMargin | None:
        """``strategy`` − ``baseline`` over the ratios where both have results (see `MeanMargin`)."""
        per_ratio = {c: self._differences(c, baseline, strategy) for c in self.settings.ratios}
        per_ratio = {c: d for c, d in per_ratio.items() if d}
        if not per_ratio:
            return None
        seeds = [s for s in self.settings.seeds if all(s in d for d in per_ratio.values())]
        if not seeds:
            return None
        value, stderr = _paired([statistics.fmean(d[s] for d in per_ratio.values()) for s in seeds])
        matched = all(self.row(c, strategy).matched and self.row(c, baseline).matched for c in per_ratio)
        return MeanMargin(baseline, tuple(per_ratio), value, stderr, len(seeds), matched, strategy)

    def baselines(self, strategy: str = "gp") -> tuple[str, ...]:
        """The strategies ``strategy`` is measured against: every other one compared."""
        return tuple(n for n in self.settings.strategies if n != strategy) if strategy in self.settings.strategies else ()


def _assemble(settings: CompareSettings, budget: dict, recipes: dict, cells: dict) -> Comparison:
    rows = []
    done = trainable = 0
    for c in settings.ratios:
        for name in settings.strategies:
            built = recipes.get((name, c))
            if built is None:
                continue
            parts = built.parts()
            trainable += len(parts) * len(settings.seeds)
            runs = {b: {s: cells[(name, c, s, b)] for s in settings.seeds if (name, c, s, b) in cells} for b in parts}
            done += sum(len(r) for r in runs.values())
            ok = {b: {s: x.accuracy for s, x in r.items() if x.state == "completed" and x.accuracy is not None}
                  for b, r in runs.items()}
            failed = [x for r in runs.values() for x in r.values() if x.state != "completed" or x.accuracy is None]
            bracket = None
            if built.interpolated:
                seeds = tuple(s for s in settings.seeds if s in ok["below"] and s in ok["above"])
                weight = interpolation_weight(c, built.achieved_below, built.achieved_above)
                lo = tuple(ok["below"][s] for s in seeds)
                hi = tuple(ok["above"][s] for s in seeds)
                accs = tuple(a + weight * (b - a) for a, b in zip(lo, hi))
                bracket = Bracket(built.below, built.above, built.achieved_below, built.achieved_above, weight, lo, hi)
            else:
                single = ok.get("single", {})
                seeds = tuple(s for s in settings.seeds if s in single)
                accs = tuple(single[s] for s in seeds)
            note = built.note
            if failed:
                reasons = "; ".join(sorted({x.reason or "unknown" for x in failed}))
                note = "; ".join(filter(None, [note, f"{len(failed)} run(s) failed: {reasons}"]))
            c_cost = cost(built.recipe) if built.recipe is not None else None
            rows.append(ComparisonRow(
                ratio=c, strategy=name, recipe=built.recipe, achieved=built.achieved,
                macs=c_cost.macs if c_cost else None, params=c_cost.params if c_cost else None,
                matched=built.matched, note=note, accuracies=accs, failed=len(failed), seeds=seeds,
                bracket=bracket,
            ))
    return Comparison(settings, budget, tuple(rows), complete=done >= trainable and
                      len(rows) == len(settings.ratios) * len(settings.strategies),
                      cells_done=done, cells_total=trainable)


# --------------------------------------------------------------------------- running


def _study_config(study_dir: Path) -> StudyConfig:
    """The study's configuration (ValueError when the directory holds no readable study)."""
    from tinyscale.study.store import Study

    study = Study.open(study_dir)
    try:
        return study.config
    finally:
        study.close()


def default_steps(config: StudyConfig) -> int:
    """The default training budget of a comparison: `STEP_FACTOR` times the study's brief runs
    (a comparison trains few networks, so each can train longer than a study trial)."""
    return math.ceil(STEP_FACTOR * config.steps)


def default_settings(
    study_dir: str | Path,
    *,
    ratios: str | Sequence[float] = DEFAULT_RATIOS,
    strategies: str | Sequence[str] = DEFAULT_STRATEGIES,
    seeds: int = 3,
    steps: int | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    budget: str = "macs",
) -> CompareSettings:
    """Settings for a study: seeds 0..seeds-1; steps and batch size default from the study;
    ``ratios`` are the targets in ``budget``'s units (ratios c, or ms under ``latency``)."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"the number of seeds must be a positive integer, got {seeds!r}")
    config = _study_config(Path(study_dir))
    return CompareSettings(
        ratios=parse_ratios(ratios, budget),
        strategies=parse_strategies(strategies),
        seeds=tuple(range(seeds)),
        steps=default_steps(config) if steps is None else steps,
        batch_size=config.batch_size if batch_size is None else batch_size,
        threads=threads,
        budget=budget,
    )


def default_latency_targets(study_dir: str | Path, table, ratios: Sequence[float] = DEFAULT_RATIOS) -> tuple[float, ...]:
    """Latency targets where a MACs comparison would look: the predicted latency (ms, 3
    significant digits) on ``table`` of the study's fitted recipe at each of ``ratios``."""
    from tinyscale.fit.solve import RecipeSolver

    solver = RecipeSolver.load(study_dir)
    out: list[float] = []
    for c in ratios:
        ms = float(f"{table.predict_us(solver.solve(c).recipe) / 1000.0:.3g}")
        if ms not in out:
            out.append(ms)
    return tuple(out)


def _budget(config: StudyConfig, train_config) -> dict:
    """What a cell's accuracy depends on besides recipe and seed: the data and every trainer
    setting (thread count aside, a runtime choice)."""
    from tinyscale.train.config import comparable_settings

    trainer = comparable_settings(train_config)
    return {
        "data": config.data,
        "data_seed": config.seed,
        "train_size": getattr(config, "train_size", None),
        "val_size": getattr(config, "val_size", None),
        "rules": config.rules,
        "base_resolution": config.base_resolution,
        "num_classes": config.num_classes,
        **trainer,
    }


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
) -> Comparison:
    """Build every strategy's recipe at every ratio, train every missing (strategy, ratio, seed,
    bracket) cell with the study's trainer, data and the settings' budget, and return the
    comparison. An interpolated row trains two recipes (brackets ``below`` and ``above``) at
    every seed, every other row one (``single``).

    Training goes through the study engine's executors (``executor``: local by default, or
    worker processes / Ray from `tinyscale.study.executors.make_executor`), and this process stores
    each cell as soon as it finishes. Cells are submitted seed-major (all ratios, strategies and
    brackets at the first seed, then the next), so an interrupted run already holds a full table
    at fewer seeds. Finished cells are never retrained; ``restart`` discards stored results first.
    ``builders`` replaces the strategies' recipe builders (tests use it to inject a strategy).
    Under a latency budget (``settings.budget``) ``table`` is the device's
    `tinyscale.latency.core.LatencyTable` every recipe is solved and matched on; the comparison is
    stored in ``DIR/compare-latency``.
    """
    study_dir = Path(study_dir)
    config = _study_config(study_dir)
    if settings.budget == "latency" and table is None:
        raise ValueError("a latency comparison needs a device table (--device FILE, or a study kept with one)")
    measure = TargetMeasure("latency", table) if settings.budget == "latency" else MACS
    if builders is None:
        builders = strategy_builders(study_dir, config, settings.strategies, measure)
    missing = [n for n in settings.strategies if n not in builders]
    if missing:
        raise ValueError(f"no builder for strategies {missing}")
    train_config = _train_config(config, settings)
    budget = {**_budget(config, train_config), **measure.fingerprint()}

    with CompareStore.open(study_dir, budget, restart=restart, kind=settings.budget) as store:
        store.set_meta("settings", json.dumps(_settings_dict(settings)))
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
            return _assemble(settings, budget, store.recipes(), store.cells())
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

        jobs = [Job(key, parts[key[:2]][key[3]], key[2], train_config) for key in todo]
        run_jobs(queue_of(jobs), record, data=plan.data, executor=executor, threads=settings.threads,
                 progress=progress, desc="compare", total=len(todo))
        return _assemble(settings, budget, store.recipes(), store.cells())


def _settings_dict(settings: CompareSettings) -> dict:
    out = {"ratios": list(settings.ratios), "strategies": list(settings.strategies),
           "seeds": list(settings.seeds), "steps": settings.steps, "batch_size": settings.batch_size,
           "threads": settings.threads}
    if settings.budget != "macs":  # MACs settings read as before latency budgets existed
        out["budget"] = settings.budget
    return out


def load_comparison(study_dir: str | Path, budget: str = "macs") -> Comparison | None:
    """The stored comparison of a study at matched ``budget`` (possibly partial), or None when
    there is none.

    Read-only with respect to training: the UI calls this while a comparison may be running.
    """
    path = compare_dir(study_dir, budget) / STORE_NAME
    if not path.exists():
        return None
    try:
        with CompareStore.open(study_dir, kind=budget) as store:
            raw_settings, raw_budget = store.meta("settings"), store.meta("budget")
            if raw_settings is None or raw_budget is None:
                return None
            settings = CompareSettings(**{k: tuple(v) if isinstance(v, list) else v
                                          for k, v in json.loads(raw_settings).items()})
            return _assemble(settings, json.loads(raw_budget), store.recipes(), store.cells())
    except (sqlite3.DatabaseError, json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"comparison store {path} is unreadable: {exc}") from None


# --------------------------------------------------------------------------- tables


def _pct(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{100 * x:.{digits}f}"


def _short_recipe(recipe: Recipe | None) -> str:
    return "" if recipe is None else f"r={recipe.r:.4g} w={recipe.w:.4g} d={recipe.d:.4g} ({recipe.resolution} px)"


def comparison_table(comparison: Comparison) -> list[dict]:
    """One flat dict per row (ratio, strategy): what the Markdown/CSV tables and the UI show.

    Accuracies are in percent, margins in percentage points, paired by seed. ``gp_margin`` is
    the GP recipe minus the row's strategy (on every other row, with ``gp_margin_stderr``);
    the GP rows keep ``margin_vs_efficientnet``/``margin_stderr``, the same number as
    ``gp_margin`` on the EfficientNet row. An interpolated row (``interpolated``) gives its
    two trained steps (``achieved_below``/``achieved_above``, ``recipe_below``/``recipe_above``,
    ``macs_*``, ``params_*``, their mean top-1 ``acc_below``/``acc_above``); its ``acc_mean``
    is interpolated at c, and r, w, d, resolution, achieved, MACs and params are those of the
    step closer to c. ``effective_macs`` is where the accuracy applies: c × B0's MACs for an
    interpolated row, the recipe's MACs otherwise.
    """
    gp_in = "gp" in comparison.settings.strategies
    out = []
    for row in comparison.rows:
        r, b = row.recipe, row.bracket
        m_eff = comparison.margin(row.ratio, "efficientnet") if row.strategy == "gp" else None
        m_gp = comparison.margin(row.ratio, row.strategy) if gp_in and row.strategy != "gp" else None
        out.append({
            "target": row.ratio,
            "strategy": row.strategy,
            "rules": r.rules if r else "",
            "r": r.r if r else None,
            "w": r.w if r else None,
            "d": r.d if r else None,
            "resolution": r.resolution if r else None,
            "achieved": row.achieved,
            "matched": row.matched,
            "interpolated": row.interpolated,
            "achieved_below": b.ratio_below if b else None,
            "achieved_above": b.ratio_above if b else None,
            "recipe_below": _short_recipe(b.below) if b else "",
            "recipe_above": _short_recipe(b.above) if b else "",
            "macs": row.macs,
            "params": row.params,
            "macs_below": macs(b.below) if b else None,
            "macs_above": macs(b.above) if b else None,
            "params_below": cost(b.below).params if b else None,
            "params_above": cost(b.above).params if b else None,
            "effective_macs": row.effective_macs,
            "seeds": len(row.accuracies),
            "acc_mean": None if row.mean is None else 100 * row.mean,
            "acc_std": None if row.std is None else 100 * row.std,
            "acc_below": 100 * statistics.fmean(b.accuracies_below) if b and b.accuracies_below else None,
            "acc_above": 100 * statistics.fmean(b.accuracies_above) if b and b.accuracies_above else None,
            "margin_vs_efficientnet": None if m_eff is None else 100 * m_eff.value,
            "margin_stderr": None if m_eff is None or m_eff.stderr is None else 100 * m_eff.stderr,
            "gp_margin": None if m_gp is None else 100 * m_gp.value,
            "gp_margin_stderr": None if m_gp is None or m_gp.stderr is None else 100 * m_gp.stderr,
            "note": row.note,
        })
    return out


def margin_table(comparison: Comparison, strategy: str = "gp") -> list[dict]:
    """``strategy`` minus every other compared strategy, one dict per (baseline, ratio) plus
    one per baseline with ``target`` None for the mean over ratios: ``margin``/``stderr`` in
    percentage points (paired by seed), ``n`` paired seeds, ``matched``, and for the mean the
    ``ratios`` it covers."""
    out = []
    for baseline in comparison.baselines(strategy):
        for m in comparison.margins(baseline, strategy):
            out.append({"baseline": baseline, "target": m.ratio, "margin": 100 * m.value,
                        "stderr": None if m.stderr is None else 100 * m.stderr, "n": m.n, "matched": m.matched,
                        "ratios": (m.ratio,)})
        mean = comparison.mean_margin(baseline, strategy)
        if mean is not None:
            out.append({"baseline": baseline, "target": None, "margin": 100 * mean.value,
                        "stderr": None if mean.stderr is None else 100 * mean.stderr, "n": mean.n,
                        "matched": mean.matched, "ratios": mean.ratios})
    return out


def comparison_csv(comparison: Comparison) -> str:
    rows = comparison_table(comparison)
    buf = io.StringIO()
    fields = list(rows[0]) if rows else ["target", "strategy"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def _fmt_acc(row: dict) -> str:
    if row["acc_mean"] is None:
        return "–"
    std = "" if row["acc_std"] is None else f" ± {row['acc_std']:.2f}"
    return f"{row['acc_mean']:.2f}{std}"


def _fmt_margin(value: float, stderr: float | None, matched: bool) -> str:
    se = "" if stderr is None else f" ± {stderr:.2f}"
    return f"{value:+.2f}{se}" + ("" if matched else " ⚠")


def _md_row_cells(row: dict, full: ComparisonRow) -> tuple[str, str, str, str, str]:
    """(recipe, px, achieved, MACs, params) cells of one table row; interpolated rows show both steps."""
    if row["r"] is None:
        return "–", "–", "–", "–", "–"
    if not row["interpolated"]:
        recipe = f"{row['r']:.3g}, {row['w']:.3g}, {row['d']:.3g} ({row['rules']})"
        achieved = f"{row['achieved']:.4f}" + ("" if row["matched"] else " ⚠")
        return (recipe, str(row["resolution"]), achieved, f"{row['macs'] / 1e6:.2f}M", f"{row['params'] / 1e6:.3f}M")
    lo, hi = full.bracket.below, full.bracket.above
    return (f"{lo.r:.3g}, {lo.w:.3g}, {lo.d:.3g} ↔ {hi.r:.3g}, {hi.w:.3g}, {hi.d:.3g} ({row['rules']})",
            f"{lo.resolution} ↔ {hi.resolution}",
            f"{row['achieved_below']:.4f} ↔ {row['achieved_above']:.4f} (interp.)",
            f"{row['macs_below'] / 1e6:.2f}M ↔ {row['macs_above'] / 1e6:.2f}M",
            f"{row['params_below'] / 1e6:.3f}M ↔ {row['params_above'] / 1e6:.3f}M")


def comparison_markdown(comparison: Comparison) -> str:
    """The per-ratio table, the GP-vs-EfficientNet margins, then the GP's margins over every
    other strategy (per ratio and the mean over ratios), as GitHub Markdown."""
    sym = "ms" if comparison.settings.budget == "latency" else "c"
    matched_what = "latency" if sym == "ms" else "FLOPs"
    lines = [
        f"| target {sym} | strategy | recipe (r, w, d) | px | achieved {sym} | MACs | params | top-1 % (mean ± std) | n "
        "| note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row, full in zip(comparison_table(comparison), comparison.rows):
        recipe, px, achieved, mac, params = _md_row_cells(row, full)
        acc = _fmt_acc(row) + (" (interp.)" if row["interpolated"] and row["acc_mean"] is not None else "")
        lines.append(f"| {row['target']:g} | {row['strategy']} | {recipe} | {px} | {achieved} | {mac} | {params} | "
                     f"{acc} | {row['seeds']} | {row['note'].replace('|', '/')} |")
    margins = comparison.margins("efficientnet")
    if margins:
        lines += ["", f"| target {sym} | GP − EfficientNet (pp) | ± stderr | matched {matched_what} |", "|---|---|---|---|"]
        for m in margins:
            se = "–" if m.stderr is None else f"{100 * m.stderr:.2f}"
            lines.append(f"| {m.ratio:g} | {100 * m.value:+.2f} | {se} | {'yes' if m.matched else 'no'} |")
    table = margin_table(comparison)
    if table:
        ratios = comparison.settings.ratios
        lines += ["", "GP − each strategy, top-1 points, paired by seed (mean of the per-seed differences ± "
                      f"their standard error; ⚠: {matched_what} not matched on one side; mean over the targets both "
                      "reach):",
                  "", "| strategy | " + " | ".join(f"{sym} = {c:g}" for c in ratios) + f" | mean over {sym} |",
                  "|---|" + "---|" * (len(ratios) + 1)]
        for baseline in comparison.baselines():
            cells = {e["target"]: e for e in table if e["baseline"] == baseline}
            row = [_fmt_margin(cells[c]["margin"], cells[c]["stderr"], cells[c]["matched"]) if c in cells else "–"
                   for c in ratios]
            mean = cells.get(None)
            if mean is None:
                row.append("–")
            else:
                over = (f"all {sym}" if len(mean["ratios"]) == len(ratios)
                        else f"{sym} = " + ", ".join(f"{c:g}" for c in mean["ratios"]))
                row.append(f"{_fmt_margin(mean['margin'], mean['stderr'], mean['matched'])} ({over}, n = {mean['n']})")
            lines.append(f"| {baseline} | " + " | ".join(row) + " |")
    if not comparison.complete:
        lines += ["", f"Partial: {comparison.cells_done} of {comparison.cells_total} training runs done."]
    return "\n".join(lines) + "\n"
