"""Two years of a busy depot in one station file: start-up, a scan's judgement and a purge running
beside a 15 boxes/s conveyor stay as they are with an empty file (issue: the scan path at field scale)."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin
from harness import ROOT, write_config
from scans import gtin

from station.edge.config import ReaderConfig, StationConfig, load
from station.edge.daemon import Housekeeper
from station.edge.events import Scan
from station.edge.outputs.feedback import NoFeedback
from station.edge.outputs.reject import RejectArm
from station.edge.pipeline import Station
from station.edge.store import Store

GS = "\x1d"
UNITS = 1_000_000
DAY = 86400


def fill(path: Path, units: int = UNITS) -> None:
    """A station file with ``units`` accepted units, half of them past a 730-day retention, and
    100,000 delivered events, half of them past 90 days: written directly, as two years would."""
    Store(path).open()
    now = time.time()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        conn.executemany(
            "INSERT INTO accepted_units (gtin, serial, seq, at) VALUES (?, ?, ?, ?)",
            ((gtin(i % 500), f"S{i:09d}", i + 1, now - (800 if i % 2 else 10) * DAY) for i in range(units)),
        )
        conn.executemany(
            "INSERT INTO events (seq, id, at, source, raw, ok, payload, delivered_at) VALUES (?, ?, ?, 'x', x'', 1,"
            " x'7b7d', ?)",
            (
                (
                    i + 1,
                    f"e{i}",
                    "2025-01-01T00:00:00.000Z",
                    "2025-01-01T00:00:00.000Z" if i % 2 else "2026-11-20T00:00:00.000Z",
                )
                for i in range(100_000)
            ),
        )
        conn.execute("UPDATE meta SET value = '100000' WHERE key = 'delivered_through'")  # all delivered


def daemon_ready_seconds(tmp: Path) -> float:
    cfg = write_config(tmp, 1, "scale-1", mqtt={"enabled": False})
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "station.edge.cli", "run", "--simulate", "-c", str(cfg), "--drain-seconds", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if b" ready: " in line:
            break
    took = time.monotonic() - started
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(20)
    return took


def judge_times(path: Path, n: int = 40) -> list[float]:
    station = Station(StationConfig("scale-1"), ReaderConfig(debounce_seconds=0), Store(path), NoFeedback())
    times = []
    for i in range(n):
        raw = f"]d201{gtin(7)}21NEW{i:05d}{GS}1730123110B1".encode()
        t = time.perf_counter()
        assert station.handle(Scan(raw, "t", time.time(), time.monotonic())).verdict.ok
        times.append(time.perf_counter() - t)
    station.store.close()
    return times


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "station.db"
    fill(path)
    return path


def test_ready_and_a_scan_take_what_they_take_with_an_empty_file(big: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    shutil.copy(big, tmp_path / "full" / "station.db")  # the daemon purges its copy after READY
    empty = min(daemon_ready_seconds(tmp_path / "empty") for _ in range(2))
    full = min(daemon_ready_seconds(tmp_path / "full") for _ in range(2))
    assert full < 2 * empty + 0.5, (full, empty)  # start-up does not read the file through
    cold = statistics.median(judge_times(tmp_path / "empty" / "station.db"))
    warm = statistics.median(judge_times(tmp_path / "full" / "station.db"))
    assert warm < 3 * cold + 0.002, (warm, cold)  # a scan's lookups are by key, not by size


def test_a_purge_of_two_years_beside_a_conveyor_makes_no_reject_late(big: Path, tmp_path: Path, caplog: Any) -> None:
    path = tmp_path / "station.db"
    shutil.copy(big, path)
    config = load(write_config(tmp_path, 1, "scale-1", storage={"path": str(path)}))
    factory = MockFactory(pin_class=MockPWMPin)
    arm = RejectArm(24, 0.4, 0.03, "pulse", pin_factory=factory)
    store = Store(path)
    store.open()  # as the daemon does before READY; the housekeeper opens its own after
    station = Station(StationConfig("scale-1"), ReaderConfig(debounce_seconds=0), store, NoFeedback(), reject_arm=arm)
    stop = threading.Event()
    keeper = Housekeeper(config, stop)
    purging = threading.Thread(target=keeper.purge_once)
    caplog.set_level(logging.WARNING, logger="station.edge.outputs.reject")
    try:
        purging.start()
        started, n = time.monotonic(), 0
        while purging.is_alive() or n < 30:
            while time.monotonic() < started + n / 15:
                time.sleep(0.001)
            bad = n % 5 == 0
            raw = (b"NOT-A-KAREKOD-%d" % n) if bad else f"]d201{gtin(8)}21B{n:06d}{GS}1730123110B1".encode()
            out = station.handle(Scan(raw, "belt", time.time(), time.monotonic()))
            assert out.verdict.ok is not bad
            n += 1
        purging.join()
        time.sleep(0.5)
        assert "late" not in caplog.text  # every reject reached the arm in time
        assert arm.fired >= n // 5 - 1
        with sqlite3.connect(path) as conn:
            accepted = n - (n + 4) // 5  # every fifth box was refused
            assert conn.execute("SELECT count(*) FROM accepted_units").fetchone()[0] == UNITS // 2 + accepted
            assert conn.execute("SELECT count(*) FROM events WHERE delivered_at IS NOT NULL").fetchone()[0] == 50_000
    finally:
        stop.set()
        arm.close()
        station.store.close()
