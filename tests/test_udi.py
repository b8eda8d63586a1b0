"""Device identifiers of all four issuing agencies ÜTS accepts, and GS1 Digital Link (issue 11).

Known answers come from the standards' own examples (each cited); check characters in the
property tests come from small implementations written here, independent of ``station.gs1.udi``.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from central import KURUM, SUPPLIER, SandboxServer, event_body, run_until_final, seed, submitter_config
from hypothesis import example, given, settings
from hypothesis import strategies as st

from station.central.config import load
from station.central.ledger import Ledger
from station.central.notifier import Notifier
from station.gs1.digital_link import split_link
from station.gs1.elements import Fault
from station.gs1.reader import Profile, read
from station.gs1.reasons import Reason
from station.gs1.udi import Issuer, read_iso15434
from station.gs1.verdict import Policy, judge
from station.wire import EventMessage

RS, GS, EOT = "\x1e", "\x1d", "\x04"
YEAR = 2026


def fields(raw: str, profile: Profile = Profile.UTS) -> tuple[object, ...]:
    r = read(raw, profile, YEAR)
    k = r.karekod
    assert r.ok and k is not None, (raw, r.reason, r.message)
    return (k.issuer, k.di, k.serial, k.batch, k.expiry, k.production_date)


# -- known answers from the standards -------------------------------------------------------


def test_hibc_concatenated_example() -> None:
    # ANSI/HIBC 2.6 concatenated primary/secondary with supplemental serial and production date:
    # LIC A999, PCN 1234, U/M 5; $$5 = expiry YYJJJ 20015 (2020, day 15), lot 10X3; /16D production
    # date; /S serial; check character '-' over the whole string.
    raw = "+A99912345/$$52001510X3/16D20111212/S77DE1G45-"
    assert fields(raw) == (Issuer.HIBCC, "A99912345", "77DE1G45", "10X3", date(2020, 1, 15), date(2011, 12, 12))
    assert read(raw, Profile.UTS, YEAR).karekod.udi == raw  # type: ignore[union-attr]


def test_hibc_linear_primary_check_character() -> None:
    # The HIBC LIC primary example used by Zint and the HIBC standard's Code 39 examples: +A123BJC5D6E71G
    r = read("+A123BJC5D6E71G", Profile.UTS, YEAR)
    assert (r.reason, r.karekod.di if r.karekod else None) == (
        Reason.MISSING_FIELD,
        "A123BJC5D6E71",
    )  # no lot or serial
    assert read("+A123BJC5D6E71H", Profile.UTS, YEAR).reason is Reason.BAD_CHECK_DIGIT


@pytest.mark.parametrize(
    ("secondary", "expiry", "lot", "serial"),
    [
        ("$$0527LOT1", date(2027, 5, 31), "LOT1", None),  # $$ MMYY (flag 0/1 is the month's digit)
        ("$$1227LOT1", date(2027, 12, 31), "LOT1", None),
        ("$$2053127LOT1", date(2027, 5, 31), "LOT1", None),  # MMDDYY
        ("$$3270531LOT1", date(2027, 5, 31), "LOT1", None),  # YYMMDD
        ("$$427053111LOT1", date(2027, 5, 31), "LOT1", None),  # YYMMDDHH
        ("$$527151LOT1", date(2027, 5, 31), "LOT1", None),  # YYJJJ
        ("$$62715123LOT1", date(2027, 5, 31), "LOT1", None),  # YYJJJHH
        ("$$7LOT1", None, "LOT1", None),  # no date
        ("$$+3270531SER9", date(2027, 5, 31), None, "SER9"),  # serial instead of lot
        ("$+SER9", None, None, "SER9"),
        ("$LOT1", None, "LOT1", None),
        ("$$810LOT1", None, "LOT1", None),  # quantity 10, then the lot
        ("$$8103270531LOT1", date(2027, 5, 31), "LOT1", None),  # quantity, then a YYMMDD date
        ("27151LOT1", date(2027, 5, 31), "LOT1", None),  # the old YYJJJ form
        ("$LOT1/14D20270531/SSER9", date(2027, 5, 31), "LOT1", "SER9"),  # 2.6 supplemental fields
    ],
)
def test_hibc_secondary_formats(secondary: str, expiry: date | None, lot: str | None, serial: str | None) -> None:
    body = f"+A99912345/{secondary}"
    raw = body + hibc_check(body)
    assert fields(raw)[2:5] == (serial, lot, expiry)


@pytest.mark.parametrize(
    ("body", "reason", "words"),
    [
        ("+", Reason.INVALID_LENGTH, "Too short for a HIBC code."),  # the flag and a check character
        ("+$", Reason.NOT_UDI, "A HIBC secondary must stand alone or follow its primary."),
        ("+A", Reason.INVALID_LENGTH, "HIBC primary 'A' is not LIC (4), PCN (1-18), U/M (1)."),
        ("+A99912345//$LOT1", Reason.NOT_UDI, "An empty HIBC segment (two '/' in a row)."),
    ],
)
def test_hibc_short_and_empty(body: str, reason: Reason, words: str) -> None:
    r = read(body + hibc_check(body), Profile.UTS, YEAR)
    assert (r.reason, r.message) == (reason, words)


@pytest.mark.parametrize(
    ("secondary", "reason", "words"),
    [
        ("$+", Reason.INVALID_VALUE, "no serial number"),
        ("$LOT1/$LOT2", Reason.INVALID_COMBINATION, "a second lot number"),
        ("$$+3270531SER9/SSER8", Reason.INVALID_COMBINATION, "a second serial number"),
        ("$$3270531LOT1/14D20270531", Reason.INVALID_COMBINATION, "a second expiry date"),
        ("$" + "A" * 19, Reason.INVALID_LENGTH, "18 characters at most"),
        ("$LOT-1", Reason.INVALID_CHARACTER, "letters and digits only"),  # '-' is HIBC's, not a lot's
        # after a $$8 quantity, a digit is the date's format flag: a lot that starts with one needs flag 7
        ("$$8103ABC", Reason.INVALID_LENGTH, "a date of the wrong length"),
        ("$$8107LOT1", None, "read"),
        # the /Q supplemental quantity: up to 8 digits
        ("$LOT1/Q12345678", None, "read"),
        ("$LOT1/Q123456789", Reason.INVALID_VALUE, "not a quantity"),
        ("$LOT1/QA1", Reason.INVALID_VALUE, "not a quantity"),
        # the old form, YYJJJ and then the lot: five digits at least
        ("27151", Reason.MISSING_FIELD, "without a serial or lot"),  # an expiry and no lot
        ("2715", Reason.NOT_UDI, "not a secondary data format"),
        ("ABCDE", Reason.NOT_UDI, "not a secondary data format"),
    ],
)
def test_hibc_secondary_refusals(secondary: str, reason: Reason | None, words: str) -> None:
    body = f"+A99912345/{secondary}"
    r = read(body + hibc_check(body), Profile.UTS, YEAR)
    assert (r.reason, words in r.message) == (reason, True), r.message


def test_hibc_lot_of_18_characters() -> None:
    body = "+A99912345/$" + "A1" * 9
    assert fields(body + hibc_check(body))[3] == "A1" * 9


def test_ifa_ppn_example() -> None:
    # IFA "Spezifikation PPN-Code" example: PZN 03752864 -> PPN 110375286414 (check digits 14)
    raw = f"[)>{RS}06{GS}9N110375286414{GS}1T12345ABCD{GS}D150600{GS}S12345ABCDEF98765{RS}{EOT}"
    assert fields(raw) == (Issuer.IFA, "110375286414", "12345ABCDEF98765", "12345ABCD", date(2015, 6, 30), None)
    bad = raw.replace("110375286414", "110375286415")
    assert read(bad, Profile.UTS, YEAR).reason is Reason.BAD_CHECK_DIGIT


@pytest.mark.parametrize("di", ["14D", "16D"])
def test_ifa_dates_are_ascii_digits(di: str) -> None:
    # Python's int() reads full-width digits; a date of them is no MH10.8.2 date
    raw = f"[)>{RS}06{GS}9N110375286414{GS}1TLOT1{GS}{di}２０２７０５３１{GS}SSER1{RS}{EOT}"
    assert read(raw, Profile.UTS, YEAR).reason is Reason.INVALID_DATE
    assert read(raw.replace("２０２７０５３１", "20270531"), Profile.UTS, YEAR).ok


def ifa(*elements: str, trailer: str = RS + EOT) -> str:
    return f"[)>{RS}06{GS}" + GS.join(elements) + trailer


PPN = "9N110375286414"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (ifa(PPN, "1TLOT1", "D270100", "SSER1"), None),  # day 00: the month's last day
        (ifa(PPN, "1TLOT1", "D271301", "SSER1"), Reason.INVALID_DATE),
        (ifa(PPN, "1TLOT1", "D270230", "SSER1"), Reason.INVALID_DATE),
        (ifa(PPN, "1TLOT1", "D27053", "SSER1"), Reason.INVALID_DATE),
        (ifa(PPN, "1TLOT1", "D2705311", "SSER1"), Reason.INVALID_DATE),
        (ifa(PPN, "1TLOT1", "D270531", "14D20270531", "SSER1"), None),  # the same date twice
        (ifa(PPN, "1TLOT1", "D270531", "14D20270530", "SSER1"), Reason.INVALID_COMBINATION),
        (ifa(PPN, "1TLOT1", "16D20270230", "SSER1"), Reason.INVALID_DATE),
        (ifa(PPN, "1T" + "L" * 20, "SSER1"), None),  # MH10.8.2 text: 20 characters at most
        (ifa(PPN, "1T" + "L" * 21, "SSER1"), Reason.INVALID_CHARACTER),
        (ifa(PPN, "1TLOT1", "S" + "9" * 21), Reason.INVALID_CHARACTER),
        (ifa(PPN, "1TLOT 1", "SSER1"), Reason.INVALID_CHARACTER),
        (ifa(PPN, "1TLOT1", "SSER1", "Q12345678"), None),
        (ifa(PPN, "1TLOT1", "SSER1", "Q123456789"), Reason.INVALID_VALUE),
        (ifa(PPN, "1TLOT1", "SSER1", "27Q1A"), Reason.INVALID_VALUE),
        (ifa(PPN, "1TLOT1", "SSER1", "1TLOT2"), Reason.INVALID_COMBINATION),
        (ifa(PPN, "1T", "SSER1"), Reason.INVALID_LENGTH),
        (ifa(PPN, "1TLOT1", "SSER1", "2PXYZ"), Reason.INVALID_VALUE),  # not a data identifier of IFA's
        (ifa(PPN, "1TLOT1", "SSER1", "1234TX"), Reason.INVALID_VALUE),  # four digits: no MH10 identifier
        (ifa(PPN, "8P08699536090122", "SSER1"), Reason.MISSING_FIELD),  # a PPN or a GTIN, not both
        (ifa("8P08699536090122", "SSER1"), None),
        (ifa("8P08699536090123", "SSER1"), Reason.BAD_CHECK_DIGIT),
        (ifa("8P0869953609012", "SSER1"), Reason.INVALID_LENGTH),
        (ifa("8P０８６９９５３６０９０１２２", "SSER1"), Reason.INVALID_LENGTH),  # full-width digits
        (ifa("9N1103752864", "SSER1"), Reason.BAD_CHECK_DIGIT),  # PPN 4 to 22: 2 data, 2 check at least
        (ifa("9N" + "1" * 21 + "1", "SSER1"), Reason.BAD_CHECK_DIGIT),
        (ifa("9N" + "1" * 21 + "11", "SSER1"), Reason.INVALID_LENGTH),
        (ifa("9N1", "SSER1"), Reason.INVALID_LENGTH),
        (ifa(PPN, "SSER1", trailer=RS), None),  # a keyboard wedge that drops the EOT
        (ifa(PPN, "SSER1", trailer=""), None),
        (ifa(PPN, "SSER1", trailer=RS + EOT + "x"), Reason.NOT_UDI),
        (f"[)>{RS}07{GS}{PPN}{GS}SSER1{RS}{EOT}", Reason.NOT_UDI),  # format 07: free text
    ],
)
def test_ifa_fields(raw: str, reason: Reason | None) -> None:
    assert read(raw, Profile.UTS, YEAR).reason is reason


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (ifa("9N110375286415", "SSER1"), "PPN 110375286415 should end in check digits 14"),
        (ifa("9N1", "SSER1"), "PPN '1' is not 4 to 22"),
        (ifa("8P08699536090123", "SSER1"), "GTIN (8P) 08699536090123 should end in 2"),
        (ifa("8P0869953609012", "SSER1"), "GTIN (8P) '0869953609012' is not 14 digits"),
        (ifa(PPN, "1T" + "L" * 21, "SSER1"), "Batch (1T) must be 1 to 20"),
        (ifa(PPN, "1TLOT1", "SSER1", "Q1A"), "Quantity (Q) '1A' is not a number"),
        (ifa(PPN, "1TLOT1", "D27053", "SSER1"), "Expiry (D) '27053' is not YYMMDD"),
        (ifa(PPN, "1TLOT1", "SSER1", "1TLOT2"), "Data identifier 1T appears twice"),
        (ifa(PPN, "1T", "SSER1"), "Data identifier 1T has no value"),
        (ifa(PPN, "1TLOT1", "SSER1", "2PXYZ123"), "Data identifier in '2PXYZ1' is not one"),
        (ifa(PPN, "SSER1" + RS + "1TLOT1"), "More than one format"),  # a stray RS alone
        (ifa(PPN, "SSER1" + EOT + "1TLOT1"), "More than one format"),  # a stray EOT alone
        (f"[)>{RS}071{GS}{PPN}{GS}SSER1{RS}{EOT}", "ISO/IEC 15434 format '07': only 05"),
        (ifa(PPN, "1TLOT1", "D270230", "SSER1"), "Expiry (D) 270230 is not a real date"),
        (ifa(PPN, "1TLOT1", "16D20270230", "SSER1"), "Production date (16D) '20270230' is not a real YYYYMMDD"),
        (ifa(PPN, "1TLOT1", "D270531", "14D20270530", "SSER1"), "Two different expiry dates (D and 14D)"),
    ],
)
def test_ifa_messages_name_the_fault(raw: str, words: str) -> None:
    r = read(raw, Profile.UTS, YEAR)
    assert not r.ok and words in r.message, r.message


def test_iso15434_reader_takes_only_its_envelope() -> None:
    fault = read_iso15434("9N110375286414", YEAR)
    assert isinstance(fault, Fault) and (fault.reason, fault.message) == (
        Reason.NOT_UDI,
        "Not an ISO/IEC 15434 message.",
    )


def test_ifa_long_dates() -> None:
    # MH10.8.2 14D (expiry) and 16D (production), YYYYMMDD
    raw = ifa(PPN, "1TLOT1", "14D20270531", "16D20250102", "SSER1")
    assert fields(raw)[4:] == (date(2027, 5, 31), date(2025, 1, 2))


def test_ifa_ppn_lengths() -> None:
    for data in ("11", "1" * 20):  # the shortest and the longest PPN, each with its check digits
        ppn = data + ppn_check(data)
        assert fields(ifa("9N" + ppn, "SSER1"))[1] == ppn
    assert fields(ifa(PPN, "1TLOT1", "D270100", "SSER1"))[4] == date(2027, 1, 31)


def test_ifa_format_05_is_gs1_inside_the_envelope() -> None:
    raw = f"[)>{RS}05{GS}0109501101530003{GS}17270531{GS}10LOT1{RS}{EOT}"
    assert fields(raw)[:2] == (Issuer.GS1, "09501101530003")


def test_isbt128_examples() -> None:
    # ST-001 v6.2 figure 9: PPIC A9997 AB3456 T0123; appendix A: DIN G123417654321 has MOD 37-2
    # check value 10, carried as type 3 flags "70"; expiry 2027 day 151 (cyyjjj = 027151).
    raw = "=/A9997AB3456T0123=G12341765432170=>027151&,10000000000005434RZ"
    assert fields(raw) == (
        Issuer.ICCBBA,
        "A9997AB3456T0123",
        "G123417654321",
        "0000000000005434RZ",
        date(2027, 5, 31),
        None,
    )
    assert read(raw.replace("=G12341765432170", "=G12341765432171"), Profile.UTS, YEAR).reason is Reason.BAD_CHECK_DIGIT
    # behind a Compound Message header [023]: 3 data structures, undefined sequence (000)
    assert fields("=+03000" + raw[: raw.index("&,1")])[1] == "A9997AB3456T0123"
    assert read("=+04000" + raw[: raw.index("&,1")], Profile.UTS, YEAR).reason is Reason.INVALID_LENGTH


ISBT_PPIC = "=/A9997AB3456T0123"
ISBT_DIN = "=G12341765432170"


def isbt(*structures: str) -> str:
    return ISBT_PPIC + ISBT_DIN + "".join(structures)


@pytest.mark.parametrize(
    ("structure", "expiry", "production"),
    [
        # ST-001 2.4.4: cyyjjj, c the century (0: 2000-2099, 9: the 1900s), jjj the day of the year
        ("=>027001", date(2027, 1, 1), None),
        ("=>027365", date(2027, 12, 31), None),
        ("=>028366", date(2028, 12, 31), None),  # 2028 is a leap year
        ("=>999032", date(1999, 2, 1), None),
        ("=>985032", date(1985, 2, 1), None),  # the century is the first digit alone
        ("=>095032", date(2095, 2, 1), None),
        ("=>127032", date(2127, 2, 1), None),
        ("&>0271512359", date(2027, 5, 31), None),  # with hhmm: the day is the date
        ("&>0271510000", date(2027, 5, 31), None),
        ("=}025200", None, date(2025, 7, 19)),
        ("&}0252001200", None, date(2025, 7, 19)),
        # 026: yyyymm, a month's expiry: good through its last day (as GS1's day 00)
        ("=]202702", date(2027, 2, 28), None),
        ("=]202802", date(2028, 2, 29), None),
        ("=]202712", date(2027, 12, 31), None),
        ("=]202701", date(2027, 1, 31), None),
        ("=]000112", date(1, 12, 31), None),  # year 1: long expired, but a date
    ],
)
def test_isbt128_dates(structure: str, expiry: date | None, production: date | None) -> None:
    assert fields(isbt(structure))[4:] == (expiry, production)


@pytest.mark.parametrize(
    "structure",
    [
        "=>027000",  # day 0
        "=>027366",  # 2027 has 365 days
        "=>028367",
        "=>099366",  # 2099 is not a leap year
        "&>0271512400",  # hour 24
        "&>0271512360",  # minute 60
        "=}025000",
        "&}0252002400",
        "=]202700",  # month 0
        "=]202713",
        "=]000001",  # no year 0
    ],
)
def test_isbt128_impossible_dates_are_refused(structure: str) -> None:
    r = read(isbt(structure), Profile.UTS, YEAR)
    which = "production" if structure[1] == "}" else "expiry"
    assert (r.reason, r.message) == (
        Reason.INVALID_DATE,
        f"ISBT 128 {which} date {structure[2:]!r} is not a real date.",
    )


def test_isbt128_din_flags() -> None:
    # ST-001: flags 60-96 carry the DIN's MOD 37-2 check value plus 60 (type 3); other flags are
    # process-control information, not checked
    assert fields("=/A9997AB3456T0123=G12341765432100")[2] == "G123417654321"
    assert fields("=/A9997AB3456T0123=G12341765432159")[2] == "G123417654321"
    assert fields("=/A9997AB3456T0123=G12341765432197")[2] == "G123417654321"
    for flags in ("60", "96", "69", "71"):
        r = read(f"=/A9997AB3456T0123=G123417654321{flags}", Profile.UTS, YEAR)
        assert r.reason is Reason.BAD_CHECK_DIGIT, flags
    # the ends of the range: a DIN whose check value is 0 (flags 60), one whose is 36 (flags 96)
    for din, value, wrong in (("A999900000048", 0, "61"), ("A999900000299", 36, "95")):
        assert mod37(din) == value
        assert fields(f"=/A9997AB3456T0123={din}{60 + value}")[2] == din
        assert read(f"=/A9997AB3456T0123={din}{wrong}", Profile.UTS, YEAR).reason is Reason.BAD_CHECK_DIGIT
    assert fields("=/A9997AB3456T0123=G123417654321A0")[2] == "G123417654321"  # flags of letters: not a check
    assert read("=/A9997AB3456T0123=G123417654321I0", Profile.UTS, YEAR).reason is Reason.INVALID_VALUE


def test_isbt128_structure_rules() -> None:
    twice = read(isbt("=>027151=>027152"), Profile.UTS, YEAR)
    assert (twice.reason, twice.message) == (Reason.INVALID_COMBINATION, "ISBT 128 data structure 004 appears twice.")
    assert read(isbt("=>02715"), Profile.UTS, YEAR).reason is Reason.INVALID_LENGTH
    assert read(isbt("=>02715A"), Profile.UTS, YEAR).reason is Reason.INVALID_CHARACTER
    assert read(isbt("=#027151"), Profile.UTS, YEAR).reason is Reason.NOT_UDI
    # the Compound Message header counts the structures that follow it
    assert fields("=+02000" + isbt())[1:3] == ("A9997AB3456T0123", "G123417654321")
    assert read("=+01000" + isbt(), Profile.UTS, YEAR).reason is Reason.INVALID_LENGTH
    assert read("=+0A000" + isbt(), Profile.UTS, YEAR).reason is Reason.INVALID_LENGTH
    # without a DIN, the MPHO Supplemental Identification Number [036] is the unit's serial
    mpho = "&,2ABC123456789012345"
    assert fields(ISBT_PPIC + "&,1LOT000000000000001" + mpho)[1:4] == (
        "A9997AB3456T0123",
        "ABC123456789012345",
        "LOT000000000000001",
    )
    assert fields(ISBT_PPIC + "&,1LOT000000000000001")[2] is None


def test_digital_link() -> None:
    # GS1 Digital Link standard 1.4 §4 examples: key 01, qualifiers 10 then 21, attributes in the query
    raw = "https://id.gs1.org/01/09506000134352/10/AB%2F1/21/S-9?17=271231&11=260101"
    assert fields(raw) == (Issuer.GS1, "09506000134352", "S-9", "AB/1", date(2027, 12, 31), date(2026, 1, 1))
    assert read(raw, Profile.ITS, YEAR).reason is Reason.NOT_GS1  # medicines: the karekod only
    assert read("https://id.gs1.org/01/09506000134352/21/S/10/L", Profile.UTS, YEAR).reason is Reason.NOT_GS1
    assert read("https://id.gs1.org/01/09506000134353/21/S", Profile.UTS, YEAR).reason is Reason.BAD_CHECK_DIGIT


LINK = "https://id.gs1.org/01/09506000134352/21/S9"


@pytest.mark.parametrize(
    ("raw", "fields_or_reason"),
    [
        # percent escapes in either case (RFC 3986 2.1); '+' is a space in the query only
        (LINK + "?240=A%2b", (("01", "09506000134352"), ("21", "S9"), ("240", "A+"))),
        (LINK.replace("S9", "S%2f9"), (("01", "09506000134352"), ("21", "S/9"))),
        (LINK.replace("S9", "S+9"), (("01", "09506000134352"), ("21", "S+9"))),
        (LINK + "?240=A+B", Reason.INVALID_CHARACTER),  # a space: not in GS1 character set 82
        (LINK + "?240=A=B", (("01", "09506000134352"), ("21", "S9"), ("240", "A=B"))),  # split at the first '='
        (LINK + "?17", (("01", "09506000134352"), ("21", "S9"))),  # no '=': not an attribute, ignored
        (LINK + "?&&17=271231", (("01", "09506000134352"), ("21", "S9"), ("17", "271231"))),
        (LINK + "?x=1&17=271231", (("01", "09506000134352"), ("21", "S9"), ("17", "271231"))),
        (LINK + "?17=", Reason.INVALID_LENGTH),
        (LINK + "?23=1", Reason.NOT_GS1),  # no AI 23
        (LINK + "?17=271231&17=271231", Reason.INVALID_COMBINATION),
        (LINK + "?21=S8", Reason.INVALID_COMBINATION),
        (LINK + "?10=B1", Reason.INVALID_COMBINATION),  # 01/10/21 is the path's order
        (LINK + "#17=271231", (("01", "09506000134352"), ("21", "S9"))),  # a fragment is no query
        ("https:///01/09506000134352/21/S9", Reason.NOT_GS1),  # no domain
        ("https:///01/09506000134352/21/S%2F9", Reason.NOT_GS1),  # no domain (the path's '%' is no domain's)
        ("https://id.gs1.org%", Reason.INVALID_CHARACTER),  # a domain and no path: the domain is all of it
        ("https://id.gs1.org", Reason.NOT_GS1),
        ("ftp://id.gs1.org/01/09506000134352/21/S9", Reason.NOT_UDI),
        ("https://id.gs1.org/21/S9", Reason.NOT_GS1),  # no primary key
        ("https://id.gs1.org/01/09506000134352/21/S9%00", Reason.INVALID_CHARACTER),
    ],
)
def test_digital_link_rules(raw: str, fields_or_reason: tuple[tuple[str, str], ...] | Reason) -> None:
    r = read(raw, Profile.UTS, YEAR)
    if isinstance(fields_or_reason, Reason):
        assert r.reason is fields_or_reason, r.message
    else:
        assert r.karekod is not None and r.karekod.fields == fields_or_reason, r.message


def test_digital_link_messages_say_where() -> None:
    assert "query" in read(LINK + "?17=", Profile.UTS, YEAR).message
    assert "path" in read(LINK.replace("/21/S9", "/21/"), Profile.UTS, YEAR).message
    assert split_link("ftp://x/01/09506000134352")[1][0].message == "Not an http(s) link."


def test_not_a_udi() -> None:
    for raw in ("HELLO", "]Q1hello world", "*A123*"):
        r = read(raw, Profile.UTS, YEAR)
        assert (r.ok, r.reason) == (False, Reason.NOT_UDI), raw


def test_its_profile_stays_karekod_only() -> None:
    for raw in ("+A99912345/$$52001510X3/16D20111212/S77DE1G45-", "=/A9997AB3456T0123=G12341765432170"):
        assert not read(raw, Profile.ITS, YEAR).ok


# -- properties: any code built from valid fields reads back; any one change never reads the same --

HIBC_TABLE = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. $/+%"


def hibc_check(data: str) -> str:
    total = 0
    for c in data:  # written out again here, on purpose: not the station's function
        total += HIBC_TABLE.find(c)
    return HIBC_TABLE[total % 43]


def ppn_check(body: str) -> str:
    return f"{sum((2 + i) * ord(c) for i, c in enumerate(body)) % 97:02d}"


ALNUM = st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=18)
DAYS = st.dates(date(2001, 1, 1), date(2049, 12, 31))


@st.composite
def hibc_codes(draw: st.DrawFn) -> tuple[str, tuple[object, ...]]:
    lic = draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) + draw(
        st.text("0123456789ABCDEFGHJKZ", min_size=3, max_size=3)
    )
    pcn, um = draw(ALNUM), draw(st.sampled_from("0123456789"))
    lot, serial, expiry = draw(ALNUM), draw(st.none() | ALNUM), draw(DAYS)
    body = f"+{lic}{pcn}{um}/$$3{expiry:%y%m%d}{lot}" + (f"/S{serial}" if serial else "")
    return body + hibc_check(body), (Issuer.HIBCC, lic + pcn + um, serial, lot, expiry, None)


@st.composite
def ifa_codes(draw: st.DrawFn) -> tuple[str, tuple[object, ...]]:
    body = "11" + draw(st.text("0123456789", min_size=8, max_size=8))
    ppn = body + ppn_check(body)
    lot, serial, expiry = draw(ALNUM), draw(ALNUM), draw(DAYS)
    raw = f"[)>{RS}06{GS}9N{ppn}{GS}1T{lot}{GS}D{expiry:%y%m%d}{GS}S{serial}{RS}{EOT}"
    return raw, (Issuer.IFA, ppn, serial, lot, expiry, None)


def mod37(din: str) -> int:
    p = 0
    for c in din:
        p = ((p + int(c, 36)) * 2) % 37
    return (38 - p) % 37


@st.composite
def isbt_codes(draw: st.DrawFn) -> tuple[str, tuple[object, ...]]:
    ppic = draw(st.text("ABCDEFGH0123456789", min_size=5, max_size=5)) + draw(
        st.text("AB0123", min_size=11, max_size=11)
    )
    din = draw(st.sampled_from("ABG")) + draw(st.text("0123456789", min_size=12, max_size=12))
    expiry = draw(DAYS)
    raw = f"=/{ppic}={din}{60 + mod37(din)}=>0{expiry:%y}{expiry.timetuple().tm_yday:03d}"
    return raw, (Issuer.ICCBBA, ppic, din, None, expiry, None)


CODES = hibc_codes() | ifa_codes() | isbt_codes()
# a PPN with its check digits from IFA's own example (not computed here)
IFA_EXAMPLE = f"[)>{RS}06{GS}9N110375286414{GS}1TLOT1{GS}D270101{GS}SSER1{RS}{EOT}"
IFA_FIELDS = (Issuer.IFA, "110375286414", "SER1", "LOT1", date(2027, 1, 1), None)


@settings(max_examples=300, deadline=None)
@given(CODES)
def test_any_code_from_valid_fields_reads_back(code: tuple[str, tuple[object, ...]]) -> None:
    raw, expected = code
    assert fields(raw) == expected


@settings(max_examples=500, deadline=None)
@given(CODES, st.integers(min_value=0), st.characters(codec="ascii"))
@example((IFA_EXAMPLE, IFA_FIELDS), -1, "\r")
@example((IFA_EXAMPLE, IFA_FIELDS), -2, "\r")
def test_one_changed_character_never_reads_as_the_original(
    code: tuple[str, tuple[object, ...]], where: int, new: str
) -> None:
    raw, expected = code
    i = where % len(raw)
    if raw[i] == new:
        return
    changed = raw[:i] + new + raw[i + 1 :]
    if raw.endswith(RS + EOT) and changed == raw[:-1] + new and new in "\r\n\t":
        # the EOT made a suffix: a keyboard wedge that drops the EOT sends the same message, and
        # the reader takes an envelope ending in RS alone (the data are the same; not a change)
        assert fields(changed) == expected
        return
    r = read(changed, Profile.UTS, YEAR)
    if r.ok:
        k = r.karekod
        original = read(raw, Profile.UTS, YEAR).karekod
        assert k is not None and original is not None
        # the unit's fields differ, or at least the data recorded with it (an ISBT 128 DIN's
        # process-control flags are carried, not part of the identifier)
        read_as = (k.issuer, k.di, k.serial, k.batch, k.expiry, k.production_date)
        assert read_as != expected or k.fields != original.fields, changed


# -- the station and the central side -----------------------------------------------------------

HIBC_UNIT = "+A99912345/$$3270531LOT1/SSER1"
HIBC_UNIT += hibc_check(HIBC_UNIT)


def test_a_udi_event_passes_the_wire_contract() -> None:
    v = judge(HIBC_UNIT, Policy(Profile.UTS), date(2026, 1, 1))
    assert v.ok
    body = event_body("dock-1", 1, **v.as_dict())
    message = EventMessage.from_json(json.dumps(body))
    assert (message.issuer, message.di, message.udi, message.gtin) == (Issuer.HIBCC, "A99912345", HIBC_UNIT, None)


def udi_event(station: str, seq: int, raw: str, operation: str = "receipt") -> tuple[str, EventMessage]:
    v = judge(raw, Policy(Profile.UTS), date(2026, 1, 1))
    assert v.ok, v.message
    text = json.dumps(event_body(station, seq, operation=operation, **v.as_dict()))
    return text, EventMessage.from_json(text)


def test_uts_receipt_and_dispatch_of_hibc_units(tmp_path: Path) -> None:
    sandbox = SandboxServer(seed=1)
    try:
        data = seed(sandbox.sandbox)
        verme = {"from": SUPPLIER, "to": KURUM, "uno": "A99912345", "sno": "SER1", "bno": "IRS-9"}
        sandbox.sandbox.seed({**data, "uts": {**data["uts"], "vermes": [verme]}})
        extra = f"""
