#!/usr/bin/env bash
# Profile the server with py-spy under the benchmark's batching-ON load: writes a flame graph
# (SVG), collapsed stacks and a top-functions table to bench/results/. Extra args go to python -m bench.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" -m bench --modes on --profile "$@"
