"""No unit unseen on a belt: a photo-eye tells the station a box passed; a box with no read is kicked off.

The eye sits at the scanner. Every box that breaks its beam should be read within ``window``
seconds either side of the edge (the scanner may fire a little before or after the beam breaks);
each read takes the oldest box waiting for one. A box whose window closes with no read is a
``no_read``: an event of its own, the ``no_read`` signal, and the reject arm timed from the moment
the box broke the beam (the arm's ``delay_ms`` counts from the scanner, where the eye is).

:class:`Presence` is a pure state machine fed edges and reads with a clock, like the framer and
the keyboard decoder; :class:`PhotoEye` is the gpiozero input that feeds it.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any


class Presence:
    """Boxes seen, reads taken, and the boxes left without one. Thread-safe: the eye's callback
    feeds :meth:`box` from gpiozero's thread, the scan loop calls :meth:`read` and :meth:`due`."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._boxes: deque[float] = deque()
        self._reads: deque[float] = deque()
        """Reads that came before their box broke the beam (the scanner fired first)."""
        self._missed: list[float] = []
        self._lock = threading.Lock()
        self.boxes = 0
        self.no_reads = 0

    def box(self, mono: float) -> None:
        """A box broke the beam at ``mono``."""
        with self._lock:
            self.boxes += 1
            while self._reads and self._reads[0] < mono - self.window:
                self._reads.popleft()  # a read too early for this box: a hand scan, a tote label read twice
            if self._reads:
                self._reads.popleft()  # read just before the beam broke: this box
            else:
                self._boxes.append(mono)

    def read(self, mono: float) -> None:
        """A scan (a box's code, or a tote's label) was read at ``mono``."""
        with self._lock:
            while self._boxes and self._boxes[0] < mono - self.window:
                self._missed.append(self._boxes.popleft())  # passed with no read: :meth:`due` reports it
            if self._boxes and self._boxes[0] <= mono + self.window:
                self._boxes.popleft()
            else:
                self._reads.append(mono)

    def due(self, now: float) -> list[float]:
        """Boxes whose window closed with no read: the times they broke the beam, oldest first."""
        with self._lock:
            out, self._missed = self._missed, []
            while self._boxes and self._boxes[0] + self.window < now:
                out.append(self._boxes.popleft())
            while self._reads and self._reads[0] + 2 * self.window < now:
                self._reads.popleft()
        self.no_reads += len(out)
        return out

    @property
    def waiting(self) -> int:
        return len(self._boxes)


class PhotoEye:
    """A photo-eye (through an opto-isolated input) on a GPIO pin: each beam break is a box."""

    def __init__(self, pin: int, presence: Presence, clock: Any, active_high: bool = True, pin_factory: Any = None):
        from gpiozero import DigitalInputDevice

        self.presence = presence
        self.clock = clock
        self.device = DigitalInputDevice(pin, pull_up=None, active_state=active_high, pin_factory=pin_factory)
        self.device.when_activated = self._broken

    def _broken(self) -> None:
        self.presence.box(self.clock())

    def close(self) -> None:
        self.device.close()
