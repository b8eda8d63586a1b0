"""Device identifiers of the other issuing agencies ÜTS accepts: HIBCC, IFA and ICCBBA.

Each reader takes the scan's text (symbology identifier and suffix already removed) and returns a
:class:`Udi` or a :class:`~station.gs1.elements.Fault`; none ever guesses.

- **HIBC** (ANSI/HIBC 2.6, Health Industry Supplier Labeling Standard): ``+`` LIC (4) PCN (1-18)
  U/M (1) for the primary; the secondary (``$`` lot, ``$+`` serial, ``$$`` with an expiry date
  format flag, quantities, the old ``YYJJJ`` form, and the ``/S``, ``/16D``, ``/14D``, ``/Q``
  supplemental fields); primary and secondary concatenated with ``/`` under one modulo-43 check
  character, or each in its own symbol with the secondary's link character.
- **IFA** PPN codes (IFA coding system, ISO/IEC 15434 format 06 with ANSI MH10.8.2 data
  identifiers): ``[)>`` RS ``06`` GS ``9N`` PPN GS ``1T`` batch GS ``D`` expiry GS ``S`` serial RS
  EOT; the PPN's two check digits (weighted sum of character codes, modulo 97). Format 05 (GS1
  element strings in the same envelope) is handed back to the GS1 reader.
- **ISBT 128** (ICCBBA ST-001 v6.2, ST-017 for medical devices): the Processor Product
  Identification Code ``=/`` (the DI), with the Donation Identification Number ``=α...`` (its ISO
  7064 mod 37-2 flag check when the flags carry one), Product Divisions ``=,``, MPHO lot
  ``&,1`` and supplemental number ``&,2``, expiry ``=>``/``&>`` (or its month, ``=]``) and production
  ``=}``/``&}`` dates, optionally behind a Compound Message header ``=+`` whose count is checked.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import ClassVar

from station.gs1.elements import Fault, Field, check_digit
from station.gs1.linters import full_year
from station.gs1.reasons import Reason

RS, GS, EOT = "\x1e", "\x1d", "\x04"


class Issuer(StrEnum):
    """The issuing agencies whose identifiers ÜTS takes (and the station reads)."""

    GS1 = "gs1"
    HIBCC = "hibcc"
    ICCBBA = "iccbba"
    IFA = "ifa"


@dataclass(frozen=True, slots=True)
class Udi:
    """What a non-GS1 device label says, in the terms ÜTS uses."""

    issuer: Issuer
    di: str | None
    """The device identifier (ÜTS ``UNO``): HIBC LIC+PCN+U/M, the PPN (or the GTIN of ``8P``), the PPIC."""
    serial: str | None = None
    batch: str | None = None
    expiry: date | None = None
    production_date: date | None = None
    gtin: str | None = None
    """Only an IFA code carrying a GTIN (``8P``)."""
    fields: tuple[Field, ...] = ()
    """Every element as read: (identifier, value)."""


def _fault(reason: Reason, message: str) -> Fault:
    return Fault(reason, message)


def _last_day(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


# -- HIBC ----------------------------------------------------------------------------------------

HIBC_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. $/+%"
_ALNUM = re.compile(r"[0-9A-Z]+")


def hibc_check(data: str) -> str:
    """The modulo-43 check character of ``data`` (the ``+`` flag included), ANSI/HIBC 2.6 §2.4."""
    return HIBC_CHARS[sum(HIBC_CHARS.index(c) for c in data) % 43]


class _HibcDate:
    """The expiry date formats a ``$$`` secondary names by its flag digit (ANSI/HIBC 2.6 table 2)."""

    LENGTHS: ClassVar[dict[str, int]] = {"0": 4, "1": 4, "2": 6, "3": 6, "4": 8, "5": 5, "6": 7, "7": 0}

    @staticmethod
    def parse(flag: str, text: str, this_year: int) -> date | None:
        if not text.isdigit() or not text.isascii():
            return None
        try:
            if flag in "01":  # MMYY: the flag is the month's first digit; the month's last day
                return _last_day(full_year(int(text[2:4]), this_year), int(text[:2]))
            if flag == "2":  # MMDDYY
                return date(full_year(int(text[4:6]), this_year), int(text[:2]), int(text[2:4]))
            if flag in "34":  # YYMMDD[HH]
                if flag == "4" and int(text[6:8]) > 23:
                    return None
                return date(full_year(int(text[:2]), this_year), int(text[2:4]), int(text[4:6]))
            if flag in "56":  # YYJJJ[HH]
                return _julian(text[:5], this_year, None if flag == "5" else text[5:7])
        except ValueError:
            return None
        return None


def _julian(text: str, this_year: int, hour: str | None = None) -> date | None:
    year, day = full_year(int(text[:2]), this_year), int(text[2:5])
    if hour is not None and int(hour) > 23:
        return None
    if not 1 <= day <= (366 if calendar.isleap(year) else 365):
        return None
    return date(year, 1, 1) + timedelta(days=day - 1)


def _yyyymmdd(text: str) -> date | None:
    if len(text) != 8 or not text.isdigit() or not text.isascii():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


@dataclass
class _HibcSecondary:
    batch: str | None = None
    serial: str | None = None
    expiry: date | None = None
    production: date | None = None
    quantity: str | None = None


def _hibc_secondary(segment: str, into: _HibcSecondary, this_year: int) -> Fault | None:
    """One secondary segment (without its leading ``+`` or ``/``)."""

    def bad(what: str, reason: Reason = Reason.INVALID_VALUE) -> Fault:
        return _fault(reason, f"HIBC secondary {segment!r}: {what}.")

    def lot_or_serial(value: str, serial: bool) -> Fault | None:
        if not value:
            return None if not serial else bad("no serial number")
        if len(value) > 18:
            return bad("a lot or serial is 18 characters at most", Reason.INVALID_LENGTH)
        if not _ALNUM.fullmatch(value):
            return bad("a lot or serial is letters and digits only", Reason.INVALID_CHARACTER)
        if serial:
            if into.serial is not None:
                return bad("a second serial number", Reason.INVALID_COMBINATION)
            into.serial = value
        else:
            if into.batch is not None:
                return bad("a second lot number", Reason.INVALID_COMBINATION)
            into.batch = value
        return None

    def set_expiry(value: date | None) -> Fault | None:
        if value is None:
            return bad("not a real date", Reason.INVALID_DATE)
        if into.expiry is not None:
            return bad("a second expiry date", Reason.INVALID_COMBINATION)
        into.expiry = value
        return None

    if segment.startswith("$$"):
        rest = segment[2:]
        serial = rest.startswith("+")
        rest = rest[1:] if serial else rest
        flag = rest[:1]
        if flag in ("8", "9"):
            size = 2 if flag == "8" else 5
            quantity = rest[1 : 1 + size]
            if len(quantity) != size or not quantity.isdigit():
                return bad("a quantity of the wrong length", Reason.INVALID_LENGTH)
            into.quantity = quantity
            rest = rest[1 + size :]
            flag = rest[:1] if rest[:1].isdigit() else "7_"
            if flag == "7_":
                return lot_or_serial(rest, serial)
        if not flag or flag not in _HibcDate.LENGTHS:
            return bad("no date format flag after $$")
        size = _HibcDate.LENGTHS[flag]
        start = 0 if flag in "01" else 1
        text = rest[start : start + size]
        if flag != "7":
            if len(text) != size:
                return bad("a date of the wrong length", Reason.INVALID_LENGTH)
            fault = set_expiry(_HibcDate.parse(flag, text, this_year))
            if fault is not None:
                return fault
        return lot_or_serial(rest[start + size :], serial)
    if segment.startswith("$+"):
        return lot_or_serial(segment[2:], True)
    if segment.startswith("$"):
        return lot_or_serial(segment[1:], False)
    if segment.startswith(("14D", "16D")):
        when = _yyyymmdd(segment[3:])
        if when is None:
            return bad("not a YYYYMMDD date", Reason.INVALID_DATE)
        if segment.startswith("16D"):
            into.production = when
            return None
        return set_expiry(when)
    if segment.startswith("S"):
        return lot_or_serial(segment[1:], True)
    if segment.startswith("Q"):
        if not segment[1:].isdigit() or len(segment) > 9:
            return bad("not a quantity", Reason.INVALID_VALUE)
        into.quantity = segment[1:]
        return None
    if segment[:5].isdigit() and len(segment) >= 5:  # the old form: YYJJJ then the lot
        fault = set_expiry(_julian(segment[:5], this_year))
        return fault or lot_or_serial(segment[5:], False)
    return bad("not a secondary data format of ANSI/HIBC 2.6", Reason.NOT_UDI)


_PRIMARY = re.compile(r"([A-Z][A-Z0-9]{3})([A-Z0-9]{1,18})([0-9])")


def read_hibc(text: str, this_year: int) -> Udi | Fault:
    """A HIBC supplier label: primary, secondary, or both concatenated."""
    if len(text) < 3:
        return _fault(Reason.INVALID_LENGTH, "Too short for a HIBC code.")
    bad = next((c for c in text if c not in HIBC_CHARS), None)
    if bad is not None:
        return _fault(Reason.INVALID_CHARACTER, f"Character {bad!r} is not in the HIBC character set.")
    body, check = text[:-1], text[-1]
    if hibc_check(body) != check:
        return _fault(Reason.BAD_CHECK_DIGIT, f"HIBC check character should be {hibc_check(body)!r}, not {check!r}.")
    data = body[1:]
    parts = data.split("/")
    primary: re.Match[str] | None = None
    secondary = _HibcSecondary()
    if data[:1].isalpha():
        primary = _PRIMARY.fullmatch(parts[0])
        if primary is None:
            return _fault(Reason.INVALID_LENGTH, f"HIBC primary {parts[0]!r} is not LIC (4), PCN (1-18), U/M (1).")
        segments = parts[1:]
    else:  # a secondary alone: its last character links it to a primary scanned elsewhere
        if len(parts) > 1 or len(data) < 2:
            return _fault(Reason.NOT_UDI, "A HIBC secondary must stand alone or follow its primary.")
        segments = [data[:-1]]
    for segment in segments:
        if not segment:
            return _fault(Reason.NOT_UDI, "An empty HIBC segment (two '/' in a row).")
        fault = _hibc_secondary(segment, secondary, this_year)
        if fault is not None:
            return fault
    fields: list[Field] = []
    if primary is not None:
        fields += [("LIC", primary[1]), ("PCN", primary[2]), ("UM", primary[3])]
    fields += [
        (name, value)
        for name, value in (
            ("LOT", secondary.batch),
            ("SERIAL", secondary.serial),
            ("EXPIRY", secondary.expiry.isoformat() if secondary.expiry else None),
            ("PRODUCTION", secondary.production.isoformat() if secondary.production else None),
            ("QUANTITY", secondary.quantity),
        )
        if value is not None
    ]
    return Udi(
        Issuer.HIBCC,
        primary[0] if primary is not None else None,
        secondary.serial,
        secondary.batch,
        secondary.expiry,
        secondary.production,
        fields=tuple(fields),
    )


# -- IFA: ISO/IEC 15434 format 06 ------------------------------------------------------------

ENVELOPE = "[)>" + RS


def ppn_check(body: str) -> str:
    """The PPN's two check digits (IFA, Check Digit Calculations PZN/PPN): sum of character codes
    weighted 2, 3, 4... from the left, modulo 97."""
    return f"{sum(ord(c) * (i + 2) for i, c in enumerate(body)) % 97:02d}"


_PPN = re.compile(r"[0-9A-Z]{2,20}[0-9]{2}")
_DI = re.compile(r"([0-9]{0,3}[A-Z])")
_MH10_TEXT = re.compile(r'[!"%&\'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}')
#: The MH10.8.2 data identifiers an IFA code carries, and what each holds.
IFA_DIS = {
    "9N": "PPN",
    "8P": "GTIN",
    "1T": "batch",
    "S": "serial",
    "D": "expiry",
    "14D": "expiry",
    "16D": "production date",
    "Q": "quantity",
    "27Q": "quantity",
}


def read_iso15434(text: str, this_year: int) -> Udi | Fault | str:
    """An ISO/IEC 15434 message: format 06 read here; format 05 returned as its GS1 element string."""
    if not text.startswith(ENVELOPE):
        return _fault(Reason.NOT_UDI, "Not an ISO/IEC 15434 message.")
    body = text[len(ENVELOPE) :]
    for trailer in (RS + EOT, RS):
        if body.endswith(trailer):
            body = body[: -len(trailer)]
            break
    if RS in body or EOT in body:
        return _fault(Reason.NOT_UDI, "More than one format in the ISO/IEC 15434 message, or a stray RS/EOT.")
    header, _, content = body.partition(GS)
    if header == "05":
        return content
    if header != "06":
        return _fault(Reason.NOT_UDI, f"ISO/IEC 15434 format {header[:2]!r}: only 05 (GS1) and 06 (MH10.8.2) are read.")
    values: dict[str, str] = {}
    for element in content.split(GS):
        m = _DI.match(element)
        if m is None or m[1] not in IFA_DIS:
            return _fault(Reason.INVALID_VALUE, f"Data identifier in {element[:6]!r} is not one an IFA code carries.")
        di, value = m[1], element[m.end() :]
        if di in values:
            return _fault(Reason.INVALID_COMBINATION, f"Data identifier {di} appears twice.")
        if not value:
            return _fault(Reason.INVALID_LENGTH, f"Data identifier {di} has no value.")
        values[di] = value
    if ("9N" in values) == ("8P" in values):
        return _fault(Reason.MISSING_FIELD, "An IFA code carries a PPN (9N) or a GTIN (8P), exactly one.")
    ppn, gtin = values.get("9N"), values.get("8P")
    if ppn is not None:
        if not _PPN.fullmatch(ppn):
            return _fault(Reason.INVALID_LENGTH, f"PPN {ppn!r} is not 4 to 22 letters and digits ending in two digits.")
        if ppn_check(ppn[:-2]) != ppn[-2:]:
            return _fault(Reason.BAD_CHECK_DIGIT, f"PPN {ppn} should end in check digits {ppn_check(ppn[:-2])}.")
    if gtin is not None:
        if len(gtin) != 14 or not gtin.isdigit() or not gtin.isascii():
            return _fault(Reason.INVALID_LENGTH, f"GTIN (8P) {gtin!r} is not 14 digits.")
        if check_digit(gtin[:-1]) != int(gtin[-1]):
            return _fault(Reason.BAD_CHECK_DIGIT, f"GTIN (8P) {gtin} should end in {check_digit(gtin[:-1])}.")
    for di in ("1T", "S"):
        if di in values and not _MH10_TEXT.fullmatch(values[di]):
            return _fault(
                Reason.INVALID_CHARACTER, f"{IFA_DIS[di].capitalize()} ({di}) must be 1 to 20 GS1/MH10 characters."
            )
    for di in ("Q", "27Q"):
        if di in values and not (values[di].isdigit() and values[di].isascii() and len(values[di]) <= 8):
            return _fault(Reason.INVALID_VALUE, f"Quantity ({di}) {values[di]!r} is not a number.")
    expiry = production = None
    if "D" in values:
        d = values["D"]
        if len(d) != 6 or not d.isdigit() or not d.isascii():
            return _fault(Reason.INVALID_DATE, f"Expiry (D) {d!r} is not YYMMDD.")
        year, month, day = full_year(int(d[:2]), this_year), int(d[2:4]), int(d[4:])
        try:
            expiry = _last_day(year, month) if day == 0 else date(year, month, day)
        except ValueError:
            return _fault(Reason.INVALID_DATE, f"Expiry (D) {d} is not a real date.")
    for di in ("14D", "16D"):
        if di in values:
            when = _yyyymmdd(values[di])
            if when is None:
                return _fault(
                    Reason.INVALID_DATE,
                    f"{IFA_DIS[di].capitalize()} ({di}) {values[di]!r} is not a real YYYYMMDD date.",
                )
            if di == "16D":
                production = when
            elif expiry is not None and expiry != when:
                return _fault(Reason.INVALID_COMBINATION, "Two different expiry dates (D and 14D).")
            else:
                expiry = when
    return Udi(
        Issuer.IFA,
        ppn or gtin,
        values.get("S"),
        values.get("1T"),
        expiry,
        production,
        gtin=gtin,
        fields=tuple(values.items()),
    )


# -- ISBT 128 ------------------------------------------------------------------------------------

#: Data identifier -> (structure number, content length, content pattern); ST-001 v6.2 table 2.
ISBT_STRUCTURES: dict[str, tuple[str, int, str]] = {
    "=/": ("034", 16, r"[A-NP-Z0-9]{5}[A-Z0-9]{6}[A-Z0-9]{5}"),  # Processor Product Identification Code
    "=,": ("032", 6, r"[A-Z0-9]{6}"),  # Product Divisions
    "=>": ("004", 6, r"[0-9]{6}"),  # Expiration Date cyyjjj
    "&>": ("005", 10, r"[0-9]{10}"),  # Expiration Date and Time cyyjjjhhmm
    "=}": ("008", 6, r"[0-9]{6}"),  # Production Date
    "&}": ("009", 10, r"[0-9]{10}"),  # Production Date and Time
    "&,1": ("035", 18, r"[A-Z0-9]{18}"),  # MPHO Lot Number
    "&,2": ("036", 18, r"[A-Z0-9]{18}"),  # MPHO Supplemental Identification Number
    "=<": ("003", 8, r"[A-Z][A-Z0-9]{4}[A-Za-z0-9][A-Z0-9][a-z0-9]"),  # Product Code
    "&+": ("033", 11, r"[A-NP-Z0-9]{5}[A-Z0-9]{6}"),  # Processing Facility Information Code
    "=]": ("026", 6, r"[0-9]{6}"),  # Expiration Month and Year yyyymm
}
_DIN = re.compile(r"[A-NP-Z1-9][A-NP-Z0-9]{2}[0-9]{2}[0-9]{2}[0-9]{6}[0-9A-HJ-NPR-Y]{2}")
_MOD37 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"


def din_check(din: str) -> int:
    """ISO/IEC 7064 MOD 37-2 check value of a 13-character DIN (ST-001 appendix A)."""
    total = 0
    for c in din:
        total = ((total + _MOD37.index(c)) * 2) % 37
    return (38 - total) % 37


def _isbt_date(content: str) -> date | None:
    """cyyjjj[hhmm] (ST-001 2.4.4): c the century (0 for 2000-2099, 9 for the 1900s), yy the year
    within it, jjj the day of the year; the time when the structure carries one (10 digits)."""
    century = 1900 if content[0] == "9" else 2000 + 100 * int(content[0])
    year, day = century + int(content[1:3]), int(content[3:6])
    if len(content) > 6 and (int(content[6:8]) > 23 or int(content[8:10]) > 59):
        return None
    if not 1 <= day <= (366 if calendar.isleap(year) else 365):
        return None
    return date(year, 1, 1) + timedelta(days=day - 1)


def _isbt_month(content: str) -> date | None:
    """yyyymm (ST-001 data structure 026, Expiration Month and Year): good through the month's
    last day, as GS1 reads an expiry whose day is 00."""
    year, month = int(content[:4]), int(content[4:6])
    if not 1 <= month <= 12 or year < 1:
        return None
    return _last_day(year, month)


#: The date structures: expiry (004, 005 with a time, 026 a month) and production (008, 009).
_ISBT_DATES: tuple[tuple[str, str, Callable[[str], date | None]], ...] = (
    ("004", "expiry", _isbt_date),
    ("005", "expiry", _isbt_date),
    ("026", "expiry", _isbt_month),
    ("008", "production", _isbt_date),
    ("009", "production", _isbt_date),
)


def read_isbt(text: str, this_year: int) -> Udi | Fault:
    """ISBT 128 data structures concatenated (optionally behind a Compound Message header)."""
    pos, count = 0, None
    if text.startswith("=+"):  # Compound Message [023]: =+ aa bbb
        header = text[2:7]
        if len(header) != 5 or not header.isdigit():
            return _fault(Reason.INVALID_LENGTH, "ISBT 128 compound message header is not =+aabbb.")
        count, pos = int(header[:2]), 7
    values: dict[str, str] = {}
    while pos < len(text):
        if text[pos] == "=" and pos + 1 < len(text) and re.match(r"[A-NP-Z1-9]", text[pos + 1]):
            structure, content, pos = "001", text[pos + 1 : pos + 16], pos + 16
            if not _DIN.fullmatch(content):
                return _fault(
                    Reason.INVALID_VALUE, f"ISBT 128 Donation Identification Number {content!r} is malformed."
                )
            flags = content[13:]
            if flags.isdigit() and 60 <= int(flags) <= 96 and int(flags) - 60 != din_check(content[:13]):
                return _fault(Reason.BAD_CHECK_DIGIT, f"ISBT 128 DIN {content[:13]} fails its check flags {flags}.")
        else:
            di = text[pos : pos + 3] if text[pos : pos + 2] == "&," else text[pos : pos + 2]
            if di not in ISBT_STRUCTURES:
                return _fault(Reason.NOT_UDI, f"ISBT 128 data identifier {di!r} is not one a device label carries.")
            structure, length, pattern = ISBT_STRUCTURES[di]
            content = text[pos + len(di) : pos + len(di) + length]
            pos += len(di) + length
            if len(content) != length:
                return _fault(Reason.INVALID_LENGTH, f"ISBT 128 data structure {structure} needs {length} characters.")
            if not re.fullmatch(pattern, content):
                return _fault(
                    Reason.INVALID_CHARACTER, f"ISBT 128 data structure {structure} {content!r} is malformed."
                )
        if structure in values:
            return _fault(Reason.INVALID_COMBINATION, f"ISBT 128 data structure {structure} appears twice.")
        values[structure] = content
    if count is not None and count != len(values):
        return _fault(
            Reason.INVALID_LENGTH, f"ISBT 128 compound message says {count} data structures, holds {len(values)}."
        )
    expiry = production = None
    for structure, name, read_date in _ISBT_DATES:
        if structure in values:
            when = read_date(values[structure])
            if when is None:
                return _fault(Reason.INVALID_DATE, f"ISBT 128 {name} date {values[structure]!r} is not a real date.")
            if name == "expiry":
                expiry = when
            else:
                production = when
    serial = values["001"][:13] if "001" in values else values.get("036")
    return Udi(
        Issuer.ICCBBA,
        values.get("034"),
        serial,
        values.get("035"),
        expiry,
        production,
        fields=tuple(values.items()),
    )
