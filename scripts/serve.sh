#!/usr/bin/env bash
# The main job: set up, then serve. With no arguments this serves the embedded default (the
# shipped probe model at fp32, int8 and nf4, in-process) on http://127.0.0.1:8000.
# Any arguments go to `quanttrap serve` (e.g. --config quanttrap.yaml --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/quanttrap serve "$@"
