"""Head-to-head at matched FLOPs: the study's GP recipe against EfficientNet compound scaling
and single-axis scaling, each trained with the same trainer, budget, data and seeds.

The flow is: a *strategy* turns a target ratio c into a recipe in the study's context; every
(strategy, ratio, seed) *cell* is trained once and stored in ``DIR/compare/compare.sqlite`` as
soon as it finishes, so a killed run resumes without retraining anything; the cells fold into a
`Comparison` (one row per ratio and strategy: recipe, achieved ratio, params, accuracy mean ±
std over seeds) with the GP recipe's margin over EfficientNet scaling per ratio.

Matched FLOPs is the point of the comparison: a row whose achieved ratio misses the target by
more than `MATCH_TOLERANCE` says so and why.
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

from tinyscale.cost import cost, macs
from tinyscale.recipe import Recipe
from tinyscale.trial import StudyConfig
from tinyscale.width import check_ratio

STRATEGIES: tuple[str, ...] = ("gp", "efficientnet", "width", "depth", "resolution")
STRATEGY_LABELS = {
    "gp": "GP recipe (this study)",
    "efficientnet": "EfficientNet compound (φ solved)",
    "width": "width only",
    "depth": "depth only",
    "resolution": "resolution only",
}
DEFAULT_RATIOS: tuple[float, ...] = (0.5, 0.25, 0.125, 0.0625)
MATCH_TOLERANCE = 0.02  # |achieved / target - 1| allowed for a row to count as matched FLOPs
COMPARE_DIRNAME = "compare"
STORE_NAME = "compare.sqlite"
SCHEMA_VERSION = 1
# Default compare budget: STEP_FACTOR x the study's steps per trial. Longer than the study's
# brief runs, yet the reference run (13 recipes x 3 seeds on the demo study) fits ~30 min on 2 cores.
STEP_FACTOR = 1.5

# A strategy: target ratio c -> (recipe in the study's context, note). It raises ValueError
# when it cannot build anything near c; the message becomes the row's note.
StrategyBuilder = Callable[[float], "tuple[Recipe, str]"]


# --------------------------------------------------------------------------- settings


def parse_ratios(text: str | Sequence[float]) -> tuple[float, ...]:
    """'0.5,0.25' -> (0.5, 0.25); every ratio a positive finite number, no duplicates."""
    items: Iterable = text.split(",") if isinstance(text, str) else text
    ratios: list[float] = []
    for item in items:
        raw = item.strip() if isinstance(item, str) else item
        if raw == "":
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"ratio {raw!r} is not a number") from None
        check_ratio(value)
        if value in ratios:
            raise ValueError(f"ratio {value:g} is listed twice")
        ratios.append(value)
    if not ratios:
        raise ValueError("give at least one target ratio (e.g. --ratios 0.5,0.25)")
    return tuple(ratios)


def parse_strategies(text: str | Sequence[str]) -> tuple[str, ...]:
    """'gp,efficientnet' -> ('gp', 'efficientnet'); unknown names are an error listing the known."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names: list[str] = []
    for item in items:
        name = item.strip().lower()
        if not name:
            continue
        if name not in STRATEGIES:
            raise ValueError(f"unknown strategy {item.strip()!r}; choose from {', '.join(STRATEGIES)}")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"give at least one strategy from {', '.join(STRATEGIES)}")
    return tuple(names)


@dataclass(frozen=True)
class CompareSettings:
    """What one comparison asks: target ratios, strategies, seeds and the shared training budget.

    ``steps``/``batch_size`` are the budget every strategy gets; the rest of the trainer
    settings come from the study. Cells trained under another budget are not comparable, so a
    resume with a different budget is an error (ratios, strategies and seeds may grow).
    """

    ratios: tuple[float, ...] = DEFAULT_RATIOS
    strategies: tuple[str, ...] = STRATEGIES
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 600
    batch_size: int = 64
    threads: int | None = None  # torch threads per run; a runtime choice, not part of the budget

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratios", parse_ratios(list(self.ratios)))
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


