"""What every file tinyscale writes or reads back shares: atomic files created anew, bounded
reads of files that may come from elsewhere (`read_bounded`, `loads_json`), lock files never
followed through a link (`FileLock`), stores never written through one (`check_not_linked`), and
the contract of the SQLite result stores (the comparison's cells, the fidelity check's runs). A
leaf module: it imports nothing of tinyscale (the limits a reader passes are `tinyscale.limits`').

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

import contextlib
import errno
import json
import math
import os
import secrets
import sqlite3
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import ClassVar


# The study directory's files and folders, named once here; each stage reads and writes only
# its own (the study its config, trials and lock; fit its fit; the evaluations their folders).
CONFIG_FILE = "config.json"  # the StudyConfig (tinyscale.study.store)
TRIALS_FILE = "trials.sqlite"  # one row per trial
LOCK_FILE = "study.lock"  # held (flock) by the one process running the study
CHECKPOINT_DIR = "checkpoints"  # promoted runs' trunks (tinyscale.train.checkpoint): trial-N-rung-K.pt
# Unfinished runs' saved progress (tinyscale.train.checkpoint), in a folder of its own inside a
# study's CHECKPOINT_DIR, a comparison's folder or the fidelity check's: the run loop
# (tinyscale.study.runner) removes a run's file once its result is stored.
PROGRESS_DIR = "progress"
FIT_FILE = "fit.json"  # the scaling fit (tinyscale.fit.gp)
LATENCY_FILE = "latency.json"  # a study's device table (tinyscale.latency)
FIDELITY_FILE = "fidelity.json"  # the fidelity check's verdict (tinyscale.evaluate.fidelity)
NOISE_FILE = "seed-noise.json"  # the seed noise alone, when the full check has not run
FIDELITY_DIR = "fidelity"  # the check's retrainings: FIDELITY_DIR/fidelity.sqlite
FIDELITY_LOCK = "fidelity.lock"  # in FIDELITY_DIR: held (flock) by the one process running the check
COMPARE_DIR = "compare"  # a comparison at matched MACs; at matched latency: "compare-latency"
COMPARE_LOCK = "compare.lock"  # in a comparison's folder: held (flock) by the one process training its cells
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")  # what SQLite keeps beside a database


def trunk_path(directory: Path, number: int, rung: int) -> Path:
    """Where a study in ``directory`` keeps the trunk of trial ``number``'s run at ``rung`` (lr_schedule wsd)."""
    return directory / CHECKPOINT_DIR / f"trial-{number}-rung-{rung}.pt"


