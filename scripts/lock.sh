#!/usr/bin/env bash
# Refresh requirements/lock.txt: resolve the newest releases pyproject.toml allows into a fresh
# venv, run the whole suite there, and write the lock only if it passed.
#   bash scripts/lock.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-lock
rm -rf "$VENV"
TINYSCALE_VENV="$VENV" TINYSCALE_LOCK="" bash scripts/setup.sh
"$VENV/bin/python" -m pytest "$@"
{
    echo "# The versions the test suite passed with (pip constraints). scripts/setup.sh installs with"
    echo "# -c requirements/lock.txt; refresh with: bash scripts/lock.sh"
    # torch is the local CPU build (2.13.0+cpu); "==2.13.0" matches it and the plain release.
    "$VENV/bin/pip" freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+cpu$/torch==\1/'
} > requirements/lock.txt
rm -rf "$VENV"
echo "lock: requirements/lock.txt refreshed ($(grep -vc '^#' requirements/lock.txt) packages)"
