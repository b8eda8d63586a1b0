"""The keyboard-wedge decoder as a pure state machine (station.edge.scanners.keys): each modifier,
each end of a scan, each broken frame and its named cause, every boundary of its clock."""

from __future__ import annotations

import pytest

from station.edge.scanners.keymaps import EV_KEY, EV_SYN, KEYS
from station.edge.scanners.keys import ALT_CODE_DIGITS, KeyDecoder, key_code

IDLE = 0.125  # a binary fraction: every time below adds up exactly
Ev = tuple[int, int, int]


def run(decoder: KeyDecoder, events: list[Ev], start: float = 100.0, step: float = 0.001) -> list[tuple[str, str, str]]:
    """Feed (type, code, value) events ``step`` apart; the frames with their ending and detail."""
    out = []
    t = start
    for ev_type, code, value in events:
        out += decoder.feed(ev_type, code, value, t)
        t += step
    last = decoder.flush(t + 10)
    out += [last] if last else []
    return [(f.raw.decode(), f.terminated_by, f.detail) for f in out]


def tap(name: str) -> list[Ev]:
    return [(EV_KEY, KEYS[name], 1), (EV_KEY, KEYS[name], 0)]


def hold(mods: list[str], name: str) -> list[Ev]:
    return [(EV_KEY, KEYS[m], 1) for m in mods] + tap(name) + [(EV_KEY, KEYS[m], 0) for m in reversed(mods)]


def test_key_code() -> None:
    assert (key_code("KEY_F12"), key_code("88"), key_code("KEY_A")) == (88, 88, 30)
    with pytest.raises(ValueError, match="unknown key 'KEY_NOPE'"):
        key_code("KEY_NOPE")


def test_defaults_and_unknown_layout() -> None:
    d = KeyDecoder()
    assert (d.layout, d.gs_key, d.idle, d.max_length, d.dropped) == ("us", None, 0.1, 512, 0)
    with pytest.raises(ValueError, match=r"unknown layout 'xx'; known: us, tr-q, tr-f, de, fr"):
        KeyDecoder("xx")


def test_both_shift_keys_count_until_both_are_up() -> None:
    ev = [(EV_KEY, KEYS["KEY_LEFTSHIFT"], 1), (EV_KEY, KEYS["KEY_RIGHTSHIFT"], 1), *tap("KEY_A")]
    ev += [(EV_KEY, KEYS["KEY_LEFTSHIFT"], 0), *tap("KEY_B"), (EV_KEY, KEYS["KEY_RIGHTSHIFT"], 0), *tap("KEY_C")]
    assert run(KeyDecoder(), [*ev, *tap("KEY_ENTER")]) == [("ABc\r", "suffix", "")]


def test_ctrl_is_released_too() -> None:
    ev = hold(["KEY_LEFTCTRL"], "KEY_RIGHTBRACE") + tap("KEY_A") + hold(["KEY_RIGHTCTRL"], "KEY_RIGHTBRACE")
    assert run(KeyDecoder(), [*ev, *tap("KEY_ENTER")]) == [("\x1da\x1d\r", "suffix", "")]


def test_caps_lock_toggles_once_per_press_not_on_repeat_or_release() -> None:
    caps = [(EV_KEY, KEYS["KEY_CAPSLOCK"], 1), (EV_KEY, KEYS["KEY_CAPSLOCK"], 2), (EV_KEY, KEYS["KEY_CAPSLOCK"], 0)]
    ev = [*tap("KEY_A"), *caps, *tap("KEY_A"), *hold(["KEY_LEFTSHIFT"], "KEY_A"), *tap("KEY_1"), *caps, *tap("KEY_A")]
    assert run(KeyDecoder(), [*ev, *tap("KEY_ENTER")]) == [("aAa1a\r", "suffix", "")]


