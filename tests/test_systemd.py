"""The systemd units: they verify, and their hardening exposure stays at or below 3.0."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "karekod-station.service"
UNITS = [UNIT, ROOT / "systemd" / "karekod-submitter.service"]

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


@needs_systemd
@pytest.mark.parametrize("source", UNITS, ids=lambda p: p.name)
def test_unit_verifies(tmp_path: Path, source: Path) -> None:
    # The units name the installed venv; point them at this checkout's so verify can check ExecStart.
    unit = tmp_path / source.name
    unit.write_text(source.read_text().replace("/opt/karekod-station/venv/bin/", f"{Path(sys.executable).parent}/"))
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@needs_systemd
@pytest.mark.parametrize("source", UNITS, ids=lambda p: p.name)
def test_security_exposure_at_most_3(source: Path) -> None:
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(source)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert m, out.stdout + out.stderr
    assert float(m.group(1)) <= 3.0


def test_unit_keeps_what_the_station_needs() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=always",
        "WorkingDirectory=/var/lib/karekod-station",
        "StateDirectory=karekod-station",
        "DeviceAllow=char-input rw",
        "DeviceAllow=char-gpiochip rw",
    ):
        assert line in text, line
    assert not re.search(r"^PrivateDevices=", text, re.M)  # it would hide the scanner and the GPIO chips