# --------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class BuiltRecipe:
    """One strategy's recipe at one target ratio, or why there is none."""

    strategy: str
    target: float
    recipe: Recipe | None
    achieved: float | None  # counted MACs / baseline MACs of the study's context
    note: str = ""

    @property
    def matched(self) -> bool:
        return self.achieved is not None and abs(self.achieved / self.target - 1.0) <= MATCH_TOLERANCE


def _baseline_macs(config: StudyConfig) -> int:
    return macs(config.recipe(1.0, 1.0, 1.0))


def build_recipe(name: str, builder: StrategyBuilder, target: float, config: StudyConfig) -> BuiltRecipe:
    """Run one strategy at one target and check the result against the study's context.

    The achieved ratio is counted here, against the study's own baseline, for every strategy
    alike (B0 is the same network under both rule sets, so ratios are comparable).
    """
    try:
        recipe, note = builder(target)
    except ValueError as exc:
        return BuiltRecipe(name, target, None, None, f"not built: {exc}")
    if (recipe.base_resolution, recipe.num_classes) != (config.base_resolution, config.num_classes):
        raise ValueError(
            f"strategy {name} built a recipe for base {recipe.base_resolution} px / {recipe.num_classes} "
            f"classes, but the study uses {config.base_resolution} px / {config.num_classes} classes"
        )
    achieved = macs(recipe) / _baseline_macs(config)
    off = achieved / target - 1.0
    notes = [note] if note else []
    if abs(off) > MATCH_TOLERANCE:
        notes.insert(0, f"FLOPs not matched: achieved {achieved:.4g} is {off:+.1%} off the target")
    return BuiltRecipe(name, target, recipe, achieved, "; ".join(notes))


def _mismatch_reason(target: float, below: float, above: float) -> str:
    """Why a solved strategy missed the target: the two achievable ratios around it."""
    if below == above:
        return f"the nearest ratio this strategy can build is {below:.4g}"
    return f"the rounding steps around c={target:g} are {below:.4g} and {above:.4g}"


def _gp_builder(study_dir: Path) -> StrategyBuilder:
    from tinyscale.solve import RecipeSolver

    solver = RecipeSolver.load(study_dir)  # ValueError naming `tinyscale fit` when there is no fit

    def build(c: float) -> tuple[Recipe, str]:
        answer = solver.solve(c)
        notes = list(answer.note_texts)
        if abs(answer.achieved / c - 1.0) > MATCH_TOLERANCE and not answer.width_clamped:
            notes.append(_mismatch_reason(c, answer.ratio_below, answer.ratio_above))
        return answer.recipe, "; ".join(notes)

    return build


def _baseline_builder(name: str, config: StudyConfig) -> StrategyBuilder:
    import baselines

    if name == "efficientnet":
        # Compound scaling is always built under EfficientNet rules, as the TF reference does.
        def solve(c: float):
            return baselines.compound_recipe(c, base_resolution=config.base_resolution,
                                             num_classes=config.num_classes)
    else:
        # Single-axis baselines scale the study's own network, so they use the study's rules.
        one_axis = {"width": baselines.width_only, "depth": baselines.depth_only,
                    "resolution": baselines.resolution_only}[name]

        def solve(c: float):
            return one_axis(c, rules=config.rules, base_resolution=config.base_resolution,
                            num_classes=config.num_classes)

    def build(c: float) -> tuple[Recipe, str]:
        result = solve(c)
        note = f"φ={result.phi:.4g}" if result.phi is not None else ""
        if abs(result.relative_error) > MATCH_TOLERANCE:
            note = "; ".join(filter(None, [note, _mismatch_reason(c, result.ratio_below, result.ratio_above)]))
        return result.recipe, note

    return build


def strategy_builders(study_dir: str | Path, config: StudyConfig, names: Sequence[str]) -> dict[str, StrategyBuilder]:
    """The builders of the named strategies in the study's context (ValueError for unknown names
    or for ``gp`` on a study without a fit)."""
    builders: dict[str, StrategyBuilder] = {}
    for name in parse_strategies(list(names)):
        builders[name] = _gp_builder(Path(study_dir)) if name == "gp" else _baseline_builder(name, config)
    return builders


