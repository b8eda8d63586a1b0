"""Scanners: things that yield raw scans. The station never knows which kind it has.

Each scanner runs in its own thread and hands :class:`~station.events.Scan` values to a callback;
the station funnels them into one queue so one thread judges and records them in arrival order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import BinaryIO, Protocol

from station.events import Scan

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
