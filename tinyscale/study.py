"""The study: what was asked (`StudyConfig`), what happened (`Trial`s) and where both are kept.

A study lives in one directory::

    config.json      the StudyConfig, written once (atomically) when the study is created
    trials.sqlite    one row per trial, SQLite in WAL mode so readers (the UI, `tinyscale
                     trials`) can open it while the study is writing

Other stages add their own files to the directory (the fit, comparisons); this module never
touches files it does not own.

The study asks its sampler (`tinyscale.sampling.make_sampler`) for the recipes of its next trial
numbers and stores each as a ``pending`` row (its recipe and which sampler proposed it) before
training starts, so resuming never asks again for a number it already holds: trials that
finished are skipped, trials that were proposed or interrupted (``pending``, ``running``) are
trained again from scratch, as stored. With the sobol sampler trial k is recipe k of the seeded
stream either way. Every state change is one SQLite transaction, so a kill at any moment leaves
either the old row or the new one, never half of a result.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tinyscale.storage import differences, write_text_atomically
from tinyscale.trial import TRIAL_STATES, StudyConfig, Trial

CONFIG_FILE = "config.json"
TRIALS_FILE = "trials.sqlite"
LOCK_FILE = "study.lock"  # held (flock) by the one process running the study
NAMED_DATA = ("fashion-mnist", "generated")  # data specs that are not paths
SCHEMA_VERSION = 2  # 2 added trials.proposed_by; a version-1 store gains the column when opened
STATES = TRIAL_STATES

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN (""" + ", ".join(f"'{s}'" for s in TRIAL_STATES) + """)),
    r REAL NOT NULL,
    w REAL NOT NULL,
    d REAL NOT NULL,
    resolution INTEGER NOT NULL,
    macs INTEGER NOT NULL,
    params INTEGER NOT NULL,
    ratio REAL NOT NULL,
    accuracy REAL,
    loss REAL,
    steps INTEGER,
    images_seen INTEGER,
    train_seconds REAL,
    eval_seconds REAL,
    images_per_second REAL,
    reason TEXT,
    seed INTEGER,
    started_at REAL,
    finished_at REAL,
    proposed_by TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Result fields copied from a trainer result (any object with these attributes) into a row.
RESULT_FIELDS = (
    "accuracy", "loss", "steps", "images_seen", "train_seconds", "eval_seconds", "images_per_second",
)


@dataclass(frozen=True)
class StudyProgress:
    """A snapshot of a study: counts by state, the best trial so far, the budget asked."""

    counts: dict[str, int]
    best_accuracy: float | None
    best_trial: int | None
    target_trials: int | None
    budget_minutes: float | None
    elapsed_seconds: float

    @property
    def finished(self) -> int:
        """Trials that ended, successfully or not."""
        return self.counts.get("completed", 0) + self.counts.get("failed", 0)

    def to_dict(self) -> dict:
        return {
            "counts": dict(self.counts),
            "finished": self.finished,
            "best_accuracy": self.best_accuracy,
            "best_trial": self.best_trial,
            "target_trials": self.target_trials,
            "budget_minutes": self.budget_minutes,
            "elapsed_seconds": self.elapsed_seconds,
        }


def _connect(path: Path) -> sqlite3.Connection:
    if not os.access(path.parent, os.W_OK):
        # A read-only directory (or file system): SQLite cannot create the WAL index beside the
        # database, so open it immutable; nobody can be writing to it there.
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, timeout=30.0,
                               isolation_level=None)
    else:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)  # explicit transactions
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring a version-1 store (no ``proposed_by``) to the current schema: its trials all came
    from the sampling stream, which a NULL ``proposed_by`` means."""
    columns = {row["name"] for row in conn.execute("PRAGMA table_info(trials)")}
    if columns and "proposed_by" not in columns:
        conn.execute("BEGIN IMMEDIATE")
        try:
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(trials)")}
            if "proposed_by" not in columns:  # another process may have upgraded it meanwhile
                conn.execute("ALTER TABLE trials ADD COLUMN proposed_by TEXT")
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise


def config_differences(stored: StudyConfig, asked: StudyConfig) -> list[str]:
    """Fields (as ``name: stored -> asked``) in which two configs differ."""
    return differences(stored.to_dict(), asked.to_dict())


