#!/usr/bin/env bash
# The main job of the README: set up, run (or resume) the demo study on Fashion-MNIST, fit it,
# and open the design assistant on it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/tinyscale demo "$@"
