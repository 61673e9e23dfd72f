"""The SQLite side of a study's store: its schema (and the upgrade of older stores), the
connections the store opens (read-write in WAL mode, or frozen: immutable, for read-only
directories) and one transaction helper. `tinyscale.study.store` builds the study on these.
"""

from __future__ import annotations

import math
import os
import sqlite3
from pathlib import Path

from tinyscale.storage import check_not_linked
from tinyscale.study.trial import TRIAL_STATES

# 2 added trials.proposed_by; 3 added trials.device/precision and the rung_runs table; 4 added
# start_step to both run tables. An older store gains what it lacks when opened for writing.
SCHEMA_VERSION = 4

_STATE = "state TEXT NOT NULL CHECK (state IN (" + ", ".join(f"'{s}'" for s in TRIAL_STATES) + "))"
# What one run's result and bookkeeping take, in both tables: a trial's rung-0 run and a rung run.
_RUN = """
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
    start_step INTEGER,"""
RUN_COLUMNS = ("accuracy", "loss", "steps", "images_seen", "train_seconds", "eval_seconds", "images_per_second",
               "reason")
# A run's columns added after version 3 (absent from older stores read as they are on disk).
LATER_RUN_COLUMNS = ("start_step",)

# The runs of promoted recipes (halving schedule) at rungs >= 1: trial ``number``'s recipe
# trained again, with its seed, for more steps. Rung 0 is the trials table itself.
RUNG_RUNS = f"""
CREATE TABLE IF NOT EXISTS rung_runs (
    number INTEGER NOT NULL REFERENCES trials (number),
    rung INTEGER NOT NULL CHECK (rung >= 1),
    {_STATE},{_RUN}
    device TEXT,
    precision TEXT,
    PRIMARY KEY (number, rung)
);
"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    {_STATE},
    r REAL NOT NULL,
    w REAL NOT NULL,
    d REAL NOT NULL,
    resolution INTEGER NOT NULL,
    macs INTEGER NOT NULL,
    params INTEGER NOT NULL,
    ratio REAL NOT NULL,{_RUN}
    proposed_by TEXT,
    device TEXT,
    precision TEXT
);
{RUNG_RUNS}
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def connect(path: Path) -> sqlite3.Connection:
    if not os.access(path.parent, os.W_OK):
        # A read-only directory (or file system): SQLite cannot create the WAL index beside the
        # database, so open it immutable; nobody can be writing to it there. Immutable reads skip
        # the write-ahead log, so one that still holds changes (a writer that never closed, a copy
        # taken mid-run) would be read stale or as a damaged file: say so instead.
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise ValueError(f"{path} has changes in {wal.name} that cannot be merged in a read-only directory: "
                             "open the study where it can be written (copy the directory)")
        return frozen(path)
    check_not_linked(path)  # SQLite would write through a link planted in a study from elsewhere
    return prepared(sqlite3.connect(path, timeout=30.0, isolation_level=None))  # explicit transactions


def frozen(path: Path) -> sqlite3.Connection:
    """The database read as it is on disk, immutable (no WAL index, no locks, no writes)."""
    return prepared(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, timeout=30.0,
                                     isolation_level=None))


def prepared(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


# NULL in an older store: the stream, unknown, unknown; from scratch.
ADDED_COLUMNS = {"trials": (("proposed_by", "TEXT"), ("device", "TEXT"), ("precision", "TEXT"),
                            ("start_step", "INTEGER")),
                 "rung_runs": (("start_step", "INTEGER"),)}


def table_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}


def upgrade(conn: sqlite3.Connection) -> None:
    """Bring an older store to the current schema: the columns added since version 1 (NULL for
    old runs: a NULL ``proposed_by`` means the sampling stream) and the rung table. A store
    opened read-only stays as it is (readers take what is missing as absent)."""
    def missing() -> list[tuple[str, str, str]]:
        out = []
        for table, added in ADDED_COLUMNS.items():
            columns = table_columns(conn, table)
            out += [(table, c, kind) for c, kind in added if columns and c not in columns]
        return out

    if missing() or not has_rung_runs(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(RUNG_RUNS)
            for table, column, kind in missing():  # another process may have upgraded it meanwhile
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.execute("ROLLBACK")
            if "readonly" not in str(exc):
                raise
        except Exception:
            conn.execute("ROLLBACK")
            raise


def has_rung_runs(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rung_runs'").fetchone() is not None


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def is_finite(value: object) -> bool:
    """Whether a stored value is a finite number (what SQLite's REAL columns should hold)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def checked_row(row: sqlite3.Row) -> dict:
    """Check that a run's row holds its columns' types (SQLite stores any value in any column, so
    a damaged or hand-edited store can hold text there; ValueError naming the field) and return
    the columns older stores lack (None there): device, precision, start_step."""
    if row["state"] not in TRIAL_STATES:
        raise ValueError(f"state is {row['state']!r}, not one of {', '.join(TRIAL_STATES)}")
    for key in ("r", "w", "d"):
        if not is_finite(row[key]):
            raise ValueError(f"{key} is {row[key]!r}, not a finite number")
    later = {k: row[k] if k in row.keys() else None for k in ("device", "precision", "start_step")}
    for key, value in (*((k, row[k]) for k in ("number", "rung", "macs", "params", "steps", "images_seen")),
                       ("start_step", later["start_step"])):
        if value is not None and not isinstance(value, int):
            raise ValueError(f"{key} is {value!r}, not an integer")
    for key in ("ratio", "accuracy", "loss", "train_seconds", "eval_seconds", "images_per_second"):
        if row[key] is not None and not is_finite(row[key]):
            raise ValueError(f"{key} is {row[key]!r}, not a finite number")
    for key in ("device", "precision"):
        if later[key] is not None and not isinstance(later[key], str):
            raise ValueError(f"{key} is {later[key]!r}, not text")
    if row["state"] == "completed" and row["accuracy"] is None:
        raise ValueError("it is completed but has no accuracy")
    return later