class Study:
    """A study directory. Create it with `Study.create`, open an existing one with `Study.open`."""

    def __init__(self, directory: Path, config: StudyConfig) -> None:
        self.directory = directory
        self.config = config
        self._conn = _connect(directory / TRIALS_FILE)

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
        conn = _connect(directory / TRIALS_FILE)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
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
            stored = json.loads(cfg_path.read_text(encoding="utf-8"))
            if not isinstance(stored, dict):
                raise ValueError(f"expected a JSON object of settings, got a JSON {type(stored).__name__}")
            config = StudyConfig.from_dict(stored)
            config.recipe(1.0, 1.0, 1.0)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"the study at {directory} has an unreadable {CONFIG_FILE}: {exc}") from None
        try:
            study = cls(directory, config)
            study._conn.execute("SELECT number FROM trials LIMIT 1").fetchall()
            _upgrade(study._conn)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{_store_problem(directory, exc)}") from None
        return study

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
        """A row as a Trial; ValueError when a field is not of its column's type (SQLite stores
        any value in any column, so a damaged or hand-edited store can hold text there)."""
        for key in ("number", "macs", "params", "steps", "images_seen"):
            if row[key] is not None and not isinstance(row[key], int):
                raise ValueError(f"{key} is {row[key]!r}, not an integer")
        for key in ("ratio", "accuracy", "loss", "train_seconds", "eval_seconds", "images_per_second"):
            if row[key] is not None and (not isinstance(row[key], (int, float)) or not math.isfinite(row[key])):
                raise ValueError(f"{key} is {row[key]!r}, not a finite number")
        if row["state"] == "completed" and row["accuracy"] is None:
            raise ValueError("it is completed but has no accuracy")
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
        )

    def trials(self, state: str | None = None) -> list[Trial]:
        """All trials, or those in one state, ordered by number."""
        if state is None:
            rows = self._conn.execute("SELECT * FROM trials ORDER BY number").fetchall()
        else:
            if state not in STATES:
                raise ValueError(f"state must be one of {STATES}, got {state!r}")
            rows = self._conn.execute("SELECT * FROM trials WHERE state = ? ORDER BY number", (state,)).fetchall()
        return [self._row_to_trial(r) for r in rows]

    def trial(self, number: int) -> Trial | None:
        row = self._conn.execute("SELECT * FROM trials WHERE number = ?", (number,)).fetchone()
        return None if row is None else self._row_to_trial(row)

    def trial_times(self) -> dict[int, tuple[float | None, float | None]]:
        """number -> (started_at, finished_at), Unix seconds."""
        rows = self._conn.execute("SELECT number, started_at, finished_at FROM trials").fetchall()
        return {r["number"]: (r["started_at"], r["finished_at"]) for r in rows}

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def progress(self) -> StudyProgress:
        counts = {s: 0 for s in STATES}
        for row in self._conn.execute("SELECT state, COUNT(*) AS n FROM trials GROUP BY state"):
            counts[row["state"]] = row["n"]
        best = self._conn.execute(
            "SELECT number, accuracy FROM trials WHERE state = 'completed' AND accuracy IS NOT NULL "
            "ORDER BY accuracy DESC, number LIMIT 1"
        ).fetchone()
        return StudyProgress(
            counts=counts,
            best_accuracy=None if best is None else best["accuracy"],
            best_trial=None if best is None else best["number"],
            target_trials=self.get_meta("target_trials"),
            budget_minutes=self.get_meta("budget_minutes"),
            elapsed_seconds=float(self.get_meta("elapsed_seconds", 0.0)),
        )

    # ----------------------------------------------------------------------------- writing
    def set_meta(self, key: str, value: Any) -> None:
        with self._transaction():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def _transaction(self):
        return _Transaction(self._conn)

    def add_proposals(self, proposals) -> None:
        """Store sampler proposals (`tinyscale.sampling.Proposal`s) as ``pending`` trials, all in
        one transaction; ValueError if any number is already taken (a proposal is made once)."""
        with self._transaction():
            for p in proposals:
                if self._conn.execute("SELECT 1 FROM trials WHERE number = ?", (p.number,)).fetchone():
                    raise ValueError(f"trial {p.number} already exists; a trial number is proposed once")
                self._write_row(p.number, "pending", p.recipe, None, None, p.proposed_by)

    def start_trial(self, number: int, recipe, seed: int, proposed_by: str | None = None, *,
                    retry_failed: bool = False) -> None:
        """Record that trial ``number`` (this recipe) is being trained now.

        A row left ``running`` or ``pending`` by an interrupted run is replaced (and a ``failed``
        one with ``retry_failed``), keeping who proposed it unless ``proposed_by`` is given; a
        completed trial is never overwritten
        (ValueError), which is what makes resume safe.
        """
        final = ("completed",) if retry_failed else ("completed", "failed")
        with self._transaction():
            row = self._conn.execute("SELECT state, proposed_by FROM trials WHERE number = ?", (number,)).fetchone()
            if row is not None and row["state"] in final:
                raise ValueError(f"trial {number} already finished ({row['state']}); it is not run twice")
            if proposed_by is None and row is not None:
                proposed_by = row["proposed_by"]
            self._write_row(number, "running", recipe, seed, time.time(), proposed_by)

    def _write_row(self, number: int, state: str, recipe, seed: int | None, started_at: float | None,
                   proposed_by: str | None) -> None:
        from tinyscale.cost import baseline_macs, cost

        c = cost(recipe)
        self._conn.execute(
            "INSERT OR REPLACE INTO trials (number, state, r, w, d, resolution, macs, params, ratio, seed, "
            "started_at, proposed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (number, state, recipe.r, recipe.w, recipe.d, recipe.resolution, c.macs, c.params,
             c.macs / baseline_macs(recipe), seed, started_at, proposed_by),
        )

    def finish_trial(self, number: int, result: Any) -> Trial:
        """Store a trainer result for a running trial: ``completed``, or ``failed`` when the
        result carries a ``failed`` reason (or its accuracy is not a finite number)."""
        values = {k: getattr(result, k, None) for k in RESULT_FIELDS}
        reason = getattr(result, "failed", None)
        acc = values["accuracy"]
        if reason is None and (acc is None or not math.isfinite(acc)):
            reason = f"no finite accuracy ({acc!r})"
        for k, v in list(values.items()):
            if isinstance(v, float) and not math.isfinite(v):
                values[k] = None  # SQLite has no NaN; a failed trial's NaN loss is in `reason`
        state = "failed" if reason else "completed"
        with self._transaction():
            row = self._conn.execute("SELECT state FROM trials WHERE number = ?", (number,)).fetchone()
            if row is None or row["state"] != "running":
                raise ValueError(f"trial {number} is not running (state {None if row is None else row['state']})")
            self._conn.execute(
                "UPDATE trials SET state = ?, accuracy = ?, loss = ?, steps = ?, images_seen = ?, "
                "train_seconds = ?, eval_seconds = ?, images_per_second = ?, reason = ?, finished_at = ? "
                "WHERE number = ?",
                (state, values["accuracy"], values["loss"], values["steps"], values["images_seen"],
                 values["train_seconds"], values["eval_seconds"], values["images_per_second"], reason,
                 time.time(), number),
            )
        trial = self.trial(number)
        assert trial is not None
        return trial

    def fail_trial(self, number: int, reason: str) -> Trial:
        """Mark a running trial failed without a result (e.g. its worker crashed)."""
        return self.finish_trial(number, _Failure(reason))

    def release_trials(self, numbers) -> None:
        """Put running trials back to ``pending`` (their run was interrupted; a resume trains them)."""
        with self._transaction():
            self._conn.executemany("UPDATE trials SET state = 'pending', started_at = NULL "
                                   "WHERE number = ? AND state = 'running'", [(n,) for n in numbers])


