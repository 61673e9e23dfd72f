"""A run's trunk: its training state where a wsd schedule's decay starts, so that a longer run
of the same recipe, seed and settings can continue from it instead of training those steps again.

Under ``lr_schedule="wsd"`` every step before the decay is the same in a run of any length
(same warm-up, constant lr, the same prefix of the seeded data order), so the state after the
trunk's steps — weights, BN statistics, optimizer, gradient scaler, the augmentation generator
and torch's generator (dropout) — is exactly what a longer run would reach at that step. The
longer run loads it and goes on: its result equals training it from scratch up to float
summation order (tests/test_continuation.py), at the cost of the steps after the trunk.

A checkpoint carries what it was trained under (`TrunkKey`); one that does not match the run
asking for it, or cannot be read, is not used: the run trains from scratch, which gives the same
result, only slower. Writes are atomic (`tinyscale.storage.write_bytes_atomically`), so a run killed while
saving leaves either no checkpoint or a whole one.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tinyscale.storage import write_bytes_atomically
from tinyscale.train.config import TrainConfig, comparable_settings

# Settings that may differ between a trunk and the run continuing from it: the length (and
# hence the trunk's place) and what only changes how fast it runs.
LENGTH_SETTINGS = frozenset({"steps", "warmup"})


@dataclass(frozen=True)
class TrunkKey:
    """What a trunk's state depends on: the recipe, the seed, every comparable trainer setting
    except the length, and the warm-up in steps (which must not scale with the length)."""

    recipe: dict
    seed: int
    settings: dict
    warmup_steps: int

    @classmethod
    def of(cls, recipe_dict: dict, seed: int, config: TrainConfig) -> TrunkKey:
        settings = {k: v for k, v in comparable_settings(config).items() if k not in LENGTH_SETTINGS}
        return cls(recipe_dict, int(seed), settings, config.warmup_steps)


def save_trunk(path: str | os.PathLike, key: TrunkKey, step: int, state: dict) -> bool:
    """Write the state after ``step`` steps to ``path`` atomically. False (and nothing written)
    when the file system refuses: a run goes on without its checkpoint (a later run then
    trains from scratch)."""
    buffer = io.BytesIO()
    torch.save({"key": asdict(key), "step": int(step), **state}, buffer)
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(path, buffer.getvalue())
        return True
    except OSError:
        return False


def load_trunk(path: str | os.PathLike | None, key: TrunkKey, before: int) -> dict | None:
    """The checkpoint at ``path`` if it was saved under ``key`` at a step before ``before`` (the
    continuing run's own decay start), else None."""
    if path is None or not Path(path).is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged or foreign file is not a trunk: train from scratch
        return None
    if not isinstance(saved, dict) or saved.get("key") != asdict(key):
        return None
    step = saved.get("step")
    if not isinstance(step, int) or not 0 < step <= before:
        return None
    return saved
