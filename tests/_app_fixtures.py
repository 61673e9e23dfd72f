"""Small studies for the app tests, made through the study engine's public API with hand-made
trial results (no training): the fit stage's synthetic trials, plus one failed trial, and the
fit saved the way `tinyscale fit` saves it. Built once per test session and copied per test.
Tests ask conftest's `fitted_study_dir` (a fresh copy) or `fitted_study_copies` (copies where a
test wants them); `fitted_study` is the builder behind both."""

from __future__ import annotations

import shutil
from pathlib import Path

from _fit_fixtures import CONFIG, synthetic_trials, write_study

FAILED_REASON = "loss became NaN at step 7 (hand-made failure)"
_BUILT: dict[str, Path] = {}


def _fitted_study(root: Path) -> Path:
    from tinyscale.fit.gp import fit_scaling
    from tinyscale.study.store import Study

    directory = root / "fitted"
    trials = synthetic_trials(n_good=12, n_decoys=12, seed=3)
    write_study(directory, trials)
    with Study.open(directory) as study:
        number = max(t.number for t in trials) + 1
        study.start_trial(number, CONFIG.recipe(0.5, 0.5, 0.5), seed=number)
        study.fail_trial(number, FAILED_REASON)
        fit_scaling(study.trials(), study.config, source=str(directory)).save(directory)
    return directory


def fitted_study(tmp_root: Path, dest: Path) -> Path:
    """A copy (at ``dest``) of a study with 24 completed trials, 1 failed and a saved fit."""
    if "fitted" not in _BUILT:
        _BUILT["fitted"] = _fitted_study(tmp_root)
    shutil.copytree(_BUILT["fitted"], dest)
    return dest


def small_study(dest: Path, n: int = 3) -> Path:
    """A study with only ``n`` completed trials: too few for a fit."""
    return write_study(dest, synthetic_trials(n_good=n, n_decoys=0))
