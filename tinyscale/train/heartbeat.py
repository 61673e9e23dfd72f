"""A run's *heartbeat*: how far it has trained, beside its progress file, rewritten every few
seconds, so that the process running the loop can show a long run moving (a compare cell on
Imagenette trains for half an hour) and a forecast can count what a run begun has done. Not a
checkpoint: nothing resumes from it. Torch-free, so that `trials` and the app read it cheaply.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def heartbeat_path(progress: str | os.PathLike) -> Path:
    """Where the run that keeps its progress at ``progress`` writes its heartbeat."""
    progress = Path(progress)
    return progress.with_name(progress.name + ".steps")


def write_heartbeat(path: str | os.PathLike, step: int, steps: int) -> None:
    """Say that the run is at ``step`` of ``steps`` (a rename over the old file, so a reader
    sees one whole line; a file system that refuses is ignored: the run matters, this does not)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(f"{int(step)} {int(steps)}\n")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_heartbeat(path: str | os.PathLike) -> tuple[int, int] | None:
    """(step, steps) from a run's heartbeat, or None when there is none (not started, finished,
    or on another machine) or it cannot be read."""
    try:
        step, steps = (int(v) for v in Path(path).read_text().split())
    except (OSError, ValueError):
        return None
    return (step, steps) if 0 <= step <= steps and steps > 0 else None
