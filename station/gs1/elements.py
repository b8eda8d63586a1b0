"""GS1 element strings: application identifiers, check digits, dates, character set 82.

The mechanics a karekod reader needs and nothing about karekods themselves (that is
``station.gs1.reader``). References: GS1 General Specifications §3 (AIs), §7.9.1 (check digits),
§7.12 (the century of a YYMMDD date), §7.11 (character set 82).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache

from station.gs1.ai_table import AIS
from station.gs1.reasons import Reason

GS = "\x1d"
"""Group separator: how a scanner transmits FNC1 between fields."""

#: Anything that is neither GS1 character set 82 nor GS.
NOT_CSET82 = re.compile(r'[^!"%-?A-Z_a-z\x1d]')

#: AIs whose value is a YYMMDD date where day 00 means the last day of the month.
DATE_AIS = frozenset({"11", "12", "13", "15", "16", "17"})

#: AIs whose value ends in a GS1 mod-10 check digit.
CHECK_DIGIT_AIS = frozenset({"00", "01", "02", "03", "410", "411", "412", "413", "414", "415", "416", "417"})

#: Variable CSET 82 AIs whose whole rule is "1 to 20 characters of set 82".
FREE_TEXT_AIS = frozenset({"10", "21"})

Field = tuple[str, str]
"""One element string: (AI, value)."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One thing wrong with a scan; the reader reports the lowest-ranked of them."""

    reason: Reason
    message: str


def find_ai(data: str, pos: int) -> str | None:
    """The AI starting at ``pos``: GS1 AIs are prefix-free, so at most one of 2, 3, 4 digits fits.

    >>> find_ai("0108699536090122", 0)
    '01'
    >>> find_ai("3103000123", 0)
    '3103'
    """
    for n in (2, 3, 4):
        ai = data[pos : pos + n]
        if ai in AIS:
            return ai
    return None


@lru_cache(maxsize=4096)
def check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit for ``digits`` (the data without its check digit).

    Cached: a station sees the same few GTINs all day.

    >>> check_digit("0869953609012")
    2
    """
    return -(3 * sum(map(int, digits[::-2])) + sum(map(int, digits[-2::-2]))) % 10


@lru_cache(maxsize=4096)
def decode_date(yymmdd: str, this_year: int) -> date | None:
    """A YYMMDD date, or None when it is no real date.

    The century follows GS1 §7.12: within 49 years back or 50 ahead of ``this_year``. Day 00
    means the last day of the month, which is the date İTS and ÜTS want.

    >>> decode_date("260100", 2026)
    datetime.date(2026, 1, 31)
    >>> decode_date("991231", 2026)
    datetime.date(1999, 12, 31)
    >>> decode_date("260229", 2026) is None
    True
    """
    if len(yymmdd) != 6 or not yymmdd.isdigit() or not yymmdd.isascii():
        return None
    yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    if not 1 <= mm <= 12:
        return None
    cc = this_year % 100
    year = this_year - cc + yy
    if yy - cc >= 51:
        year -= 100
    elif yy - cc <= -50:
        year += 100
    last = calendar.monthrange(year, mm)[1]
    if dd == 0:
        dd = last
    if dd > last:
        return None
    return date(year, mm, dd)


@cache
def _value_pattern(ai: str) -> re.Pattern[str]:
    return re.compile(AIS[ai][3])


def split_fields(data: str) -> tuple[list[Field], list[Fault]]:
    """Split an element string whose GS bytes are trusted: a variable field ends at GS or the end.

    Fields come back in scan order; structural faults (unknown AI, field too long or too short)
    stop the chunk they occur in, not the others.
    """
    fields: list[Field] = []
    faults: list[Fault] = []
    for chunk in data.split(GS):
        pos, end = 0, len(chunk)
        while pos < end:
            ai: str | None = chunk[pos : pos + 2]
            if ai not in AIS:
                ai = find_ai(chunk, pos)
            if ai is None:
                faults.append(Fault(Reason.NOT_GS1, f"No GS1 application identifier at {chunk[pos : pos + 4]!r}."))
                break
            separator, lo, hi, _, title = AIS[ai]
            start = pos + len(ai)
            if separator:
                value, pos = chunk[start:], end
                if len(value) > hi:
                    faults.append(
                        Fault(
                            Reason.INVALID_LENGTH,
                            f"AI {ai} ({title}) has {len(value)} characters; at most {hi} are allowed.",
                        )
                    )
                    break
            else:
                value, pos = chunk[start : start + hi], start + hi
            if len(value) < lo:
                what = f"exactly {hi}" if lo == hi else f"at least {lo}"
                faults.append(
                    Fault(Reason.INVALID_LENGTH, f"AI {ai} ({title}) has {len(value)} characters; {what} needed.")
                )
                break
            fields.append((ai, value))
    return fields, faults


def check_fields(fields: list[Field], this_year: int) -> list[Fault]:
    """Content faults of split fields: digits, check digits, dates, formats, conflicting repeats."""
    faults: list[Fault] = []
    seen: dict[str, str] = {}
    for ai, value in fields:
        if seen.setdefault(ai, value) != value:
            faults.append(Fault(Reason.NOT_GS1, f"AI {ai} ({AIS[ai][4]}) appears twice with different values."))
        if ai in FREE_TEXT_AIS:
            continue  # character set and length are already checked for the whole scan
        title = AIS[ai][4]
        if ai in CHECK_DIGIT_AIS or ai in DATE_AIS:
            if not (value.isdigit() and value.isascii()):
                faults.append(Fault(Reason.INVALID_CHARACTER, f"AI {ai} ({title}) must be digits, got {value!r}."))
            elif ai in DATE_AIS:
                if decode_date(value, this_year) is None:
                    faults.append(Fault(Reason.INVALID_DATE, f"AI {ai} ({title}) {value} is not a real date."))
            else:
                want = check_digit(value[:-1])
                if int(value[-1]) != want:
                    faults.append(
                        Fault(
                            Reason.BAD_CHECK_DIGIT,
                            f"AI {ai} ({title}) {value} should end in check digit {want}, not {value[-1]}.",
                        )
                    )
        elif not _value_pattern(ai).fullmatch(value):
            if AIS[ai][3].startswith(r"(\d") and not value.isdigit():
                faults.append(Fault(Reason.INVALID_CHARACTER, f"AI {ai} ({title}) must be digits, got {value!r}."))
            else:
                faults.append(Fault(Reason.NOT_GS1, f"AI {ai} ({title}) {value!r} does not fit its GS1 format."))
    return faults
