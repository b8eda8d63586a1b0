"""Serial scanners on a pseudo-terminal: framing, noise, huge lines, unplug and replug."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from harness import wait_for

from station.edge.events import Scan
from station.edge.scanners.framing import Frame, Framer
from station.edge.scanners.serial import SerialScanner

GS = b"\x1d"
CODE = b"]d2010869953609012221ABC" + GS + b"1730123110LOT1"


class Pty:
    """A scanner on the far end of a pseudo-terminal, reachable by a stable symlink."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master, slave = os.openpty()
        self.slave_name = os.ttyname(slave)
        os.close(slave)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(self.slave_name)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def unplug(self) -> None:
        os.close(self.master)
        self.link.unlink()


@pytest.fixture
def scanner_run(tmp_path: Path):  # type: ignore[no-untyped-def]
    scans: list[Scan] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(scanner: SerialScanner) -> list[Scan]:
        t = threading.Thread(target=scanner.run, args=(scans.append, stop), daemon=True)
        t.start()
        threads.append(t)
        return scans

    yield start
    stop.set()
    for t in threads:
        t.join(5)


def test_suffix_framing_and_several_scans_in_one_read(tmp_path: Path, scanner_run) -> None:  # type: ignore[no-untyped-def]
    pty = Pty(tmp_path / "scanner")
    scanner = SerialScanner(str(tmp_path / "scanner"), suffix="auto", idle_ms=300)
    scans = scanner_run(scanner)
    wait_for(lambda: scanner.connected, 5, what="the port to open")
    pty.send(CODE + b"\r\n" + CODE.replace(b"ABC", b"DEF") + b"\r" + CODE.replace(b"ABC", b"XYZ") + b"\t")
    wait_for(lambda: len(scans) == 3, 5, what="three scans")
    assert [s.raw for s in scans] == [
        CODE + b"\r\n",
        CODE.replace(b"ABC", b"DEF") + b"\r",
        CODE.replace(b"ABC", b"XYZ") + b"\t",
    ]
    assert all(s.terminated_by == "suffix" and s.source.endswith("scanner") for s in scans)
    assert GS in scans[0].raw  # GS is data, never a separator of scans


def test_idle_gap_framing_without_suffix(tmp_path: Path, scanner_run) -> None:  # type: ignore[no-untyped-def]
    pty = Pty(tmp_path / "scanner")
    scanner = SerialScanner(str(tmp_path / "scanner"), suffix="none", idle_ms=80)
    scans = scanner_run(scanner)
    wait_for(lambda: scanner.connected, 5, what="the port to open")
    pty.send(CODE[:10])
    time.sleep(0.03)  # a pause shorter than the gap: the same scan
    pty.send(CODE[10:])
    wait_for(lambda: len(scans) == 1, 5, what="one scan")
    time.sleep(0.2)
    pty.send(b"second")
    wait_for(lambda: len(scans) == 2, 5, what="a second scan after the gap")
    assert scans[0].raw == CODE and scans[0].terminated_by == "idle" and scans[1].raw == b"second"


def test_noise_and_a_64k_garbage_line_stay_bounded(tmp_path: Path, scanner_run) -> None:  # type: ignore[no-untyped-def]
    pty = Pty(tmp_path / "scanner")
    scanner = SerialScanner(str(tmp_path / "scanner"), suffix="cr", idle_ms=500, max_length=256)
    scans = scanner_run(scanner)
    wait_for(lambda: scanner.connected, 5, what="the port to open")
    garbage = bytes(range(256)).replace(b"\r", b"") * 260  # ~64 KiB, no CR
    for i in range(0, len(garbage), 4096):
        pty.send(garbage[i : i + 4096])
    pty.send(b"\r" + CODE + b"\r")
    wait_for(lambda: len(scans) == 2, 5, what="the cut garbage and the good scan")
    assert scans[0].terminated_by == "overflow" and len(scans[0].raw) == 256
    assert scans[1].raw == CODE + b"\r"  # the scan after the garbage is intact
    assert len(scanner.framer._buf) == 0


def test_unplug_and_replug(tmp_path: Path, scanner_run) -> None:  # type: ignore[no-untyped-def]
    link = tmp_path / "scanner"
    pty = Pty(link)
    scanner = SerialScanner(str(link), suffix="cr", idle_ms=300)
    scanner.backoff.first = scanner.backoff.delay = 0.05
    scans = scanner_run(scanner)
    wait_for(lambda: scanner.connected, 5, what="the port to open")
    pty.send(CODE + b"\r")
    wait_for(lambda: len(scans) == 1, 5, what="a scan")
    pty.send(b"0108699")  # half a scan, then the cable is pulled
    pty.unplug()
    wait_for(lambda: not scanner.connected, 5, what="the scanner to be seen gone")
    time.sleep(0.3)
    pty2 = Pty(link)  # plugged in again: a new tty behind the same name
    wait_for(lambda: scanner.connected, 10, what="the scanner to come back")
    pty2.send(CODE.replace(b"ABC", b"NEW") + b"\r")
    wait_for(lambda: len(scans) == 2, 5, what="a scan after the replug")
    assert scans[1].raw == CODE.replace(b"ABC", b"NEW") + b"\r"  # the half scan was dropped


def test_framer_crlf_split_across_reads_and_overflow_then_idle() -> None:
    f = Framer("auto", idle=0.05, max_length=8)
    assert f.feed(b"ABC\r", 0.0) == [Frame(b"ABC\r", "suffix")]
    assert f.feed(b"\nDEF\r\n", 0.01)[0].raw == b"DEF\r\n"  # the split LF is not a scan of its own
    frames = f.feed(b"0123456789ABCDEF", 0.02)
    assert [(x.raw, x.terminated_by) for x in frames] == [(b"01234567", "overflow")]
    assert f.flush(0.03) is None and f.flush(0.2) is None  # the rest was skipped, not kept
    assert f.feed(b"OK\t", 0.3)[0].raw == b"OK\t"
