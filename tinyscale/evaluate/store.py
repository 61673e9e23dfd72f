"""The result store both evaluations keep (the comparison's cells, the fidelity check's runs)."""

from __future__ import annotations

from tinyscale.storage import ResultStore
from tinyscale.train.config import LATER_SETTINGS


class TrainerResultStore(ResultStore):
    """A `ResultStore` whose budget holds every trainer setting (a comparison's cells, a fidelity
    check's runs): a stored budget that lacks a setting added later reads it at the value that
    trains as versions without it did (`tinyscale.train.config.LATER_SETTINGS`), so older results resume."""

    @staticmethod
    def later_defaults() -> dict:
        return LATER_SETTINGS
