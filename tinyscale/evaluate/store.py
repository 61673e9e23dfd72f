"""The result store both evaluations keep (the comparison's cells, the fidelity check's runs)."""

from __future__ import annotations

from tinyscale.storage import ResultStore
from tinyscale.train.config import LATER_SETTINGS, comparable_settings


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
