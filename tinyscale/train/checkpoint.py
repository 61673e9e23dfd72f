"""Two kinds of saved training state.

A run's *progress* (`RunKey`, `save_progress`, `load_progress`): its whole state every few minutes,
so that the same run started again after a kill (a session's end, Ctrl-C, a lost machine)
continues from there instead of from step 0. Everything a step depends on is in it (weights,
BN statistics, optimizer, gradient scaler, both generators, the tail average and the tail's
losses), and the data order is recomputed from the seed, so the continued run computes what
the uninterrupted one would (bit for bit on one machine and thread count; tests/test_progress.py).

A run's *trunk*: its training state where a wsd schedule's decay starts, so that a longer run
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


def save_trunk(path: str | os.PathLike, key: TrunkKey | RunKey, step: int, state: dict) -> bool:
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


def load_trunk(path: str | os.PathLike | None, key: TrunkKey | RunKey, before: int) -> dict | None:
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


@dataclass(frozen=True)
class RunKey:
    """What a run's progress depends on: the recipe, the seed and every comparable trainer setting,
    its length included (a run of another length has another schedule at every step)."""

    recipe: dict
    seed: int
    settings: dict

    @classmethod
    def of(cls, recipe_dict: dict, seed: int, config: TrainConfig) -> RunKey:
        return cls(recipe_dict, int(seed), comparable_settings(config))


def save_progress(path: str | os.PathLike, key: RunKey, step: int, state: dict) -> bool:
    """Write the run's state after ``step`` steps to ``path`` atomically (False when the file
    system refuses: the run goes on, and a restart after a kill trains from further back)."""
    return save_trunk(path, key, step, state)


def load_progress(path: str | os.PathLike | None, key: RunKey, steps: int) -> dict | None:
    """The progress saved at ``path`` under ``key`` at a step before ``steps`` (the run's length),
    else None: the run starts from the beginning (or its trunk)."""
    return load_trunk(path, key, steps - 1)