class StudyLock:
    """An exclusive ``flock`` on DIR/study.lock, which records who holds it (pid and host).

    The kernel releases it when the holder exits, however it ends (kill -9 included), so a
    stale lock file never blocks anyone."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, directory: Path) -> StudyLock:
        import fcntl
        import socket

        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise ValueError(f"the study at {directory} is being run by {holder}; wait for it to finish "
                             "or stop it, then resume") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        return cls(fd)

    def release(self) -> None:
        os.close(self._fd)


def _store_problem(directory: Path, exc: sqlite3.DatabaseError) -> str:
    """What a failure to use the study's database means: damage, or the machine (disk, rights)."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("disk" in text or "readonly" in text or "open" in text
                                                      or "locked" in text):
        return f"cannot use {directory / TRIALS_FILE}: {text} (check the disk space and permissions)"
    return f"the study at {directory} has an unreadable {TRIALS_FILE}: {text}"


def _restore_config(directory: Path) -> None:
    """Rebuild a deleted config.json from the copy in the database, or say how to recover."""
    try:
        conn = _connect(directory / TRIALS_FILE)
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

    write_text_atomically(directory / CONFIG_FILE,
                          json.dumps(json.loads(row["value"]), indent=2, sort_keys=True) + "\n")
    warnings.warn(f"{directory / CONFIG_FILE} was missing; rebuilt it from the copy in {TRIALS_FILE}", stacklevel=3)


