#!/usr/bin/env bash
# Prove scripts/install-pi.sh on a bare arm64 Debian Bookworm, as on a Pi's SD card, under
# qemu-user: debootstrap an arm64 root, copy this checkout in, run the installer in a chroot (no
# running systemd, as when an image is prepared offline), then check what it left:
#   the station runs (`station --version`, `config check`, a simulated scan judged and stored),
#   the central side's libraries are absent, the unit is enabled, and the install size.
# Needs root, and a few minutes (the arm64 root is kept in $ROOT for the next run).
#   sudo bench/pi_install_qemu.sh [ROOT]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-/var/tmp/karekod-arm64-root}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
export DEBIAN_FRONTEND=noninteractive

need() { command -v "$1" >/dev/null || { apt-get update -qq; apt-get install -y -qq "$2" >/dev/null; }; }
need qemu-aarch64-static qemu-user-static
need debootstrap debootstrap
need update-binfmts binfmt-support
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { echo "pi-qemu: binfmt for arm64 is not available here" >&2; exit 1; }

if [ ! -x "$ROOT/usr/bin/python3" ]; then
  echo "pi-qemu: debootstrap arm64 bookworm into $ROOT (minutes)"
  rm -rf "$ROOT"
  debootstrap --arch=arm64 --variant=minbase --include=systemd,udev,ca-certificates,python3 \
    bookworm "$ROOT" "$MIRROR" >/tmp/pi-qemu-debootstrap.log 2>&1 || {
      tail -20 /tmp/pi-qemu-debootstrap.log; exit 1; }
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
# the machine's own package sources, certificates and pip settings, so the chroot reaches the same registries
cp -a /etc/apt/sources.list.d/debian.sources "$ROOT/etc/apt/sources.list.d/" 2>/dev/null || true
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
[ -f /etc/pip.conf ] && grep -v -e find-links -e extra-index-url -e constraint /etc/pip.conf > "$ROOT/etc/pip.conf" || true

src="$ROOT/opt/src"
rm -rf "$src" && mkdir -p "$src"
git ls-files -z | xargs -0 tar -c | tar -x -C "$src"
for d in proc sys dev; do mountpoint -q "$ROOT/$d" || mount --bind "/$d" "$ROOT/$d"; done
cleanup() { for d in dev sys proc; do umount -l "$ROOT/$d" 2>/dev/null || true; done; }
trap cleanup EXIT

start=$(date +%s)
chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
  bash -c 'cd /opt/src && bash scripts/install-pi.sh' 2>&1 | tee /tmp/pi-qemu-install.log | sed 's/^/  | /'
echo "pi-qemu: install took $(( $(date +%s) - start )) s under qemu"

check() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/bin HOME=/root bash -c "$1"; }
fail=0
verify() { if check "$2" >/tmp/pi-qemu-check.log 2>&1; then echo "ok   $1"; else echo "FAIL $1"; sed 's/^/     /' /tmp/pi-qemu-check.log; fail=1; fi; }
verify "station --version" "/opt/karekod-station/venv/bin/station --version"
verify "config check of the installed example" "/opt/karekod-station/venv/bin/station config check /etc/karekod-station/station.toml"
verify "a simulated scan judged and stored" "cd /tmp && printf ']d20108699536090122211234\x1d17301231101\n' | \
  /opt/karekod-station/venv/bin/station decode --today 2026-01-01 | grep -q '\"ok\": true'"
verify "no central-side library (requests, psycopg)" "! /opt/karekod-station/venv/bin/python -c 'import requests' 2>/dev/null && \
  ! /opt/karekod-station/venv/bin/python -c 'import psycopg' 2>/dev/null"
verify "evdev from apt, not built" "/opt/karekod-station/venv/bin/python -c 'import evdev, sys; sys.exit(\"dist-packages\" not in evdev.__file__)'"
verify "the unit is enabled" "test -L /etc/systemd/system/multi-user.target.wants/karekod-station.service"
verify "the karekod user is in gpio, input, dialout" "id -nG karekod | tr ' ' '\n' | sort | tr '\n' ' ' | grep -q 'dialout gpio input'"
size=$(check "du -sm /opt/karekod-station/venv/lib/python3*/site-packages | cut -f1")
echo "pi-qemu: the station's venv site-packages: ${size} MiB (pip and setuptools included)"
exit $fail