# --------------------------------------------------------------------------- store


@dataclass(frozen=True)
class Cell:
    """One trained (strategy, ratio, seed)."""

    strategy: str
    ratio: float
    seed: int
    state: str  # "completed" or "failed"
    accuracy: float | None
    loss: float | None
    train_seconds: float | None
    reason: str | None = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recipes (
    strategy TEXT NOT NULL, ratio REAL NOT NULL, recipe TEXT, achieved REAL, note TEXT NOT NULL,
    PRIMARY KEY (strategy, ratio));
CREATE TABLE IF NOT EXISTS cells (
    strategy TEXT NOT NULL, ratio REAL NOT NULL, seed INTEGER NOT NULL, state TEXT NOT NULL,
    accuracy REAL, loss REAL, train_seconds REAL, reason TEXT, recipe TEXT NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (strategy, ratio, seed));
"""


def compare_dir(study_dir: str | Path) -> Path:
    return Path(study_dir) / COMPARE_DIRNAME


class CompareStore:
    """The comparison's SQLite store (WAL, one transaction per finished cell).

    ``budget`` identifies what a cell's number means (data, split seed, trainer settings);
    cells under another budget are refused rather than mixed.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, study_dir: str | Path, budget: dict | None = None, *, restart: bool = False) -> CompareStore:
        """Open (creating when ``budget`` is given) the store of a study's comparison."""
        path = compare_dir(study_dir) / STORE_NAME
        if budget is None and not path.exists():
            raise FileNotFoundError(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            store = cls(path, conn)
            if budget is not None:
                store._claim(budget, restart)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ValueError(f"comparison store {path} is unreadable ({exc}); pass --restart to start over") from None
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> CompareStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _claim(self, budget: dict, restart: bool) -> None:
        stored = self.meta("budget")
        wanted = json.dumps(budget, sort_keys=True)
        if stored is not None and stored != wanted and not restart:
            old = json.loads(stored)
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {budget.get(k)!r}"
                             for k in sorted(set(old) | set(budget)) if old.get(k) != budget.get(k))
            raise ValueError(
                f"{self.path} holds results trained under another budget ({diff}); "
                "rerun with the same budget to resume, or pass --restart to discard them"
            )
        with self._conn:
            if restart:
                self._conn.execute("DELETE FROM cells")
                self._conn.execute("DELETE FROM recipes")
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('budget', ?)", (wanted,))
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._conn:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def put_recipe(self, built: BuiltRecipe) -> None:
        """Record a strategy's recipe at a ratio; a *different* recipe where cells already exist
        (e.g. the study was refitted) is an error, since those cells trained another network."""
        recipe_json = None if built.recipe is None else json.dumps(built.recipe.to_dict(), sort_keys=True)
        row = self._conn.execute(
            "SELECT recipe FROM cells WHERE strategy = ? AND ratio = ? LIMIT 1", (built.strategy, built.target)
        ).fetchone()
        if row is not None and row[0] != recipe_json:
            raise ValueError(
                f"the {built.strategy} recipe at c={built.target:g} is now {recipe_json}, but stored results "
                f"trained {row[0]} (was the study refitted?); pass --restart to retrain"
            )
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO recipes VALUES (?, ?, ?, ?, ?)",
                (built.strategy, built.target, recipe_json, built.achieved, built.note),
            )

    def recipes(self) -> dict[tuple[str, float], BuiltRecipe]:
        out = {}
        for strategy, ratio, recipe_json, achieved, note in self._conn.execute("SELECT * FROM recipes"):
            recipe = None if recipe_json is None else Recipe.from_dict(json.loads(recipe_json))
            out[(strategy, ratio)] = BuiltRecipe(strategy, ratio, recipe, achieved, note)
        return out

    def put_cell(self, cell: Cell, recipe: Recipe) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cell.strategy, cell.ratio, cell.seed, cell.state, cell.accuracy, cell.loss,
                 cell.train_seconds, cell.reason, json.dumps(recipe.to_dict(), sort_keys=True), time.time()),
            )

    def cells(self) -> dict[tuple[str, float, int], Cell]:
        rows = self._conn.execute(
            "SELECT strategy, ratio, seed, state, accuracy, loss, train_seconds, reason FROM cells"
        )
        return {(r[0], r[1], r[2]): Cell(*r) for r in rows}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ComparisonRow:
    """One strategy at one target ratio, over all its seeds."""

    ratio: float
    strategy: str
    recipe: Recipe | None
    achieved: float | None
    macs: int | None
    params: int | None
    matched: bool
    note: str
    accuracies: tuple[float, ...]  # completed seeds, in seed order
    failed: int = 0

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.accuracies) if self.accuracies else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (None with fewer than two)."""
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else None


@dataclass(frozen=True)
class Margin:
    """GP recipe minus EfficientNet compound scaling at one ratio, in accuracy (fraction)."""

    ratio: float
    value: float
    stderr: float | None  # sqrt(s1²/n1 + s2²/n2); None when either side has < 2 seeds
    matched: bool  # both rows at matched FLOPs


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

    def margins(self) -> list[Margin]:
        out = []
        for c in self.settings.ratios:
            gp, eff = self.row(c, "gp"), self.row(c, "efficientnet")
            if gp is None or eff is None or gp.mean is None or eff.mean is None:
                continue
            stderr = None
            if gp.std is not None and eff.std is not None:
                stderr = math.sqrt(gp.std**2 / len(gp.accuracies) + eff.std**2 / len(eff.accuracies))
            out.append(Margin(c, gp.mean - eff.mean, stderr, gp.matched and eff.matched))
        return out


def _assemble(settings: CompareSettings, budget: dict, recipes: dict, cells: dict) -> Comparison:
    rows = []
    done = 0
    for c in settings.ratios:
        for name in settings.strategies:
            built = recipes.get((name, c))
            if built is None:
                continue
            runs = [cells[(name, c, s)] for s in settings.seeds if (name, c, s) in cells]
            done += len(runs)
            accs = tuple(x.accuracy for x in runs if x.state == "completed" and x.accuracy is not None)
            failed = [x for x in runs if x.state != "completed"]
            note = built.note
            if failed:
                reasons = "; ".join(sorted({x.reason or "unknown" for x in failed}))
                note = "; ".join(filter(None, [note, f"{len(failed)} seed(s) failed: {reasons}"]))
            c_cost = cost(built.recipe) if built.recipe is not None else None
            rows.append(ComparisonRow(
                ratio=c, strategy=name, recipe=built.recipe, achieved=built.achieved,
                macs=c_cost.macs if c_cost else None, params=c_cost.params if c_cost else None,
                matched=built.matched, note=note, accuracies=accs, failed=len(failed),
            ))
    trainable = sum(1 for r in rows if r.recipe is not None) * len(settings.seeds)
    return Comparison(settings, budget, tuple(rows), complete=done >= trainable and
                      len(rows) == len(settings.ratios) * len(settings.strategies),
                      cells_done=done, cells_total=trainable)


# --------------------------------------------------------------------------- running


def _study_config(study_dir: Path) -> StudyConfig:
    """The study's configuration (ValueError when the directory holds no readable study)."""
    from tinyscale.study import Study

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
    strategies: str | Sequence[str] = STRATEGIES,
    seeds: int = 3,
    steps: int | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
) -> CompareSettings:
    """Settings for a study: seeds 0..seeds-1; steps and batch size default from the study."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"the number of seeds must be a positive integer, got {seeds!r}")
    config = _study_config(Path(study_dir))
    return CompareSettings(
        ratios=parse_ratios(ratios),
        strategies=parse_strategies(strategies),
        seeds=tuple(range(seeds)),
        steps=default_steps(config) if steps is None else steps,
        batch_size=config.batch_size if batch_size is None else batch_size,
        threads=threads,
    )


def _budget(config: StudyConfig, train_config) -> dict:
    """What a cell's accuracy depends on besides recipe and seed: the data and every trainer
    setting (thread count aside, a runtime choice)."""
    from dataclasses import asdict

    trainer = {k: v for k, v in asdict(train_config).items() if k != "threads"}
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
    from tinyscale.train import TrainConfig

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
) -> Comparison:
    """Build every strategy's recipe at every ratio, train every missing (strategy, ratio, seed)
    cell with the study's trainer, data and the settings' budget, and return the comparison.

    Training goes through the study engine's executors (``executor``: local by default, or
    worker processes / Ray from `tinyscale.executors.make_executor`), and this process stores
    each cell as soon as it finishes. Cells are submitted seed-major (all ratios and strategies
    at the first seed, then the next), so an interrupted run already holds a full table at fewer
    seeds. Finished cells are never retrained; ``restart`` discards stored results first.
    ``builders`` replaces the strategies' recipe builders (tests use it to inject a strategy).
    """
    from dataclasses import asdict

    from tqdm.auto import tqdm

    from tinyscale.executors import TrialTask, make_executor
    from tinyscale.study import check_data, data_spec

    study_dir = Path(study_dir)
    config = _study_config(study_dir)
    if builders is None:
        builders = strategy_builders(study_dir, config, settings.strategies)
    missing = [n for n in settings.strategies if n not in builders]
    if missing:
        raise ValueError(f"no builder for strategies {missing}")
    train_config = _train_config(config, settings)
    budget = _budget(config, train_config)

    with CompareStore.open(study_dir, budget, restart=restart) as store:
        store.set_meta("settings", json.dumps(_settings_dict(settings)))
        built = {}
        for c in settings.ratios:
            for name in settings.strategies:
                b = build_recipe(name, builders[name], c, config)
                store.put_recipe(b)
                built[(name, c)] = b
        done = store.cells()
        todo = [(name, c, s) for s in settings.seeds for c in settings.ratios for name in settings.strategies
                if built[(name, c)].recipe is not None and (name, c, s) not in done]
        if not todo:
            return _assemble(settings, budget, store.recipes(), store.cells())
        check_data(config)  # a missing dataset is one clear error before any worker starts
        spec, train = data_spec(config), asdict(train_config)
        own_executor = executor is None
        executor = executor or make_executor("local", 1, threads=settings.threads)
        queue = list(enumerate(todo))
        in_flight = 0
        bar = tqdm(total=len(todo), desc="compare", unit="run", disable=not progress, dynamic_ncols=True)
        try:
            while queue or in_flight:
                while queue and in_flight < executor.slots:
                    number, (name, c, seed) = queue.pop(0)
                    recipe = built[(name, c)].recipe
                    executor.submit(TrialTask(number, recipe.to_dict(), seed, spec, train))
                    in_flight += 1
                outcome = executor.next_outcome()
                in_flight -= 1
                name, c, seed = todo[outcome.number]
                cell = _cell(name, c, seed, outcome)
                store.put_cell(cell, built[(name, c)].recipe)
                if on_cell is not None:
                    on_cell(cell)
                bar.update(1)
                acc = "failed" if cell.accuracy is None else f"{100 * cell.accuracy:.2f} %"
                bar.set_postfix_str(f"last: {name} c={c:g} seed={seed} {acc}")
        finally:
            bar.close()
            if own_executor:
                executor.close()
        return _assemble(settings, budget, store.recipes(), store.cells())


def _cell(name: str, c: float, seed: int, outcome) -> Cell:
    """A finished task as a stored cell: completed with its accuracy, or failed with the reason
    (the worker raised, or the run diverged: the trainer returns ``failed`` and no accuracy)."""
    result = outcome.result
    if result is None:
        return Cell(name, c, seed, "failed", None, None, None, outcome.error or "unknown error")
    reason = result.failed
    if reason is None and (result.accuracy is None or not math.isfinite(result.accuracy)):
        reason = f"no finite accuracy ({result.accuracy!r})"
    if reason:
        return Cell(name, c, seed, "failed", None, None, result.train_seconds, str(reason))
    return Cell(name, c, seed, "completed", float(result.accuracy), result.loss, result.train_seconds)


def _settings_dict(settings: CompareSettings) -> dict:
    return {"ratios": list(settings.ratios), "strategies": list(settings.strategies),
            "seeds": list(settings.seeds), "steps": settings.steps, "batch_size": settings.batch_size,
            "threads": settings.threads}


def load_comparison(study_dir: str | Path) -> Comparison | None:
    """The stored comparison of a study (possibly partial), or None when there is none.

    Read-only with respect to training: the UI calls this while a comparison may be running.
    """
    path = compare_dir(study_dir) / STORE_NAME
    if not path.exists():
        return None
    try:
        with CompareStore.open(study_dir) as store:
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


def comparison_table(comparison: Comparison) -> list[dict]:
    """One flat dict per row (ratio, strategy): what the Markdown/CSV tables and the UI show.

    Accuracies are in percent; ``margin_vs_efficientnet`` (percentage points) is on the GP rows.
    """
    margins = {m.ratio: m for m in comparison.margins()}
    out = []
    for row in comparison.rows:
        r = row.recipe
        m = margins.get(row.ratio) if row.strategy == "gp" else None
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
            "macs": row.macs,
            "params": row.params,
            "seeds": len(row.accuracies),
            "acc_mean": None if row.mean is None else 100 * row.mean,
            "acc_std": None if row.std is None else 100 * row.std,
            "margin_vs_efficientnet": None if m is None else 100 * m.value,
            "margin_stderr": None if m is None or m.stderr is None else 100 * m.stderr,
            "note": row.note,
        })
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


def comparison_markdown(comparison: Comparison) -> str:
    """The per-ratio table, then the GP-vs-EfficientNet margins, as GitHub Markdown."""
    lines = [
        "| target c | strategy | recipe (r, w, d) | px | achieved c | MACs | params | top-1 % (mean ± std) | n | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in comparison_table(comparison):
        recipe = "–" if row["r"] is None else f"{row['r']:.3g}, {row['w']:.3g}, {row['d']:.3g} ({row['rules']})"
        lines.append("| {t:g} | {s} | {rec} | {px} | {a} | {m} | {p} | {acc} | {n} | {note} |".format(
            t=row["target"], s=row["strategy"], rec=recipe,
            px="–" if row["resolution"] is None else row["resolution"],
            a="–" if row["achieved"] is None else f"{row['achieved']:.4f}" + ("" if row["matched"] else " ⚠"),
            m="–" if row["macs"] is None else f"{row['macs'] / 1e6:.2f}M",
            p="–" if row["params"] is None else f"{row['params'] / 1e6:.3f}M",
            acc=_fmt_acc(row), n=row["seeds"], note=row["note"].replace("|", "/"),
        ))
    margins = comparison.margins()
    if margins:
        lines += ["", "| target c | GP − EfficientNet (pp) | ± stderr | matched FLOPs |", "|---|---|---|---|"]
        for m in margins:
            se = "–" if m.stderr is None else f"{100 * m.stderr:.2f}"
            lines.append(f"| {m.ratio:g} | {100 * m.value:+.2f} | {se} | {'yes' if m.matched else 'no'} |")
    if not comparison.complete:
        lines += ["", f"Partial: {comparison.cells_done} of {comparison.cells_total} training runs done."]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ReportPaths:
    markdown: Path
    csv: Path
    html: Path
    png: Path | None
    png_message: str  # why there is no PNG, or "" when there is one


def write_report(comparison: Comparison, out_dir: str | Path) -> ReportPaths:
    """Markdown + CSV tables, the plotly figure as HTML, and as PNG when kaleido can render it."""
    from tinyscale.compare_plots import comparison_figure, write_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, cs, html = out / "comparison.md", out / "comparison.csv", out / "comparison.html"
    _atomic_write(md, comparison_markdown(comparison))
    _atomic_write(cs, comparison_csv(comparison))
    fig = comparison_figure(comparison)
    _atomic_write(html, fig.to_html(include_plotlyjs=True, full_html=True))
    png, message = write_png(fig, out / "comparison.png")
    return ReportPaths(md, cs, html, png, message)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
