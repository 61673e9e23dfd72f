"""A study's device table: kept beside the study (``DIR/latency.json``, what
`tinyscale study --latency-table FILE` copies there) and the trials' latencies predicted from it."""

from __future__ import annotations

import os
from pathlib import Path

from tinyscale.latency.table import LatencyTable
from tinyscale.storage import LATENCY_FILE



def study_table(directory: str | os.PathLike, device: str | os.PathLike | None = None) -> LatencyTable | None:
    """The device table to judge a study's trials by: ``device`` if given, else the one the
    study keeps (``DIR/latency.json``), else None."""
    if device is not None:
        return LatencyTable.load(device)
    path = Path(directory) / LATENCY_FILE
    return LatencyTable.load(path) if path.is_file() else None


def keep_with_study(directory: str | os.PathLike, table: LatencyTable) -> Path:
    """Store ``table`` as the study's device table (the trials' latencies are predicted from
    it whenever they are read, so they cannot disagree with the table kept beside them)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    return table.save(path / LATENCY_FILE)


def trial_latencies(trials, table: LatencyTable) -> dict[int, float]:
    """Trial number -> predicted latency (µs) of its recipe on ``table``'s device."""
    return {t.number: table.predict_us(t.recipe) for t in trials}
