#!/usr/bin/env bash
# Set up everything from nothing: a virtualenv with the station and its dev tools, and a Mosquitto
# binary for the tests (apt-get, only when missing). Safe to run again; quiet when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # scripts/fleet-certs.sh, the secured-fleet tests
# the real XKB keymaps the HID tests type with (scripts/xkb.py); the station never loads them
ldconfig -p 2>/dev/null | grep -q 'libxkbcommon\.so\.0' || missing+=(libxkbcommon0)
[ -f /usr/share/X11/xkb/symbols/tr ] || missing+=(xkb-data)
# the console's browser tests drive Debian's Chromium (Playwright's own browser download is not used)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (apt-get)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # the tests start their own broker on a free port; the packaged service is not needed for them
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing the station and its dev tools into .venv"
  log=.venv/install.log
  if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e '.[dev]'; } \
      >"$log" 2>&1; then
    grep -v '^WARNING: Location' "$log" >&2
    echo "setup: pip install failed (full log: $log)" >&2
    exit 1
  fi
  .venv/bin/python -c 'import station, paho.mqtt, gpiozero, requests, biip, hypothesis, fastapi, playwright'
  touch "$stamp"
fi
