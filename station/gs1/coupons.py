"""The coupon routines of the GS1 Barcode Syntax Dictionary: AI 8110 and AI 8112.

North American coupon codes are no karekod, but a reader that claims GS1's own verdicts must judge
them as the reference does (GS1 Syntax Engine ``lint_couponcode.c``, ``lint_couponposoffer.c``;
GS1 North American Coupon Application Guideline). Each field is read left to right by a cursor;
the first fault ends the reading.
"""

from __future__ import annotations

from station.gs1.linters import Problem, gcppos1, yymmdd
from station.gs1.reasons import Reason


class _Bad(Exception):
    def __init__(self, message: str, reason: Reason = Reason.INVALID_VALUE) -> None:
        self.problem: Problem = (reason, f"coupon: {message}")


class _Cursor:
    def __init__(self, data: str, this_year: int) -> None:
        self.data, self.pos, self.this_year = data, 0, this_year

    @property
    def more(self) -> bool:
        return self.pos < len(self.data)

    def peek(self) -> str:
        return self.data[self.pos] if self.more else ""

    def digit(self, what: str, allowed: str) -> int:
        """One digit from ``allowed``; missing or another digit is a fault naming ``what``."""
        if not self.more:
            raise _Bad(f"the {what} is missing")
        c = self.data[self.pos]
        if c not in allowed:
            raise _Bad(f"the {what} cannot be {c!r}")
        self.pos += 1
        return int(c)

    def take(self, n: int, what: str) -> str:
        if len(self.data) - self.pos < n:
            raise _Bad(f"the {what} is shorter than its length says", Reason.INVALID_LENGTH)
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def company_prefix(self, n: int, what: str) -> None:
        problem = gcppos1(self.take(n, what), self.this_year)
        if problem is not None:
            raise _Bad(f"the {what} {problem[1]}", problem[0])

    def date(self, what: str) -> str:
        value = self.take(6, what)
        if yymmdd(value, self.this_year) is not None:
            raise _Bad(f"the {what} is not a real date", Reason.INVALID_DATE)
        return value


def _purchase(c: _Cursor, which: str, with_company: bool) -> None:
    vli = c.digit(f"{which} purchase requirement length", "12345")
    c.take(vli, f"{which} purchase requirement")
    c.digit(f"{which} purchase requirement code", "012349")
    c.take(3, f"{which} purchase family code")
    if with_company:
        vli = c.digit(f"{which} purchase company prefix length", "01234569")
        if vli != 9:
            c.company_prefix(vli + 6, f"{which} purchase company prefix")


def coupon_code(data: str, this_year: int) -> Problem:
    """AI 8110: the North American coupon code."""
    if not data.isdigit() or not data.isascii():
        return Reason.INVALID_CHARACTER, "must be digits"
    c = _Cursor(data, this_year)
    try:
        c.company_prefix(c.digit("company prefix length", "0123456") + 6, "company prefix")
        c.take(6, "offer code")
        c.take(c.digit("save value length", "12345"), "save value")
        _purchase(c, "first", with_company=False)
        if c.peek() == "1":
            c.pos += 1
            c.digit("additional purchase rules code", "0123")
            _purchase(c, "second", with_company=True)
        if c.peek() == "2":
            c.pos += 1
            _purchase(c, "third", with_company=True)
        expiry = None
        if c.peek() == "3":
            c.pos += 1
            expiry = c.date("expiration date")
        if c.peek() == "4":
            c.pos += 1
            start = c.date("start date")
            if expiry is not None and start > expiry:
                raise _Bad("the expiration date is before the start date", Reason.INVALID_DATE)
        if c.peek() == "5":
            c.pos += 1
            c.take(c.digit("serial number length", "0123456789") + 6, "serial number")
        if c.peek() == "6":
            c.pos += 1
            c.company_prefix(c.digit("retailer company prefix length", "1234567") + 6, "retailer company prefix")
        if c.peek() == "9":
            c.pos += 1
            c.digit("save value code", "01256")
            c.digit("save value applies to item", "012")
            c.digit("store coupon flag", "0123456789")
            c.digit("don't multiply flag", "01")
        if c.more:
            raise _Bad("excess data after the known fields", Reason.INVALID_LENGTH)
    except _Bad as bad:
        return bad.problem
    return None


def coupon_pos_offer(data: str, this_year: int) -> Problem:
    """AI 8112: the paperless coupon's point-of-sale offer."""
    if not data.isdigit() or not data.isascii():
        return Reason.INVALID_CHARACTER, "must be digits"
    c = _Cursor(data, this_year)
    try:
        c.digit("format code", "01")
        c.take(c.digit("funder length", "0123456") + 6, "funder")
        c.take(6, "offer code")
        c.take(c.digit("serial number length", "0123456789") + 6, "serial number")
        if c.more:
            raise _Bad("excess data after the known fields", Reason.INVALID_LENGTH)
    except _Bad as bad:
        return bad.problem
    return None
