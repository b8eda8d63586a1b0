#!/usr/bin/env bash
# The station's main job on any machine: simulated scanner (stdin) and pins (printed), a real
# SQLite file in var/, real MQTT when a broker listens on localhost:1883.
# Sample scans first; then, in a terminal, type or paste more (GS as Ctrl+] or 0x1D), Ctrl+D ends.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p var
if [ -t 0 ]; then
  cat examples/scans.txt - | .venv/bin/station run --simulate --config examples/simulate.toml "$@"
else
  cat examples/scans.txt | .venv/bin/station run --simulate --config examples/simulate.toml "$@"
fi
.venv/bin/station events --config examples/simulate.toml --last 12
.venv/bin/station queue --config examples/simulate.toml
