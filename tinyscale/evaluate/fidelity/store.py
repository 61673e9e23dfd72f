"""Where the fidelity check keeps its retrainings: ``DIR/fidelity/fidelity.sqlite``, one row per
finished run, written as soon as the run finishes so an interrupted check resumes without
retraining anything (`FidelityStore`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tinyscale.evaluate.fidelity.records import Run
from tinyscale.evaluate.store import TrainerResultStore
from tinyscale.storage import FIDELITY_DIR

STORE_NAME = "fidelity.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    kind TEXT NOT NULL CHECK (kind IN ('replicate', 'long')),
    number INTEGER NOT NULL, seed INTEGER NOT NULL, steps INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('completed', 'failed')),
    accuracy REAL, loss REAL, train_seconds REAL, reason TEXT, recipe TEXT NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (kind, number, seed, steps));
"""


def fidelity_dir(study_dir: str | os.PathLike) -> Path:
    return Path(study_dir) / FIDELITY_DIR


class FidelityStore(TrainerResultStore):
    """The retrainings of a study's fidelity check (the `tinyscale.storage.ResultStore` contract:
    one transaction per run). ``budget`` is the data and every trainer setting but steps and
    threads, so runs of other lengths share a store and runs under other settings are refused."""

    SCHEMA = _SCHEMA
    SCHEMA_VERSION = SCHEMA_VERSION
    RESULT_TABLES = ("runs",)
    WHAT = "runs"

    @classmethod
    def open(cls, study_dir: str | os.PathLike, budget: dict, *, restart: bool = False) -> FidelityStore:
        return cls.open_at(fidelity_dir(study_dir) / STORE_NAME, budget, restart=restart)

    def put(self, run: Run, recipe_json: str, loss: float | None = None) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.kind, run.number, run.seed, run.steps, run.state, run.accuracy, loss, run.train_seconds,
                 run.reason, recipe_json, time.time()),
            )

    def runs(self) -> dict[tuple[str, int, int, int], tuple[Run, str]]:
        """(kind, number, seed, steps) -> (the run, the recipe it trained as JSON)."""
        rows = self._conn.execute(
            "SELECT kind, number, seed, steps, state, accuracy, train_seconds, reason, recipe FROM runs")
        return {(r[0], r[1], r[2], r[3]): (Run(*r[:8]), r[8]) for r in rows}
