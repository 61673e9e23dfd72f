"""Where a comparison is kept: ``DIR/compare/compare.sqlite`` (``DIR/compare-latency/`` at matched
latency), one row per built recipe and one per trained `Cell` (strategy, ratio, seed, bracket),
each written as soon as its run finishes, so a killed comparison resumes without retraining."""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from tinyscale.evaluate.compare.build import BuiltRecipe
from tinyscale.evaluate.store import TrainerResultStore
from tinyscale.limits import check_number
from tinyscale.storage import COMPARE_DIR, loads_json
from tinyscale.space.recipe import Recipe
from tinyscale.study.runner import RunResult

STORE_NAME = "compare.sqlite"
# 2: cells per (strategy, ratio, seed, bracket), bracketing recipes stored with each strategy's recipe.
SCHEMA_VERSION = 2
BRACKETS = ("single", "below", "above")  # which recipe of a row a cell trained


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


def compare_dir(study_dir: str | Path, budget: str = "macs", variant: str | None = None) -> Path:
    """Where a study's comparison lives: ``DIR/compare`` at matched MACs, ``DIR/compare-latency``
    at matched latency (two comparisons of one study never share a store); a ``variant`` (the
    settled check's longer runs: ``settled``) gets its own, ``DIR/compare-settled``."""
    name = COMPARE_DIR if budget == "macs" else f"{COMPARE_DIR}-{budget}"
    return Path(study_dir) / (name if variant is None else f"{name}-{variant}")


def _recipe_json(recipe: Recipe | None) -> str | None:
    return None if recipe is None else recipe.to_json()


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
             kind: str = "macs", variant: str | None = None) -> CompareStore:
        """Open (creating when ``budget`` is given) the store of a study's comparison at matched
        ``kind`` (`BUDGETS`), or of its ``variant`` (`compare_dir`)."""
        path = compare_dir(study_dir, kind, variant) / STORE_NAME
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
        """The built recipes; ValueError naming the row when one is damaged."""
        out = {}
        for strategy, ratio, recipe, achieved, note, below, a_below, above, a_above in self._conn.execute(
            "SELECT strategy, ratio, recipe, achieved, note, below, achieved_below, above, achieved_above FROM recipes"
        ):
            try:
                for value in (ratio, achieved, a_below, a_above):
                    if value is not None:
                        check_number("a ratio", value, 0)
                built = BuiltRecipe(strategy, ratio, _stored_recipe(recipe), achieved, note, _stored_recipe(below),
                                    _stored_recipe(above), a_below, a_above)
            except (TypeError, KeyError, ValueError) as exc:
                raise ValueError(f"{self.path}: the {strategy!r} recipe at {ratio!r} is damaged ({exc}); pass "
                                 "--restart to rebuild it") from None
            out[(strategy, ratio)] = built
        return out

    def put_cell(self, cell: Cell, recipe: Recipe) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cell.strategy, cell.ratio, cell.seed, cell.bracket, cell.state, cell.accuracy, cell.loss,
                 cell.train_seconds, cell.reason, _recipe_json(recipe), time.time()),
            )

    def cells(self) -> dict[tuple[str, float, int, str], Cell]:
        """The trained cells; ValueError naming the cell when one is damaged (SQLite keeps any
        value in any column, so a hand-edited or crafted store can hold text or 1e308 there)."""
        rows = self._conn.execute(
            "SELECT strategy, ratio, seed, state, accuracy, loss, train_seconds, reason, bracket FROM cells"
        )
        out = {}
        for row in rows:
            cell = Cell(*row)
            problem = _cell_problem(cell)
            if problem:
                raise ValueError(f"{self.path}: the cell {cell.strategy!r} at {cell.ratio!r}, seed {cell.seed!r} "
                                 f"({cell.bracket!r}) is damaged: {problem}; pass --restart to retrain")
            out[cell.key] = cell
        return out


def _stored_recipe(text: object) -> Recipe | None:
    if text is None:
        return None
    data = loads_json(text)
    if not isinstance(data, dict):
        raise ValueError(f"a recipe is a JSON object, got {text!r:.60}")
    return Recipe.from_dict(data)


def _cell_problem(cell: Cell) -> str | None:
    """Why a stored cell cannot be what `put_cell` wrote, or None."""
    if cell.state not in ("completed", "failed"):
        return f"state {cell.state!r}"
    if cell.bracket not in BRACKETS or not isinstance(cell.strategy, str) or type(cell.seed) is not int:
        return "its key"
    if cell.state == "completed" and cell.accuracy is None:
        return "completed without an accuracy"
    for name, value, high in (("ratio", cell.ratio, math.inf), ("accuracy", cell.accuracy, 1.0),
                              ("loss", cell.loss, math.inf), ("train_seconds", cell.train_seconds, math.inf)):
        if value is not None:
            try:
                check_number(name, value, 0, high)
            except ValueError as exc:
                return str(exc)
    return None
