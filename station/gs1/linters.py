"""The check routines of the GS1 Barcode Syntax Dictionary, one function per routine name.

The dictionary (``station.gs1.ai_table``) names, for each part of an AI's value, the routines
that part must pass: ``csum`` (a mod-10 check digit), ``yymmd0`` (a date whose day may be 00),
``iso3166`` (a country code)... These are the reference routines of GS1's Syntax Engine
(https://github.com/gs1/gs1-syntax-engine, ``src/c-lib/syntax/lint_*.c``), written again in
Python: same inputs accepted, same refused. Each returns None or ``(reason, what is wrong)``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from functools import lru_cache

from station.gs1.ai_table import ISO3166, ISO3166_ALPHA2, ISO4217, MEDIA_TYPES, PACKAGE_TYPES
from station.gs1.reasons import Reason

Problem = tuple[Reason, str] | None
Linter = Callable[[str, int], Problem]
"""A routine: (the component's text, this year for the century of a YYMMDD date) -> a problem."""

CSET82 = re.compile(r'[!"%-?A-Z_a-z]*')
CSET39 = re.compile(r"[#\-/0-9A-Z]*")
CSET64 = re.compile(r"[\-0-9A-Z_a-z]*")
NUMERIC = re.compile(r"[0-9]*")
CSETS: dict[str, tuple[re.Pattern[str], str]] = {
    "N": (NUMERIC, "digits"),
    "X": (CSET82, "GS1 character set 82"),
    "Y": (CSET39, "GS1 character set 39"),
    "Z": (CSET64, "base64url"),
}
GCP_MIN_LENGTH = 4


def _digits(v: str) -> bool:
    return NUMERIC.fullmatch(v) is not None


def check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit of ``digits`` (without the check digit itself)."""
    return -(3 * sum(map(int, digits[::-2])) + sum(map(int, digits[-2::-2]))) % 10


@lru_cache(maxsize=4096)
def csum(v: str, _: int) -> Problem:
    if not v or not _digits(v):
        return Reason.INVALID_CHARACTER, "must be digits"
    want = check_digit(v[:-1])
    if int(v[-1]) != want:
        return Reason.BAD_CHECK_DIGIT, f"should end in check digit {want}, not {v[-1]}"
    return None


_PRIMES = (
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
    97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191,
    193, 197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257, 263, 269, 271, 277, 281, 283, 293,
    307, 311, 313, 317, 331, 337, 347, 349, 353, 359, 367, 373, 379, 383, 389, 397, 401, 409, 419,
    421, 431, 433, 439, 443, 449, 457, 461, 463, 467, 479, 487, 491, 499, 503, 509,
)  # fmt: skip
_CSET82_ORDER = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_CSET32 = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def check_pair(data: str) -> str:
    """The two check characters of a GS1 alphanumeric key (GMN, CPID), GS1 GenSpecs §7.9.5."""
    total = sum(_CSET82_ORDER.index(c) * _PRIMES[len(data) - 1 - i] for i, c in enumerate(data)) % 1021
    return _CSET32[total >> 5] + _CSET32[total & 31]


def csumalpha(v: str, _: int) -> Problem:
    if len(v) > len(_PRIMES) + 2:
        return Reason.INVALID_LENGTH, "is too long for its check character pair"
    if len(v) < 2:
        return Reason.INVALID_LENGTH, "is too short for its check character pair"
    if any(c not in _CSET82_ORDER for c in v[:-2]):
        return Reason.INVALID_CHARACTER, "has a character outside GS1 character set 82"
    want = check_pair(v[:-2])
    if v[-2:] != want:
        return Reason.BAD_CHECK_DIGIT, f"should end in check characters {want}, not {v[-2:]}"
    return None


def gcppos1(v: str, _: int) -> Problem:
    if len(v) < GCP_MIN_LENGTH:
        return Reason.INVALID_LENGTH, "is shorter than the shortest GS1 Company Prefix"
    if not _digits(v[:GCP_MIN_LENGTH]):
        return Reason.INVALID_VALUE, "does not start with a GS1 Company Prefix"
    return None


def gcppos2(v: str, y: int) -> Problem:
    if len(v) < 2:
        return Reason.INVALID_LENGTH, "is shorter than the shortest GS1 Company Prefix"
    return gcppos1(v[1:], y)


def _yyyymmd0(v: str) -> Problem:
    if len(v) != 8:
        return Reason.INVALID_DATE, "is not a YYYYMMDD date"
    if not _digits(v):
        return Reason.INVALID_CHARACTER, "must be digits"
    year, month, day = int(v[:4]), int(v[4:6]), int(v[6:])
    if not 1 <= month <= 12:
        return Reason.INVALID_DATE, f"has month {v[4:6]}"
    if day > calendar.monthrange(year, month)[1]:
        return Reason.INVALID_DATE, f"has day {v[6:]}, which month {v[4:6]} of {year} does not have"
    return None


def full_year(yy: int, this_year: int) -> int:
    """The century of a two-digit year, GS1 General Specifications §7.12."""
    cc = this_year % 100
    year = this_year - cc + yy
    if yy - cc >= 51:
        year -= 100
    elif yy - cc <= -50:
        year += 100
    return year


@lru_cache(maxsize=4096)
def yymmd0(v: str, this_year: int) -> Problem:
    if len(v) != 6:
        return Reason.INVALID_DATE, "is not a YYMMDD date"
    if not _digits(v):
        return Reason.INVALID_CHARACTER, "must be digits"
    return _yyyymmd0(f"{full_year(int(v[:2]), this_year):04d}{v[2:]}")


def yymmdd(v: str, this_year: int) -> Problem:
    return yymmd0(v, this_year) or ((Reason.INVALID_DATE, "has day 00") if v[4:] == "00" else None)


def yyyymmd0(v: str, _: int) -> Problem:
    return _yyyymmd0(v)


def yyyymmdd(v: str, _: int) -> Problem:
    return _yyyymmd0(v) or ((Reason.INVALID_DATE, "has day 00") if v[6:] == "00" else None)


def _two_digits(v: str, top: int, what: str) -> Problem:
    if len(v) != 2:
        return Reason.INVALID_DATE, f"is not a two-digit {what}"
    if not _digits(v):
        return Reason.INVALID_CHARACTER, "must be digits"
    if int(v) > top:
        return Reason.INVALID_DATE, f"has {what} {v}"
    return None


def hh(v: str, _: int) -> Problem:
    return _two_digits(v, 23, "hour")


def mi(v: str, _: int) -> Problem:
    return _two_digits(v, 59, "minute")


def ss(v: str, _: int) -> Problem:
    return _two_digits(v, 59, "second")


def hhmi(v: str, y: int) -> Problem:
    if len(v) != 4:
        return Reason.INVALID_DATE, "is not an HHMM time"
    return hh(v[:2], y) or mi(v[2:], y)


def _one_of(codes: frozenset[str], what: str) -> Linter:
    def lint(v: str, _: int) -> Problem:
        return None if v in codes and v else (Reason.INVALID_VALUE, f"is not {what}")

    return lint


def iso3166999(v: str, y: int) -> Problem:
    return None if v == "999" or v in ISO3166 else (Reason.INVALID_VALUE, 'is not an ISO 3166 country code or "999"')


def nonzero(v: str, _: int) -> Problem:
    if not _digits(v):
        return Reason.INVALID_CHARACTER, "must be digits"
    return None if v.strip("0") else (Reason.INVALID_VALUE, "must not be zero")


def zero(v: str, _: int) -> Problem:
    return None if v and not v.strip("0") else (Reason.INVALID_VALUE, "must be zero")


def hyphen(v: str, _: int) -> Problem:
    return None if v and not v.strip("-") else (Reason.INVALID_VALUE, "must be a hyphen")


def nozeroprefix(v: str, _: int) -> Problem:
    if v[:1] == "0":
        return Reason.INVALID_VALUE, "must not start with zero"
    return None if _digits(v) else (Reason.INVALID_CHARACTER, "must be digits")


def hasnondigit(v: str, _: int) -> Problem:
    return (Reason.INVALID_VALUE, "must hold a character other than a digit") if _digits(v) else None


def importeridx(v: str, _: int) -> Problem:
    if len(v) != 1:
        return Reason.INVALID_LENGTH, "must be one character"
    return None if CSET64.fullmatch(v) else (Reason.INVALID_CHARACTER, "is not a valid importer index")


def pcenc(v: str, _: int) -> Problem:
    pos = v.find("%")
    while pos >= 0:
        if re.fullmatch(r"[0-9A-Fa-f]{2}", v[pos + 1 : pos + 3]) is None:
            return Reason.INVALID_VALUE, "has a bad percent-encoding"
        pos = v.find("%", pos + 3)
    return None


def pieceoftotal(v: str, _: int) -> Problem:
    if not _digits(v):
        return Reason.INVALID_CHARACTER, "must be digits"
    if not v or len(v) % 2:
        return Reason.INVALID_LENGTH, "is not a piece and a total of equal length"
    piece, total = v[: len(v) // 2], v[len(v) // 2 :]
    if not piece.strip("0") or not total.strip("0"):
        return Reason.INVALID_VALUE, "has a piece or a total of zero"
    return (Reason.INVALID_VALUE, "has a piece number above the total") if piece > total else None


def posinseqslash(v: str, _: int) -> Problem:
    m = re.fullmatch(r"([0-9]+)/([0-9]+)", v)
    if m is None:
        return Reason.INVALID_VALUE, "is not a position/total"
    position, end = m.groups()
    if position[0] == "0" or end[0] == "0":
        return Reason.INVALID_VALUE, "must not start with zero"
    return (Reason.INVALID_VALUE, "has a position above the end") if int(position) > int(end) else None


def _degrees(top: int, what: str) -> Linter:
    def lint(v: str, _: int) -> Problem:
        if len(v) != 10:
            return Reason.INVALID_LENGTH, f"is not a ten-digit {what}"
        if not _digits(v):
            return Reason.INVALID_CHARACTER, "must be digits"
        return (Reason.INVALID_VALUE, f"is not a valid {what}") if int(v) > top else None

    return lint


_IBAN = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def iban(v: str, _: int) -> Problem:
    if len(v) < 4:
        return Reason.INVALID_LENGTH, "is too short for an IBAN"
    if v[:2] not in ISO3166_ALPHA2:
        return Reason.INVALID_VALUE, "does not start with an ISO 3166 country code"
    if not 5 <= len(v) <= 34:
        return Reason.INVALID_LENGTH, "is not the length of an IBAN"
    if any(c not in _IBAN for c in v):
        return Reason.INVALID_CHARACTER, "has a character an IBAN cannot have"
    total = 0
    for c in v[4:] + v[:4]:
        n = _IBAN.index(c)
        total = (total * (10 if n < 10 else 100) + n) % 97
    return None if total == 1 else (Reason.BAD_CHECK_DIGIT, "has wrong IBAN check digits")


#: Every routine but the coupon ones (``station.gs1.coupons``), by the dictionary's name.
LINTERS: dict[str, Linter] = {
    "csum": csum,
    "csumalpha": csumalpha,
    "gcppos1": gcppos1,
    "gcppos2": gcppos2,
    "yymmd0": yymmd0,
    "yymmdd": yymmdd,
    "yyyymmd0": yyyymmd0,
    "yyyymmdd": yyyymmdd,
    "hh": hh,
    "mi": mi,
    "ss": ss,
    "hhmi": hhmi,
    "iso3166": _one_of(ISO3166, "an ISO 3166 country code"),
    "iso3166999": iso3166999,
    "iso3166alpha2": _one_of(ISO3166_ALPHA2, "an ISO 3166 two-letter country code"),
    "iso4217": _one_of(ISO4217, "an ISO 4217 currency code"),
    "iso5218": _one_of(frozenset("0129"), "an ISO/IEC 5218 sex code"),
    "mediatype": _one_of(MEDIA_TYPES, "a known media type"),
    "packagetype": _one_of(PACKAGE_TYPES, "a known package type"),
    "yesno": _one_of(frozenset("01"), '"0" or "1"'),
    "winding": _one_of(frozenset("019"), 'a winding direction ("0", "1" or "9")'),
    "nonzero": nonzero,
    "zero": zero,
    "hyphen": hyphen,
    "nozeroprefix": nozeroprefix,
    "hasnondigit": hasnondigit,
    "importeridx": importeridx,
    "pcenc": pcenc,
    "pieceoftotal": pieceoftotal,
    "posinseqslash": posinseqslash,
    "latitude": _degrees(1800000000, "latitude"),
    "longitude": _degrees(3600000000, "longitude"),
    "iban": iban,
}


def cset(kind: str, v: str) -> Problem:
    """The character-set check of a component: ``N``, ``X``, ``Y`` or ``Z`` (with its padding)."""
    if kind == "Z":
        body = v.rstrip("=")
        pads = len(v) - len(body)
        if pads > 2 or (pads and len(v) % 3):
            return Reason.INVALID_CHARACTER, "has bad base64 padding"
        v = body
    pattern, what = CSETS[kind]
    if pattern.fullmatch(v) is None:
        bad = next(c for c in v if pattern.fullmatch(c) is None)
        return Reason.INVALID_CHARACTER, f"has {bad!r}, which is not {what}"
    return None
