"""Fixtures several test modules share, requested by name.

The studies and fits behind them are made by `_fit_fixtures` (synthetic trials with a known
r(c), d(c)) and `_app_fixtures` (a fitted study with one failed trial); those modules stay
importable for the helpers and constants tests use directly. Scopes are chosen for run time:
a fit takes seconds, so what nothing mutates is built once; what a test may change is a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from _app_fixtures import fitted_study
from _fit_fixtures import fitted, synthetic_trials, write_study


@pytest.fixture(scope="session")
def fitted_study_copies(tmp_path_factory) -> Callable[[Path], Path]:
    """``copy(dest)``: a copy at ``dest`` of the app's fitted study (24 completed trials, 1
    failed, a saved fit), built on first use and then only copied."""
    source = tmp_path_factory.mktemp("fitted-src")
    return lambda dest: fitted_study(source, dest)


@pytest.fixture
def fitted_study_dir(fitted_study_copies, tmp_path) -> Path:
    """A fresh copy of the app's fitted study, the test's to change."""
    return fitted_study_copies(tmp_path / "study")


@pytest.fixture(scope="module")
def synthetic_study(tmp_path_factory) -> Path:
    """A study directory holding `synthetic_trials(seed=1)` (54 completed trials, no fit),
    one per test module: a module may fit it and then query the fit."""
    return write_study(tmp_path_factory.mktemp("synthetic") / "study", synthetic_trials(seed=1))


@pytest.fixture(scope="module")
def pareto_fit():
    """The Pareto-method fit (k=20) of `synthetic_trials(seed=1)`; read-only, shared."""
    return fitted(1)
