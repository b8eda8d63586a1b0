"""Types evdev event streams the way a keyboard-wedge scanner does: for recordings in tests.

The keys come from the real XKB keymaps (``scripts/xkb.py``, libxkbcommon over xkeyboard-config),
not from the station's own tables, so a decoding test checks the station against XKB.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from gen_keymaps import PRINTABLE
from xkb import keymap

from station.edge.scanners.keymaps import EV_KEY, EV_SYN, KEYPAD, KEYS, SYN_REPORT
from station.edge.scanners.keys import Event

GS = "\x1d"
PLAIN, SHIFT, ALTGR, SHIFT_ALTGR = range(4)


@cache
def ways(layout: str) -> dict[str, list[tuple[int, int]]]:
    """Every (key, level) that types each character on ``layout``, plain ways first."""
    table = keymap(layout)
    assert table is not None, layout
    found: dict[str, list[tuple[int, int]]] = {}
    for level in range(4):  # what a scanner types with Shift and AltGr; it never sets Caps Lock
        for code in PRINTABLE:
            ch = table[code][level]
            if ch:
                found.setdefault(ch, []).append((code, level))
    return found


def type_text(
    text: str,
    layout: str = "us",
    gs: str = "ctrl",
    end: str = "enter",
    start: float = 1_700_000_000.0,
    gap: float = 0.002,
    way: int = 0,
) -> list[Event]:
    """Events for ``text`` typed on ``layout``. ``gs``: ctrl (Ctrl+]), alt (Alt+KP 0029), f12, drop.

    ``way`` picks, for each character, the n-th way XKB allows to type it (wrapping around).
    """
    reverse = ways(layout)
    events: list[Event] = []
    t = start

    def ev(ev_type: int, code: int, value: int) -> None:
        nonlocal t
        t += gap / 4
        sec = int(t)
        events.append((sec, round((t - sec) * 1e6), ev_type, code, value))

    def tap(code: int) -> None:
        ev(EV_KEY, code, 1)
        ev(EV_SYN, SYN_REPORT, 0)
        ev(EV_KEY, code, 0)
        ev(EV_SYN, SYN_REPORT, 0)

    def hold(codes: list[int], code: int) -> None:
        for c in codes:
            ev(EV_KEY, c, 1)
        tap(code)
        for c in reversed(codes):
            ev(EV_KEY, c, 0)

    for ch in text:
        if ch == GS:
            if gs == "ctrl":
                hold([KEYS["KEY_LEFTCTRL"]], KEYS["KEY_RIGHTBRACE"])
            elif gs == "alt":
                ev(EV_KEY, KEYS["KEY_LEFTALT"], 1)
                for d in "0029":
                    tap(next(c for c, v in KEYPAD.items() if v == d))
                ev(EV_KEY, KEYS["KEY_LEFTALT"], 0)
            elif gs == "f12":
                tap(KEYS["KEY_F12"])
            continue
        options = reverse[ch]
        code, level = options[way % len(options)]
        mods = [[], [KEYS["KEY_LEFTSHIFT"]], [KEYS["KEY_RIGHTALT"]], [KEYS["KEY_LEFTSHIFT"], KEYS["KEY_RIGHTALT"]]]
        hold(mods[level], code)
    if end == "enter":
        tap(KEYS["KEY_ENTER"])
    elif end == "tab":
        tap(KEYS["KEY_TAB"])
    return events


#: GS1 character set 82 (GS1 General Specifications figure 7.11-1), and the ']' of the AIM
#: symbology identifier (``]d2``) that scanners send before it.
SET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
SCANNER_CHARS = SET82 + "]"


def every_way(layout: str, text: str = SCANNER_CHARS) -> tuple[list[Event], list[str]]:
    """``text`` typed once per way XKB allows for its characters (scan n uses each character's
    n-th way), one scan each, ended by Enter: the recording and the scans it must decode to."""
    most = max(len(ways(layout)[ch]) for ch in text)
    events: list[Event] = []
    expected: list[str] = []
    for way in range(most):
        start = 1_700_000_000.0 + way  # a second apart: separate scans
        events += type_text(text, layout, start=start, way=way)
        expected.append(text + "\r")
    return events, expected
