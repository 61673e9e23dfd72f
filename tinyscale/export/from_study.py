"""Exporting a study's answer: the recipe solved from the study's saved fit, optionally trained
on the study's data, built into a bundle with the study as its provenance
(``tinyscale export``)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tinyscale.export.bundle import (FORMATS, ExportBundle, TrainedWeights, build_export, check_export_path,
                                     parse_formats, write_export)
from tinyscale.space.recipe import Recipe
from tinyscale.study.trial import check_seed


def train_for_export(recipe: Recipe, config, steps: int, *, seed: int = 0, device: str = "cpu",
                     progress: str | os.PathLike | None = None, show_progress: bool = False) -> TrainedWeights:
    """Train ``recipe`` for ``steps`` steps on the study's data with the study's trainer settings.

    ``config`` is the study's `tinyscale.study.trial.StudyConfig`; only the step count differs. The
    data is what the study's trials saw (`tinyscale.study.plan.data_spec`: the same subsets of the
    same size, folder images decoded at the same size). ``device`` is where it trains (the weights
    come back on the CPU). ``progress`` names a file the run keeps its state in every few
    minutes (`tinyscale.train.trainer.train_recipe`): an export killed while it trains continues
    from it when run again, to the same weights, and the file is removed once the run is done.
    ``show_progress``: a bar on stderr of the steps trained (from the run's heartbeat).
    """
    from tinyscale.study.executors import worker_data
    from tinyscale.study.plan import data_spec
    from tinyscale.train.heartbeat import heartbeat_path
    from tinyscale.train.config import TrainConfig
    from tinyscale.train.trainer import train_recipe

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"train steps must be a positive integer, got {steps!r}")
    # The study's own data spec (subset sizes, seed, decode size), as its workers load it.
    data = worker_data(data_spec(config))
    if data.num_classes != recipe.num_classes:
        raise ValueError(f"the study's data has {data.num_classes} classes, the recipe {recipe.num_classes}")
    kept = {}
    if progress is not None:
        try:
            Path(progress).parent.mkdir(parents=True, exist_ok=True)
        except OSError:  # a study folder this user cannot write (someone else's): train without one
            progress = None
    with _steps_bar(progress, steps, show_progress):
        result = train_recipe(recipe, data, TrainConfig.from_study(config).with_(steps=steps, device=device), seed,
                              on_trained=lambda m: kept.setdefault("model", m), progress=progress)
    if progress is not None:  # done (or failed for good): nothing to continue from
        for done in (Path(progress), heartbeat_path(progress)):
            with contextlib.suppress(OSError):
                done.unlink()
        with contextlib.suppress(OSError):  # the progress folder goes too once empty, as the run loop's does
            Path(progress).parent.rmdir()
    if result.failed or "model" not in kept:
        raise ValueError(f"training for the export failed: {result.failed}")
    mean, std = data.mean_std()
    return TrainedWeights(model=kept["model"], steps=result.steps, accuracy=result.accuracy,
                          input_mean=tuple(mean), input_std=tuple(std), data=config.data)


@contextlib.contextmanager
def _steps_bar(progress: str | os.PathLike | None, steps: int, show: bool) -> Iterator[None]:
    """A bar of the steps the run writing ``progress``'s heartbeat has trained, kept moving by
    a thread while the run trains in this one (nothing when not ``show``n or without a file)."""
    if not show or progress is None:
        yield
        return
    from tqdm.auto import tqdm

    from tinyscale.train.heartbeat import heartbeat_path, read_heartbeat

    stop = threading.Event()
    bar = tqdm(total=steps, desc="export: training", unit="step", dynamic_ncols=True, file=sys.stderr)

    def watch() -> None:
        while not stop.wait(1.0):
            beat = read_heartbeat(heartbeat_path(progress))
            if beat is not None:
                bar.update(beat[0] - bar.n)

    thread = threading.Thread(target=watch, name="tinyscale-export-progress", daemon=True)
    thread.start()
    try:
        yield
        bar.update(steps - bar.n)
    finally:
        stop.set()
        thread.join()
        bar.close()


def export_progress_path(study_dir: str | os.PathLike, recipe: Recipe, seed: int, steps: int, device: str) -> Path:
    """Where an export's training keeps its progress: in the study's progress folder, one file
    per (recipe, seed, steps, device), so the same export run again finds it."""
    from tinyscale.storage import CHECKPOINT_DIR, PROGRESS_DIR

    key = hashlib.sha256(f"{recipe.to_json()}|{seed}|{steps}|{device}".encode()).hexdigest()[:16]
    return Path(study_dir) / CHECKPOINT_DIR / PROGRESS_DIR / f"export-{key}.pt"


@dataclass(frozen=True)
class ExportResult:
    """What `export_from_study` did: where, the query answer it exported, and the bundle."""

    path: Path | None
    answer: object  # tinyscale.fit.solve.RecipeAnswer
    bundle: ExportBundle
    notes: tuple[str, ...] = field(default=())
    fit: object = None  # the tinyscale.fit.gp.ScalingFit the recipe was solved from


def export_from_study(
    study_dir: str | os.PathLike,
    c: float,
    out: str | os.PathLike | None,
    *,
    formats: tuple[str, ...] | str = FORMATS,
    train_steps: int = 0,
    seed: int = 0,
    force: bool = False,
    device: str = "cpu",
    show_progress: bool = False,
) -> ExportResult:
    """Solve the recipe for ratio ``c`` from the study's saved fit and export it.

    ``out=None`` builds the bundle without writing it (serve it with `archive_bytes`).
    ``train_steps > 0`` trains the network that long on the study's data first, on ``device``
    (resumable: `train_for_export`'s progress file, in the study's folder; ``show_progress``: a
    bar of its steps). ``force``
    replaces an existing export or archive at ``out``; the path is checked before anything is
    solved or trained.
    """
    from tinyscale.fit.gp import FIT_FILE
    from tinyscale.fit.solve import RecipeSolver

    formats = parse_formats(formats)
    check_seed(seed)
    if out is not None:
        check_export_path(out, force=force)
    solver = RecipeSolver.load(study_dir)
    answer = solver.solve(c)
    trained = None
    if train_steps:
        trained = train_for_export(answer.recipe, solver.fit.config, train_steps, seed=seed, device=device,
                                   progress=export_progress_path(study_dir, answer.recipe, seed, train_steps, device),
                                   show_progress=show_progress)
    fit = solver.fit
    provenance = {
        "study": str(Path(study_dir).resolve()),
        "fit": {
            "file": FIT_FILE,
            "created": fit.created,
            "models": list(fit.data.numbers),
            "c_range": list(fit.c_range),
        },
        "query": answer.to_dict(),
    }
    bundle = build_export(answer.recipe, formats=formats, trained=trained, provenance=provenance, seed=seed)
    path = write_export(bundle, out, force=force) if out is not None else None
    return ExportResult(path=path, answer=answer, bundle=bundle, notes=bundle.notes + answer.note_texts, fit=fit)
