"""tinyscale.storage: atomic file writes, and the `ResultStore` contract exercised through a
store with one result table (plus one table that is not a result), read back with plain sqlite3."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from tinyscale.storage import ResultStore, differences, write_bytes_atomically, write_text_atomically


class NotesStore(ResultStore):
    """A minimal store: ``notes`` holds results, ``labels`` holds something that is not one."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS labels (name TEXT PRIMARY KEY);
    """
    SCHEMA_VERSION = 3
    RESULT_TABLES = ("notes",)
    WHAT = "notes"


class LaterKeyStore(NotesStore):
    """A store whose budget gained ``precision`` after files were written without it."""

    @staticmethod
    def later_defaults() -> dict:
        return {"precision": "fp32"}


BUDGET = {"data": "generated", "steps": 10, "seeds": [0, 1]}


def rows(path, sql: str) -> list[tuple]:
    """Read with a connection of our own (the store's WAL makes its commits visible to it)."""
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def add(path, *rows_: tuple) -> None:
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO notes (id, text) VALUES (?, ?)", rows_)
    conn.close()


def stored_meta(path) -> dict[str, str]:
    return dict(rows(path, "SELECT key, value FROM meta"))


# ------------------------------------------------------------------------- atomic writes
def test_atomic_writes_replace_the_file_and_leave_nothing_beside_it(tmp_path):
    path = tmp_path / "out.json"
    assert write_text_atomically(path, "first") == path
    assert write_text_atomically(str(path), "µ second") == path  # str paths too; replaces
    assert path.read_bytes() == b"\xc2\xb5 second"  # UTF-8
    assert write_bytes_atomically(path, b"\x00\xff") == path and path.read_bytes() == b"\x00\xff"
    assert os.listdir(tmp_path) == ["out.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_bytes_atomically(path, "text is not bytes")  # fails while writing
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)  # fails at the rename, after a complete write
    with pytest.raises(OSError, match="No space"):
        write_text_atomically(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_a_write_that_cannot_start_names_the_file_asked_for_not_its_temporary(tmp_path, monkeypatch):
    real_open = os.open

    def read_only_folder(name, *args, **kwargs):
        if ".tmp-" in str(name):
            raise PermissionError(13, "Permission denied", name)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_folder)
    with pytest.raises(OSError) as raised:
        write_text_atomically(tmp_path / "out.txt", "new")
    assert raised.value.filename == str(tmp_path / "out.txt") and raised.value.errno == 13
    assert os.listdir(tmp_path) == []


def test_differences_name_each_changed_key_once_sorted():
    old = {"steps": 10, "data": "generated", "seeds": [0]}
    new = {"steps": 20, "data": "generated", "batch": 16, "seeds": [0]}
    assert differences(old, new) == ["batch: None -> 16", "steps: 10 -> 20"]
    assert differences(new, new) == []


# ------------------------------------------------------------------------- the store
def test_a_new_store_is_wal_with_its_schema_budget_and_version(tmp_path):
    path = tmp_path / "deep" / "er" / "notes.sqlite"  # missing folders are made
    with NotesStore.open_at(path, BUDGET) as store:
        assert store.path == path
        assert json.loads(store.meta("budget")) == BUDGET and store.meta("schema") == "3"
        assert store.meta("no such key") is None
    assert rows(path, "PRAGMA journal_mode") == [("wal",)]  # WAL is a property of the file
    tables = {name for (name,) in rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"meta", "notes", "labels"}
    assert json.loads(stored_meta(path)["budget"]) == BUDGET and stored_meta(path)["schema"] == "3"


def test_the_same_budget_reopens_and_keeps_the_results(tmp_path):
    path = tmp_path / "notes.sqlite"
    NotesStore.open_at(path, BUDGET).close()
    add(path, (1, "a"), (2, "b"))
    reordered = dict(reversed(list(BUDGET.items())))  # key order is not part of a budget
    NotesStore.open_at(path, reordered).close()
    assert rows(path, "SELECT id, text FROM notes ORDER BY id") == [(1, "a"), (2, "b")]


def test_another_budget_is_refused_naming_only_the_fields_that_differ(tmp_path):
    path = tmp_path / "notes.sqlite"
    NotesStore.open_at(path, BUDGET).close()
    add(path, (1, "a"))
    before = stored_meta(path)
    with pytest.raises(ValueError) as refused:
        NotesStore.open_at(path, {**BUDGET, "steps": 20})
    message = str(refused.value)
    assert str(path) in message and "notes trained under another budget" in message
    assert "steps: 10 -> 20" in message and "data:" not in message and "seeds:" not in message
    assert "--restart" in message
    # Nothing changed: the results and the budget they were made under are still there.
    assert rows(path, "SELECT id, text FROM notes") == [(1, "a")] and stored_meta(path) == before


def test_restart_empties_the_result_tables_only_and_claims_the_store(tmp_path):
    path = tmp_path / "notes.sqlite"
    NotesStore.open_at(path, BUDGET).close()
    add(path, (1, "a"), (2, "b"))
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO labels VALUES ('kept')")
    conn.close()
    other = {**BUDGET, "steps": 20, "data": "fashion-mnist"}
    NotesStore.open_at(path, other, restart=True).close()
    assert rows(path, "SELECT * FROM notes") == []
    assert rows(path, "SELECT * FROM labels") == [("kept",)]  # not in RESULT_TABLES
    assert json.loads(stored_meta(path)["budget"]) == other
    NotesStore.open_at(path, other).close()  # the new budget is now the store's own
    with pytest.raises(ValueError, match=r"steps: 20 -> 10"):
        NotesStore.open_at(path, BUDGET)


def test_a_key_added_later_reads_as_its_default_in_an_old_store(tmp_path):
    path = tmp_path / "notes.sqlite"
    NotesStore.open_at(path, BUDGET).close()  # written before "precision" existed
    LaterKeyStore.open_at(path, {**BUDGET, "precision": "fp32"}).close()  # the old behaviour: accepted
    assert json.loads(stored_meta(path)["budget"]) == {**BUDGET, "precision": "fp32"}
    with pytest.raises(ValueError, match=r"precision: 'fp32' -> 'bf16'"):
        LaterKeyStore.open_at(path, {**BUDGET, "precision": "bf16"})


def test_reading_needs_no_budget_and_writes_nothing(tmp_path):
    fresh = tmp_path / "fresh.sqlite"
    with NotesStore.open_at(fresh, None) as store:
        assert store.meta("budget") is None and store.meta("schema") is None  # nothing claimed
    path = tmp_path / "notes.sqlite"
    NotesStore.open_at(path, BUDGET).close()
    add(path, (1, "a"))
    image = path.read_bytes()
    with NotesStore.open_at(path, None) as store:
        assert json.loads(store.meta("budget")) == BUDGET
    assert path.read_bytes() == image
    assert rows(path, "SELECT id, text FROM notes") == [(1, "a")]


def test_a_newer_schema_version_is_recorded_when_the_store_is_claimed(tmp_path):
    class NotesStoreV4(NotesStore):
        SCHEMA_VERSION = 4

    path = tmp_path / "notes.sqlite"
    NotesStore.open_at(path, BUDGET).close()
    NotesStoreV4.open_at(path, BUDGET).close()
    assert stored_meta(path)["schema"] == "4"


def test_prepare_runs_before_the_schema_and_its_error_propagates(tmp_path):
    path = tmp_path / "notes.sqlite"
    seen = []

    def prepare(conn):
        seen.append([name for (name,) in conn.execute("SELECT name FROM sqlite_master")])

    NotesStore.open_at(path, BUDGET, prepare=prepare).close()
    assert seen == [[]]  # a fresh file: no tables yet when prepare looked

    def too_old(conn):
        raise ValueError("schema 2 is too old")

    with pytest.raises(ValueError, match="too old"):
        NotesStore.open_at(path, BUDGET, prepare=too_old)


def test_a_store_sqlite_cannot_read_as_ours_is_a_value_error_suggesting_restart(tmp_path):
    path = tmp_path / "notes.sqlite"
    with sqlite3.connect(path) as conn:  # a SQLite file, but its meta table is not the contract's
        conn.execute("CREATE TABLE meta (k TEXT, v TEXT)")
    conn.close()
    with pytest.raises(ValueError, match=r"unreadable .*--restart"):
        NotesStore.open_at(path, BUDGET)
    assert rows(path, "SELECT * FROM meta") == []  # left as it was, for the user to inspect


def test_a_file_that_is_not_sqlite_is_a_value_error_suggesting_restart(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"this is not a database, " * 200)
    with pytest.raises(ValueError, match=r"unreadable .*--restart"):
        NotesStore.open_at(path, BUDGET)


def test_a_closed_store_can_no_longer_be_read(tmp_path):
    with NotesStore.open_at(tmp_path / "notes.sqlite", BUDGET) as store:
        pass
    with pytest.raises(sqlite3.ProgrammingError):
        store.meta("budget")
