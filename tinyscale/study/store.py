"""The study: what was asked (`StudyConfig`), what happened (`Trial`s) and where both are kept.

A study lives in one directory::

    config.json      the StudyConfig, written once (atomically) when the study is created
    trials.sqlite    one row per trial, SQLite in WAL mode so readers (the UI, `tinyscale
                     trials`) can open it while the study is writing

Other stages add their own files to the directory (the fit, comparisons); this module never
touches files it does not own.

The study asks its sampler (`tinyscale.study.samplers.base.make_sampler`) for the recipes of its next trial
numbers and stores each as a ``pending`` row (its recipe and which sampler proposed it) before
training starts, so resuming never asks again for a number it already holds: trials that
finished are skipped, trials that were proposed or interrupted (``pending``, ``running``) are
trained again from scratch, as stored. With the sobol sampler trial k is recipe k of the seeded
stream either way. Every state change is one SQLite transaction, so a kill at any moment leaves
either the old row or the new one, never half of a result.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyscale.limits import MAX_JSON_BYTES, MAX_TRIALS
from tinyscale.storage import (CONFIG_FILE, LOCK_FILE, TRIALS_FILE, FileLock, database_problem,
                               differences, loads_json, read_bounded, write_text_atomically)
from tinyscale.study import database
from tinyscale.study.halving import MAX_RUNGS, RungResult, RungSummary, fit_rung, rung_steps, summarise
from tinyscale.study.plan import check_config_numbers
from tinyscale.study.runner import RunResult
from tinyscale.study.trial import TRIAL_STATES, StudyConfig, Trial, box_widening

STATES = TRIAL_STATES
SCHEMA_VERSION = database.SCHEMA_VERSION
CHOSEN_RUNGS = "chosen_rungs"  # meta key: the rungs a study with rungs auto chose from its budget


@dataclass(frozen=True)
class StudyProgress:
    """A snapshot of a study: counts by state, the best trial so far, the budget asked."""

    counts: dict[str, int]
    best_accuracy: float | None
    best_trial: int | None
    target_trials: int | None
    budget_minutes: float | None
    elapsed_seconds: float
    budget_steps: int | None = None  # step-units: training steps summed over every run of every rung
    steps_spent: int = 0  # the step-units the finished runs trained (a continued run: after its trunk)
    cheapest_run: int = 1  # step-units of a rung-0 run: a step budget with less left is spent

    @property
    def finished(self) -> int:
        """Trials that ended, successfully or not."""
        return self.counts.get("completed", 0) + self.counts.get("failed", 0)

    @property
    def budget_open(self) -> bool:
        """Whether a budget of trials or step-units is set and none is reached yet (a study stops at
        the first budget it reaches; minutes pass only while it runs, so they are not judged here)."""
        reached = [self.finished >= self.target_trials] if self.target_trials else []
        reached += [self.budget_steps - self.steps_spent < self.cheapest_run] if self.budget_steps else []
        return bool(reached) and not any(reached)

    def to_dict(self) -> dict:
        return {
            "counts": dict(self.counts),
            "finished": self.finished,
            "best_accuracy": self.best_accuracy,
            "best_trial": self.best_trial,
            "target_trials": self.target_trials,
            "budget_minutes": self.budget_minutes,
            "elapsed_seconds": self.elapsed_seconds,
            "budget_steps": self.budget_steps,
            "steps_spent": self.steps_spent,
        }


def config_differences(stored: StudyConfig, asked: StudyConfig) -> list[str]:
    """Fields (as ``name: stored -> asked``) in which two configs differ."""
    return differences(stored.to_dict(), asked.to_dict())


BOX_EXTENSIONS = "box_extensions"  # meta key: each widening of the sampled box, in order


class Study:
    """A study directory. Create it with `Study.create`, open an existing one with `Study.open`."""

    def __init__(self, directory: Path, config: StudyConfig, frozen: bool = False) -> None:
        self.directory = directory
        self.config = config
        self._conn = (database.frozen if frozen else database.connect)(directory / TRIALS_FILE)

    # ----------------------------------------------------------------------------- lifecycle
    @classmethod
    def create(cls, directory: str | os.PathLike, config: StudyConfig) -> Study:
        """Start a new study in ``directory`` (created if needed; must not hold a study yet)."""
        directory = Path(directory)
        config.recipe(1.0, 1.0, 1.0)  # validates rules, base resolution and classes early
        if (directory / CONFIG_FILE).exists() or (directory / TRIALS_FILE).exists():
            raise ValueError(f"{directory} already holds a study; resume it instead of creating a new one")
        directory.mkdir(parents=True, exist_ok=True)
        # The database first, the config last: a directory with config.json is a whole study.
        conn = database.connect(directory / TRIALS_FILE)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(database.SCHEMA)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(database.SCHEMA_VERSION),))
        # A copy of the config, from which `open` rebuilds a deleted config.json.
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('config', ?)", (json.dumps(config.to_dict()),))
        conn.close()
        write_text_atomically(directory / CONFIG_FILE, json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
        return cls(directory, config)

    @classmethod
    def open(cls, directory: str | os.PathLike) -> Study:
        """Open an existing study (ValueError if the directory holds none or it is damaged)."""
        directory = Path(directory)
        cfg_path, db_path = directory / CONFIG_FILE, directory / TRIALS_FILE
        if not directory.is_dir():
            raise ValueError(f"no study at {directory}: the directory does not exist")
        if db_path.is_file() and not cfg_path.exists():
            _restore_config(directory)
        if not cfg_path.is_file() or not db_path.is_file():
            raise ValueError(f"no study at {directory}: expected {CONFIG_FILE} and {TRIALS_FILE} there")
        try:
            stored = loads_json(read_bounded(cfg_path, MAX_JSON_BYTES, "study config").decode("utf-8"))
            if not isinstance(stored, dict):
                raise ValueError(f"expected a JSON object of settings, got a JSON {type(stored).__name__}")
            config = StudyConfig.from_dict(stored)
            config.recipe(1.0, 1.0, 1.0)
            check_config_numbers(config)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"the study at {directory} has an unreadable {CONFIG_FILE}: {exc}") from None
        wal = db_path.with_name(db_path.name + "-wal")
        for frozen in (False, True):
            try:
                study = cls(directory, config, frozen)
                study._conn.execute("SELECT number FROM trials LIMIT 1").fetchall()
                database.upgrade(study._conn)
                return study
            except sqlite3.DatabaseError as exc:
                # A full disk fails a reader too (no room for SQLite's shared-memory index): with
                # nothing in the write-ahead log the database file is the whole store, read as is.
                if frozen or "disk I/O" not in str(exc) or (wal.exists() and wal.stat().st_size > 0):
                    problem = database_problem(db_path, exc, "")  # the machine's (OSError) or damage
                    raise (ValueError(f"the study at {directory} has an unreadable {TRIALS_FILE}: {exc}")
                           if isinstance(problem, ValueError) else problem) from None

    def widen_box(self, wider: StudyConfig, reason: str | None = None) -> dict:
        """Resume in a wider box (`box_widening`; issue 25 item 6: a ridge at the box's edge is a
        finding, and new recipes drawn past the edge test it). The trials so far lie inside the
        new box and keep their meaning. Stored as the config (the database's copy first, then
        config.json) and as one more entry of the box's history (`box_extensions`)."""
        widened = box_widening(self.config, wider)
        if not widened:
            raise ValueError("widen_box changes only r_range and d_range")
        entry = {"from_trial": len(self.trials()), **{k: {"from": list(a), "to": list(b)} for k, (a, b) in widened.items()},
                 **({"reason": reason} if reason else {})}
        with self._transaction():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('config', ?)", (json.dumps(wider.to_dict()),))
            history = self.box_extensions()
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (BOX_EXTENSIONS, json.dumps(history + [entry])))
        write_text_atomically(self.directory / CONFIG_FILE, json.dumps(wider.to_dict(), indent=2, sort_keys=True) + "\n")
        self.config = wider
        return entry

    def box_extensions(self) -> list[dict]:
        """Each widening of the sampled box (`widen_box`): from which trial, each axis's ranges."""
        history = self.get_meta(BOX_EXTENSIONS, [])
        if not isinstance(history, list):
            raise ValueError(f"{self.directory / TRIALS_FILE} holds a damaged {BOX_EXTENSIONS!r}")
        return history

    def hold(self, lock: FileLock) -> None:
        """Keep ``lock`` until this study is closed (the runner's exclusive hold on the directory)."""
        self._lock = lock

    def close(self) -> None:
        self._conn.close()
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()
            self._lock = None

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- reading
    def _row_to_trial(self, row: sqlite3.Row) -> Trial:
        try:
            return self._checked_trial(row)
        except ValueError as exc:
            raise ValueError(f"trial {row['number']} in {self.directory / TRIALS_FILE} is damaged: {exc}") from None

    def _checked_trial(self, row: sqlite3.Row) -> Trial:
        """A row as a Trial; ValueError when a field is not of its column's type
        (`database.checked_row`)."""
        later = database.checked_row(row)
        recipe = self.config.recipe(row["r"], row["w"], row["d"])
        return Trial(
            number=row["number"],
            recipe=recipe,
            state=row["state"],
            macs=row["macs"],
            params=row["params"],
            ratio=row["ratio"],
            accuracy=row["accuracy"],
            loss=row["loss"],
            steps=row["steps"],
            images_seen=row["images_seen"],
            train_seconds=row["train_seconds"],
            eval_seconds=row["eval_seconds"],
            images_per_second=row["images_per_second"],
            reason=row["reason"],
            proposed_by=row["proposed_by"] if row["proposed_by"] is not None else self.config.sampling,
            rung=row["rung"],
            device=later["device"],
            precision=later["precision"],
            start_step=later["start_step"] or 0,
        )

    def trials(self, state: str | None = None) -> list[Trial]:
        """All trials (each recipe's rung-0 run), or those in one state, ordered by number."""
        if state is None:
            rows = self._conn.execute("SELECT *, 0 AS rung FROM trials ORDER BY number").fetchall()
        else:
            _check_state(state)
            rows = self._conn.execute("SELECT *, 0 AS rung FROM trials WHERE state = ? ORDER BY number",
                                      (state,)).fetchall()
        return [self._row_to_trial(r) for r in rows]

    def trial(self, number: int) -> Trial | None:
        row = self._conn.execute("SELECT *, 0 AS rung FROM trials WHERE number = ?", (number,)).fetchone()
        return None if row is None else self._row_to_trial(row)

    def rung_runs(self, state: str | None = None) -> list[Trial]:
        """The promoted recipes' runs at rungs >= 1 (halving schedule), each as a `Trial` of its
        rung (the recipe's number, cost and proposer; the rung's result), by rung then number."""
        if not database.has_rung_runs(self._conn):  # an older store read as it is on disk
            return []
        if state is not None:
            _check_state(state)
        later = [c for c in database.LATER_RUN_COLUMNS if c in database.table_columns(self._conn, "rung_runs")]
        columns = ", ".join(f"u.{c}" for c in ("number", "rung", "state", *database.RUN_COLUMNS, *later, "device",
                                               "precision"))
        rows = self._conn.execute(
            f"SELECT {columns}, t.r, t.w, t.d, t.macs, t.params, t.ratio, t.proposed_by FROM rung_runs AS u "
            "JOIN trials AS t ON t.number = u.number WHERE ? IS NULL OR u.state = ? ORDER BY u.rung, u.number",
            (state, state)).fetchall()
        return [self._row_to_trial(r) for r in rows]

    def runs(self, state: str | None = None) -> list[Trial]:
        """Every run: the trials (rung 0), then the rung runs."""
        return self.trials(state) + self.rung_runs(state)

    def rung_results(self) -> list[RungResult]:
        """The completed runs at every rung, as promotion and the stop rule read them."""
        return [RungResult(t.number, t.rung, t.ratio, t.accuracy, t.recipe.r, t.recipe.d)
                for t in self.runs("completed")]

    @property
    def top_rung(self) -> int:
        """The highest rung a halving study trains: its ``rungs``, or with ``rungs`` None (auto)
        the number it chose from its budget (`tinyscale.study.halving.choose_rungs`), 0 until it
        has chosen; 0 for a uniform study."""
        c = self.config
        if c.schedule != "halving":
            return 0
        if c.rungs is not None:
            return c.rungs
        chosen = self.get_meta(CHOSEN_RUNGS, 0)
        if isinstance(chosen, bool) or not isinstance(chosen, int) or not 0 <= chosen <= MAX_RUNGS:
            raise ValueError(f"{self.directory / TRIALS_FILE} holds a damaged {CHOSEN_RUNGS!r} ({chosen!r})")
        return chosen

    def rung_summary(self) -> list[RungSummary]:
        """Each rung (halving schedule): its steps, completed recipes, best accuracy, agreement
        with the next."""
        c = self.config
        return summarise(self.rung_results(), steps=c.steps, eta=c.eta, top=self.top_rung)

    def fit_rung(self) -> int:
        """The rung whose results the fit uses (`tinyscale.study.halving.fit_rung`; 0 for a
        uniform study)."""
        return 0 if self.config.schedule != "halving" else fit_rung(self.rung_results(), self.top_rung)

    def fit_trials(self) -> list[Trial]:
        """The completed runs the fit and everything after it read: every completed trial of a
        uniform study; of a halving study, the recipes completed at its fit rung, with that
        rung's results (the rung whose ranking the study trusts)."""
        rung = self.fit_rung()
        return [t for t in self.runs("completed") if t.rung == rung]

    def trial_times(self) -> dict[int, tuple[float | None, float | None]]:
        """number -> (started_at, finished_at), Unix seconds."""
        rows = self._conn.execute("SELECT number, started_at, finished_at FROM trials").fetchall()
        return {r["number"]: (r["started_at"], r["finished_at"]) for r in rows}

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return loads_json(row["value"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.directory / TRIALS_FILE} holds a damaged {key!r} ({exc})") from None

    def _checked_meta(self, key: str, check, default: Any = None) -> Any:
        """``get_meta`` of a number, ValueError naming it unless ``check(value)`` holds."""
        value = self.get_meta(key, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not check(value)):
            raise ValueError(f"{self.directory / TRIALS_FILE} holds a damaged {key!r} ({value!r})")
        return value

    def progress(self) -> StudyProgress:
        counts = {s: 0 for s in STATES}
        for row in self._conn.execute("SELECT state, COUNT(*) AS n FROM trials GROUP BY state"):
            counts[row["state"]] = row["n"]
        best = self._conn.execute(
            "SELECT number, accuracy FROM trials WHERE state = 'completed' AND accuracy IS NOT NULL "
            "ORDER BY accuracy DESC, number LIMIT 1"
        ).fetchone()
        if best is not None and not database.is_finite(best["accuracy"]):
            raise ValueError(f"trial {best['number']} in {self.directory / TRIALS_FILE} is damaged: accuracy is "
                             f"{best['accuracy']!r}, not a finite number")
        return StudyProgress(
            counts=counts,
            best_accuracy=None if best is None else best["accuracy"],
            best_trial=None if best is None else best["number"],
            target_trials=self._checked_meta("target_trials", lambda v: isinstance(v, int) and 0 < v <= MAX_TRIALS),
            budget_minutes=self._checked_meta("budget_minutes", lambda v: 0 < v < math.inf),
            elapsed_seconds=float(self._checked_meta("elapsed_seconds", lambda v: 0 <= v < math.inf, 0.0)),
            budget_steps=self._checked_meta("budget_steps", lambda v: isinstance(v, int) and v > 0),
            steps_spent=sum(rung_steps(self.config.steps, self.config.eta, t.rung) - t.start_step
                            for t in self.runs() if t.state in ("completed", "failed")),
            cheapest_run=self.config.steps,
        )

    # ----------------------------------------------------------------------------- writing
    def set_meta(self, key: str, value: Any) -> None:
        with self._transaction():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def _transaction(self):
        return database.Transaction(self._conn)

    def add_proposals(self, proposals) -> None:
        """Store sampler proposals (`tinyscale.study.samplers.base.Proposal`s) as ``pending`` trials, all in
        one transaction; ValueError if any number is already taken (a proposal is made once)."""
        with self._transaction():
            for p in proposals:
                if self._conn.execute("SELECT 1 FROM trials WHERE number = ?", (p.number,)).fetchone():
                    raise ValueError(f"trial {p.number} already exists; a trial number is proposed once")
                self._write_row(p.number, "pending", p.recipe, None, None, p.proposed_by)

    def start_trial(self, number: int, recipe, seed: int, proposed_by: str | None = None, *,
                    retry_failed: bool = False, rung: int = 0, device: str | None = None,
                    precision: str | None = None) -> None:
        """Record that trial ``number`` (this recipe) is being trained now, at ``rung`` (>= 1: a
        promotion under the halving schedule; the recipe is the trial's), on ``device`` in
        ``precision``.

        A row left ``running`` or ``pending`` by an interrupted run is replaced (and a ``failed``
        one with ``retry_failed``), keeping who proposed it unless ``proposed_by`` is given; a
        completed run is never overwritten (ValueError), which is what makes resume safe.
        """
        final = ("completed",) if retry_failed else ("completed", "failed")
        table, where, key = _run_key(number, rung)
        with self._transaction():
            row = self._conn.execute(f"SELECT state FROM {table} WHERE {where}", key).fetchone()
            if row is not None and row["state"] in final:
                raise ValueError(f"{_run_name(number, rung)} already finished ({row['state']}); it is not run twice")
            if rung:
                if self._conn.execute("SELECT 1 FROM trials WHERE number = ?", (number,)).fetchone() is None:
                    raise ValueError(f"trial {number} does not exist; only a stored recipe is promoted")
                self._conn.execute(
                    "INSERT OR REPLACE INTO rung_runs (number, rung, state, seed, started_at, device, precision) "
                    "VALUES (?, ?, 'running', ?, ?, ?, ?)", (number, rung, seed, time.time(), device, precision))
                return
            if proposed_by is None and row is not None:
                proposed_by = self._conn.execute("SELECT proposed_by FROM trials WHERE number = ?",
                                                 (number,)).fetchone()["proposed_by"]
            self._write_row(number, "running", recipe, seed, time.time(), proposed_by, device, precision)

    def _write_row(self, number: int, state: str, recipe, seed: int | None, started_at: float | None,
                   proposed_by: str | None, device: str | None = None, precision: str | None = None) -> None:
        from tinyscale.space.cost import baseline_macs, cost

        c = cost(recipe)
        self._conn.execute(
            "INSERT OR REPLACE INTO trials (number, state, r, w, d, resolution, macs, params, ratio, seed, "
            "started_at, proposed_by, device, precision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (number, state, recipe.r, recipe.w, recipe.d, recipe.resolution, c.macs, c.params,
             c.macs / baseline_macs(recipe), seed, started_at, proposed_by, device, precision),
        )

    def finish_trial(self, number: int, result: Any, *, rung: int = 0) -> Trial:
        """Store the result of a running trial (of its run at ``rung``): a `RunResult`, or a
        trainer result (any object with its fields), read by `RunResult.of` (``failed`` when it
        carries a reason or its accuracy is not a finite number)."""
        run = result if isinstance(result, RunResult) else RunResult.of(result)
        table, where, key = _run_key(number, rung)
        with self._transaction():
            row = self._conn.execute(f"SELECT state FROM {table} WHERE {where}", key).fetchone()
            if row is None or row["state"] != "running":
                raise ValueError(f"{_run_name(number, rung)} is not running "
                                 f"(state {None if row is None else row['state']})")
            self._conn.execute(
                f"UPDATE {table} SET state = ?, accuracy = ?, loss = ?, steps = ?, images_seen = ?, "
                f"train_seconds = ?, eval_seconds = ?, images_per_second = ?, reason = ?, finished_at = ?, "
                f"device = COALESCE(?, device), start_step = ? WHERE {where}",
                (run.state, run.accuracy, run.loss, run.steps, run.images_seen, run.train_seconds,
                 run.eval_seconds, run.images_per_second, run.reason, time.time(), run.device, run.start_step, *key),
            )
        trial = self.trial(number) if not rung else next(
            t for t in self.rung_runs() if (t.number, t.rung) == (number, rung))
        assert trial is not None
        return trial

    def fail_trial(self, number: int, reason: str) -> Trial:
        """Mark a running trial failed without a result (e.g. its worker crashed)."""
        return self.finish_trial(number, RunResult.failure(reason))

    def release_trials(self, numbers, *, rung: int = 0) -> None:
        """Put running trials (their runs at ``rung``) back to ``pending``: their run was
        interrupted; a resume trains them."""
        table, where, _ = _run_key(0, rung)
        with self._transaction():
            self._conn.executemany(f"UPDATE {table} SET state = 'pending', started_at = NULL "
                                   f"WHERE {where} AND state = 'running'", [_run_key(n, rung)[2] for n in numbers])


