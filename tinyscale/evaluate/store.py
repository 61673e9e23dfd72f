"""The result store both evaluations keep (the comparison's cells, the fidelity check's runs)."""

from __future__ import annotations

import sqlite3

from tinyscale.storage import ResultStore
from tinyscale.study.timing import Forecast, forecast_jobs
from tinyscale.train.config import LATER_SETTINGS, comparable_settings


def study_forecast(study_dir, jobs: list, executor) -> Forecast:
    """How long an evaluation's ``jobs`` will take, from the study's own runs
    (`tinyscale.study.timing.forecast_jobs`); a study that cannot be read gives no prediction,
    never a failed command."""
    from tinyscale.study.store import Study

    try:
        with Study.open(study_dir) as study:
            runs = study.runs("completed")
    except (ValueError, OSError, sqlite3.Error):
        runs = None
    return forecast_jobs(runs, jobs, executor)


class TrainerResultStore(ResultStore):
    """A `ResultStore` whose budget holds every trainer setting (a comparison's cells, a fidelity
    check's runs): a stored budget that lacks a setting added later reads it at the value that
    trains as versions without it did (`tinyscale.train.config.LATER_SETTINGS`), so older results resume."""

    @staticmethod
    def later_defaults() -> dict:
        return LATER_SETTINGS


def trainer_budget(config, train, *, steps: bool = True) -> dict:
    """What a stored run's accuracy depends on besides its recipe and seed: the study's data and
    context and every comparable trainer setting of ``train`` (``steps`` left out for a store
    whose runs train for different lengths, the fidelity check's)."""
    trainer = {k: v for k, v in comparable_settings(train).items() if steps or k != "steps"}
    return {"data": config.data, "data_seed": config.seed, "train_size": config.train_size,
            "val_size": config.val_size, "rules": config.rules, "base_resolution": config.base_resolution,
            "num_classes": config.num_classes, **trainer}
