#!/usr/bin/env bash
# The whole chain on one machine: a Mosquitto of its own, the sandbox İTS, the submitter, and a
# simulated station playing examples/scans.txt. The sandbox knows DEMO-5/a as recalled, so that
# box is accepted at the station and refused later by the (sandbox) national service.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
work=var/demo-central
rm -rf "$work" && mkdir -p "$work"
port=18831; api=18089; web=18090
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
pids=()
trap cleanup EXIT
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' $port > "$work/mosquitto.conf"
"$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 & pids+=($!)
.venv/bin/station-submitter sandbox --port $api --seed examples/sandbox-seed.json --latency-ms 50 \
  >"$work/sandbox.log" 2>&1 & pids+=($!)
echo demo > "$work/its-password" && chmod 600 "$work/its-password"
cat > "$work/submitter.toml" <<TOML
[submitter]
id = "demo"
ledger = "sqlite:///$PWD/$work/ledger.db"
[mqtt]
port = $port
[its]
batch_wait_ms = 200
[its.test]
base_url = "http://127.0.0.1:$api"
username = "8680000000005"
password_file = "$PWD/$work/its-password"
[sites.hospital-pharmacy]
service = "its"
institution = "8680000000005"
operation = "receipt"
stations = ["demo"]
[web]
enabled = true
port = $web
TOML
sed -e "s#var/demo.db#$work/station.db#" -e "s/port = 1883/port = $port/" examples/simulate.toml > "$work/station.toml"
.venv/bin/station-submitter run -c "$work/submitter.toml" >"$work/submitter.log" 2>&1 & pids+=($!)
sleep 1.5
{ cat examples/scans.txt; sleep 4; } | .venv/bin/station run --simulate -c "$work/station.toml" --drain-seconds 2
echo "--- station events (with the national service's answer):"
.venv/bin/station events -c "$work/station.toml"
echo "--- submitter:"
.venv/bin/station-submitter status -c "$work/submitter.toml"
echo "--- the console (http://127.0.0.1:$web while the submitter runs), its metrics:"
.venv/bin/python -c "import requests, sys; print(''.join(l + chr(10) for l in requests.get(sys.argv[1], timeout=5).text.splitlines() if l.startswith(('karekod_jobs', 'karekod_station_up'))), end='')" "http://127.0.0.1:$web/metrics"
if [ -n "${KEEP:-}" ]; then
  echo "--- KEEP is set: the console stays at http://127.0.0.1:$web until Ctrl+C"
  wait
fi
