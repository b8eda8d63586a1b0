"""The daemon with a real serial scanner (a pseudo-terminal), mock pins, and systemd's notify socket."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from harness import ROOT, wait_for

GS = b"\x1d"


def test_daemon_serial_scanner_notify_and_clean_stop(tmp_path: Path) -> None:
    masters = {}
    for side in ("left", "right"):  # two scanners on one station, each on its own pty
        masters[side], slave = os.openpty()
        (tmp_path / side).symlink_to(os.ttyname(slave))
        os.close(slave)
    master = masters["left"]
    db = tmp_path / "station.db"
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        f'[station]\nid = "pty-1"\n[scanner]\ntype = "serial"\nsuffix = "cr"\n'
        f'[scanner.left]\nport = "{tmp_path / "left"}"\n[scanner.right]\nport = "{tmp_path / "right"}"\n'
        f'[storage]\npath = "{db}"\n[mqtt]\nenabled = false\n[feedback]\npin_factory = "mock"\n'
        "[reject]\nenabled = true\npin = 24\ndelay_ms = 100\n"
    )
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(0.2)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "2000000"}
    env.pop("GPIOZERO_PIN_FACTORY", None)
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "station.edge.cli", "run", "-c", str(cfg)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    messages: list[str] = []

    def got(text: str) -> bool:
        try:
            while True:
                messages.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        return any(text in m for m in messages)

    try:
        wait_for(lambda: got("READY=1"), 20, what="READY=1")
        code = b"]d2010869953609012221PTY1" + GS + b"1730123110LOT1"
        os.write(master, code + b"\r" + b"not a karekod\r" + code.replace(b"PTY1", b"PTY2") + b"\r")

        def rows() -> list[tuple[int, str | None, str]]:
            if not db.exists():
                return []
            with sqlite3.connect(db) as conn:
                return conn.execute("SELECT ok, reason, source FROM events ORDER BY seq").fetchall()

        wait_for(lambda: len(rows()) == 3, 20, what="three events")
        assert [(ok, reason) for ok, reason, _ in rows()] == [(1, None), (0, "not_gs1"), (1, None)]
        assert rows()[0][2] == "left"
        # Half a scan on each scanner, then the other halves: each keeps its own frame.
        other = code.replace(b"PTY1", b"PTY3")
        os.write(masters["left"], code.replace(b"PTY1", b"PTY4")[:15])
        os.write(masters["right"], other[:20])
        time.sleep(0.02)
        os.write(masters["right"], other[20:] + b"\r")
        os.write(masters["left"], code.replace(b"PTY1", b"PTY4")[15:] + b"\r")
        wait_for(lambda: len(rows()) == 5, 20, what="two more events")
        assert sorted((ok, src) for ok, _, src in rows()[3:]) == [(1, "left"), (1, "right")]
        messages.clear()
        wait_for(lambda: got("WATCHDOG=1"), 5, what="watchdog pings from the scan loop")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert got("STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
        for fd in masters.values():
            os.close(fd)
        sock.close()
    text = log.read_text()
    assert "reject arm on GPIO24" in text and "pins: mock" in text and "stopped" in text


def test_daemon_refuses_to_guess_pins_off_a_pi(tmp_path: Path) -> None:
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[station]\nid = "x"\n[storage]\npath = "{tmp_path / "s.db"}"\n[mqtt]\nenabled = false\n')
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "station.edge.cli", "run", "-c", str(cfg)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 3 and "not a Raspberry Pi" in out.stdout and time.monotonic() - start < 20


def test_trace_shows_a_serial_scan_as_sent(tmp_path: Path) -> None:
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)
    proc = subprocess.Popen(
        [sys.executable, "-m", "station.edge.cli", "trace", "--port", name, "--suffix", "cr"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "tracing" in proc.stdout.readline()
        time.sleep(0.3)
        os.write(master, b"]d2010869953609012221ABC" + GS + b"1730123110L1\r")
        lines = [proc.stdout.readline() for _ in range(4)]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        os.close(master)
    text = "".join(lines)
    assert "ended by suffix" in text and "1 GS" in text
    assert "raw     ]d2010869953609012221ABC<GS>1730123110L1<CR>" in text
    assert "verdict accept" in text and "(21)ABC" in text


def test_test_feedback_shows_every_pattern(tmp_path: Path) -> None:
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[station]\nid = "t"\n[storage]\npath = "{tmp_path / "s.db"}"\n')
    out = subprocess.run(
        [sys.executable, "-m", "station.edge.cli", "test-feedback", "--simulate", "--pause", "0", "-c", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    for signal_name in ("accept", "reject", "duplicate", "refused_later", "fault"):
        assert f"{signal_name}:" in out.stdout
    assert "GPIO17 on" in out.stdout and "GPIO22 on" in out.stdout and "GPIO27 on" in out.stdout
    assert "GPIO23 on" in out.stdout  # the buzzer


def test_sigterm_while_reading_stdin_stops_cleanly(tmp_path: Path) -> None:
    """SIGTERM to `station run --simulate` blocked on stdin ended in `Fatal Python error:
    _enter_buffered_busy`; scans are now read from the descriptor, and the stop is clean."""
    import signal as signals

    from harness import Daemon

    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[station]\nid = "t1"\n[storage]\npath = "{tmp_path / "s.db"}"\n[mqtt]\nenabled = false\n')
    log = tmp_path / "daemon.log"
    daemon = Daemon(cfg, log)
    long = b"]d2" + b"9" * 10_000  # over max_length: cut, the rest of the line dropped
    daemon.scan(b"]d20108699536090122211234\x1d17301231101", long, b"not a karekod")
    wait_for(lambda: b"scan seq=3" in log.read_bytes(), 10, what="three scans judged")
    daemon.proc.send_signal(signals.SIGTERM)
    assert daemon.proc.wait(10) == 0
    text = log.read_text()
    assert "Fatal Python error" not in text and "Traceback" not in text and "stopped" in text
    assert "line longer than 512 bytes cut" in text and "scan seq=4" not in text