[sites.hospital-out]
service = "uts"
institution = "{KURUM}"
operation = "dispatch"
counterpart = "{SUPPLIER}"
stations = ["out-1"]
"""
        config = load(submitter_config(tmp_path, 1, sandbox.url, extra=extra))
        ledger = Ledger(config.ledger, config.id)
        notifier = Notifier(config, ledger)
        ledger.ingest([udi_event("dock-1", 1, HIBC_UNIT)], config.site_of)
        run_until_final(notifier, ledger, 1)
        assert [(e["op"], e["uno"], e["sno"]) for e in sandbox.sandbox.effects] == [("alma", "A99912345", "SER1")]
        ledger.ingest([udi_event("out-1", 1, HIBC_UNIT, "dispatch")], config.site_of)
        run_until_final(Notifier(config, ledger), ledger, 2)
        assert [(e["op"], e["uno"], e["sno"]) for e in sandbox.sandbox.effects][-1] == ("verme", "A99912345", "SER1")
        sent = ledger.query("SELECT body FROM requests WHERE endpoint LIKE '%verme/ekle/essizKimlik'")
        body = json.loads(sent[0][0])
        assert body["UDI"] == HIBC_UNIT and "UNO" not in body and "SNO" not in body and "ADT" not in body
        assert {j.state for j in ledger.jobs("1 = 1")} == {"done"}
    finally:
        sandbox.close()