@dataclass(frozen=True)
class _Failure:
    failed: str


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


# =============================================================================== the driver
# The README's main job: a study on Fashion-MNIST that finishes on 2 cores in a few minutes
# (measured numbers in README.md, section "study").
# It runs on `tinyscale.executors.default_workers()`: one single-threaded process per core.
DEMO_TRIALS = 24


def demo_config() -> StudyConfig:
    """The default study: Fashion-MNIST at base resolution 32, FLOPs window 0.04-0.6 of B0.

    400 steps per trial, not 200: brief runs must rank recipes as longer training does, and
    200 steps left accuracy flat in c with seed spreads as large as any architecture effect
    (shared/reference/proxy-check.md); the rank agreement of 400 against 1600 steps is measured
    by benchmarks/proxy_steps.py (RESULTS.md, "proxy"). 5,000 held-out images keep the
    evaluation's own noise well under a point (binomial sd at 80 %: 0.57 points; 0.89 at 2,000).
    The window 0.04-0.6 covers the budgets the demo answers for (1/16 to 1/2 of B0) with room
    on both sides; trial time grows with c, and sampling up to 1.0 spent half the study's CPU on
    networks above every budget it is asked about (24 trials at 400 steps were on course for 15 min).

    Residual branches start at zero (``zero_init_residual``): in a screen of trainer settings on
    recipes the demo never trains (benchmarks/proxy_levers.py, RESULTS "proxy"), it cut the seed
    sd of 400-step top-1 from 0.92 to 0.63 points and lifted the deep, slow starters (one recipe
    70 -> 81 %), the bias that made the 400-step proxy rank deep recipes last.

    Trials train on all 60,000 training images, not a 12,800-image subset: a step costs the same
    either way (64 images), and on recipes the demo never trains (benchmarks/proxy_data.py,
    RESULTS "proxy") 400-step runs on all the data ranked recipes like 1,600-step training on all
    the data at a mean rho of +0.76 against +0.67 from the subset, with 1.04x the time per run.
    """
    return StudyConfig(data="fashion-mnist", base_resolution=32, num_classes=10, window=(0.04, 0.6),
                       steps=400, batch_size=64, train_size=None, val_size=5000, seed=0,
                       extra={"zero_init_residual": True})


def trial_seed(study_seed: int, number: int) -> int:
    """The training seed of trial ``number`` (fixed, so a re-run trial trains identically)."""
    return study_seed * 100_003 + number


def data_spec(config: StudyConfig):
    """How workers load this study's data."""
    from tinyscale.executors import DataSpec
    from tinyscale.recipe import resolution_for

    # Folder images are decoded once, at the largest input any trial uses or at the base
    # resolution if that is larger (comparisons train r = 1 baselines on the same data).
    decode = resolution_for(max(1.0, config.r_range[1]), config.base_resolution)
    return DataSpec(config.data, config.seed, config.train_size, config.val_size, decode)


def check_data(config: StudyConfig):
    """Load the data once in the driver: a missing dataset or a class-count mismatch is an
    error before any trial starts. Returns the loaded `ImageData`."""
    from tinyscale.executors import worker_data

    data = worker_data(data_spec(config))  # cached: an in-process executor reuses it
    if len(data.train_images) < 2:
        raise ValueError(f"{config.data} leaves {len(data.train_images)} training image(s) after the held-out split; "
                         "training needs at least 2 (BatchNorm cannot learn from one)")
    if data.num_classes != config.num_classes:
        raise ValueError(
            f"{config.data} has {data.num_classes} classes but the study is configured for {config.num_classes}"
        )
    return data


