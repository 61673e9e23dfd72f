"""What every file tinyscale writes shares: atomic text files, and the contract of the SQLite
result stores (the comparison's cells, the fidelity check's runs). A leaf module: it imports
nothing of tinyscale.

The result-store contract (`ResultStore`), which subclasses keep:

- one SQLite file in WAL mode beside the study, opened with a 30 s busy timeout;
- every result is written in one transaction, as soon as it exists, so a killed run leaves each
  result either stored or absent and a rerun trains only what is absent;
- table ``meta(key, value)`` holds ``budget`` — JSON of everything that gives a stored number its
  meaning (data, split, trainer settings) — and ``schema``, the subclass's `SCHEMA_VERSION`;
- results stored under another budget are refused with the differing fields named, never mixed;
  ``restart`` empties the subclass's `RESULT_TABLES` and claims the store for the new budget;
- reading needs no budget and writes nothing.

The study's own store (`tinyscale.study.store`) keeps its trials the same way but is keyed by its
config, not a budget, so it uses only `write_text_atomically` and `differences` from here.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar


# The study directory's files and folders, named once here; each stage reads and writes only
# its own (the study its config, trials and lock; fit its fit; the evaluations their folders).
CONFIG_FILE = "config.json"  # the StudyConfig (tinyscale.study.store)
TRIALS_FILE = "trials.sqlite"  # one row per trial
LOCK_FILE = "study.lock"  # held (flock) by the one process running the study
FIT_FILE = "fit.json"  # the scaling fit (tinyscale.fit.gp)
LATENCY_FILE = "latency.json"  # a study's device table (tinyscale.latency)
FIDELITY_FILE = "fidelity.json"  # the fidelity check's verdict (tinyscale.evaluate.fidelity)
NOISE_FILE = "seed-noise.json"  # the seed noise alone, when the full check has not run
FIDELITY_DIR = "fidelity"  # the check's retrainings: FIDELITY_DIR/fidelity.sqlite
COMPARE_DIR = "compare"  # a comparison at matched MACs; at matched latency: "compare-latency"


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a crash or a full disk leaves the old file or the new
    one, never a part (a temporary file beside it, flushed to disk, then renamed over it; the
    temporary file is removed on any failure)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """`write_bytes_atomically` for UTF-8 text."""
    return write_bytes_atomically(path, text.encode("utf-8"))


def differences(old: Mapping, new: Mapping) -> list[str]:
    """The keys in which two mappings differ, as ``key: old -> new`` (sorted by key)."""
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


class ResultStore:
    """Base of the SQLite result stores (see the module doc for the contract)."""

    SCHEMA: ClassVar[str]  # CREATE TABLE IF NOT EXISTS statements, meta(key, value) among them
    SCHEMA_VERSION: ClassVar[int]
    RESULT_TABLES: ClassVar[tuple[str, ...]]  # what ``restart`` empties
    WHAT: ClassVar[str] = "results"  # how messages name what the store holds

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @staticmethod
    def connect(path: Path) -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(path, timeout=30.0)

    @classmethod
    def open_at(cls, path: Path, budget: dict | None, *, restart: bool = False, prepare=None):
        """The store at ``path``, its schema created; claimed for ``budget`` when one is given.
        ``prepare(conn)`` runs first (e.g. a schema-version check). Any failure closes the
        connection; an unreadable file is a ValueError suggesting ``--restart``."""
        conn = cls.connect(path)
        try:
            # WAL inside the try: a file that is not SQLite at all fails here, with the same message.
            conn.execute("PRAGMA journal_mode=WAL")
            if prepare is not None:
                prepare(conn)
            conn.executescript(cls.SCHEMA)
            store = cls(path, conn)
            if budget is not None:
                store.claim(budget, restart)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ValueError(f"{path} is unreadable ({exc}); pass --restart to start over") from None
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._conn:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @staticmethod
    def later_defaults() -> dict:
        """Budget keys added after stores were first written, each with the value that reproduces
        the older behaviour: a stored budget without one is read as having it."""
        return {}

    def claim(self, budget: dict, restart: bool) -> None:
        """Refuse ``budget`` if results under another one are stored (unless ``restart``, which
        discards them); then record it and the schema version."""
        stored = self.meta("budget")
        if stored is not None:
            stored = json.dumps({**self.later_defaults(), **json.loads(stored)}, sort_keys=True)
        wanted = json.dumps(budget, sort_keys=True)
        if stored is not None and stored != wanted and not restart:
            diff = ", ".join(differences(json.loads(stored), budget))
            raise ValueError(
                f"{self.path} holds {self.WHAT} trained under another budget ({diff}); "
                "rerun with the same budget to resume, or pass --restart to discard them"
            )
        with self._conn:
            if restart:
                for table in self.RESULT_TABLES:
                    self._conn.execute(f"DELETE FROM {table}")  # noqa: S608 - class constants, not input
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('budget', ?)", (wanted,))
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(self.SCHEMA_VERSION),))
