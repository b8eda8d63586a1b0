"""Differential tests against biip on inputs where biip is right: GS present, valid GS1 data."""

from __future__ import annotations

from datetime import date

import biip
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scans import check_digit

from station.gs1.reader import Profile, read

GS = "\x1d"
THIS_YEAR = date.today().year
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-./_"


def biip_fields(raw: str) -> dict[str, str]:
    result = biip.parse(raw)
    assert result.gs1_message is not None, result
    return {es.ai.ai: es.value for es in result.gs1_message.element_strings}


@settings(max_examples=300, deadline=None)
@given(
    st.text("0123456789", min_size=13, max_size=13).map(lambda d: d + str(check_digit(d))),
    st.text(ALNUM, min_size=1, max_size=20),
    st.text(ALNUM, min_size=1, max_size=20),
    st.dates(date(THIS_YEAR - 40, 1, 1), date(THIS_YEAR + 40, 12, 31)),
    st.sampled_from(["]d2", "", "]C1"]),
)
def test_same_fields_as_biip(gtin: str, serial: str, batch: str, expiry: date, prefix: str) -> None:
    raw = f"{prefix}01{gtin}21{serial}{GS}17{expiry:%y%m%d}10{batch}"
    ours = read(raw, Profile.ITS, THIS_YEAR)
    assert ours.ok and ours.karekod is not None
    assert dict(ours.karekod.fields) == biip_fields(raw)
    theirs = biip.parse(raw).gs1_message
    assert theirs is not None
    (exp,) = theirs.element_strings.filter(ai="17")
    assert ours.karekod.expiry == exp.date


@pytest.mark.parametrize(
    "raw",
    [
        f"]d201{'08699536090122'}21ABC{GS}1726010010X",
        f"01{'08699536090122'}3103000123{GS}240ABC{GS}10LOT",
        f"01{'08699536090122'}1125010117270100{GS}10LOT",
        "00386995360901234565",
    ],
)
def test_gs1_profile_matches_biip(raw: str) -> None:
    ours = read(raw, Profile.GS1, THIS_YEAR)
    assert ours.ok and ours.karekod is not None, ours
    assert dict(ours.karekod.fields) == biip_fields(raw)


def test_bad_check_digit_agrees_with_biip() -> None:
    raw = f"010869953609012321ABC{GS}1726013110X"
    theirs = biip.parse(raw).gs1_message
    assert theirs is not None
    (gtin,) = theirs.element_strings.filter(ai="01")
    assert gtin.gtin_error
    assert read(raw, Profile.ITS, THIS_YEAR).reason == "bad_check_digit"
