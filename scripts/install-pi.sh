#!/usr/bin/env bash
# Take a fresh Raspberry Pi OS or Debian (Bookworm or newer, Python >= 3.11) to a running station.
# Run from a checkout of this repository:  sudo scripts/install-pi.sh
# Then edit /etc/karekod-station/station.toml and: sudo systemctl restart karekod-station
#
# Works offline of systemd too (a chroot preparing an SD-card image, checked under qemu by
# bench/pi_install_qemu.sh): the unit is enabled, not started, when no systemd runs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "install-pi: run as root (sudo)" >&2; exit 1; }

PREFIX=/opt/karekod-station
export DEBIAN_FRONTEND=noninteractive
running_systemd() { [ -d /run/systemd/system ] && ! systemd-detect-virt --quiet --chroot 2>/dev/null; }

echo "install-pi: packages"
apt-get update -qq
# From apt, built for this board, so nothing is compiled here: python3-evdev (USB-HID scanners)
# and, where the OS has it (Raspberry Pi OS), python3-lgpio (the pins). The venv sees them
# (--system-site-packages), so pip does not build them from source.
apt-get install -y -qq python3 python3-venv python3-evdev >/dev/null
if apt-cache show python3-lgpio >/dev/null 2>&1; then
  apt-get install -y -qq python3-lgpio >/dev/null
else
  echo "install-pi: python3-lgpio is not in this OS's archive (not Raspberry Pi OS?): pins need lgpio from pip"
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "install-pi: Python 3.11 or newer is needed (Raspberry Pi OS Bookworm or newer)" >&2; exit 1; }

echo "install-pi: user karekod"
id karekod >/dev/null 2>&1 || useradd --system --home-dir /var/lib/karekod-station --no-create-home \
  --shell /usr/sbin/nologin karekod
# Raspberry Pi OS has a gpio group owning /dev/gpiochip*; plain Debian does not: make it and the rule.
if ! getent group gpio >/dev/null; then
  groupadd --system gpio
  printf 'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"\n' \
    > /etc/udev/rules.d/60-karekod-gpio.rules
fi
for g in input dialout gpio; do getent group "$g" >/dev/null && usermod -aG "$g" karekod; done

echo "install-pi: $PREFIX"
install -d "$PREFIX"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv --system-site-packages "$PREFIX/venv"
# Only what the station needs (the [pi] extra: paho-mqtt, gpiozero, pyserial, evdev, lgpio where
# it has a wheel); never the central side's libraries.
"$PREFIX/venv/bin/pip" install -q --disable-pip-version-check ".[pi]"
install -m 0644 README.md "$PREFIX/README.md"
"$PREFIX/venv/bin/station" --version

echo "install-pi: configuration"
install -d -m 0750 -o root -g karekod /etc/karekod-station
if [ ! -f /etc/karekod-station/station.toml ]; then
  install -m 0640 -o root -g karekod examples/loading-dock.toml /etc/karekod-station/station.toml
  echo "install-pi: wrote /etc/karekod-station/station.toml from examples/loading-dock.toml: edit it"
fi

echo "install-pi: udev rules"
install -d /etc/udev/rules.d
install -m 0644 hardware/70-karekod-scanner.rules /etc/udev/rules.d/70-karekod-scanner.rules
if running_systemd; then udevadm control --reload && udevadm trigger || true; fi

echo "install-pi: journald (volatile: logs in RAM, the SD card is spared)"
install -d /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=64M\n' > /etc/systemd/journald.conf.d/karekod-station.conf

echo "install-pi: service"
install -d /etc/systemd/system
install -m 0644 systemd/karekod-station.service /etc/systemd/system/karekod-station.service
if command -v systemctl >/dev/null; then
  systemctl enable karekod-station >/dev/null 2>&1 || \
    ln -sf /etc/systemd/system/karekod-station.service /etc/systemd/system/multi-user.target.wants/
else
  install -d /etc/systemd/system/multi-user.target.wants
  ln -sf /etc/systemd/system/karekod-station.service /etc/systemd/system/multi-user.target.wants/
fi
if ! running_systemd; then
  echo "install-pi: no running systemd (a chroot or an image): enabled; it starts at the next boot"
  exit 0
fi
systemctl restart systemd-journald || true
systemctl daemon-reload
if "$PREFIX/venv/bin/station" config check /etc/karekod-station/station.toml; then
  systemctl restart karekod-station
  echo "install-pi: running. Check: station status --config /etc/karekod-station/station.toml"
else
  echo "install-pi: fix the configuration above, then: sudo systemctl restart karekod-station"
fi