def resolve_data(spec: str) -> str:
    """A dataset path as an absolute path (a study is resumed and exported from anywhere);
    the named datasets as they are."""
    if not isinstance(spec, str) or spec in NAMED_DATA or not spec.strip():
        return spec
    return str(Path(spec).expanduser().resolve())


def open_or_create(directory: str | os.PathLike, config: StudyConfig | None, *, resume: bool) -> Study:
    """The study to run: a new one, or (``resume``) the existing one, whose config must equal
    ``config`` when one is given (ValueError listing the differing fields otherwise)."""
    directory = Path(directory)
    exists = (directory / CONFIG_FILE).exists()
    if exists and not resume:
        raise ValueError(f"{directory} already holds a study; pass --resume to continue it")
    if not exists:
        if config is None:
            raise ValueError(f"no study at {directory} to resume")
        return Study.create(directory, replace(config, data=resolve_data(config.data)))
    study = Study.open(directory)
    if config is not None and config.data != study.config.data and resolve_data(config.data) == resolve_data(
            study.config.data):
        config = replace(config, data=study.config.data)  # the same dataset, spelled another way
    if config is not None and config != study.config:
        diffs = "; ".join(config_differences(study.config, config))
        study.close()
        raise ValueError(f"the study at {directory} was created with a different configuration ({diffs})")
    return study


def run_study(
    directory: str | os.PathLike,
    config: StudyConfig | None = None,
    *,
    trials: int | None = None,
    budget_minutes: float | None = None,
    resume: bool = False,
    executor=None,
    progress: bool = True,
    retry_failed: bool = False,
) -> Study:
    """Run (or resume) a study until ``trials`` trials have finished or ``budget_minutes`` of
    study time have passed (whichever comes first; the stored budget when not given).

    Whenever workers are free the sampler proposes recipes for the lowest free trial numbers
    (one per free worker); each proposal is stored before it trains. Numbers already finished
    are skipped, numbers left ``pending`` or ``running`` by an interruption are trained again as
    stored (``retry_failed``: failed ones too, e.g. after a fault of the machine rather than the
    recipe). Each result is stored by this (driver) process as soon as it arrives. Only one
    process runs a study at a time (its lock, `StudyLock`, is held until the returned study is
    closed). Returns the open `Study`; its ``stop_reason`` says why it ended before its budget,
    if it did.
    """
    from tqdm.auto import tqdm

    from tinyscale.executors import TrialTask, make_executor
    from tinyscale.sampling import check_space, make_sampler
    from tinyscale.train import TrainConfig

    for name, value in (("trials", trials), ("budget_minutes", budget_minutes)):
        if value is not None and (isinstance(value, bool) or not 0 < value < math.inf):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    train = None
    if config is not None:
        # Every check that can fail runs before the directory is created, so a typo leaves
        # nothing behind to trip over on the next try.
        check_space(config)
        train = TrainConfig.from_study(config)
        check_data(config)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} exists and is not a directory")
    study = _open_locked(directory, config, resume)
    config = study.config
    done = study.progress().finished
    if trials is not None and resume and trials < done:
        study.close()
        raise ValueError(f"the study already has {done} finished trials; --trials {trials} asks for fewer "
                         f"(give more than {done} to run more)")
    if trials is not None:
        study.set_meta("target_trials", int(trials))
    if budget_minutes is not None:
        study.set_meta("budget_minutes", float(budget_minutes))
    target = study.get_meta("target_trials")
    budget = study.get_meta("budget_minutes")
    if target is None and budget is None:
        study.close()
        raise ValueError("give a budget: a number of trials or minutes")

    try:
        if train is None:  # resumed without a config: check the stored one before workers start
            train = TrainConfig.from_study(config)
            check_data(config)
        check_trainer(study, train)
    except Exception:
        study.close()
        raise
    try:
        sampler = make_sampler(config)
    except Exception:
        study.close()
        raise
    spec = data_spec(config)
    retrain = ("pending", "running", "failed") if retry_failed else ("pending", "running")
    kept = sum(1 for t in study.trials() if t.state not in retrain)  # finished and not to be retrained
    study.stop_reason = None  # set when the sampler says the space holds nothing new
    elapsed_before = float(study.get_meta("elapsed_seconds", 0.0))
    session_start = time.monotonic()

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - session_start

    def out_of_time() -> bool:
        return budget is not None and elapsed() >= budget * 60

    own_executor = executor is None
    executor = executor or make_executor("local", 1)
    in_flight: set[int] = set()
    ended: set[int] = set()  # trials that finished in this run
    bar = tqdm(total=target, initial=kept, unit="trial", desc="study", disable=not progress,
               dynamic_ncols=True)
    _set_postfix(bar, study.progress())

    def next_trials(free: int) -> list[Trial]:
        """Up to ``free`` trials to train now: first those a previous run proposed or started
        but did not finish (trained as stored), then new proposals, stored before they train."""
        trials = study.trials()
        # Numbers that finished in this run are not retried again (a retried trial that fails
        # again stays failed).
        todo = [t for t in trials if t.state in retrain and t.number not in in_flight and t.number not in ended
                and (target is None or t.number < target)][:free]
        if len(todo) < free and study.stop_reason is None:
            taken = {t.number for t in trials}
            numbers: list[int] = []
            number = 0
            while len(numbers) < free - len(todo) and (target is None or number < target):
                if number not in taken:
                    numbers.append(number)
                number += 1
            if numbers:
                batch = sampler.propose(trials, numbers, log=bar.write)
                study.add_proposals(batch.proposals)
                if batch.note:
                    bar.write(batch.note)
                if batch.stop_reason:
                    study.stop_reason = batch.stop_reason
                    bar.write(f"study: stopping early: {batch.stop_reason}")
                todo += [study.trial(p.number) for p in batch.proposals]
        return todo

    try:
        while True:
            free = executor.slots - len(in_flight)
            for trial in next_trials(free) if free > 0 and not out_of_time() else []:
                seed = trial_seed(config.seed, trial.number)
                study.start_trial(trial.number, trial.recipe, seed, retry_failed=retry_failed)
                in_flight.add(trial.number)
                executor.submit(TrialTask(trial.number, trial.recipe.to_dict(), seed, spec, _train_dict(train)))
            if not in_flight:
                break
            outcome = executor.next_outcome()
            if outcome.result is None:
                study.fail_trial(outcome.number, outcome.error or "unknown error")
            else:
                study.finish_trial(outcome.number, outcome.result)
            in_flight.discard(outcome.number)
            ended.add(outcome.number)
            study.set_meta("elapsed_seconds", elapsed())
            _set_postfix(bar, study.progress())
            bar.update(1)
    except BaseException:
        # Interrupted (Ctrl-C) or failed: the trials in flight go back to pending, not left
        # looking as if they were still running; a resume trains them as stored.
        if in_flight:
            try:
                study.release_trials(in_flight)
            except sqlite3.Error:
                pass  # the store itself failed; a resume treats 'running' rows the same way
        study.close()
        raise
    finally:
        bar.close()
        if own_executor:
            executor.close()
    return study


