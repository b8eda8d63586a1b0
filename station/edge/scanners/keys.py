"""USB-HID keyboard-wedge scanners, the pure part: evdev key events back into the characters the
scanner meant (:class:`KeyDecoder`), and recordings of those events.

evdev reports physical keys, never characters: the host's keymap is not applied. So the scanner's
own keyboard setting decides what a key means, and the station must decode with that layout
(``us``, ``tr-q``, ``tr-f``, ``de``, ``fr``). A Turkish layout moves letters and punctuation
silently; decoding with the wrong one turns ``ABCDEF`` into ``UÇVEĞA`` (Turkish F) with no error.

GS has no key. Scanners send it as Ctrl+] (the key right of P), as Alt + numpad 0029 (the
Windows Alt-code habit), or as a function key set in their menus; all three become 0x1D here.

The decoder is pure (events and a clock in, frames out), so it is tested on recorded event streams
and replayed by ``station decode --hid-events``; ``station.edge.scanners.hid`` adds the device.

Recording format (``station trace --record``): JSON lines ``[sec, usec, type, code, value]``, one
input event each, as evdev reports them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator

from station.edge.scanners.framing import Frame
from station.edge.scanners.keymaps import (
    ALTGR_LAYOUTS,
    CONTROLS,
    CTRLS,
    ENDS,
    EV_KEY,
    EV_SYN,
    GS,
    KEY_DOWN,
    KEY_HOLD,
    KEYPAD,
    KEYS,
    LAYOUTS,
    SHIFTS,
    SILENT,
    SYN_DROPPED,
    SYN_REPORT,
    K,
)

log = logging.getLogger(__name__)


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
    without keys.

    Nothing is ever dropped silently. A key or combination the layout does not map (a dead key,
    AltGr on a key with no third level, F-keys) ends the scan as ``unmapped``; events lost by
    the kernel (``SYN_DROPPED``) make the scan around them one ``cut`` frame. The station refuses
    both with their own reasons, so a wrong serial is never read from a scan with a hole in it.
    """

    def __init__(self, layout: str = "us", gs_key: int | None = None, idle: float = 0.1, max_length: int = 512) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
        self.layout = layout
        self.keys = LAYOUTS[layout]
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
        self._last = float("-inf")  # no key yet
        self._skip_to_report = False
        self._overflow = False
        self._unmapped = ""
        self._cut = False

    def feed(self, ev_type: int, code: int, value: int, t: float) -> list[Frame]:
        """One input event at time ``t`` (seconds). Returns the scans it completes."""
        frames: list[Frame] = []
        if ev_type == EV_SYN:
            if code == SYN_DROPPED:
                log.warning("input events were dropped by the kernel: the scan around them is refused as cut")
                self.dropped += 1
                chars = self._chars
                self.reset()  # modifier state is unknown now
                self._chars, self._cut, self._last = chars, True, t
                self._skip_to_report = True
            elif code == SYN_REPORT:
                self._skip_to_report = False
            return frames
        if ev_type != EV_KEY or self._skip_to_report:
            return frames
        if t - self._last >= self.idle:
            if self._chars:
                frame = self._end("idle")
                if frame:
                    frames.append(frame)
            self._cut = False  # a drop long before this key cut nothing of this scan
        self._last = t
        down = value in (KEY_DOWN, KEY_HOLD)
        if code in SHIFTS:
            (self._shift.add if down else self._shift.discard)(code)
        elif code in CTRLS:
            (self._ctrl.add if down else self._ctrl.discard)(code)
        elif code == K["KEY_LEFTALT"] or (code == K["KEY_RIGHTALT"] and self.layout not in ALTGR_LAYOUTS):
            self._alt = down
            if not down and self._alt_digits:
                self._add(_alt_code(self._alt_digits))
                self._alt_digits = ""
        elif code == K["KEY_RIGHTALT"]:
            self._altgr = down  # AltGr: the third level of the Turkish, German and French layouts
        elif code == K["KEY_CAPSLOCK"]:
            if value == KEY_DOWN:
                self._caps = not self._caps
        elif code in SILENT:
            pass
        elif value == KEY_DOWN:
            frames.extend(self._key(code))
        return frames

    def _key(self, code: int) -> list[Frame]:
        if self._alt and code in KEYPAD and KEYPAD[code].isdigit():
            if len(self._alt_digits) <= ALT_CODE_DIGITS:  # bounded: a stuck Alt cannot grow it
                self._alt_digits += KEYPAD[code]
            return []
        if self.gs_key is not None and code == self.gs_key:
            self._add(GS)
            return []
        shifted = bool(self._shift)
        if self._ctrl:
            ch = CONTROLS.get((code, shifted), "")
            if ch in "\r\n\t" and ch:
                frame = self._end("suffix", ch)
                return [frame] if frame else []
            return self._type(ch, code, "Ctrl+")
        if code in ENDS and not self._altgr and not self._alt:
            frame = self._end("suffix", ENDS[code])
            return [frame] if frame else []
        if self._alt:
            return self._type("", code, "Alt+")
        if code in KEYPAD and not self._altgr:
            self._add(KEYPAD[code])
            return []
        levels = self.keys.get(code)
        if levels is None:
            return self._type("", code, "AltGr+" if self._altgr else "")
        if self._altgr:
            return self._type(levels[3] if shifted else levels[2], code, "Shift+AltGr+" if shifted else "AltGr+")
        level = (5 if shifted else 4) if self._caps else (1 if shifted else 0)  # XKB's own Caps Lock column
        return self._type(levels[level], code, ("Shift+" if shifted else "") + ("CapsLock+" if self._caps else ""))

    def _type(self, ch: str, code: int, combination: str) -> list[Frame]:
        """Add the character a key typed, or mark the scan as holding a key the layout cannot map."""
        if ch:
            self._add(ch)
        elif not self._unmapped:
            self._unmapped = f"{combination}{_key_name(code)}"
            log.warning("key %s types nothing on the %s layout: this scan will be refused", self._unmapped, self.layout)
            self._chars.append("\ufffd")  # a scan is never read around a hole
        return []

    def _add(self, ch: str) -> None:
        if len(self._chars) >= self.max_length:
            self._overflow = True
            return
        self._chars.append(ch)

    def _end(self, how: str, suffix: str = "") -> Frame | None:
        if not self._chars and not self._cut:
            return None
        text = "".join(self._chars) + suffix
        detail = ""
        if self._cut:
            how, detail = "cut", f"{self.dropped} kernel drop(s) on this device so far"
        elif self._unmapped:
            how, detail = "unmapped", f"{self._unmapped} on the {self.layout} layout"
        elif self._overflow:
            how = "overflow"
        self._chars = []
        self._overflow = False
        self._unmapped = ""
        self._cut = False
        return Frame(text.encode("utf-8"), how, detail)

    def flush(self, now: float) -> Frame | None:
        """End a scan without a suffix once no key came for ``idle`` seconds."""
        if now - self._last >= self.idle:
            if self._chars:
                return self._end("idle")
            self._cut = False
        return None


_NAMES = {code: name for name, code in KEYS.items()}


def _key_name(code: int) -> str:
    return _NAMES.get(code, f"key {code}").removeprefix("KEY_")


ALT_CODE_DIGITS = 5
"""Windows reads at most a few digits (0029, 0255); more is no character: the scan is refused."""


def _alt_code(digits: str) -> str:
    """Alt + numpad digits, as Windows reads them: a leading 0 means the ANSI code page. Too many
    digits give U+FFFD, which no reader accepts, so the scan is refused rather than misread."""
    if len(digits) > ALT_CODE_DIGITS:
        return "\ufffd"
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
