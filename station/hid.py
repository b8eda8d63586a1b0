"""USB-HID keyboard-wedge scanners: evdev key events back into the characters the scanner meant.

evdev reports physical keys, never characters: the host's keymap is not applied. So the scanner's
own keyboard setting decides what a key means, and the station must decode with that layout
(``us``, ``tr-q``, ``tr-f``). A Turkish layout moves letters and punctuation silently; decoding
with the wrong one turns ``ABCDEF`` into ``UÇVEĞA`` (Turkish F) with no error at all.

GS has no key. Scanners send it as Ctrl+] (the key right of P), as Alt + numpad 0029 (the
Windows Alt-code habit), or as a function key set in their menus; all three become 0x1D here.

The decoder is pure (events in, frames out), so it is tested on recorded event streams and
replayed by ``station decode --hid-events``. :class:`HidScanner` adds the device: grab, hotplug.

Recording format (``station trace --record``): JSON lines ``[sec, usec, type, code, value]``, one
input event each, as evdev reports them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from station.events import Scan
from station.framing import Frame

log = logging.getLogger(__name__)

# Linux input-event-codes.h: stable kernel ABI, spelled out so decoding needs no evdev import.
EV_SYN, EV_KEY = 0, 1
SYN_REPORT, SYN_DROPPED = 0, 3
KEY_UP, KEY_DOWN, KEY_HOLD = 0, 1, 2

KEYS: dict[str, int] = {
    "KEY_1": 2,
    "KEY_2": 3,
    "KEY_3": 4,
    "KEY_4": 5,
    "KEY_5": 6,
    "KEY_6": 7,
    "KEY_7": 8,
    "KEY_8": 9,
    "KEY_9": 10,
    "KEY_0": 11,
    "KEY_MINUS": 12,
    "KEY_EQUAL": 13,
    "KEY_TAB": 15,
    "KEY_Q": 16,
    "KEY_W": 17,
    "KEY_E": 18,
    "KEY_R": 19,
    "KEY_T": 20,
    "KEY_Y": 21,
    "KEY_U": 22,
    "KEY_I": 23,
    "KEY_O": 24,
    "KEY_P": 25,
    "KEY_LEFTBRACE": 26,
    "KEY_RIGHTBRACE": 27,
    "KEY_ENTER": 28,
    "KEY_LEFTCTRL": 29,
    "KEY_A": 30,
    "KEY_S": 31,
    "KEY_D": 32,
    "KEY_F": 33,
    "KEY_G": 34,
    "KEY_H": 35,
    "KEY_J": 36,
    "KEY_K": 37,
    "KEY_L": 38,
    "KEY_SEMICOLON": 39,
    "KEY_APOSTROPHE": 40,
    "KEY_GRAVE": 41,
    "KEY_LEFTSHIFT": 42,
    "KEY_BACKSLASH": 43,
    "KEY_Z": 44,
    "KEY_X": 45,
    "KEY_C": 46,
    "KEY_V": 47,
    "KEY_B": 48,
    "KEY_N": 49,
    "KEY_M": 50,
    "KEY_COMMA": 51,
    "KEY_DOT": 52,
    "KEY_SLASH": 53,
    "KEY_RIGHTSHIFT": 54,
    "KEY_KPASTERISK": 55,
    "KEY_LEFTALT": 56,
    "KEY_SPACE": 57,
    "KEY_CAPSLOCK": 58,
    "KEY_F1": 59,
    "KEY_F2": 60,
    "KEY_F3": 61,
    "KEY_F4": 62,
    "KEY_F5": 63,
    "KEY_F6": 64,
    "KEY_F7": 65,
    "KEY_F8": 66,
    "KEY_F9": 67,
    "KEY_F10": 68,
    "KEY_NUMLOCK": 69,
    "KEY_KP7": 71,
    "KEY_KP8": 72,
    "KEY_KP9": 73,
    "KEY_KPMINUS": 74,
    "KEY_KP4": 75,
    "KEY_KP5": 76,
    "KEY_KP6": 77,
    "KEY_KPPLUS": 78,
    "KEY_KP1": 79,
    "KEY_KP2": 80,
    "KEY_KP3": 81,
    "KEY_KP0": 82,
    "KEY_KPDOT": 83,
    "KEY_102ND": 86,
    "KEY_F11": 87,
    "KEY_F12": 88,
    "KEY_KPENTER": 96,
    "KEY_RIGHTCTRL": 97,
    "KEY_KPSLASH": 98,
    "KEY_RIGHTALT": 100,
}
K = KEYS

# Printable keys as (unshifted, shifted), in key order 1..0 - =, Q..], A..\, Z../, 102nd, space.
_ROWS = [
    "KEY_GRAVE",
    "KEY_1",
    "KEY_2",
    "KEY_3",
    "KEY_4",
    "KEY_5",
    "KEY_6",
    "KEY_7",
    "KEY_8",
    "KEY_9",
    "KEY_0",
    "KEY_MINUS",
    "KEY_EQUAL",
    "KEY_Q",
    "KEY_W",
    "KEY_E",
    "KEY_R",
    "KEY_T",
    "KEY_Y",
    "KEY_U",
    "KEY_I",
    "KEY_O",
    "KEY_P",
    "KEY_LEFTBRACE",
    "KEY_RIGHTBRACE",
    "KEY_A",
    "KEY_S",
    "KEY_D",
    "KEY_F",
    "KEY_G",
    "KEY_H",
    "KEY_J",
    "KEY_K",
    "KEY_L",
    "KEY_SEMICOLON",
    "KEY_APOSTROPHE",
    "KEY_BACKSLASH",
    "KEY_Z",
    "KEY_X",
    "KEY_C",
    "KEY_V",
    "KEY_B",
    "KEY_N",
    "KEY_M",
    "KEY_COMMA",
    "KEY_DOT",
    "KEY_SLASH",
    "KEY_102ND",
    "KEY_SPACE",
]


def _layout(unshifted: str, shifted: str) -> dict[int, tuple[str, str]]:
    assert len(unshifted) == len(shifted) == len(_ROWS), (len(unshifted), len(shifted))
    return {K[name]: (a, b) for name, a, b in zip(_ROWS, unshifted, shifted, strict=True)}


#: Keyboard layouts, from xkeyboard-config ``symbols/us`` and ``symbols/tr`` (basic = Q, f = F).
LAYOUTS: dict[str, dict[int, tuple[str, str]]] = {
    "us": _layout(
        "`1234567890-=qwertyuiop[]asdfghjkl;'\\zxcvbnm,./\\ ",
        '~!@#$%^&*()_+QWERTYUIOP{}ASDFGHJKL:"|ZXCVBNM<>?| ',
    ),
    "tr-q": _layout(
        '"1234567890*-qwertyuıopğüasdfghjklşi,zxcvbnmöç.< ',
        "é!'^+%&/()=?_QWERTYUIOPĞÜASDFGHJKLŞİ;ZXCVBNMÖÇ:> ",
    ),
    "tr-f": _layout(
        "+1234567890/-fgğıodrnhpqwuieaütkmlyşxjövcçzsb.,< ",
        "*!\"^$%&'()=?_FGĞIODRNHPQWUİEAÜTKMLYŞXJÖVCÇZSB:;> ",
    ),
}

#: Third level (AltGr) characters: Turkish layouts reach ``[ ] { } # $ @ \\ |`` only this way; the
#: ``]`` of a ``]d2`` symbology identifier among them.
THIRD_LEVEL: dict[str, dict[int, str]] = {
    "us": {},
    "tr-q": {
        K["KEY_7"]: "{",
        K["KEY_8"]: "[",
        K["KEY_9"]: "]",
        K["KEY_0"]: "}",
        K["KEY_3"]: "#",
        K["KEY_4"]: "$",
        K["KEY_Q"]: "@",
        K["KEY_MINUS"]: "\\",
        K["KEY_EQUAL"]: "|",
        K["KEY_102ND"]: "|",
    },
    "tr-f": {
        K["KEY_7"]: "{",
        K["KEY_8"]: "[",
        K["KEY_9"]: "]",
        K["KEY_0"]: "}",
        K["KEY_3"]: "#",
        K["KEY_Q"]: "@",
        K["KEY_MINUS"]: "\\",
        K["KEY_EQUAL"]: "|",
        K["KEY_102ND"]: "|",
    },
}

KEYPAD = {
    K["KEY_KP0"]: "0",
    K["KEY_KP1"]: "1",
    K["KEY_KP2"]: "2",
    K["KEY_KP3"]: "3",
    K["KEY_KP4"]: "4",
    K["KEY_KP5"]: "5",
    K["KEY_KP6"]: "6",
    K["KEY_KP7"]: "7",
    K["KEY_KP8"]: "8",
    K["KEY_KP9"]: "9",
    K["KEY_KPDOT"]: ".",
    K["KEY_KPMINUS"]: "-",
    K["KEY_KPPLUS"]: "+",
    K["KEY_KPASTERISK"]: "*",
    K["KEY_KPSLASH"]: "/",
}
SHIFTS = {K["KEY_LEFTSHIFT"], K["KEY_RIGHTSHIFT"]}
CTRLS = {K["KEY_LEFTCTRL"], K["KEY_RIGHTCTRL"]}
ENDS = {K["KEY_ENTER"]: "\r", K["KEY_KPENTER"]: "\r", K["KEY_TAB"]: "\t"}
GS = "\x1d"


def key_code(name: str) -> int:
    """``KEY_F12`` or ``88`` to a key code."""
    if name.isdigit():
        return int(name)
    if name not in KEYS:
        raise ValueError(f"unknown key {name!r}")
    return KEYS[name]


class KeyDecoder:
    """Key events to scans. One per scanner: shift, caps, Ctrl and Alt state are per device.

    Characters are emitted on key-down; modifiers follow both press and release. A scan ends at
    Enter or Tab (kept as ``\\r``/``\\t``, a suffix the reader knows) or after ``idle`` seconds
    without keys. ``SYN_DROPPED`` (the kernel lost events) throws the partial scan away.
    """

    def __init__(self, layout: str = "us", gs_key: int | None = None, idle: float = 0.1, max_length: int = 512) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
        self.layout = layout
        self.keys = LAYOUTS[layout]
        self.third = THIRD_LEVEL[layout]
        self.gs_key = gs_key
        self.idle = idle
        self.max_length = max_length
        self.dropped = 0
        self.reset()

    def reset(self) -> None:
        """Forget the partial scan and every modifier (device gone, events dropped)."""
        self._chars: list[str] = []
        self._shift: set[int] = set()
        self._ctrl: set[int] = set()
        self._alt = False
        self._altgr = False
        self._alt_digits = ""
        self._caps = False
        self._last = 0.0
        self._skip_to_report = False
        self._overflow = False

    def feed(self, ev_type: int, code: int, value: int, t: float) -> list[Frame]:
        """One input event at time ``t`` (seconds). Returns the scans it completes."""
        frames: list[Frame] = []
        if ev_type == EV_SYN:
            if code == SYN_DROPPED:
                if self._chars:
                    log.warning("input events were dropped by the kernel: partial scan discarded")
                self.dropped += 1
                self.reset()
                self._skip_to_report = True
            elif code == SYN_REPORT:
                self._skip_to_report = False
            return frames
        if ev_type != EV_KEY or self._skip_to_report:
            return frames
        if self._chars and t - self._last > self.idle:
            frame = self._end("idle")
            if frame:
                frames.append(frame)
        self._last = t
        down = value in (KEY_DOWN, KEY_HOLD)
        if code in SHIFTS:
            (self._shift.add if down else self._shift.discard)(code)
        elif code in CTRLS:
            (self._ctrl.add if down else self._ctrl.discard)(code)
        elif code == K["KEY_LEFTALT"] or (code == K["KEY_RIGHTALT"] and self.layout == "us"):
            self._alt = down
            if not down and self._alt_digits:
                self._add(_alt_code(self._alt_digits))
                self._alt_digits = ""
        elif code == K["KEY_RIGHTALT"]:
            self._altgr = down  # AltGr: the third level of a Turkish layout
        elif code == K["KEY_CAPSLOCK"]:
            if value == KEY_DOWN:
                self._caps = not self._caps
        elif value == KEY_DOWN:
            frames.extend(self._key(code))
        return frames

    def _key(self, code: int) -> list[Frame]:
        if self._alt and code in KEYPAD and KEYPAD[code].isdigit():
            self._alt_digits += KEYPAD[code]
            return []
        if self.gs_key is not None and code == self.gs_key:
            self._add(GS)
            return []
        if self._ctrl:
            if code == K["KEY_RIGHTBRACE"]:
                self._add(GS)
            return []  # other Ctrl combinations carry no data
        if code in ENDS:
            frame = self._end("suffix", ENDS[code])
            return [frame] if frame else []
        if self._altgr:
            if code in self.third:
                self._add(self.third[code])
            return []
        if self._alt:
            return []
        if code in KEYPAD:
            self._add(KEYPAD[code])
        elif code in self.keys:
            low, high = self.keys[code]
            shifted = bool(self._shift)
            if self._caps and low.isalpha():
                shifted = not shifted
            self._add(high if shifted else low)
        return []

    def _add(self, ch: str) -> None:
        if len(self._chars) >= self.max_length:
            self._overflow = True
            return
        self._chars.append(ch)

    def _end(self, how: str, suffix: str = "") -> Frame | None:
        if not self._chars:
            return None
        text = "".join(self._chars) + suffix
        overflow = self._overflow
        self._chars = []
        self._overflow = False
        return Frame(text.encode("utf-8"), "overflow" if overflow else how)

    def flush(self, now: float) -> Frame | None:
        """End a scan without a suffix once no key came for ``idle`` seconds."""
        if self._chars and now - self._last > self.idle:
            return self._end("idle")
        return None


def _alt_code(digits: str) -> str:
    """Alt + numpad digits, as Windows reads them: a leading 0 means the ANSI code page."""
    n = int(digits)
    if n < 128:
        return chr(n)
    encoding = "cp1252" if digits.startswith("0") else "cp437"
    return bytes([n % 256]).decode(encoding, "replace")


# -- recordings --------------------------------------------------------------------------------

Event = tuple[int, int, int, int, int]
"""(sec, usec, type, code, value): one input event, as evdev reports it and recordings store it."""


def read_recording(lines: Iterable[str]) -> Iterator[Event]:
    for no, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            sec, usec, ev_type, code, value = json.loads(line)
        except (ValueError, TypeError):
            raise ValueError(f"line {no}: not [sec, usec, type, code, value]: {line[:60]!r}") from None
        yield int(sec), int(usec), int(ev_type), int(code), int(value)


def replay(events: Iterable[Event], decoder: KeyDecoder) -> Iterator[Frame]:
    """Decode a recording: the same decoder the live scanner uses, on the recorded timestamps."""
    t = 0.0
    for sec, usec, ev_type, code, value in events:
        t = sec + usec / 1e6
        yield from decoder.feed(ev_type, code, value, t)
    frame = decoder.flush(t + decoder.idle + 1)
    if frame:
        yield frame


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
                emit(Scan(frame.raw, self.name, time.time(), time.monotonic(), frame.terminated_by))
