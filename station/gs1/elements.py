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

from station.gs1 import linters
from station.gs1.ai_table import AIS, Entry
from station.gs1.coupons import coupon_code, coupon_pos_offer
from station.gs1.reasons import Reason

GS = "\x1d"
"""Group separator: how a scanner transmits FNC1 between fields."""

#: Anything that is neither GS1 character set 82 nor GS.
NOT_CSET82 = re.compile(r'[^!"%-?A-Z_a-z\x1d]')

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
    return linters.check_digit(digits)


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
    year = linters.full_year(yy, this_year)
    last = calendar.monthrange(year, mm)[1]
    if dd == 0:
        dd = last
    if dd > last:
        return None
    return date(year, mm, dd)


#: Every check routine the dictionary names, by its name.
ROUTINES: dict[str, linters.Linter] = {
    **linters.LINTERS,
    "couponcode": coupon_code,
    "couponposoffer": coupon_pos_offer,
}


@lru_cache(maxsize=1024)
def length_range(ai: str) -> tuple[int, int]:
    """The shortest and longest value an AI takes: its required parts, and all of them."""
    parts = AIS[ai].components
    return sum(c.min for c in parts if not c.optional), sum(c.max for c in parts)


def _title(ai: str) -> str:
    return f"AI {ai} ({AIS[ai].title or 'untitled'})"


_SPLITS: dict[str, tuple[bool, int]] = {}
"""Each AI read so far: whether a GS ends it (not of predefined length), and its longest value."""


def _split_rule(ai: str) -> tuple[bool, int]:
    rule = _SPLITS[ai] = (AIS[ai].fnc1, length_range(ai)[1])
    return rule


def split_fields(data: str) -> tuple[list[Field], list[Fault]]:
    """Split an element string whose GS bytes are trusted, as the GS1 Syntax Engine does.

    An AI of predefined length (the dictionary's ``*``) takes exactly its length and needs no
    separator; any other runs to the next GS or the end. Two GS in a row, or a GS where an AI
    should start, leave no AI to read. Structural faults stop the reading there.
    """
    fields: list[Field] = []
    pos, end = 0, len(data)
    while pos < end:
        ai: str | None = data[pos : pos + 2]
        if ai not in AIS:
            ai = find_ai(data, pos)
        if ai is None:
            at = data[pos : pos + 4]
            why = "two separators in a row" if at[:1] == GS else f"no GS1 application identifier at {at!r}"
            return fields, [Fault(Reason.NOT_GS1, f"{why[0].upper()}{why[1:]}.")]
        fnc1, hi = _SPLITS.get(ai) or _split_rule(ai)
        start = pos + len(ai)
        stop = data.find(GS, start)
        stop = end if stop < 0 else stop
        if not fnc1 and stop > start + hi:
            stop = start + hi
        value = data[start:stop]
        if fnc1 and len(value) > hi:
            return fields, [Fault(Reason.INVALID_LENGTH, f"{_title(ai)} has {len(value)} characters; at most {hi}.")]
        if not value:
            return fields, [Fault(Reason.INVALID_LENGTH, f"{_title(ai)} is empty.")]
        fields.append((ai, value))
        pos = stop + 1 if stop < end and data[stop] == GS else stop
    return fields, []


_CLASS = {"N": "[0-9]", "X": '[!"%-?A-Z_a-z]', "Y": "[#\\-/0-9A-Z]"}


@cache
def _shape(ai: str) -> tuple[re.Pattern[str], tuple[tuple[int, linters.Linter], ...]] | None:
    """One pattern for an AI's whole value (sets and lengths) and each part's routines: the fast path.

    None for AIs with a base64 part, whose padding rule a pattern does not say simply.
    """
    parts = AIS[ai].components
    if any(c.cset not in _CLASS for c in parts):
        return None
    body = "".join(f"({_CLASS[c.cset]}{{{c.min},{c.max}}})" + ("?" if c.optional else "") for c in parts)
    checks = tuple((group, ROUTINES[name]) for group, c in enumerate(parts, 1) for name in c.linters)
    return re.compile(body), checks


#: AIs whose value differs on every label (serial, SSCC): checked each time, never remembered.
UNIQUE_AIS = frozenset({"21", "00"})