def progress_path(directory: Path, number: int, rung: int) -> Path:
    """Where a study in ``directory`` keeps the progress of trial ``number``'s run at ``rung`` while it
    trains (a run killed part-way continues from it when the study resumes; `tinyscale.train.checkpoint`)."""
    return directory / CHECKPOINT_DIR / PROGRESS_DIR / f"trial-{number}-rung-{rung}.pt"


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a crash or a full disk leaves the old file or the new
    one, never a part (a temporary file beside it, flushed to disk, then renamed over it; the
    temporary file is removed on any failure). The temporary file is created anew (O_EXCL,
    O_NOFOLLOW, a name no one can guess), so a link planted beside ``path`` is never written
    through; renaming over ``path`` replaces a link there rather than following it. A failure
    of the machine is an OSError naming ``path``."""
    path = Path(path)
    fd, tmp = _new_temporary(path)
    try:
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            if exc.filename is None and exc.errno is not None:  # "No space left on device", but where?
                raise OSError(exc.errno, exc.strerror, str(path)) from None
            raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def _new_temporary(path: Path) -> tuple[int, str]:
    """A new, empty file ``.NAME.tmp-PID-RANDOM`` beside ``path``, opened for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = str(path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"))
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:  # a folder that is missing or read-only: name the file asked for, not ours
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """`write_bytes_atomically` for UTF-8 text."""
    return write_bytes_atomically(path, text.encode("utf-8"))


def read_bounded(path: str | os.PathLike, limit: int, what: str) -> bytes:
    """The bytes of the regular file at ``path``; ValueError when it is anything else (a
    device, a FIFO, a directory) or larger than ``limit`` bytes, so a file from elsewhere cannot
    make a reader allocate without bound. A missing file and faults of the machine are OSErrors."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))  # a FIFO: no wait for a writer
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file; a {what} is read from one")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than a {what} may be ({limit:,} bytes)")
    return data


def loads_json(text: str | bytes) -> object:
    """``json.loads``, with nesting too deep for the parser a ValueError like any other damage."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def database_problem(path: Path, exc: sqlite3.DatabaseError, remedy: str) -> Exception:
    """What a failure to use the SQLite file at ``path`` means: the machine's to fix (disk full,
    I/O, read-only, locked, cannot open: an OSError, exit status 1) or a damaged file (a
    ValueError naming ``remedy``, exit status 2)."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and any(w in text for w in ("disk", "readonly", "open", "locked")):
        return OSError(f"cannot use {path}: {text} (check the disk space and permissions)")
    return ValueError(f"{path} is unreadable ({text}); {remedy}")


def finite_json(value: object, **kwargs) -> str:
    """``json.dumps`` of ``value`` with every NaN or infinite float written as null: what the
    commands print with --json is always valid JSON."""
    def clean(v: object) -> object:
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), allow_nan=False, **kwargs)


def check_not_linked(path: Path, *, folder: bool = False) -> None:
    """ValueError when SQLite would write through a link at ``path``: the database, its side
    files or (``folder``) the folder tinyscale made for it is a symbolic link, or the database
    shares its data with another name (a hard link)."""
    for p in ((path.parent,) if folder else ()) + (path, *(path.with_name(path.name + s) for s in SQLITE_SIDE_FILES)):
        if p.is_symlink():
            raise ValueError(f"{p} is a symbolic link; tinyscale writes its stores only to files of its own: "
                             "remove the link")
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_nlink > 1:
            raise ValueError(f"{path} is hard-linked to another name; tinyscale writes its stores only to files "
                             "of its own: copy it instead")


class FileLock:
    """An exclusive ``flock`` on a lock file of tinyscale's own that records who holds it (pid and
    host). The kernel releases it when the holder exits, however it ends (kill -9 included), so
    a stale lock file never blocks anyone. The file is never followed through a link: a link or
    anything but a plain file at its place is refused (ValueError)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path, busy: Callable[[str], str]) -> FileLock:
        """Hold the lock at ``path``; when another process holds it, ValueError(``busy(holder)``)."""
        import fcntl
        import socket

        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ValueError(f"{path} is a symbolic link; tinyscale writes its lock only to a file of its own: "
                                 "remove the link") from None
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                raise ValueError(f"{path} is not a plain lock file (a device, a FIFO or a hard link); remove it")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise ValueError(busy(holder)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        return cls(fd)

    def release(self) -> None:
        os.close(self._fd)

    @classmethod
    @contextlib.contextmanager
    def held(cls, path: Path, busy: Callable[[str], str]) -> Iterator[FileLock]:
        """`acquire` for a ``with`` block: released when the block ends, however it ends."""
        lock = cls.acquire(path, busy)
        try:
            yield lock
        finally:
            lock.release()


@contextlib.contextmanager
def exclusive_folder(folder: Path, store_name: str, lock_name: str, what: str) -> Iterator[None]:
    """Hold ``folder`` (made if missing; neither it nor its store ``store_name`` a link) for this
    process alone, by the `FileLock` ``lock_name`` in it: another process that asks while it is
    held is refused, naming the holder, rather than training the same runs a second time."""
    check_not_linked(folder / store_name, folder=True)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock.held(folder / lock_name, lambda holder: (
            f"{what} is being run by {holder}; wait for it to finish or stop it, then rerun it to resume")):
        yield


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
        check_not_linked(path, folder=True)
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
            raise database_problem(path, exc, "pass --restart to start over") from None
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
        stored = None if restart else self.meta("budget")
        if stored is not None:
            try:
                stored_budget = loads_json(stored)
            except (TypeError, ValueError):
                stored_budget = None
            if not isinstance(stored_budget, dict):
                raise ValueError(f"{self.path} holds a damaged budget ({str(stored)[:60]!r}); pass --restart to discard "
                                 f"its {self.WHAT}")
            stored = json.dumps({**self.later_defaults(), **stored_budget}, sort_keys=True)
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
