"""Serial framing as a pure state machine: bytes and a clock in, scans out (station.edge.scanners.framing).

Every boundary is pinned exactly: the idle gap (a gap of exactly ``idle`` ends a scan, a hair less
does not), ``max_length`` (exactly fits, one more overflows), and each suffix alone or split
across reads.
"""

from __future__ import annotations

import pytest

from station.edge.scanners.framing import Frame, Framer

IDLE = 0.05


def frames(framer: Framer, *chunks: tuple[bytes, float]) -> list[tuple[bytes, str]]:
    out: list[Frame] = []
    for data, now in chunks:
        out += framer.feed(data, now)
    return [(f.raw, f.terminated_by) for f in out]


@pytest.mark.parametrize("suffix", [b"\r\n", b"\r", b"\n", b"\t"])
def test_auto_ends_a_scan_at_each_suffix(suffix: bytes) -> None:
    assert frames(Framer("auto", IDLE), (b"0108" + suffix + b"21AB", 0.0)) == [(b"0108" + suffix, "suffix")]


def test_a_cr_alone_is_a_suffix_and_its_lf_in_the_next_read_belongs_to_it() -> None:
    f = Framer("auto", IDLE)
    assert frames(f, (b"0108\r", 0.0)) == [(b"0108\r", "suffix")]
    assert frames(f, (b"\n21AB\r\n", 0.001)) == [(b"21AB\r\n", "suffix")]  # the LF is not a scan of its own


def test_a_lone_lf_after_a_cr_in_another_mode_is_data() -> None:
    f = Framer("cr", IDLE)
    assert frames(f, (b"0108\r", 0.0), (b"\n21\r", 0.001)) == [(b"0108\r", "suffix"), (b"\n21\r", "suffix")]


def test_crlf_mode_takes_only_the_pair() -> None:
    f = Framer("crlf", IDLE)
    assert frames(f, (b"01\r08\n21\r\n", 0.0)) == [(b"01\r08\n21\r\n", "suffix")]


def test_the_earliest_suffix_wins_and_the_longest_at_the_same_place() -> None:
    assert frames(Framer("auto", IDLE), (b"a\tb\r\nc\n", 0.0)) == [
        (b"a\t", "suffix"),
        (b"b\r\n", "suffix"),
        (b"c\n", "suffix"),
    ]


def test_idle_gap_boundary_exactly() -> None:
    f = Framer("none", IDLE)
    assert frames(f, (b"0108", 1.0)) == []
    assert f.flush(1.0 + IDLE * 0.99) is None  # a hair short of the gap: the scan goes on
    assert f.flush(1.0 + IDLE) == Frame(b"0108", "idle")  # exactly the gap: it ends
    assert f.flush(5.0) is None  # nothing left


def test_a_suffixless_scan_is_kept_when_the_next_one_starts_after_the_gap() -> None:
    f = Framer("auto", IDLE)
    assert frames(f, (b"0108", 1.0), (b"21AB\r", 1.0 + IDLE)) == [(b"0108", "idle"), (b"21AB\r", "suffix")]
    g = Framer("auto", IDLE)
    assert frames(g, (b"0108", 1.0), (b"21AB\r", 1.0 + IDLE * 0.99)) == [(b"010821AB\r", "suffix")]


def test_max_length_exactly_fits_and_one_more_overflows() -> None:
    assert frames(Framer("auto", IDLE, max_length=8), (b"12345678\r", 0.0)) == [(b"12345678\r", "suffix")]
    f = Framer("auto", IDLE, max_length=8)
    got = frames(f, (b"123456789", 0.0), (b"ABC\r", 0.001), (b"NEXT\r", 0.002))
    # cut at max_length, the rest of the line dropped up to its suffix, the next scan whole
    assert got == [(b"12345678", "overflow"), (b"NEXT\r", "suffix")]


def test_overflow_skipping_also_ends_at_an_idle_gap() -> None:
    f = Framer("none", IDLE, max_length=4)
    assert frames(f, (b"123456", 0.0)) == [(b"1234", "overflow")]
    assert f.flush(IDLE) is None  # the dropped rest is no scan
    assert frames(f, (b"AB", 1.0)) == []
    assert f.flush(1.0 + IDLE) == Frame(b"AB", "idle")


def test_reset_forgets_a_partial_scan() -> None:
    f = Framer("auto", IDLE)
    assert frames(f, (b"0108", 0.0)) == []
    f.reset()
    assert frames(f, (b"21\r", 0.001)) == [(b"21\r", "suffix")]


def test_several_scans_in_one_read_and_gs_is_data() -> None:
    assert frames(Framer("auto", IDLE), (b"01\x1d21\rA\rB\r", 0.0)) == [
        (b"01\x1d21\r", "suffix"),
        (b"A\r", "suffix"),
        (b"B\r", "suffix"),
    ]
