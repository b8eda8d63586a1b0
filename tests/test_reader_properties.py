"""Property tests: a random valid karekod is read back exactly, or refused as ambiguous."""

from __future__ import annotations

from datetime import date, timedelta

import fuzz
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scans import check_digit

from station.gs1.reader import Profile, Reading, read
from station.gs1.reasons import Reason

GS = "\x1d"
THIS_YEAR = 2026
CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"

gtins = st.text("0123456789", min_size=13, max_size=13).map(lambda d: d + str(check_digit(d)))
variable = st.one_of(
    st.text(CSET82, min_size=1, max_size=20),
    st.text("0123456789", min_size=1, max_size=20),  # numeric serials and batches: the hard case
    st.text("0123456789ABC", min_size=1, max_size=20),
)


@st.composite
def dates(draw: st.DrawFn) -> tuple[str, date]:
    d = draw(st.dates(date(THIS_YEAR - 49, 1, 1), date(THIS_YEAR + 50, 12, 31)))
    if draw(st.booleans()) and (d + timedelta(days=1)).month != d.month:
        return f"{d:%y%m}00", d  # day 00: the month's last day
    return f"{d:%y%m%d}", d


@st.composite
def karekods(draw: st.DrawFn) -> tuple[list[tuple[str, str]], dict[str, object]]:
    expiry_text, expiry = draw(dates())
    fields = {"01": draw(gtins), "21": draw(variable), "17": expiry_text, "10": draw(variable)}
    if draw(st.booleans()):
        fields["11"] = draw(dates())[0]
    order = draw(st.permutations(sorted(fields)))
    expected = {"gtin": fields["01"], "serial": fields["21"], "batch": fields["10"], "expiry": expiry}
    return [(ai, fields[ai]) for ai in order], expected


def render(fields: list[tuple[str, str]], separators: bool) -> str:
    out = ""
    for i, (ai, value) in enumerate(fields):
        out += ai + value
        if separators and ai in ("21", "10") and i < len(fields) - 1:
            out += GS
    return out


def fields_of(raw: str) -> tuple[object, ...]:
    r = read(raw, Profile.ITS, THIS_YEAR)
    if r.reason is Reason.AMBIGUOUS:
        return ("ambiguous",)
    assert r.ok and r.karekod is not None, (raw, r)
    k = r.karekod
    return k.gtin, k.serial, k.batch, k.expiry


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(karekods(), st.sampled_from(["", "]d2", GS, "]d2" + GS]), st.sampled_from(["", "\r\n", "\t", "\n"]))
def test_with_separators_always_exact(
    code: tuple[list[tuple[str, str]], dict[str, object]], prefix: str, suffix: str
) -> None:
    fields, expected = code
    got = fields_of(prefix + render(fields, True) + suffix)
    assert got == (expected["gtin"], expected["serial"], expected["batch"], expected["expiry"])


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(karekods())
def test_without_separators_exact_or_ambiguous(code: tuple[list[tuple[str, str]], dict[str, object]]) -> None:
    fields, expected = code
    got = fields_of(render(fields, False))
    assert got in (("ambiguous",), (expected["gtin"], expected["serial"], expected["batch"], expected["expiry"]))


def assert_whole(raw: str | bytes, r: Reading) -> None:
    """One reason exactly when refused, a message always; and every profile's accepted reading valid
    through and through, checked by tests/fuzz.py independently of the reader."""
    assert (r.reason is None) is r.ok and (r.reason is None or isinstance(r.reason, Reason)) and r.message
    fuzz.check_reader(raw if isinstance(raw, bytes) else raw.encode())


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(list(Profile)))
def test_random_bytes_never_raise(raw: bytes, profile: Profile) -> None:
    assert_whole(raw, read(raw, profile, THIS_YEAR))


@settings(max_examples=1000, deadline=None)
@given(st.text(CSET82 + GS + "\r\n\t]", max_size=120), st.sampled_from(list(Profile)))
def test_random_gs1ish_strings_never_raise(raw: str, profile: Profile) -> None:
    assert_whole(raw, read(raw, profile, THIS_YEAR))


@settings(max_examples=500, deadline=None)
@given(
    st.from_regex(r"\A(01\d{14}|21[0-9A-Z]{1,20}|17\d{6}|10[0-9A-Z]{1,20}|11\d{6})*\Z"), st.sampled_from(list(Profile))
)
def test_digit_soup_never_raises(raw: str, profile: Profile) -> None:
    assert_whole(raw, read(raw, profile, THIS_YEAR))