def test_two_alt_codes_in_a_row_and_the_bound_on_digits() -> None:
    def alt(digits: str) -> list[Ev]:
        return [
            (EV_KEY, KEYS["KEY_LEFTALT"], 1),
            *(e for d in digits for e in tap(f"KEY_KP{d}")),
            (EV_KEY, KEYS["KEY_LEFTALT"], 0),
        ]

    assert run(KeyDecoder(), [*alt("0029"), *tap("KEY_A"), *alt("0029"), *tap("KEY_ENTER")]) == [
        ("\x1da\x1d\r", "suffix", "")
    ]
    assert ALT_CODE_DIGITS == 5
    assert run(KeyDecoder(), [*alt("00029"), *tap("KEY_ENTER")]) == [("\x1d\r", "suffix", "")]  # 5 digits: read
    assert run(KeyDecoder(), [*alt("000029"), *tap("KEY_ENTER")]) == [("\ufffd\r", "suffix", "")]  # 6: no char


@pytest.mark.parametrize(("key", "suffix"), [("KEY_M", "\r"), ("KEY_J", "\n"), ("KEY_I", "\t")])
def test_ctrl_m_j_i_end_a_scan_as_cr_lf_tab(key: str, suffix: str) -> None:
    assert run(KeyDecoder(), [*tap("KEY_A"), *hold(["KEY_LEFTCTRL"], key)]) == [("a" + suffix, "suffix", "")]


def test_an_end_key_with_nothing_typed_makes_no_frame() -> None:
    assert run(KeyDecoder(), [*tap("KEY_ENTER"), *hold(["KEY_LEFTCTRL"], "KEY_M"), *tap("KEY_TAB")]) == []


@pytest.mark.parametrize(
    ("layout", "events", "detail"),
    [
        ("us", hold(["KEY_LEFTCTRL"], "KEY_F5"), "Ctrl+F5 on the us layout"),
        ("us", hold(["KEY_LEFTALT"], "KEY_A"), "Alt+A on the us layout"),
        ("us", tap("KEY_F5"), "F5 on the us layout"),
        ("tr-q", hold(["KEY_RIGHTALT"], "KEY_LEFTBRACE"), "AltGr+LEFTBRACE on the tr-q layout"),
        ("tr-q", hold(["KEY_LEFTSHIFT", "KEY_RIGHTALT"], "KEY_LEFTBRACE"), "Shift+AltGr+LEFTBRACE on the tr-q layout"),
        ("de", tap("KEY_GRAVE"), "GRAVE on the de layout"),
        ("us", [(EV_KEY, 250, 1)], "key 250 on the us layout"),
    ],
)
def test_an_unmapped_key_is_named_in_the_refusal(layout: str, events: list[Ev], detail: str) -> None:
    got = run(KeyDecoder(layout), [*tap("KEY_1"), *events, *tap("KEY_2"), *tap("KEY_ENTER")])
    assert got == [("1\ufffd2\r", "unmapped", detail)]


def test_only_the_first_unmapped_key_is_marked() -> None:
    got = run(KeyDecoder(), [*tap("KEY_F5"), *tap("KEY_F6"), *tap("KEY_ENTER")])
    assert got == [("\ufffd\r", "unmapped", "F5 on the us layout")]


def test_silent_keys_type_nothing_and_refuse_nothing() -> None:
    assert run(
        KeyDecoder(), [*tap("KEY_A"), *tap("KEY_NUMLOCK"), (EV_KEY, 125, 1), (EV_KEY, 125, 0), *tap("KEY_ENTER")]
    ) == [("a\r", "suffix", "")]


def test_drops_are_counted_and_named() -> None:
    d = KeyDecoder()
    got = run(
        d,
        [
            *tap("KEY_A"),
            (EV_SYN, 3, 0),
            (EV_SYN, 0, 0),
            *tap("KEY_B"),
            (EV_SYN, 3, 0),
            (EV_SYN, 0, 0),
            *tap("KEY_ENTER"),
        ],
    )
    assert d.dropped == 2 and got == [("ab\r", "cut", "2 kernel drop(s) on this device so far")]


def test_events_after_a_drop_are_ignored_until_the_report() -> None:
    got = run(
        KeyDecoder(), [*tap("KEY_A"), (EV_SYN, 3, 0), *tap("KEY_X"), (EV_SYN, 0, 0), *tap("KEY_B"), *tap("KEY_ENTER")]
    )
    assert got == [("ab\r", "cut", "1 kernel drop(s) on this device so far")]


