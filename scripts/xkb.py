"""The real XKB keymaps through libxkbcommon (ctypes): what each key types at each level.

Used by ``scripts/gen_keymaps.py`` to write the station's layout tables and by the tests to type
recordings independently of those tables. Needs ``libxkbcommon0`` and ``xkb-data`` (Debian), which
``scripts/setup.sh`` installs for the tests; the station itself never loads it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

#: The station's layout names and their XKB (layout, variant).
XKB_NAMES = {"us": ("us", ""), "tr-q": ("tr", ""), "tr-f": ("tr", "f"), "de": ("de", ""), "fr": ("fr", "")}

#: Modifier sets a scanner can hold while it presses a key: none, Shift, AltGr, Shift+AltGr, and
#: the first two with Caps Lock on.
LEVELS = ("plain", "shift", "altgr", "shift+altgr", "caps", "caps+shift")

Levels = tuple[str, str, str, str, str, str]


class _Names(ctypes.Structure):
    _fields_ = [(n, ctypes.c_char_p) for n in ("rules", "model", "layout", "variant", "options")]


@cache
def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("xkbcommon") or "libxkbcommon.so.0")
    lib.xkb_context_new.restype = ctypes.c_void_p
    lib.xkb_context_new.argtypes = [ctypes.c_int]
    lib.xkb_keymap_new_from_names.restype = ctypes.c_void_p
    lib.xkb_keymap_new_from_names.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Names), ctypes.c_int]
    lib.xkb_state_new.restype = ctypes.c_void_p
    lib.xkb_state_new.argtypes = [ctypes.c_void_p]
    lib.xkb_keymap_mod_get_index.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.xkb_keymap_mod_get_index.restype = ctypes.c_uint32
    lib.xkb_state_update_mask.argtypes = [ctypes.c_void_p] + [ctypes.c_uint32] * 6
    lib.xkb_state_key_get_one_sym.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.xkb_state_key_get_one_sym.restype = ctypes.c_uint32
    lib.xkb_keysym_to_utf32.argtypes = [ctypes.c_uint32]
    lib.xkb_keysym_to_utf32.restype = ctypes.c_uint32
    return lib


ISO_LEVEL3_SHIFT = 0xFE03


@cache
def has_altgr(layout: str) -> bool:
    """Whether the right Alt key is AltGr (ISO_Level3_Shift) on this layout, as on tr, de, fr."""
    return _keymap(layout)[1]


@cache
def keymap(layout: str) -> dict[int, Levels] | None:
    """Evdev key code (1-255) -> the character at each of :data:`LEVELS` ('' for none, a dead key,
    or a level the layout has no key to reach)."""
    return _keymap(layout)[0]


@cache
def _keymap(layout: str) -> tuple[dict[int, Levels] | None, bool]:
    lib = _lib()
    xkb_layout, variant = XKB_NAMES[layout]
    ctx = lib.xkb_context_new(0)
    names = _Names(b"evdev", b"pc105", xkb_layout.encode(), variant.encode(), b"")
    km = lib.xkb_keymap_new_from_names(ctx, ctypes.byref(names), 0)
    if not km:
        return None, False
    state = lib.xkb_state_new(km)
    lib.xkb_state_update_mask(state, 0, 0, 0, 0, 0, 0)
    altgr_key = lib.xkb_state_key_get_one_sym(state, 100 + 8) == ISO_LEVEL3_SHIFT  # KEY_RIGHTALT
    shift = 1 << lib.xkb_keymap_mod_get_index(km, b"Shift")
    altgr = 1 << lib.xkb_keymap_mod_get_index(km, b"Mod5")
    lock = 1 << lib.xkb_keymap_mod_get_index(km, b"Lock")
    table: dict[int, Levels] = {}
    combos = [(0, 0), (shift, 0), (altgr, 0), (shift | altgr, 0), (0, lock), (shift, lock)]
    for code in range(1, 256):
        chars = []
        for mods, locked in combos:
            if not altgr_key and mods & altgr:
                chars.append("")  # no key reaches the third level here
                continue
            lib.xkb_state_update_mask(state, mods, 0, locked, 0, 0, 0)
            point = lib.xkb_keysym_to_utf32(lib.xkb_state_key_get_one_sym(state, code + 8))
            chars.append(chr(point) if point >= 0x20 and point != 0x7F else "")
        table[code] = (chars[0], chars[1], chars[2], chars[3], chars[4], chars[5])
    return table, altgr_key
