"""The reject arm of a conveyor line: a pusher or diverter fired when a refused box reaches it.

The box is scanned upstream; it reaches the arm ``delay`` seconds later on a belt of constant
speed. So a refusal schedules a pulse at *scan time* + delay on the monotonic clock, not at the
time the verdict was ready: a slow disk does not move the pulse along the belt.

Fail-safe (``mode``), the answer to "what does the line do when the daemon is down or unsure":

``pulse``
    The output is off; a reject energises it for ``pulse`` seconds. Wiring is simple, but when
    the daemon or the Pi is down nothing is rejected: pair it with a line interlock.
``hold_to_pass``
    The output is on while the station is up and sure ("pass"); a reject drops it for ``pulse``
    seconds. A dead daemon, a crashed Pi, a lost power rail or a cut wire all leave the output
    off, so the diverter sends every box to the reject lane. The fail-safe choice.

In both modes the station rejects whatever it is unsure about: unreadable scans, storage errors.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)


class RejectArm:
    def __init__(
        self,
        pin: int,
        delay: float,
        pulse: float,
        mode: str = "pulse",
        active_high: bool = True,
        pin_factory: Any = None,
    ) -> None:
        from gpiozero import DigitalOutputDevice

        if mode not in ("pulse", "hold_to_pass"):
            raise ValueError(f"unknown reject mode {mode!r}")
        self.delay = delay
        self.pulse = pulse
        self.mode = mode
        self.output = DigitalOutputDevice(pin, active_high=active_high, initial_value=False, pin_factory=pin_factory)
        self._edges: list[tuple[float, int]] = []  # (monotonic time, +1 start / -1 end of a reject)
        self._active = 0
        self._cond = threading.Condition()
        self._closing = False
        self.fired = 0
        self._set(rejecting=False)
        self._thread = threading.Thread(target=self._run, name="reject-arm", daemon=True)
        self._thread.start()

    def _set(self, rejecting: bool) -> None:
        on = rejecting if self.mode == "pulse" else not rejecting
        self.output.value = on

    def reject(self, scanned_at: float) -> None:
        """Reject the box scanned at monotonic time ``scanned_at`` when it reaches the arm."""
        start = scanned_at + self.delay
        late = time.monotonic() - start
        if late > 0:
            log.warning("reject %.0f ms late: the verdict came after the box reached the arm", late * 1000)
        with self._cond:
            heapq.heappush(self._edges, (start, 1))
            heapq.heappush(self._edges, (start + self.pulse, -1))
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closing:
                if not self._edges:
                    self._cond.wait()
                    continue
                at, step = self._edges[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._edges)
                was = self._active > 0
                self._active += step
                now = self._active > 0
                if now != was:  # overlapping rejects make one longer pulse
                    self._set(rejecting=now)
                    if now:
                        self.fired += 1

    def close(self) -> None:
        """Off: in ``hold_to_pass`` that diverts every box, which is what a stopped station should do."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(2)
        self.output.off()
        self.output.close()