def _run_key(number: int, rung: int) -> tuple[str, str, tuple]:
    """The table, WHERE clause and parameters of trial ``number``'s run at ``rung``."""
    if isinstance(rung, bool) or not isinstance(rung, int) or rung < 0:
        raise ValueError(f"rung must be a whole number >= 0, got {rung!r}")
    return ("trials", "number = ?", (number,)) if rung == 0 else ("rung_runs", "number = ? AND rung = ?",
                                                                   (number, rung))


def _run_name(number: int, rung: int) -> str:
    return f"trial {number}" + (f" at rung {rung}" if rung else "")


class StudyLock:
    """The exclusive hold of one process on a study: a `tinyscale.storage.FileLock` on
    DIR/study.lock, which records who holds it (pid and host)."""

    @staticmethod
    def acquire(directory: Path) -> FileLock:
        return FileLock.acquire(Path(directory) / LOCK_FILE, lambda holder: (
            f"the study at {directory} is being run by {holder}; wait for it to finish or stop it, then resume"))


def _check_state(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {state!r}")


def _restore_config(directory: Path) -> None:
    """Rebuild a deleted config.json from the copy in the database, or say how to recover."""
    try:
        conn = database.connect(directory / TRIALS_FILE)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        row = None
    if row is None:
        raise ValueError(
            f"{directory} holds {TRIALS_FILE} but no {CONFIG_FILE} (deleted?), and the database keeps no copy "
            f"of it: restore {CONFIG_FILE} from a backup, or move {TRIALS_FILE} away to start a new study there"
        )
    import warnings

    try:
        copy = loads_json(row["value"])
    except (TypeError, ValueError):
        copy = None
    if not isinstance(copy, dict):
        raise ValueError(f"{directory} holds {TRIALS_FILE} but no {CONFIG_FILE}, and the copy of it in the database "
                         f"is damaged: restore {CONFIG_FILE} from a backup")
    write_text_atomically(directory / CONFIG_FILE, json.dumps(copy, indent=2, sort_keys=True) + "\n")
    warnings.warn(f"{directory / CONFIG_FILE} was missing; rebuilt it from the copy in {TRIALS_FILE}", stacklevel=3)
