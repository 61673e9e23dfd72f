"""The study store: create/open, durable trial rows, progress, WAL readers, bad directories."""

from __future__ import annotations

import contextlib

import json
import math
import sqlite3
from dataclasses import dataclass

import pytest

from tinyscale.space.cost import cost
from tinyscale.study.store import Study
from tinyscale.study.trial import StudyConfig


@dataclass
class FakeResult:
    accuracy: float | None
    loss: float | None = 0.5
    steps: int = 10
    images_seen: int = 80
    train_seconds: float = 1.0
    eval_seconds: float = 0.1
    images_per_second: float = 80.0
    failed: str | None = None


def _config(**kw) -> StudyConfig:
    return StudyConfig(data="generated", **kw)


def test_create_open_round_trip(tmp_path):
    cfg = _config(window=(0.1, 0.5), seed=3, extra={"lr": 0.1})
    Study.create(tmp_path / "s", cfg).close()
    with Study.open(tmp_path / "s") as study:
        assert study.config == cfg
        assert study.directory == tmp_path / "s"
        assert study.trials() == []
        p = study.progress()
        assert p.finished == 0 and p.best_accuracy is None


def test_create_refuses_existing_study_and_keeps_unknown_files(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    (d / "fit.json").write_text("{}")
    Study.create(d, _config()).close()
    with pytest.raises(ValueError, match="already holds a study"):
        Study.create(d, _config())
    assert (d / "fit.json").read_text() == "{}"


def test_open_missing_or_corrupt_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        Study.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="expected config.json"):
        Study.open(tmp_path / "empty")
    Study.create(tmp_path / "bad", _config()).close()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable config.json"):
        Study.open(tmp_path / "bad")
    Study.create(tmp_path / "bad2", _config()).close()
    for suffix in ("-wal", "-shm"):
        (tmp_path / "bad2" / f"trials.sqlite{suffix}").unlink(missing_ok=True)
    (tmp_path / "bad2" / "trials.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match="unreadable trials.sqlite"):
        Study.open(tmp_path / "bad2")


def test_trials_states_ordering_and_progress(tmp_path):
    cfg = _config()
    study = Study.create(tmp_path / "s", cfg)
    recipes = [cfg.recipe(0.5, 0.5, 0.5), cfg.recipe(1.0, 0.8, 1.2), cfg.recipe(0.7, 1.0, 1.0)]
    for n in (2, 0, 1):
        study.start_trial(n, recipes[n], seed=n)
    study.finish_trial(0, FakeResult(accuracy=0.6))
    study.finish_trial(2, FakeResult(accuracy=0.8))
    failed = study.finish_trial(1, FakeResult(accuracy=None, loss=math.nan, failed="loss became nan at step 3"))
    assert failed.state == "failed" and failed.reason == "loss became nan at step 3" and failed.loss is None
    trials = study.trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert [t.number for t in study.trials("completed")] == [0, 2]
    t0 = trials[0]
    assert t0.recipe == recipes[0]
    assert t0.macs == cost(recipes[0]).macs and t0.params == cost(recipes[0]).params
    assert t0.ratio == pytest.approx(cost(recipes[0]).macs / cost(recipes[0].baseline()).macs)
    p = study.progress()
    assert p.counts["completed"] == 2 and p.counts["failed"] == 1 and p.finished == 3
    assert p.best_accuracy == 0.8 and p.best_trial == 2
    with pytest.raises(ValueError, match="state must be one of"):
        study.trials("done")


def test_finished_trial_is_never_rerun_or_overwritten(tmp_path):
    cfg = _config()
    study = Study.create(tmp_path / "s", cfg)
    r = cfg.recipe(0.5, 0.5, 0.5)
    study.start_trial(0, r, seed=0)
    study.finish_trial(0, FakeResult(accuracy=0.7))
    with pytest.raises(ValueError, match="already finished"):
        study.start_trial(0, r, seed=0)
    with pytest.raises(ValueError, match="not running"):
        study.finish_trial(0, FakeResult(accuracy=0.1))
    assert study.trial(0).accuracy == 0.7
    # An interrupted (running) trial may be started again.
    study.start_trial(1, r, seed=1)
    study.start_trial(1, r, seed=1)
    assert study.trial(1).state == "running"


def test_reader_sees_rows_while_writer_holds_connection(tmp_path):
    cfg = _config()
    writer = Study.create(tmp_path / "s", cfg)
    assert sqlite3.connect(tmp_path / "s" / "trials.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reader = Study.open(tmp_path / "s")
    writer.start_trial(0, cfg.recipe(0.5, 0.5, 0.5), seed=0)
    assert [t.state for t in reader.trials()] == ["running"]
    writer.finish_trial(0, FakeResult(accuracy=0.55))
    assert reader.trials("completed")[0].accuracy == 0.55
    assert json.loads((tmp_path / "s" / "config.json").read_text())["data"] == "generated"


def test_a_version_1_store_gains_proposed_by_when_opened(tmp_path):
    cfg = _config()
    study = Study.create(tmp_path / "s", cfg)
    study.start_trial(0, cfg.recipe(0.5, 0.5, 0.5), seed=0)
    study.close()
    with sqlite3.connect(tmp_path / "s" / "trials.sqlite") as conn:  # as tinyscale wrote it before the column
        conn.execute("ALTER TABLE trials DROP COLUMN proposed_by")
    with Study.open(tmp_path / "s") as study:
        assert study.trial(0).proposed_by == "sobol"  # stream trials, as every trial was then
        study.start_trial(1, cfg.recipe(0.7, 0.5, 0.5), seed=1, proposed_by="botorch")
        assert study.trial(1).proposed_by == "botorch"


def _as_version_2(path) -> None:
    """Rewrite a store as tinyscale wrote it before version 3 (no device/precision, no rungs)."""
    # Closed, not only committed: the last connection's close merges the write-ahead log into the
    # file (a reader of a read-only directory sees the file alone).
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("ALTER TABLE trials DROP COLUMN device")
        conn.execute("ALTER TABLE trials DROP COLUMN precision")
        conn.execute("ALTER TABLE trials DROP COLUMN start_step")
        conn.execute("DROP TABLE rung_runs")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def test_a_version_2_store_gains_devices_rungs_and_start_steps_when_opened(tmp_path):
    cfg = _config()
    study = Study.create(tmp_path / "s", cfg)
    study.start_trial(0, cfg.recipe(0.5, 0.5, 0.5), seed=0)
    study.finish_trial(0, FakeResult(0.5))
    study.close()
    _as_version_2(tmp_path / "s" / "trials.sqlite")
    with Study.open(tmp_path / "s") as study:
        assert study.trial(0).device is None and study.trial(0).accuracy == 0.5 and study.rung_runs() == []
        study.start_trial(1, cfg.recipe(0.7, 0.5, 0.5), seed=1, device="cpu", precision="fp32")
        study.finish_trial(1, FakeResult(0.6))
        assert (study.trial(1).device, study.trial(1).precision) == ("cpu", "fp32")
        study.start_trial(1, None, seed=1, rung=1, device="cpu", precision="fp32")  # a promotion
        assert [(t.number, t.rung, t.state) for t in study.rung_runs()] == [(1, 1, "running")]
    with sqlite3.connect(tmp_path / "s" / "trials.sqlite") as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "4"


def _as_version_3(path) -> None:
    """Rewrite a store as tinyscale wrote it before version 4 (no start_step in either run table)."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("ALTER TABLE trials DROP COLUMN start_step")
        conn.execute("ALTER TABLE rung_runs DROP COLUMN start_step")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")


def test_a_version_3_store_reads_its_runs_as_from_scratch_and_gains_start_steps(tmp_path, monkeypatch):
    from tinyscale.study.runner import RunResult

    cfg = _config()
    with Study.create(tmp_path / "s", cfg) as study:
        study.start_trial(0, cfg.recipe(0.5, 0.5, 0.5), seed=0)
        study.finish_trial(0, FakeResult(0.5))
        study.start_trial(0, None, seed=0, rung=1)
        study.finish_trial(0, FakeResult(0.6), rung=1)
    _as_version_3(tmp_path / "s" / "trials.sqlite")
    with monkeypatch.context() as m:  # read as it is on disk (a read-only directory)
        m.setattr("tinyscale.study.database.os.access", lambda path, mode: False)
        with Study.open(tmp_path / "s") as study:
            assert [(t.rung, t.accuracy, t.start_step) for t in study.runs()] == [(0, 0.5, 0), (1, 0.6, 0)]
    with Study.open(tmp_path / "s") as study:  # opened for writing: upgraded
        study.start_trial(0, None, seed=0, rung=2)
        study.finish_trial(0, RunResult("completed", 0.7, steps=90, start_step=24), rung=2)
        assert [(t.rung, t.start_step) for t in study.runs()] == [(0, 0), (1, 0), (2, 24)]
    with sqlite3.connect(tmp_path / "s" / "trials.sqlite") as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "4"


def test_a_read_only_version_2_store_is_read_as_it_is(tmp_path, monkeypatch):
    cfg = _config()
    with Study.create(tmp_path / "s", cfg) as study:
        study.start_trial(0, cfg.recipe(0.5, 0.5, 0.5), seed=0)
        study.finish_trial(0, FakeResult(0.5))
    _as_version_2(tmp_path / "s" / "trials.sqlite")
    # A directory this user cannot write (root can write anywhere, so say so to the store).
    monkeypatch.setattr("tinyscale.study.database.os.access", lambda path, mode: False)
    with Study.open(tmp_path / "s") as study:
        assert [(t.number, t.rung, t.device) for t in study.runs()] == [(0, 0, None)]
        assert study.fit_trials()[0].accuracy == 0.5
    with sqlite3.connect(tmp_path / "s" / "trials.sqlite") as conn:  # untouched: still version 2
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"


def test_each_run_stores_the_device_its_worker_reports(tmp_path):
    from tinyscale.study.executors import TrialOutcome
    from tinyscale.study.runner import settle

    run = settle(TrialOutcome(0, FakeResult(0.5), device="cuda", visible_devices="1"))
    assert run.device == "cuda (CUDA_VISIBLE_DEVICES=1)"
    assert settle(TrialOutcome(0, None, "boom", device="cpu")).device == "cpu"
    cfg = _config()
    with Study.create(tmp_path / "s", cfg) as study:
        study.start_trial(0, cfg.recipe(0.5, 0.5, 0.5), seed=0, device="cpu", precision="bf16")
        study.finish_trial(0, run)
        assert (study.trial(0).device, study.trial(0).precision) == ("cuda (CUDA_VISIBLE_DEVICES=1)", "bf16")


def test_a_read_only_study_whose_log_holds_changes_is_refused_in_one_line(tmp_path, monkeypatch):
    # A writer still holds the store open (its changes sit in the write-ahead log): an immutable
    # read of a read-only directory would miss them, or read the file as damaged.
    cfg = _config()
    with Study.create(tmp_path / "s", cfg) as study:
        study.start_trial(0, cfg.recipe(0.5, 0.5, 0.5), seed=0)
    writer = sqlite3.connect(tmp_path / "s" / "trials.sqlite")
    try:
        writer.execute("INSERT OR REPLACE INTO meta VALUES ('note', '\"from another writer\"')")
        writer.commit()
        assert (tmp_path / "s" / "trials.sqlite-wal").stat().st_size > 0
        monkeypatch.setattr("tinyscale.study.database.os.access", lambda path, mode: False)
        with pytest.raises(ValueError, match="cannot be merged in a read-only directory"):
            Study.open(tmp_path / "s")
    finally:
        writer.close()
    with Study.open(tmp_path / "s") as study:  # closed: merged, and read as it is
        assert [t.number for t in study.trials()] == [0]
