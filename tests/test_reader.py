"""The karekod reader: every reason, every envelope, dates, recovery."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date

import pytest
from scans import check_digit

from station.gs1.reader import Profile, read
from station.gs1.reasons import Reason
from station.gs1.verdict import Policy, judge

GS = "\x1d"
GTIN = "08699536090122"
TODAY = date(2026, 1, 1)
CANON = f"01{GTIN}21ABCDEF12345{GS}1726013110LOT123"


def verdict(raw: str | bytes, profile: str = "its", min_days: int | None = None, today: date = TODAY) -> dict:
    return judge(raw, Policy(Profile(profile), min_days), today).as_dict()


def test_brief_example() -> None:
    v = verdict(f"]d2{CANON}")
    assert v == {
        "ok": True,
        "reason": None,
        "gtin": GTIN,
        "serial": "ABCDEF12345",
        "batch": "LOT123",
        "expiry": "2026-01-31",
        "production_date": None,
        "sscc": None,
        "recovered": False,
        "issuer": "gs1",
        "di": GTIN,
        "udi": None,
        "message": "Karekod read.",
    }


@pytest.mark.parametrize("prefix", ["", "]d2", "]C1", "]Q3", GS, f"]d2{GS}", f"]C1{GS}", f"{GS}{GS}"])
@pytest.mark.parametrize("suffix", ["", "\r", "\n", "\r\n", "\t", GS, f"{GS}\r\n", "\r\n\r\n"])
def test_every_envelope(prefix: str, suffix: str) -> None:
    v = verdict(prefix + CANON + suffix)
    assert v["ok"], v
    assert (v["gtin"], v["serial"], v["batch"], v["expiry"]) == (GTIN, "ABCDEF12345", "LOT123", "2026-01-31")


def test_bytes_and_str_agree() -> None:
    assert verdict(CANON.encode()) == verdict(CANON)


@pytest.mark.parametrize("ident", ["]d1", "]Q1", "]E0", "]C0", "]X9", "]", "]d"])
def test_non_gs1_identifiers_are_not_gs1(ident: str) -> None:
    assert verdict(ident + CANON)["reason"] == "not_gs1"


@pytest.mark.parametrize(
    "raw",
    ["", "\r\n", GS, "hello world", "8699536090122", "(01)08699536090122(21)X", "ABC", "9"],
)
def test_not_gs1(raw: str) -> None:
    v = verdict(raw)
    assert v["reason"] == "not_gs1" and not v["ok"] and v["gtin"] is None


def test_unknown_ai_is_not_gs1() -> None:
    assert verdict(f"01{GTIN}{GS}2312345")["reason"] == "not_gs1"


def test_conflicting_repeat_is_an_invalid_combination() -> None:
    assert verdict(f"01{GTIN}21ABC{GS}21XYZ{GS}1726013110L")["reason"] == "invalid_combination"
    assert verdict(f"01{GTIN}21ABC{GS}21ABC{GS}1726013110L")["ok"]


@pytest.mark.parametrize("bad", [" ", "#", "$", "@", "[", "\\", "^", "`", "{", "~", "ı", "ş", "\x1e", "é"])
def test_invalid_character(bad: str) -> None:
    v = verdict(f"01{GTIN}21ABC{bad}DEF{GS}1726013110LOT")
    assert v["reason"] == "invalid_character", v


def test_turkish_character_hint() -> None:
    assert "Turkish" in verdict(f"01{GTIN}21ABCı{GS}1726013110LOT")["message"]
    for garbled in ("üd2", "we2"):
        v = verdict(garbled + CANON)
        assert v["reason"] == "invalid_character" and "Turkish" in v["message"]


def test_invalid_utf8_bytes_do_not_raise() -> None:
    assert verdict(b"01" + GTIN.encode() + b"21\xff\xfe")["reason"] == "invalid_character"


@pytest.mark.parametrize("serial", ["A-B.C/D_E", "abc-def", "x!\"%&'()*+,", "-./:;<=>?_z", "12345678901234567890"])
def test_cset82_punctuation_and_lower_case_in_serials(serial: str) -> None:
    v = verdict(f"01{GTIN}21{serial}{GS}1726013110LOT")
    assert v["ok"] and v["serial"] == serial, v


def test_numeric_field_with_letters() -> None:
    assert verdict(f"010869953609012A21X{GS}1726013110L")["reason"] == "invalid_character"


@pytest.mark.parametrize(
    "raw",
    [
        f"01{GTIN}21{'A' * 21}{GS}1726013110L",  # serial too long
        f"01{GTIN}21A{GS}1726013110{'L' * 21}",  # batch too long, last
        f"0108699536{GS}21A",  # GTIN cut short
        f"01{GTIN}21A{GS}1726013",  # date cut short
    ],
)
def test_invalid_length(raw: str) -> None:
    assert verdict(raw)["reason"] == "invalid_length"


def test_bad_check_digit() -> None:
    v = verdict(CANON.replace(GTIN, "08699536090123"))
    assert v["reason"] == "bad_check_digit" and "check digit 2" in v["message"]
    assert v["gtin"] == "08699536090123"  # what was read is still shown


@pytest.mark.parametrize(
    ("expiry", "reason"),
    [
        ("261301", "invalid_date"),
        ("260001", "invalid_date"),
        ("260229", "invalid_date"),
        ("260431", "invalid_date"),
        ("26013Z", "invalid_character"),
    ],
)
def test_invalid_date(expiry: str, reason: str) -> None:
    assert verdict(f"01{GTIN}21A{GS}17{expiry}10L")["reason"] == reason


@pytest.mark.parametrize(
    ("expiry", "iso"),
    [
        ("260100", "2026-01-31"),
        ("260200", "2026-02-28"),
        ("280200", "2028-02-29"),
        ("261200", "2026-12-31"),
        ("280229", "2028-02-29"),
    ],
)
def test_day_00_is_the_last_day(expiry: str, iso: str) -> None:
    assert verdict(f"01{GTIN}21A{GS}17{expiry}10L")["expiry"] == iso


@pytest.mark.parametrize(
    ("yy", "today", "year"),
    [
        ("76", date(2026, 5, 1), 2076),
        ("77", date(2026, 5, 1), 1977),
        ("99", date(2026, 5, 1), 1999),
        ("00", date(2026, 5, 1), 2000),
        ("50", date(2099, 1, 1), 2050),
        ("49", date(2099, 1, 1), 2149),
        ("48", date(2099, 1, 1), 2148),
        ("01", date(2051, 1, 1), 2101),
    ],
)
def test_gs1_century_rule(yy: str, today: date, year: int) -> None:
    v = verdict(f"01{GTIN}21A{GS}11{yy}0101{GS}17{yy}123110L", profile="uts", today=today)
    assert v["production_date"] == f"{year}-01-01"


def test_missing_field_its() -> None:
    for raw in (f"01{GTIN}21A{GS}17260131", f"01{GTIN}1726013110L", f"21A{GS}1726013110L"):
        assert verdict(raw)["reason"] == "missing_field", raw


def test_uts_profile() -> None:
    assert verdict(f"01{GTIN}10LOT", profile="uts")["ok"]
    assert verdict(f"01{GTIN}21SER", profile="uts")["ok"]
    assert verdict(f"01{GTIN}17260131", profile="uts")["reason"] == "missing_field"
    assert verdict(f"01{GTIN}1125010110LOT", profile="uts")["production_date"] == "2025-01-01"


def test_gs1_profile_reports_other_ais_and_sscc() -> None:
    sscc = "386995360901234567"
    sscc = sscc[:-1] + str(check_digit(sscc[:-1]))
    v = verdict(f"00{sscc}", profile="gs1")
    assert v["ok"] and v["sscc"] == sscc
    assert verdict(f"00{sscc}")["reason"] == "missing_field"
    assert "SSCC" in verdict(f"00{sscc}")["message"]
    r = read(f"01{GTIN}3103000123{GS}240ABC{GS}10LOT", Profile.GS1, 2026)
    assert r.ok and r.karekod is not None
    assert r.karekod.fields == (("01", GTIN), ("3103", "000123"), ("240", "ABC"), ("10", "LOT"))


def test_expired_and_short_dated() -> None:
    assert verdict(CANON, today=date(2026, 2, 1))["reason"] == "expired"
    assert verdict(CANON, today=date(2026, 1, 31))["ok"]  # the last day is still good
    v = verdict(CANON, min_days=60)
    assert v["reason"] == "short_dated" and "30 days" in v["message"]
    assert verdict(CANON, min_days=30)["ok"]


def test_fault_order() -> None:
    # bad check digit and a bad date: the check digit is reported first
    assert verdict(f"010869953609012321A{GS}1726130110L")["reason"] == "bad_check_digit"
    # bad date and missing batch: the date first
    assert verdict(f"01{GTIN}21A{GS}17261301")["reason"] == "invalid_date"
    # bad date in an expired code: invalid_date wins over expired
    assert verdict(f"01{GTIN}21A{GS}1710023010L")["reason"] == "invalid_date"
    # invalid character and too long: the character first
    assert verdict(f"01{GTIN}21{'A' * 25}~{GS}1726013110L")["reason"] == "invalid_character"


@pytest.mark.parametrize(
    "order",
    [
        ("01", "21", "17", "10"),
        ("01", "17", "10", "21"),
        ("01", "10", "17", "21"),
        ("17", "01", "21", "10"),
        ("21", "01", "17", "10"),
        ("10", "21", "01", "17"),
        ("17", "10", "01", "21"),
    ],
)
def test_every_ai_order_with_separators(order: tuple[str, ...]) -> None:
    values = {"01": GTIN, "21": "SER-1/a", "17": "270600", "10": "B.42"}
    raw = ""
    for ai in order:
        raw += ai + values[ai] + (GS if ai in ("21", "10") else "")
    v = verdict("]d2" + raw + "\r\n")
    assert v["ok"] and (v["gtin"], v["serial"], v["batch"], v["expiry"]) == (GTIN, "SER-1/a", "B.42", "2027-06-30")


# -- lost separators --


def test_recovered_canonical_order() -> None:
    v = verdict(CANON.replace(GS, ""))
    assert v["ok"] and v["recovered"] and v["serial"] == "ABCDEF12345" and v["batch"] == "LOT123"


def test_not_recovered_when_no_separator_was_needed() -> None:
    v = verdict(f"01{GTIN}1726013110LOT123")  # the only variable field is last
    assert v["ok"] is False and v["reason"] == "missing_field"
    v = verdict(f"01{GTIN}1726013110LOT123", profile="uts")
    assert v["ok"] and not v["recovered"]


def test_silent_mis_splits_of_other_parsers_are_caught() -> None:
    # biip and the syntax engine read (21)ABC121726013110LOT1: the its profile needs 17 and 10
    v = verdict(f"01{GTIN}21ABC121726013110LOT1")
    assert v["ok"] and (v["serial"], v["batch"], v["expiry"]) == ("ABC12", "LOT1", "2026-01-31")


def test_ambiguous_is_refused() -> None:
    # batch before serial, numeric: 10=1217, 21=260131... or 10=12, 17=... several readings fit
    raw = f"01{GTIN}1726013110121726012110"
    r = read(raw, Profile.ITS, 2026)
    # Whatever is found, it must never be a wrong reading: here two readings exist.
    assert r.reason is Reason.AMBIGUOUS, r
    assert "reads as" in r.message


def test_gs1_profile_reads_as_the_standard_says_without_recovery() -> None:
    # GS1 General Specifications 7.8.5: a variable field runs to GS or the end. Recovery of lost
    # separators is a karekod-profile repair; under gs1 the plain reading stands.
    raw = f"01{GTIN}21ABC1726013110LOT1"
    assert verdict(raw, profile="gs1") == verdict(raw, profile="gs1") | {"ok": True, "serial": "ABC1726013110LOT1"}
    its = verdict(raw, profile="its")
    assert (its["ok"], its["serial"], its["batch"], its["recovered"]) == (True, "ABC", "LOT1", True)
    # an over-long serial is refused under gs1, never "recovered"
    long = f"01{GTIN}21ABCDEFGHIJKLMNOPQRSTU"
    assert verdict(long, profile="gs1")["reason"] == "invalid_length"


def test_recovery_ignores_the_whole_gs1_table() -> None:
    # "240" would be an AI in the full table; recovery only considers 01, 21, 17, 10, 11
    v = verdict(f"01{GTIN}21X2401726013110L")
    assert v["ok"] and v["serial"] == "X240"


def test_its_tools_example() -> None:
    v = verdict("010869950412001121140788766511712123110K0016", today=date(2012, 1, 1))
    assert v["ok"] and v["recovered"]
    assert (v["gtin"], v["serial"], v["expiry"], v["batch"]) == ("08699504120011", "14078876651", "2012-12-31", "K0016")


def test_lost_separator_with_invalid_date_reports_the_date() -> None:
    assert verdict(f"01{GTIN}21ABC1726133110LOT")["reason"] == "invalid_date"


def test_cli_decode_prints_one_json_line_per_input_line() -> None:
    lines = [f"]d2{CANON}\r", "", "garbage", CANON.replace(GS, "")]
    stdin = ("\n".join(lines) + "\n").encode()
    out = (
        subprocess.run(
            [sys.executable, "-m", "station.edge.cli", "decode", "--today", "2026-01-01"],
            input=stdin,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .splitlines()
    )
    rows = [json.loads(line) for line in out]
    assert [r["ok"] for r in rows] == [True, False, False, True]
    assert rows[0]["expiry"] == "2026-01-31" and rows[3]["recovered"]
    assert rows[1]["reason"] == "not_gs1"


def test_cli_decode_profile_and_shelf_life() -> None:
    stdin = f"01{GTIN}10LOT\n{CANON}\n".encode()
    out = (
        subprocess.run(
            [
                sys.executable,
                "-m",
                "station.edge.cli",
                "decode",
                "--profile",
                "uts",
                "--today",
                "2026-01-01",
                "--min-shelf-life-days",
                "45",
            ],
            input=stdin,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .splitlines()
    )
    assert [json.loads(x)["reason"] for x in out] == [None, "short_dated"]


def test_dating_refusals_are_whole_verdicts() -> None:
    # the whole verdict, not only its reason: refused (False, never another falsy value), the
    # reason, a message that names the date, and the reading kept for the event
    raw = f"]d201{GTIN}21S1{GS}1725123110L1"
    expired = judge(raw, Policy(Profile.ITS), date(2026, 1, 1))
    assert expired.ok is False and expired.reason is Reason.EXPIRED
    assert expired.message == "Expired on 2025-12-31." and expired.karekod is not None
    assert expired.karekod.serial == "S1"
    short = judge(f"]d201{GTIN}21S1{GS}1726013110L1", Policy(Profile.ITS, 60), date(2026, 1, 1))
    assert short.ok is False and short.reason is Reason.SHORT_DATED and short.karekod is not None
    assert short.message == "Expires on 2026-01-31, 30 days from now; this site needs at least 60."
    on_the_day = judge(f"]d201{GTIN}21S1{GS}1726010010L1", Policy(Profile.ITS, 30), date(2026, 1, 31))
    assert on_the_day.ok is False and on_the_day.reason is Reason.SHORT_DATED  # 0 days left < 30
    good = judge(f"]d201{GTIN}21S1{GS}1726013110L1", Policy(Profile.ITS, 30), date(2026, 1, 1))
    assert good.ok is True and good.reason is None and good.message == "Karekod read."


def test_refuse_keeps_the_reading_and_as_dict_carries_the_udi() -> None:
    v = judge(f"]d201{GTIN}21S1{GS}1730123110L1", Policy(Profile.ITS), date(2026, 1, 1))
    r = v.refuse(Reason.DUPLICATE, "Already accepted here (event 4).")
    assert (r.ok, r.reason, r.message, r.karekod) == (
        False,
        Reason.DUPLICATE,
        "Already accepted here (event 4).",
        v.karekod,
    )
    hibc = "+A99912345/$$3270531LOT1/SSER1"
    hibc += "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. $/+%"[
        sum(map("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. $/+%".index, hibc)) % 43
    ]
    d = judge(hibc, Policy(Profile.UTS), date(2026, 1, 1)).as_dict()
    assert (d["ok"], d["issuer"], d["di"], d["udi"], d["gtin"]) == (True, "hibcc", "A99912345", hibc, None)


@pytest.mark.parametrize("profile", list(Profile))
def test_an_ai_repeated_reads_once_with_its_value_and_is_refused_with_another(profile: Profile) -> None:
    same = read(f"{CANON}{GS}10LOT123", profile, 2026)  # GS1 allows a repeat of the same value
    assert same.ok and same.karekod is not None and same.karekod.batch == "LOT123"
    other = read(f"{CANON}{GS}10LOT124", profile, 2026)
    assert (other.reason, other.message) == (
        Reason.INVALID_COMBINATION,
        "AI 10 (BATCH/LOT) appears twice with different values.",
    )
    serial = read(f"{CANON}{GS}21OTHER", profile, 2026)
    assert serial.reason is Reason.INVALID_COMBINATION and "AI 21 (SERIAL)" in serial.message
