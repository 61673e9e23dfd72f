"""The limits tinyscale holds two kinds of input to, stated once: files it did not just write
(study stores, fits, fidelity results, comparison stores, latency tables, exports, images) and
counts a user types (batch, repeats, seeds, trials, steps). Every reader and every option
checks against these names, and every message quotes the limit. A leaf module.

A file from elsewhere may be crafted: its sizes are checked before it is read, its counts
before anything is allocated from them, its numbers for being finite and in range.
"""

from __future__ import annotations

import math

MIB = 1 << 20

# ----------------------------------------------------------------------------- files
MAX_JSON_BYTES = 64 * MIB  # any JSON file read back (fit, fidelity, config, latency table)
MAX_MANIFEST_BYTES = 1 * MIB  # an export's recipe.json
MAX_WEIGHTS_BYTES = 1 << 30  # an export's model.safetensors (about 4x EfficientNet-B7's weights)
MAX_IMAGE_PIXELS = 64_000_000  # one image of a class folder (8000 x 8000); larger ones are skipped
MAX_LATENCY_US = 1e9  # any latency in a device table (1000 s)
MAX_CALIBRATION_SLOPE = 1e3  # the correction's factor on the summed parts (measured ones are about 1)

# ----------------------------------------------------------------------------- counts typed
MAX_BATCH = 4096  # images per inference (latency) or per training step
MAX_RUNS = 100_000  # timed or warm-up runs per network or part
MAX_THREADS = 1024  # threads of one measurement
MAX_SEEDS = 100  # seeds per recipe in a comparison
MAX_SEED = 2**31 - 1  # the largest training seed (numpy's and torch's generators take it everywhere)
MAX_TRIALS = 100_000  # trials of a study
MAX_STEPS = 10_000_000  # training steps of one run (a study's trials, a comparison's cells, long runs)


def check_count(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` if it is an integer (not a bool or a float) from ``low`` to ``high``, else a
    ValueError naming it and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f"of at least {low}" if high is None else f"from {low} to {high:,}"
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return value


def check_number(name: str, value: object, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a float if it is a finite number (not a bool) from ``low`` to ``high``, else
    a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"{name} must be a finite number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def is_exact_int(value: object, expected: int) -> bool:
    """Whether a stored version number is the integer ``expected`` (JSON's 1.0 and true are not)."""
    return type(value) is int and value == expected
