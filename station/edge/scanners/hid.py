"""USB-HID keyboard-wedge scanners: the device. Grabbed, read, found again when re-plugged; its key
events go to the pure decoder, ``station.edge.scanners.keys``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from station.edge.events import Scan
from station.edge.scanners.framing import Frame
from station.edge.scanners.keymaps import EV_KEY, K
from station.edge.scanners.keys import Event, KeyDecoder, key_code

log = logging.getLogger(__name__)


# -- the device --------------------------------------------------------------------------------


class InputDevice(Protocol):
    path: str
    name: str

    def fileno(self) -> int: ...

    def read(self) -> Iterable[Any]: ...

    def grab(self) -> None: ...

    def ungrab(self) -> None: ...

    def close(self) -> None: ...


def find_device(spec: str) -> Any | None:
    """The evdev device a spec names: a path (``/dev/input/by-id/...``), ``usb:VVVV:PPPP`` or a name.

    Of several nodes a scanner creates, the one with letter and Enter keys is taken.
    """
    import evdev

    if spec.startswith("/"):
        return evdev.InputDevice(os.path.realpath(spec)) if os.path.exists(spec) else None
    want_usb = spec.lower().removeprefix("usb:").split(":") if spec.lower().startswith("usb:") else None
    for path in evdev.list_devices():
        try:
            dev = evdev.InputDevice(path)
        except OSError:
            continue
        keys = dev.capabilities().get(EV_KEY, [])
        matches = (
            f"{dev.info.vendor:04x}" == want_usb[0] and f"{dev.info.product:04x}" == want_usb[1]
            if want_usb
            else dev.name == spec
        )
        if matches and K["KEY_A"] in keys and K["KEY_ENTER"] in keys:
            return dev
        dev.close()
    return None


class HidScanner:
    """A keyboard-wedge scanner through evdev: grabbed, decoded, found again when re-plugged."""

    def __init__(
        self,
        device: str,
        layout: str = "us",
        gs_key: str = "",
        idle_ms: int = 100,
        max_length: int = 512,
        name: str | None = None,
        finder: Callable[[str], InputDevice | None] = find_device,
    ) -> None:
        self.device = device
        self.name = name or device
        self.decoder = KeyDecoder(layout, key_code(gs_key) if gs_key else None, idle_ms / 1000, max_length)
        self.finder = finder
        self._connected = False
        self.retry = 1.0
        self.on_event: Callable[[Event], None] | None = None
        """Called with every input event as read (``station trace --record``)."""

    @property
    def connected(self) -> bool:
        return self._connected

    def run(self, emit: Callable[[Scan], None], stop: threading.Event) -> None:
        announced = False
        while not stop.is_set():
            try:
                dev = self.finder(self.device)
            except OSError as e:
                dev = None
                log.debug("%s: %s", self.name, e)
            if dev is None:
                if not announced:
                    log.warning("%s: scanner not found; waiting for it", self.name)
                    announced = True
                stop.wait(self.retry)
                continue
            announced = False
            try:
                dev.grab()  # keystrokes reach nobody else: not a console, not a login prompt
            except OSError as e:
                log.error("%s: cannot grab %s (%s); is another program reading it?", self.name, dev.path, e)
                dev.close()
                stop.wait(self.retry)
                continue
            log.info("%s: reading %s (%s), layout %s", self.name, dev.path, dev.name, self.decoder.layout)
            self._connected = True
            try:
                self._read(dev, emit, stop)
            except OSError as e:
                if e.errno not in (errno.ENODEV, errno.EIO, errno.EBADF):
                    log.exception("%s: read failed", self.name)
                log.warning("%s: scanner gone (%s); a partial scan is dropped", self.name, e.strerror or e)
            finally:
                self._connected = False
                self.decoder.reset()
                with contextlib.suppress(OSError):
                    dev.ungrab()
                with contextlib.suppress(OSError):
                    dev.close()

    def _read(self, dev: InputDevice, emit: Callable[[Scan], None], stop: threading.Event) -> None:
        while not stop.is_set():
            ready, _, _ = select.select([dev], [], [], min(0.05, self.decoder.idle / 2))
            frames: list[Frame] = []
            if ready:
                for ev in dev.read():
                    if self.on_event is not None:
                        self.on_event((ev.sec, ev.usec, ev.type, ev.code, ev.value))
                    frames += self.decoder.feed(ev.type, ev.code, ev.value, ev.sec + ev.usec / 1e6)
            else:
                frame = self.decoder.flush(time.time())
                if frame:
                    frames.append(frame)
            for frame in frames:
                emit(Scan(frame.raw, self.name, time.time(), time.monotonic(), frame.terminated_by, frame.detail))
