"""Skips that must not happen in CI: there, a missing system package is a broken install step."""

from __future__ import annotations

import os

import pytest


def skip_unless_ci(reason: str) -> None:
    """Skip locally; fail under CI (CI=true), where scripts/setup.sh must have installed it."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} — but CI must have it (scripts/setup.sh installs it)")
    pytest.skip(reason)
