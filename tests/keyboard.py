"""Makes evdev event streams the way a keyboard-wedge scanner types: for recordings in tests."""

from __future__ import annotations

from station.edge.scanners.hid import Event
from station.edge.scanners.keymaps import EV_KEY, EV_SYN, KEYPAD, KEYS, LAYOUTS, SYN_REPORT, THIRD_LEVEL

GS = "\x1d"


def type_text(
    text: str,
    layout: str = "us",
    gs: str = "ctrl",
    end: str = "enter",
    start: float = 1_700_000_000.0,
    gap: float = 0.002,
) -> list[Event]:
    """Events for ``text`` typed on ``layout``. ``gs``: ctrl (Ctrl+]), alt (Alt+KP 0029), f12, drop."""
    reverse: dict[str, tuple[int, bool]] = {}
    for code, (low, high) in LAYOUTS[layout].items():
        reverse.setdefault(low, (code, False))
        reverse.setdefault(high, (code, True))
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

    for ch in text:
        if ch == GS:
            if gs == "ctrl":
                ev(EV_KEY, KEYS["KEY_LEFTCTRL"], 1)
                tap(KEYS["KEY_RIGHTBRACE"])
                ev(EV_KEY, KEYS["KEY_LEFTCTRL"], 0)
            elif gs == "alt":
                ev(EV_KEY, KEYS["KEY_LEFTALT"], 1)
                for d in "0029":
                    tap(next(c for c, v in KEYPAD.items() if v == d))
                ev(EV_KEY, KEYS["KEY_LEFTALT"], 0)
            elif gs == "f12":
                tap(KEYS["KEY_F12"])
            continue
        if ch not in reverse:
            third = {v: c for c, v in THIRD_LEVEL[layout].items()}
            ev(EV_KEY, KEYS["KEY_RIGHTALT"], 1)
            tap(third[ch])
            ev(EV_KEY, KEYS["KEY_RIGHTALT"], 0)
            continue
        code, shifted = reverse[ch]
        if shifted:
            ev(EV_KEY, KEYS["KEY_LEFTSHIFT"], 1)
        tap(code)
        if shifted:
            ev(EV_KEY, KEYS["KEY_LEFTSHIFT"], 0)
    if end == "enter":
        tap(KEYS["KEY_ENTER"])
    elif end == "tab":
        tap(KEYS["KEY_TAB"])
    return events