def _open_locked(directory: Path, config: StudyConfig | None, resume: bool) -> Study:
    """`open_or_create` under the study's lock, so two processes never run one study. A
    directory created here is removed again if the study cannot be opened."""
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    lock = StudyLock.acquire(directory)
    try:
        study = open_or_create(directory, config, resume=resume)
    except BaseException:
        lock.release()
        if created:
            (directory / LOCK_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    study._lock = lock
    return study


def check_trainer(study: Study, train) -> None:
    """Record the resolved trainer settings on first run; on resume, refuse different ones.

    The study config names only some trainer settings; the rest are the trainer's defaults,
    which may change between tinyscale versions. Trials trained under different settings are
    not comparable, so a resumed study must train exactly as it started.
    """
    from tinyscale.train import comparable_settings, setting_changes

    stored = study.get_meta("trainer")
    if stored is None:
        study.set_meta("trainer", comparable_settings(train))
        return
    diffs = setting_changes(stored, train)
    if diffs:
        raise ValueError(
            f"the study at {study.directory} was trained with other trainer settings ({'; '.join(diffs)}); "
            "resume it with the tinyscale version that started it, or start a new study"
        )


def _train_dict(train) -> dict:
    from dataclasses import asdict

    return asdict(train)


def _set_postfix(bar, p: StudyProgress) -> None:
    best = "-" if p.best_accuracy is None else f"{p.best_accuracy:.3f}"
    bar.set_postfix_str(f"best acc {best}, failed {p.counts.get('failed', 0)}", refresh=False)
