"""Serial framing as a pure state machine: bytes and a clock in, scans out (station.edge.scanners.framing).

Every boundary is pinned exactly: the idle gap (a gap of exactly ``idle`` ends a scan, a hair less
does not), ``max_length`` (exactly fits, one more overflows), and each suffix alone or split
across reads.
"""

from __future__ import annotations

import pytest

from station.edge.scanners.framing import Frame, Framer

IDLE = 0.25  # a binary fraction: every time below adds up exactly


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
    assert f.flush(1.0 + IDLE - 2**-20) is None  # a hair short of the gap: the scan goes on
    assert f.flush(1.0 + IDLE) == Frame(b"0108", "idle")  # exactly the gap: it ends
    assert f.flush(5.0) is None  # nothing left


def test_a_suffixless_scan_is_kept_when_the_next_one_starts_after_the_gap() -> None:
    f = Framer("auto", IDLE)
    assert frames(f, (b"0108", 1.0), (b"21AB\r", 1.0 + IDLE)) == [(b"0108", "idle"), (b"21AB\r", "suffix")]
    g = Framer("auto", IDLE)
    assert frames(g, (b"0108", 1.0), (b"21AB\r", 1.0 + IDLE - 2**-20)) == [(b"010821AB\r", "suffix")]


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


def test_defaults() -> None:
    f = Framer()
    assert (f.suffixes, f.idle, f.max_length) == ((b"\r\n", b"\r", b"\n", b"\t"), 0.05, 512)
    assert f.flush(0.0) is None  # a fresh framer has nothing to flush, and does not fail


def test_a_suffix_arriving_alone_in_its_own_read_ends_the_scan() -> None:
    f = Framer("auto", IDLE)
    assert frames(f, (b"0108", 0.0), (b"\r", 0.001)) == [(b"0108\r", "suffix")]
    g = Framer("tab", IDLE)
    assert frames(g, (b"0108", 0.0), (b"\t", 0.001)) == [(b"0108\t", "suffix")]


def test_the_first_suffix_wins_whatever_its_place_in_the_list() -> None:
    assert frames(Framer("auto", IDLE), (b"abcd\tef\n", 0.0)) == [(b"abcd\t", "suffix"), (b"ef\n", "suffix")]


def test_a_cr_inside_a_read_does_not_eat_the_next_reads_lf() -> None:
    f = Framer("auto", IDLE)
    assert frames(f, (b"A\rB", 0.0), (b"\nC\r", 0.001)) == [(b"A\r", "suffix"), (b"B\n", "suffix"), (b"C\r", "suffix")]


def test_overflow_across_reads_and_before_a_suffix_in_the_same_read() -> None:
    f = Framer("auto", IDLE, max_length=8)
    assert frames(f, (b"12345", 0.0), (b"6789", 0.001)) == [(b"12345678", "overflow")]
    g = Framer("auto", IDLE, max_length=4)
    assert frames(g, (b"123456\rAB\r", 0.0)) == [(b"1234", "overflow"), (b"AB\r", "suffix")]


def test_a_gap_after_an_overflow_ends_the_skipping_in_feed_too() -> None:
    f = Framer("auto", IDLE, max_length=4)
    assert frames(f, (b"123456", 0.0)) == [(b"1234", "overflow")]
    assert frames(f, (b"AB\r", 1.0)) == [(b"AB\r", "suffix")]  # the next box, after a gap: read whole
    g = Framer("auto", IDLE, max_length=4)
    assert frames(g, (b"123456", 0.0), (b"78\rAB\r", 0.01)) == [(b"1234", "overflow"), (b"AB\r", "suffix")]


def test_an_lf_is_eaten_only_right_after_a_cr_that_ended_a_read() -> None:
    assert frames(Framer("auto", IDLE), (b"\nA\r", 0.0)) == [(b"\n", "suffix"), (b"A\r", "suffix")]  # fresh
    f = Framer("auto", IDLE)
    got = frames(f, (b"0108\r", 0.0), (b"\nAB", 0.001), (b"\nC\r", 0.002))
    assert got == [(b"0108\r", "suffix"), (b"AB\n", "suffix"), (b"C\r", "suffix")]
    g = Framer("auto", IDLE)  # after a gap the CR's half is over: the LF starts (and ends) a scan
    assert frames(g, (b"0108\r", 0.0), (b"\nA\r", 1.0)) == [
        (b"0108\r", "suffix"),
        (b"\n", "suffix"),
        (b"A\r", "suffix"),
    ]
    h = Framer("auto", IDLE)  # the same after a reset
    assert frames(h, (b"0108\r", 0.0)) == [(b"0108\r", "suffix")]
    h.reset()
    assert frames(h, (b"\nA\r", 0.001)) == [(b"\n", "suffix"), (b"A\r", "suffix")]
