#!/usr/bin/env bash
# The test command: set up from nothing, then lint, type-check and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check station tests bench scripts
.venv/bin/ruff format --check station tests bench scripts
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
