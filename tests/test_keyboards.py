"""Keyboard-wedge scanners on every layout the station knows, checked against the real XKB data.

``tests/keyboard.py`` types with libxkbcommon over xkeyboard-config (the tables X and Wayland
use), independently of the station's generated ``layouts.py``; these tests hold the two together
and prove that no key is ever dropped silently (issue 11).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from keyboard import PRINTABLE, SCANNER_CHARS, every_way, type_text, ways
from xkb import XKB_NAMES, has_altgr, keymap

from station.edge.events import Scan, judge_scan
from station.edge.scanners.keymaps import ALTGR_LAYOUTS, EV_KEY, EV_SYN, KEYS, LAYOUTS, SYN_REPORT
from station.edge.scanners.keys import KeyDecoder, read_recording, replay
from station.gs1.reasons import Reason
from station.gs1.verdict import Policy

DATA = Path(__file__).parent / "data"
LAYOUT_NAMES = list(XKB_NAMES)


def decode(events: list[tuple[int, int, int, int, int]], layout: str) -> list[tuple[str, str]]:
    return [(f.raw.decode(), f.terminated_by) for f in replay(events, KeyDecoder(layout))]


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_the_station_tables_are_the_xkb_tables(layout: str) -> None:
    table = keymap(layout)
    assert table is not None
    assert LAYOUTS[layout] == {code: table[code] for code in PRINTABLE}
    assert (layout in ALTGR_LAYOUTS) == has_altgr(layout)


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_every_scanner_character_is_reachable(layout: str) -> None:
    assert set(SCANNER_CHARS) <= set(ways(layout)), layout


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_every_character_typed_every_way_decodes_exactly(layout: str) -> None:
    events, expected = every_way(layout)
    assert decode(events, layout) == [(text, "suffix") for text in expected]
    # the committed recording is what XKB types today, and decodes the same
    recorded = list(read_recording((DATA / f"{layout}_every-way.jsonl").read_text().splitlines()))
    assert recorded == events
    assert json.loads((DATA / f"{layout}_every-way.expected.json").read_text()) == expected


def test_turkish_q_third_level_both_ways() -> None:
    # XKB tr: AltGr+1 is '>', AltGr+" (KEY_GRAVE) is '<'; KEY_102ND gives them plain and shifted
    altgr = [KEYS["KEY_RIGHTALT"]]
    for code, want in ((KEYS["KEY_1"], ">"), (KEYS["KEY_GRAVE"], "<"), (KEYS["KEY_9"], "]")):
        ev = _press(altgr, code) + _press([], KEYS["KEY_ENTER"])
        assert decode(ev, "tr-q") == [(want + "\r", "suffix")]
    assert decode(type_text("<>", "tr-q", way=0), "tr-q") == decode(type_text("<>", "tr-q", way=1), "tr-q")


def _press(mods: list[int], code: int, t0: float = 1.0) -> list[tuple[int, int, int, int, int]]:
    ev: list[tuple[int, int, int, int, int]] = []
    t = t0
    for value_code, value in [*((m, 1) for m in mods), (code, 1), (code, 0), *((m, 0) for m in reversed(mods))]:
        t += 0.001
        ev += [
            (int(t), round((t % 1) * 1e6), EV_KEY, value_code, value),
            (int(t), round((t % 1) * 1e6), EV_SYN, SYN_REPORT, 0),
        ]
    return ev


@pytest.mark.parametrize(
    ("layout", "mods", "key"),
    [
        ("tr-q", ["KEY_RIGHTALT"], "KEY_LEFTBRACE"),  # AltGr+ğ: XKB tr has no third level there
        ("de", [], "KEY_GRAVE"),  # a dead key (^) types nothing by itself
        ("fr", [], "KEY_LEFTBRACE"),  # dead circumflex on French AZERTY
        ("us", [], "KEY_F5"),  # a function key nobody configured as GS
        ("us", ["KEY_LEFTALT"], "KEY_A"),  # Alt+letter: no Alt code, no character
    ],
)
def test_a_key_the_layout_cannot_map_refuses_the_whole_scan(layout: str, mods: list[str], key: str) -> None:
    head = type_text("0108699536090122", layout, end="none")
    t = head[-1][0] + head[-1][1] / 1e6
    ev = head + _press([KEYS[m] for m in mods], KEYS[key], t) + type_text("21ABC", layout, start=t + 0.01)
    frames = list(replay(ev, KeyDecoder(layout)))
    assert [f.terminated_by for f in frames] == ["unmapped"]
    assert "\ufffd" in frames[0].raw.decode()  # the hole is marked where it was, never closed up
    v = judge_scan(Scan(frames[0].raw, "hid", 0.0, 0.0, frames[0].terminated_by), Policy(), date(2026, 1, 1))
    assert (v.ok, v.reason) == (False, Reason.INVALID_CHARACTER)
    # the next scan is whole again
    assert decode(type_text("0108699536090122", layout, start=t + 5), layout) == [("0108699536090122\r", "suffix")]


def test_control_characters_by_the_us_key_positions() -> None:
    # ISO/IEC 15434 (IFA PPN, MH10.8.2): [)> RS 06 GS ... RS EOT typed as Ctrl+Shift+6, Ctrl+], Ctrl+D
    ctrl, shift = KEYS["KEY_LEFTCTRL"], KEYS["KEY_LEFTSHIFT"]
    ev = (
        _press([ctrl, shift], KEYS["KEY_6"], 1.0)
        + _press([ctrl], KEYS["KEY_RIGHTBRACE"], 1.01)
        + _press([ctrl], KEYS["KEY_D"], 1.02)
        + _press([], KEYS["KEY_ENTER"], 1.03)
    )
    for layout in LAYOUT_NAMES:
        assert decode(ev, layout) == [("\x1e\x1d\x04\r", "suffix")], layout
    # Ctrl+M is a carriage return: it ends the scan like Enter
    assert decode(_press([], KEYS["KEY_A"], 1.0) + _press([ctrl], KEYS["KEY_M"], 1.01), "us") == [("a\r", "suffix")]