def check_value(ai: str, value: str, this_year: int) -> Fault | None:
    """The first fault of one value against its AI's parts, character sets and check routines.

    A pure function: the values a line scans again and again (the GTIN, expiry and batch of one
    product) are remembered, a dictionary lookup instead of a pattern and check routines on the scan
    path; serials are not (:data:`UNIQUE_AIS`)."""
    if ai in UNIQUE_AIS:
        return _check_value(ai, value, this_year)
    return _remembered_check(ai, value, this_year)


def _check_value(ai: str, value: str, this_year: int) -> Fault | None:
    shape = _shape(ai)
    if shape is not None:
        match = shape[0].fullmatch(value)
        if match is not None:
            for group, lint in shape[1]:
                text = match.group(group)
                if text is not None and lint(text, this_year) is not None:
                    break
            else:
                return None
    return _explain(ai, value, this_year)


_remembered_check = lru_cache(maxsize=1024)(_check_value)


def _explain(ai: str, value: str, this_year: int) -> Fault | None:
    """The slow path: walk the parts as the reference does and name the first fault."""
    entry: Entry = AIS[ai]
    pos = 0
    for part in entry.components:
        text = value[pos : pos + part.max]
        if part.optional and not text:
            continue
        if len(text) < part.min:
            lo, hi = length_range(ai)
            want = f"exactly {hi}" if lo == hi else f"{lo} to {hi}"
            return Fault(Reason.INVALID_LENGTH, f"{_title(ai)} has {len(value)} characters; {want} needed.")
        problem = linters.cset(part.cset, text)
        for name in part.linters:
            if problem is not None:
                break
            problem = ROUTINES[name](text, this_year)
        if problem is not None:
            reason, what = problem
            return Fault(reason, f"{_title(ai)} {value!r} {what}.")
        pos += len(text)
    if pos < len(value):
        return Fault(Reason.INVALID_LENGTH, f"{_title(ai)} has {len(value)} characters; at most {pos}.")
    return None


def check_fields(fields: list[Field], this_year: int) -> list[Fault]:
    """Content faults of split fields: each value's parts, then the pairings GS1 requires or forbids."""
    for ai, value in fields:
        fault = check_value(ai, value, this_year)
        if fault is not None:
            return [fault]
    return check_associations(fields)


def _present(pattern: str, ais: list[str], me: str) -> str | None:
    """The AI of the message matching ``pattern`` (``n`` stands for any digit), not ``me`` itself."""
    for ai in ais:
        if ai != me and len(ai) == len(pattern) and all(p in ("n", a) for p, a in zip(pattern, ai, strict=True)):
            return ai
    return None


@lru_cache(maxsize=1024)
def _pairing_fault(ais: tuple[str, ...]) -> Fault | None:
    """Exclusions and requisites depend on which AIs a message has, not their values: cached."""
    listed = list(ais)
    for ai in ais:
        for pattern in AIS[ai].ex:
            other = _present(pattern, listed, ai)
            if other is not None:
                return Fault(Reason.INVALID_COMBINATION, f"AIs {ai} and {other} may not appear together.")
    for ai in ais:
        for rule in AIS[ai].req:
            if not any(all(_present(p, listed, ai) for p in group) for group in rule):
                wanted = " or ".join("+".join(group) for group in rule)
                return Fault(Reason.MISSING_FIELD, f"{_title(ai)} needs AI {wanted} with it.")
    return None


def check_associations(fields: list[Field]) -> list[Fault]:
    """GS1's pairing rules, in the reference's order: exclusions, requisites, repeats, signatures."""
    pairing = _pairing_fault(tuple([ai for ai, _ in fields]))
    if pairing is not None:
        return [pairing]
    seen = dict(fields)
    if len(seen) < len(fields):  # an AI twice: the same value, or a fault
        seen = {}
        for ai, value in fields:
            if seen.setdefault(ai, value) != value:
                return [Fault(Reason.INVALID_COMBINATION, f"{_title(ai)} appears twice with different values.")]
    if "8030" in seen:
        for ai in ("253", "255", "8003"):
            if ai in seen and len(seen[ai]) == length_range(ai)[0]:
                return [Fault(Reason.MISSING_FIELD, f"{_title(ai)} needs its serial part with a signature (8030).")]
    return []
