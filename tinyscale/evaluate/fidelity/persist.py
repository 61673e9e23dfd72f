"""The fidelity check's results on disk: ``DIR/fidelity.json`` (the full check) and
``DIR/seed-noise.json`` (the seed noise alone), each written atomically and read back with a
remedy named when damaged; and the seed noise the accuracy surface should be fixed at
(`noise_for_fit`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tinyscale.evaluate.fidelity.records import Fidelity, SeedNoise
from tinyscale.evaluate.fidelity.verdict import VERDICTS
from tinyscale.limits import MAX_JSON_BYTES
from tinyscale.storage import FIDELITY_FILE, NOISE_FILE, loads_json, read_bounded, write_text_atomically

NOISE_CHOICES = ("auto", "measured", "inferred")


def _write_json(path: Path, data: dict) -> Path:
    """Write ``data`` atomically (a reader sees the old file or the new one)."""
    write_text_atomically(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    return path


def _read_json(path: Path, parse, remedy: str):
    """``parse(data)`` of the JSON file at ``path``; None when there is no file; a ValueError
    naming the file and ``remedy`` when it is damaged."""
    if not path.is_file():
        return None
    try:
        return parse(loads_json(read_bounded(path, MAX_JSON_BYTES, "fidelity result").decode("utf-8")))
    except (OSError, TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); {remedy}") from None


def save_noise(noise: SeedNoise, study_dir: str | os.PathLike) -> Path:
    """Write ``DIR/seed-noise.json`` atomically."""
    return _write_json(Path(study_dir) / NOISE_FILE, noise.to_dict())


def load_noise(study_dir: str | os.PathLike) -> SeedNoise | None:
    """The stored `measure_noise` result, None when there is none (ValueError if damaged)."""
    return _read_json(Path(study_dir) / NOISE_FILE, SeedNoise.from_dict,
                      f"delete it, or run `tinyscale fidelity {study_dir}`")


def save_fidelity(fidelity: Fidelity, study_dir: str | os.PathLike) -> Path:
    """Write ``DIR/fidelity.json`` atomically (a reader sees the old file or the new one)."""
    return _write_json(Path(study_dir) / FIDELITY_FILE, fidelity.to_dict())


def load_fidelity(study_dir: str | os.PathLike) -> Fidelity | None:
    """The stored check of a study, or None when it was never measured (ValueError if damaged)."""
    path = Path(study_dir) / FIDELITY_FILE
    fidelity = _read_json(path, Fidelity.from_dict, f"rerun `tinyscale fidelity {study_dir}`")
    if fidelity is None:
        return None
    if fidelity.verdict not in VERDICTS:
        raise ValueError(f"{path} holds an unknown verdict {fidelity.verdict!r}")
    return fidelity


def stored_dict(study_dir: str | os.PathLike) -> dict | None:
    """The stored check as a dict, None when not measured or unreadable (`tinyscale fit --json`)."""
    try:
        fidelity = load_fidelity(study_dir)
    except ValueError:
        return None
    return None if fidelity is None else fidelity.to_dict()


def noise_for_fit(study_dir: str | os.PathLike, choice: str = "auto") -> float | None:
    """The seed noise (a fraction) the accuracy surface should be fixed at, or None to infer it.

    The full check's σ (``fidelity.json``) when stored, else the seed noise measured alone
    (``seed-noise.json``, `measure_noise`), and only when it was measured on the rung the fit
    reads (a study in rungs: its fit rung). ``choice``: "measured" requires one (ValueError
    when there is none), "inferred" never uses one, "auto" uses one when stored and positive."""
    if choice not in NOISE_CHOICES:
        raise ValueError(f"noise must be one of {', '.join(NOISE_CHOICES)}, got {choice!r}")
    if choice == "inferred":
        return None
    measured = load_fidelity(study_dir) or load_noise(study_dir)
    if measured is None or not measured.sigma > 0:
        if choice == "measured":
            why = "no seed noise is measured" if measured is None else "the measured seed noise is 0"
            raise ValueError(f"{why} for {study_dir}: run `tinyscale fidelity {study_dir}` first, or fit with "
                             "--noise inferred")
        return None
    measured_rung = measured.rung if isinstance(measured, Fidelity) else 0
    other = _fit_reads_another_rung(study_dir, measured_rung)
    if other is not None:
        # Seed noise shrinks as runs lengthen (on the synthetic truth of tests/test_halving.py as
        # 1/sqrt(steps)): fixing the surface at another rung's noise would smooth real shape away
        # (shorter runs' noise) or follow lucky seeds (longer runs').
        fit_rung, measured_steps, fit_steps = other
        if choice == "measured":
            raise ValueError(f"the seed noise of {study_dir} was measured at rung {measured_rung} "
                             f"({measured_steps:,} steps) and the fit reads rung {fit_rung} ({fit_steps:,} steps): "
                             f"fit with --noise inferred, or measure that rung with `tinyscale fidelity {study_dir} "
                             f"--rung {fit_rung}`")
        return None
    return float(measured.sigma)


def _fit_reads_another_rung(study_dir: str | os.PathLike, measured_rung: int) -> tuple[int, int, int] | None:
    """(fit rung, steps of the measured rung, steps of the fit rung) when ``study_dir`` trains in
    rungs and its fit reads another rung than ``measured_rung``; None otherwise, and for a
    directory without a readable study."""
    from tinyscale.study.halving import rung_steps
    from tinyscale.study.store import Study

    try:
        study = Study.open(study_dir)
    except (ValueError, OSError):
        return None
    with study:
        c = study.config
        rung = study.fit_rung() if c.schedule == "halving" else 0
    if rung == measured_rung:
        return None
    return rung, rung_steps(c.steps, c.eta, measured_rung), rung_steps(c.steps, c.eta, rung)
