#!/usr/bin/env bash
# Take a fresh Raspberry Pi OS (Bookworm or newer, Python >= 3.11) to a running station.
# Run from a checkout of this repository:  sudo scripts/install-pi.sh
# Then edit /etc/karekod-station/station.toml and: sudo systemctl restart karekod-station
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "install-pi: run as root (sudo)" >&2; exit 1; }

PREFIX=/opt/karekod-station
echo "install-pi: packages"
apt-get update -qq
# python3-lgpio / python3-rpi-lgpio come from Raspberry Pi OS; the venv sees them (--system-site-packages)
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev python3-lgpio || \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev

echo "install-pi: user karekod"
id karekod >/dev/null 2>&1 || useradd --system --home-dir /var/lib/karekod-station --no-create-home \
  --shell /usr/sbin/nologin karekod
for g in input dialout gpio; do getent group "$g" >/dev/null && usermod -aG "$g" karekod; done

echo "install-pi: $PREFIX"
install -d "$PREFIX"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv --system-site-packages "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade pip
"$PREFIX/venv/bin/pip" install -q ".[pi]"
install -m 0644 README.md "$PREFIX/README.md"

echo "install-pi: configuration"
install -d -m 0750 -o root -g karekod /etc/karekod-station
if [ ! -f /etc/karekod-station/station.toml ]; then
  install -m 0640 -o root -g karekod examples/loading-dock.toml /etc/karekod-station/station.toml
  echo "install-pi: wrote /etc/karekod-station/station.toml from examples/loading-dock.toml: edit it"
fi

echo "install-pi: udev rules"
install -m 0644 hardware/70-karekod-scanner.rules /etc/udev/rules.d/70-karekod-scanner.rules
udevadm control --reload && udevadm trigger || true

echo "install-pi: journald (volatile: logs in RAM, the SD card is spared)"
install -d /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=64M\n' > /etc/systemd/journald.conf.d/karekod-station.conf
systemctl restart systemd-journald || true

echo "install-pi: service"
install -m 0644 systemd/karekod-station.service /etc/systemd/system/karekod-station.service
systemctl daemon-reload
systemctl enable karekod-station
if "$PREFIX/venv/bin/station" config check /etc/karekod-station/station.toml; then
  systemctl restart karekod-station
  echo "install-pi: running. Check: station status --config /etc/karekod-station/station.toml"
else
  echo "install-pi: fix the configuration above, then: sudo systemctl restart karekod-station"
fi