def test_idle_gap_boundary_exactly() -> None:
    d = KeyDecoder(idle=IDLE)
    b_at = 100.0 + IDLE - 2**-20  # a hair inside the gap: the same scan
    out = d.feed(EV_KEY, KEYS["KEY_A"], 1, 100.0) + d.feed(EV_KEY, KEYS["KEY_B"], 1, b_at)
    assert out == [] and d.flush(b_at + IDLE - 2**-20) is None
    c = d.feed(EV_KEY, KEYS["KEY_C"], 1, b_at + IDLE)  # exactly the gap after B: a new scan
    assert [(f.raw, f.terminated_by) for f in c] == [(b"ab", "idle")]
    e = KeyDecoder(idle=IDLE)
    e.feed(EV_KEY, KEYS["KEY_A"], 1, 100.0)
    frame = e.flush(100.0 + IDLE)  # exactly the gap: the scan ends
    assert frame is not None and (frame.raw, frame.terminated_by) == (b"a", "idle")


def test_max_length_exactly_and_one_more() -> None:
    assert run(KeyDecoder(max_length=3), [*tap("KEY_1"), *tap("KEY_2"), *tap("KEY_3"), *tap("KEY_ENTER")]) == [
        ("123\r", "suffix", "")
    ]
    four = [*tap("KEY_1"), *tap("KEY_2"), *tap("KEY_3"), *tap("KEY_4"), *tap("KEY_ENTER")]
    assert run(KeyDecoder(max_length=3), four) == [("123\r", "overflow", "")]


def test_the_gs_key_and_the_keypad() -> None:
    ev = [*tap("KEY_A"), *tap("KEY_F12"), *tap("KEY_KP7"), *tap("KEY_KPMINUS"), *tap("KEY_KPENTER")]
    assert run(KeyDecoder(gs_key=KEYS["KEY_F12"]), ev) == [("a\x1d7-\r", "suffix", "")]


def test_both_ctrl_keys_count_until_both_are_up() -> None:
    ev = [(EV_KEY, KEYS["KEY_LEFTCTRL"], 1), (EV_KEY, KEYS["KEY_RIGHTCTRL"], 1), (EV_KEY, KEYS["KEY_LEFTCTRL"], 0)]
    ev += [*tap("KEY_RIGHTBRACE"), (EV_KEY, KEYS["KEY_RIGHTCTRL"], 0), *tap("KEY_RIGHTBRACE"), *tap("KEY_ENTER")]
    assert run(KeyDecoder(), ev) == [("\x1d]\r", "suffix", "")]


def test_caps_lock_follows_xkb_not_shift() -> None:
    # XKB: Caps Lock capitalises the plain level; it is not Shift. French AZERTY's 2 key gives é
    # plain, 2 shifted, and É with Caps Lock; Turkish Q's ı key gives I with it.
    caps = tap("KEY_CAPSLOCK")
    assert run(KeyDecoder("fr"), [*caps, *tap("KEY_2"), *hold(["KEY_LEFTSHIFT"], "KEY_2"), *tap("KEY_ENTER")]) == [
        ("É2\r", "suffix", "")
    ]
    assert run(KeyDecoder("tr-q"), [*caps, *tap("KEY_I"), *hold(["KEY_LEFTSHIFT"], "KEY_I"), *tap("KEY_ENTER")]) == [
        ("Iı\r", "suffix", "")
    ]


@pytest.mark.parametrize(
    ("layout", "events", "detail"),
    [
        ("tr-q", hold(["KEY_RIGHTALT"], "KEY_F5"), "AltGr+F5 on the tr-q layout"),
        ("fr", hold(["KEY_LEFTSHIFT"], "KEY_LEFTBRACE"), "Shift+LEFTBRACE on the fr layout"),
        ("fr", [*tap("KEY_CAPSLOCK"), *tap("KEY_LEFTBRACE")], "CapsLock+LEFTBRACE on the fr layout"),
    ],
)
def test_the_modifiers_held_are_named_too(layout: str, events: list[Ev], detail: str) -> None:
    assert run(KeyDecoder(layout), [*events, *tap("KEY_ENTER")]) == [("\ufffd\r", "unmapped", detail)]
