"""USB-HID scanners: recorded evdev streams through the decoder, every layout and GS stand-in."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from harness import wait_for
from keyboard import type_text

from station.edge.events import Scan
from station.edge.scanners.hid import HidScanner
from station.edge.scanners.keymaps import EV_KEY, EV_SYN, KEYS, SYN_DROPPED, SYN_REPORT
from station.edge.scanners.keys import KeyDecoder, replay
from station.gs1.reader import Profile, read
from station.gs1.reasons import Reason

GS = "\x1d"
CODE = f"]d2010869953609012221Ab-c.d/e_f{GS}1730123110lot-7/x.i"
ROOT = Path(__file__).resolve().parent.parent


def decode(events: list[Any], layout: str, **kw: Any) -> list[tuple[str, str]]:
    return [(f.raw.decode(), f.terminated_by) for f in replay(events, KeyDecoder(layout, **kw))]


def test_key_codes_match_evdev() -> None:
    ecodes = pytest.importorskip("evdev").ecodes
    for name, code in KEYS.items():
        assert ecodes.ecodes[name] == code, name
    assert ecodes.SYN_DROPPED == SYN_DROPPED and ecodes.EV_KEY == EV_KEY


@pytest.mark.parametrize("layout", ["us", "tr-q", "tr-f"])
@pytest.mark.parametrize("gs", ["ctrl", "alt"])
def test_each_layout_and_gs_stand_in(layout: str, gs: str) -> None:
    frames = decode(type_text(CODE, layout, gs=gs), layout)
    assert frames == [(CODE + "\r", "suffix")]
    r = read(frames[0][0], Profile.ITS, 2026)
    assert r.ok and r.karekod is not None and r.karekod.serial == "Ab-c.d/e_f" and r.karekod.batch == "lot-7/x.i"


def test_configured_gs_key() -> None:
    assert decode(type_text(CODE, "us", gs="f12"), "us", gs_key=KEYS["KEY_F12"]) == [(CODE + "\r", "suffix")]


def test_wrong_layout_is_caught_not_accepted() -> None:
    # scanner types US, station decodes Turkish Q: the identifier and punctuation change
    ((text, _),) = decode(type_text(CODE, "us"), "tr-q")
    assert text.startswith("üd2")
    r = read(text, Profile.ITS, 2026)
    assert r.reason == "invalid_character" and "Turkish" in r.message
    # Turkish F swaps letters silently; the garbled identifier still gives it away
    ((text, _),) = decode(type_text(CODE, "us"), "tr-f")
    assert text.startswith("we2") and read(text, Profile.ITS, 2026).reason == "invalid_character"


def test_missing_gs_is_recovered_by_the_reader() -> None:
    ((text, _),) = decode(type_text(f"010869953609012221SER123{GS}1730123110LOT9", "us", gs="drop"), "us")
    r = read(text, Profile.ITS, 2026)
    assert GS not in text and r.ok and r.karekod is not None and r.karekod.recovered


def test_tab_suffix_idle_end_and_caps_lock() -> None:
    assert decode(type_text("0108699536090122", "us", end="tab"), "us") == [("0108699536090122\t", "suffix")]
    events = type_text("ABC", "us", end="none") + type_text("DEF", "us", end="none", start=1_700_000_001.0)
    assert decode(events, "us") == [("ABC", "idle"), ("DEF", "idle")]
    caps = [(0, 0, EV_KEY, KEYS["KEY_CAPSLOCK"], 1), (0, 100, EV_KEY, KEYS["KEY_CAPSLOCK"], 0)]
    shifted_i = [
        (0, 200, EV_KEY, KEYS["KEY_LEFTSHIFT"], 1),
        (0, 300, EV_KEY, KEYS["KEY_I"], 1),
        (0, 400, EV_KEY, KEYS["KEY_I"], 0),
        (0, 500, EV_KEY, KEYS["KEY_LEFTSHIFT"], 0),
    ]
    plain = [
        (0, 600, EV_KEY, KEYS["KEY_I"], 1),
        (0, 700, EV_KEY, KEYS["KEY_I"], 0),
        (0, 800, EV_KEY, KEYS["KEY_APOSTROPHE"], 1),
        (0, 900, EV_KEY, KEYS["KEY_ENTER"], 1),
    ]
    assert decode(caps + shifted_i + plain, "us") == [("iI'\r", "suffix")]
    assert decode(caps + shifted_i + plain, "tr-q") == [("ıIİ\r", "suffix")]


def test_shift_tracked_on_release_and_autorepeat_ignored() -> None:
    ev = [
        (0, 0, EV_KEY, KEYS["KEY_LEFTSHIFT"], 1),
        (0, 1, EV_KEY, KEYS["KEY_A"], 1),
        (0, 2, EV_KEY, KEYS["KEY_A"], 2),
        (0, 3, EV_KEY, KEYS["KEY_LEFTSHIFT"], 0),
        (0, 4, EV_KEY, KEYS["KEY_A"], 0),
        (0, 5, EV_KEY, KEYS["KEY_B"], 1),
        (0, 6, EV_KEY, KEYS["KEY_ENTER"], 1),
    ]
    assert decode(ev, "us") == [("Ab\r", "suffix")]


def test_syn_dropped_makes_the_scan_around_it_one_cut_frame() -> None:
    # The kernel lost events in the middle of a burst: what came before and after the hole is one
    # scan with a hole in it, refused as cut_scan (rescan), never two scans, never a misread tail.
    first = type_text("010869953609012221XYZ", "us", end="none")
    drop = [
        (first[-1][0], first[-1][1] + 10, EV_SYN, SYN_DROPPED, 0),
        (first[-1][0], first[-1][1] + 20, EV_KEY, KEYS["KEY_A"], 1),  # ignored until SYN_REPORT
        (first[-1][0], first[-1][1] + 30, EV_SYN, SYN_REPORT, 0),
    ]
    tail = type_text("1726013110LOT", "us", start=first[-1][0] + first[-1][1] / 1e6 + 0.001)
    assert decode(first + drop + tail, "us") == [("010869953609012221XYZ1726013110LOT\r", "cut")]


def test_a_drop_long_before_the_next_scan_cuts_only_its_own() -> None:
    first = type_text("010869953609012221XYZ", "us", end="none")
    t = first[-1][0] + first[-1][1] / 1e6
    drop = [(first[-1][0], first[-1][1] + 10, EV_SYN, SYN_DROPPED, 0), (first[-1][0], first[-1][1] + 30, EV_SYN, 0, 0)]
    second = type_text(CODE, "us", start=t + 1.0)
    assert decode(first + drop + second, "us") == [("010869953609012221XYZ", "cut"), (CODE + "\r", "suffix")]
    # a drop with nothing typed, then a scan a second later: that scan is whole
    assert decode(drop + second, "us") == [(CODE + "\r", "suffix")]


def test_a_cut_scan_is_refused_as_cut_scan_with_the_rescan_signal() -> None:
    from station.edge.events import Scan, judge_scan
    from station.edge.outputs.feedback import Signal, signal_for
    from station.gs1.verdict import Policy

    v = judge_scan(Scan(CODE.encode(), "hid", 0.0, 0.0, "cut"), Policy(), date(2026, 1, 1))
    assert (v.ok, v.reason, signal_for(v)) == (False, Reason.CUT_SCAN, Signal.RESCAN)


def test_max_length_bounds_a_stuck_key() -> None:
    ev = [(0, i, EV_KEY, KEYS["KEY_7"], 1) for i in range(5000)] + [(0, 6000, EV_KEY, KEYS["KEY_ENTER"], 1)]
    ((text, how),) = decode(ev, "us", max_length=64)
    assert how == "overflow" and len(text) == 65  # 64 characters and the suffix


def test_alt_codes_above_127() -> None:
    alt = KEYS["KEY_LEFTALT"]
    kp = {d: KEYS[f"KEY_KP{d}"] for d in "0123456789"}
    ev = [(0, 0, EV_KEY, alt, 1)] + [(0, 1 + i, EV_KEY, kp[d], 1) for i, d in enumerate("0128")]
    ev += [(0, 10, EV_KEY, alt, 0), (0, 11, EV_KEY, KEYS["KEY_ENTER"], 1)]
    assert decode(ev, "us") == [("€\r", "suffix")]  # 0128 is the ANSI code page: the euro sign


def test_a_stuck_alt_with_thousands_of_keypad_digits_refuses_the_scan() -> None:
    """Alt held with ~4,300+ numpad digits made int() raise and crash the daemon (a fuzz finding)."""
    alt, kp0 = KEYS["KEY_LEFTALT"], KEYS["KEY_KP0"]
    code = f"]d201{'08699536090122'}21S1{GS}1730123110L"
    ev = type_text(code[:10], "us", end="none", start=1.0)
    ev += [(1, 10_000, EV_KEY, alt, 1)] + [(1, 10_001 + i, EV_KEY, kp0, i % 2) for i in range(20_000)]
    ev += [(1, 40_000, EV_KEY, alt, 0), *type_text(code[10:], "us", start=1.05)]
    ((text, how),) = decode(ev, "us")
    assert "\ufffd" in text and how == "suffix"
    assert read(text.encode(), Profile.ITS).ok is False  # refused, never read with a character lost


def test_alt_code_digits_at_the_bound() -> None:
    alt = KEYS["KEY_LEFTALT"]
    kp = {d: KEYS[f"KEY_KP{d}"] for d in "0123456789"}
    for digits, want in (("00029", GS), ("000029", "\ufffd")):
        ev = [(0, 0, EV_KEY, alt, 1)] + [(0, 1 + i, EV_KEY, kp[d], 1) for i, d in enumerate(digits)]
        ev += [(0, 20, EV_KEY, alt, 0), (0, 21, EV_KEY, KEYS["KEY_ENTER"], 1)]
        assert decode(ev, "us") == [(want + "\r", "suffix")], digits


class FakeDevice:
    """An input device that plays events and can be unplugged mid-scan (read raises ENODEV)."""

    def __init__(self, path: str) -> None:
        self.path, self.name = path, "Fake 2D Scanner Keyboard"
        self.r, self.w = os.pipe()
        self.queue: list[Any] = []
        self.gone = False
        self.grabbed = False
        self.lock = threading.Lock()

    def fileno(self) -> int:
        return self.r

    def push(self, events: list[Any]) -> None:
        with self.lock:
            self.queue += [SimpleNamespace(sec=s, usec=u, type=t, code=c, value=v) for s, u, t, c, v in events]
        os.write(self.w, b"x")

    def unplug(self) -> None:
        self.gone = True
        os.write(self.w, b"x")

    def read(self) -> list[Any]:
        os.read(self.r, 4096)
        if self.gone:
            raise OSError(errno.ENODEV, "No such device")
        with self.lock:
            out, self.queue = self.queue, []
        return out

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        if not self.grabbed:
            raise OSError(errno.EINVAL, "Invalid argument")
        self.grabbed = False

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


def test_hid_scanner_grabs_and_survives_unplug_mid_scan() -> None:
    plugged: list[FakeDevice] = []
    present = threading.Event()

    def finder(spec: str) -> FakeDevice | None:
        if not present.is_set():
            return None
        present.clear()
        dev = FakeDevice("/dev/input/by-id/usb-fake-event-kbd")
        plugged.append(dev)
        return dev

    scanner = HidScanner("usb:0c2e:0b61", layout="us", idle_ms=200, finder=finder)
    scanner.retry = 0.05
    scans: list[Scan] = []
    stop = threading.Event()
    t = threading.Thread(target=scanner.run, args=(scans.append, stop), daemon=True)
    t.start()
    try:
        present.set()
        wait_for(lambda: scanner.connected, 5, what="the device")
        assert plugged[0].grabbed
        plugged[0].push(type_text(CODE, "us"))
        wait_for(lambda: len(scans) == 1, 5, what="a scan")
        plugged[0].push(type_text("010869953609012221HALF", "us", end="none"))
        plugged[0].unplug()
        wait_for(lambda: not scanner.connected, 5, what="the unplug")
        present.set()  # plugged in again: found by its USB id
        wait_for(lambda: scanner.connected and len(plugged) == 2, 5, what="the replug")
        plugged[1].push(type_text(CODE.replace("Ab", "Zz"), "us"))
        wait_for(lambda: len(scans) == 2, 5, what="a scan after the replug")
    finally:
        stop.set()
        t.join(5)
    assert [s.raw.decode() for s in scans] == [CODE + "\r", CODE.replace("Ab", "Zz") + "\r"]  # no half scan


def test_decode_replays_a_recording(tmp_path: Path) -> None:
    rec = tmp_path / "scan.jsonl"
    events = type_text(CODE, "tr-q", gs="alt") + type_text("garbage", "tr-q", start=1_700_000_005.0)
    rec.write_text("".join(json.dumps(list(e)) + "\n" for e in events))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "station.edge.cli",
            "decode",
            "--hid-events",
            str(rec),
            "--layout",
            "tr-q",
            "--today",
            "2026-01-01",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["ok"] for r in rows] == [True, False]
    assert rows[0]["serial"] == "Ab-c.d/e_f" and rows[1]["reason"] == "not_gs1"


def test_shipped_recordings(tmp_path: Path) -> None:
    data = ROOT / "tests" / "data"
    for path in sorted(data.glob("*.jsonl")):
        layout = path.stem.split("_")[0]
        from station.edge.scanners.keys import read_recording

        frames = list(replay(read_recording(path.read_text().splitlines()), KeyDecoder(layout)))
        expect = json.loads((path.with_suffix(".expected.json")).read_text())
        assert [f.raw.decode() for f in frames] == expect, path.name
