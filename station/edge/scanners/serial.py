"""Scanners: things that yield raw scans. The station never knows which kind it has.

Each scanner runs in its own thread and hands :class:`~station.edge.events.Scan` values to a callback;
the station funnels them into one queue so one thread judges and records them in arrival order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from station.edge.events import Scan
from station.edge.scanners.framing import Framer

log = logging.getLogger(__name__)

Emit = Callable[[Scan], None]


class Scanner(Protocol):
    name: str

    @property
    def connected(self) -> bool: ...

    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Read scans until ``stop`` is set (or the input ends) and pass each to ``emit``."""
        ...


class StreamScanner:
    """Scans from a byte stream, one per line: ``--simulate`` reads stdin this way.

    A line ends at LF; a CR before it and every GS byte stay in the scan for the reader, which
    knows what a suffix is. Lines longer than ``max_length`` are cut there (and the rest of the
    line dropped), so a stuck input cannot grow memory without bound.
    """

    def __init__(self, stream: BinaryIO, name: str = "stdin", max_length: int = 4096) -> None:
        self.stream = stream
        self.name = name
        self.max_length = max_length
        self._connected = True

    @property
    def connected(self) -> bool:
        return self._connected

    def run(self, emit: Emit, stop: threading.Event) -> None:
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = -1
        if fd >= 0:
            self._run_fd(fd, emit, stop)
        else:
            self._run_stream(emit, stop)

    def _run_fd(self, fd: int, emit: Emit, stop: threading.Event) -> None:
        """Straight from the file descriptor, waiting with select: no buffered reader is ever left
        holding its lock in a thread, so SIGTERM ends the process cleanly (a blocked
        ``sys.stdin.buffer.readline`` made the interpreter abort at exit)."""
        pending = b""
        dropping = False
        try:
            while not stop.is_set():
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if dropping:
                        dropping = False  # the rest of an over-long line ends here
                        continue
                    if len(line) > self.max_length:
                        log.warning("%s: line longer than %d bytes cut", self.name, self.max_length)
                    emit(Scan(line[: self.max_length], self.name, time.time(), time.monotonic()))
                if len(pending) > self.max_length:
                    if not dropping:
                        log.warning("%s: line longer than %d bytes cut", self.name, self.max_length)
                        emit(Scan(pending[: self.max_length], self.name, time.time(), time.monotonic()))
                    pending, dropping = b"", True
            if pending and not dropping and not stop.is_set():
                emit(Scan(pending[: self.max_length], self.name, time.time(), time.monotonic()))
        finally:
            self._connected = False

    def _run_stream(self, emit: Emit, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                line = self.stream.readline(self.max_length + 1)
                if not line:
                    break
                if not line.endswith(b"\n"):
                    if len(line) > self.max_length:
                        log.warning("%s: line longer than %d bytes cut", self.name, self.max_length)
                        while (rest := self.stream.readline(65536)) and not rest.endswith(b"\n"):
                            pass
                    line = line[: self.max_length]
                else:
                    line = line[:-1]
                emit(Scan(line, self.name, time.time(), time.monotonic()))
        finally:
            self._connected = False


class Backoff:
    """Growing waits between reconnect attempts: 0.5 s, x1.5 each time, at most ``cap``."""

    def __init__(self, first: float = 0.5, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self.delay = first

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.cap, self.delay * 1.5)
        return delay

    def reset(self) -> None:
        self.delay = self.first


class SerialScanner:
    """A USB-CDC or RS-232 scanner through pyserial.

    Opened exclusively (a second reader would steal bytes), framed by suffix or idle gap, and
    reopened with backoff when the port disappears and comes back (unplug, USB reset).
    """

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        suffix: str = "auto",
        idle_ms: int = 50,
        max_length: int = 512,
        name: str | None = None,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.name = name or port
        self.framer = Framer(suffix, idle_ms / 1000, max_length)
        self._connected = False
        self.backoff = Backoff()

    @property
    def connected(self) -> bool:
        return self._connected

    def _open(self) -> Any:
        import serial

        return serial.Serial(self.port, self.baudrate, timeout=min(0.02, self.framer.idle / 2), exclusive=True)

    def run(self, emit: Emit, stop: threading.Event) -> None:
        import serial

        while not stop.is_set():
            try:
                port = self._open()
            except (serial.SerialException, OSError) as e:
                delay = self.backoff.next()
                if self._connected or delay == self.backoff.first:
                    log.warning("%s: cannot open (%s); retrying", self.name, e)
                self._connected = False
                stop.wait(delay)
                continue
            log.info("%s: open", self.name)
            self._connected = True
            self.backoff.reset()
            try:
                self._read(port, emit, stop)
            except (serial.SerialException, OSError) as e:
                log.warning("%s: lost (%s); a partial scan is dropped", self.name, e)
            finally:
                self._connected = False
                self.framer.reset()
                with contextlib.suppress(Exception):
                    port.close()

    def _read(self, port: Any, emit: Emit, stop: threading.Event) -> None:
        while not stop.is_set():
            data = port.read(max(1, port.in_waiting))
            now = time.monotonic()
            frames = self.framer.feed(data, now) if data else []
            if not data:
                frame = self.framer.flush(now)
                frames = [frame] if frame else []
            for frame in frames:
                if frame.terminated_by == "overflow":
                    log.warning("%s: more than %d bytes without a suffix; cut", self.name, self.framer.max_length)
                emit(Scan(frame.raw, self.name, time.time(), now, frame.terminated_by))
