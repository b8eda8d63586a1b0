"""Keyboard layouts as data: which character each key gives a USB-HID scanner, per layout.

evdev reports physical keys; these tables say what the scanner meant by them. Key codes are the
kernel's (input-event-codes.h, a stable ABI), spelled out so that decoding needs no evdev import.
"""

from __future__ import annotations

from station.edge.scanners.layouts import ALTGR_LAYOUTS
from station.edge.scanners.layouts import LAYOUTS as _LAYOUTS

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

#: Per layout, generated from the real XKB data (``scripts/gen_keymaps.py``): evdev key code ->
#: (plain, Shift, AltGr, Shift+AltGr, Caps Lock, Caps Lock+Shift) characters, '' where the level
#: types nothing.
LAYOUTS = _LAYOUTS
__all__ = ["ALTGR_LAYOUTS", "LAYOUTS"]

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
#: Keys that type nothing and change no level a scanner uses: ignored, never a refusal.
SILENT = {K["KEY_NUMLOCK"], 70, 125, 126, 127}  # Scroll Lock, left/right Meta, Compose


def _controls() -> dict[tuple[int, bool], str]:
    """Ctrl + key -> the ASCII control character, by the key's US position (scanner firmware types
    control characters as Ctrl + the US key, whatever layout it types text in): Ctrl+] is GS,
    Ctrl+Shift+6 (^) is RS, Ctrl+D is EOT — the separators of ISO/IEC 15434 (IFA, MH10 codes)."""
    table: dict[tuple[int, bool], str] = {}
    for code, (plain, shifted, *_) in LAYOUTS["us"].items():
        for ch, shift in ((plain, False), (shifted, True)):
            up = ch.upper()
            if len(up) == 1 and "@" <= up <= "_":
                table[(code, shift)] = chr(ord(up) - 0x40)
    return table


CONTROLS = _controls()
CTRLS = {K["KEY_LEFTCTRL"], K["KEY_RIGHTCTRL"]}
ENDS = {K["KEY_ENTER"]: "\r", K["KEY_KPENTER"]: "\r", K["KEY_TAB"]: "\t"}
GS = "\x1d"
