#!/usr/bin/env bash
# Idempotent set-up: system data/browser packages (when root), a .venv with the pinned CPU torch
# first, then tinyscale with all extras. Every other script calls this first.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TINYSCALE_VENV:-.venv}"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=()
    [ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
    [ -x /usr/bin/chromium ] || need+=(chromium)
    if [ ${#need[@]} -gt 0 ]; then
        echo "setup: apt-get install ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
fi

PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# Pinned CPU torch before anything that depends on torch (a bare "torch" pulls a CUDA build).
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "setup: installing torch==2.13.0 (CPU)"
    "$VENV/bin/pip" install -q torch==2.13.0
fi
# Every dependency at the version the suite passed with (requirements/lock.txt, refreshed by
# scripts/lock.sh); pyproject.toml keeps loose lower bounds for library users.
LOCK="${TINYSCALE_LOCK-requirements/lock.txt}"  # set empty for no lock
stamp="$VENV/.tinyscale-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || { [ -n "$LOCK" ] && [ "$LOCK" -nt "$stamp" ]; }; then
    echo "setup: installing tinyscale[all] into $VENV${LOCK:+ (versions from $LOCK)}"
    "$VENV/bin/pip" install -q ${LOCK:+-c "$LOCK"} -e ".[all]"
    touch "$stamp"
fi
