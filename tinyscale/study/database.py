"""The SQLite side of a study's store: its schema (and the upgrade of older stores), the
connections the store opens (read-write in WAL mode, or frozen: immutable, for read-only
directories) and one transaction helper. `tinyscale.study.store` builds the study on these.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tinyscale.storage import check_not_linked
from tinyscale.study.trial import TRIAL_STATES

# 2 added trials.proposed_by; 3 added trials.device/precision and the rung_runs table. An older
# store gains what it lacks when opened for writing.
SCHEMA_VERSION = 3

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
    finished_at REAL,"""
RUN_COLUMNS = ("accuracy", "loss", "steps", "images_seen", "train_seconds", "eval_seconds", "images_per_second",
               "reason")

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


ADDED_COLUMNS = ("proposed_by", "device", "precision")  # NULL in an older store: the stream, unknown, unknown


def upgrade(conn: sqlite3.Connection) -> None:
    """Bring an older store to the current schema: the trials' columns added since version 1
    (NULL for old trials: a NULL ``proposed_by`` means the sampling stream) and the rung table.
    A store opened read-only stays as it is (readers take what is missing as absent)."""
    def missing() -> list[str]:
        columns = {row["name"] for row in conn.execute("PRAGMA table_info(trials)")}
        return [c for c in ADDED_COLUMNS if columns and c not in columns]

    if missing() or not has_rung_runs(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for column in missing():  # another process may have upgraded it meanwhile
                conn.execute(f"ALTER TABLE trials ADD COLUMN {column} TEXT")
            conn.execute(RUNG_RUNS)
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
