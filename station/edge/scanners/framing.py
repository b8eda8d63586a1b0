"""Cutting a scanner's byte stream into scans: by suffix, by idle gap, never without bound.

pyserial's ``inter_byte_timeout`` is unreliable on Linux (termios VTIME counts tenths of a
second), so the idle gap is measured here on a monotonic clock. Works on bytes: GS (0x1D) is data.
"""

from __future__ import annotations

from dataclasses import dataclass

SUFFIXES: dict[str, tuple[bytes, ...]] = {
    "auto": (b"\r\n", b"\r", b"\n", b"\t"),
    "cr": (b"\r",),
    "lf": (b"\n",),
    "crlf": (b"\r\n",),
    "tab": (b"\t",),
    "none": (),
}


@dataclass(frozen=True, slots=True)
class Frame:
    """One scan's bytes as received (suffix included) and what ended it."""

    raw: bytes
    terminated_by: str
    """``suffix``, ``idle`` (no suffix came in time) or ``overflow`` (cut at ``max_length``); from a
    keyboard wedge also ``unmapped`` and ``cut`` (station.edge.scanners.keys)."""
    detail: str = ""
    """What broke a broken frame, in words for its refusal (``AltGr+LEFTBRACE on the tr-q layout``)."""


class Framer:
    """Feed it bytes as they arrive; it returns complete scans.

    >>> f = Framer("auto", idle=0.05, max_length=64)
    >>> f.feed(b"0108699536090122\\r", now=0.0)
    [Frame(raw=b'0108699536090122\\r', terminated_by='suffix', detail='')]
    >>> f.feed(b"0108", now=1.0), f.flush(now=1.2)
    ([], Frame(raw=b'0108', terminated_by='idle', detail=''))
    """

    def __init__(self, suffix: str = "auto", idle: float = 0.05, max_length: int = 512) -> None:
        self.suffixes = SUFFIXES[suffix]
        self.idle = idle
        self.max_length = max_length
        self._buf = bytearray()
        self._last = float("-inf")  # no byte yet: the first one comes after a gap
        self._skipping = False  # after an overflow: drop bytes until the next suffix or gap
        self._pending_lf = False  # "auto": a CR just ended a scan; an LF right after belongs to it

    def feed(self, data: bytes, now: float) -> list[Frame]:
        frames: list[Frame] = []
        frame = self.flush(now)  # a gap ends a scan, and the skipping after an overflow
        if frame is not None:
            frames.append(frame)
        self._last = now
        i = 0
        if self._pending_lf:
            self._pending_lf = False
            if data[:1] == b"\n":  # the LF of a CR LF split across two reads
                i = 1
        while True:
            end = self._find_suffix(data, i)
            if end is None:
                self._take(data[i:], frames)
                return frames
            stop, length = end
            self._take(data[i:stop], frames)
            suffix = data[stop : stop + length]
            if self._skipping:
                self._skipping = False
                self._buf.clear()
            else:
                frames.append(Frame(bytes(self._buf) + suffix, "suffix"))
                self._buf.clear()
            # a CR that ends the read may be the first half of a CR LF: its LF is in the next read
            self._pending_lf = suffix == b"\r" and stop + length == len(data) and b"\r\n" in self.suffixes
            i = stop + length

    def _find_suffix(self, data: bytes, start: int) -> tuple[int, int] | None:
        """The first suffix from ``start``: (position, length). Suffixes are listed longest first,
        so at one position CR LF wins over CR."""
        best: tuple[int, int] | None = None
        for s in self.suffixes:
            at = data.find(s, start)
            if at >= 0 and (best is None or at < best[0]):
                best = (at, len(s))
        return best

    def _take(self, chunk: bytes, frames: list[Frame]) -> None:
        if self._skipping:
            return
        room = self.max_length - len(self._buf)
        if len(chunk) <= room:
            self._buf += chunk
            return
        self._buf += chunk[:room]
        frames.append(Frame(bytes(self._buf), "overflow"))
        self._buf.clear()
        self._skipping = True

    def flush(self, now: float) -> Frame | None:
        """End a scan that had no suffix once the line has been idle for ``idle`` seconds."""
        if now - self._last < self.idle:
            return None
        self._skipping = False
        self._pending_lf = False
        if not self._buf:
            return None
        frame = Frame(bytes(self._buf), "idle")
        self._buf.clear()
        return frame

    def reset(self) -> None:
        """Forget a partial scan (the port went away mid-scan)."""
        self._buf.clear()
        self._skipping = False
        self._pending_lf = False
