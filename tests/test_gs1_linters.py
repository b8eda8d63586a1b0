"""Each check routine of the GS1 Barcode Syntax Dictionary against the reference's own unit tests.

``tests/data/gs1_syntax_engine_linters.json`` holds the inputs of the GS1 Syntax Engine's linter
unit tests (``src/c-lib/syntax/lint_*.c``) with the engine's verdict on each; the station's routines
(``station/gs1/linters.py``, ``coupons.py``) and its character-set checks must give the same.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from station.gs1 import linters
from station.gs1.elements import ROUTINES
from station.gs1.reasons import Reason

DATA = json.loads((Path(__file__).parent / "data" / "gs1_syntax_engine_linters.json").read_text())
VECTORS = DATA["vectors"]
CSETS = {"cset82": "X", "cset39": "Y", "cset64": "Z", "csetnumeric": "N"}
YEAR = 2026


def verdict(linter: str, data: str) -> tuple[Reason, str] | None:
    if linter in CSETS:
        return linters.cset(CSETS[linter], data)
    return ROUTINES[linter](data, YEAR)


@pytest.mark.parametrize("linter", sorted({v[0] for v in VECTORS}))
def test_each_routine_agrees_with_the_reference(linter: str) -> None:
    cases = [(data, ok, source) for name, data, ok, source in VECTORS if name == linter]
    wrong = [(source, data, ok) for data, ok, source in cases if (verdict(linter, data) is None) is not ok]
    assert not wrong, wrong[:5]
    for data, ok, _ in cases:
        problem = verdict(linter, data)
        if not ok:
            assert problem is not None and isinstance(problem[0], Reason) and problem[1]


def test_the_vectors_cover_every_routine_the_dictionary_names() -> None:
    named = set(ROUTINES) | set(CSETS)
    counts = Counter(v[0] for v in VECTORS)
    assert named <= set(counts), named - set(counts)
    assert len(VECTORS) > 5000 and sum(1 for v in VECTORS if v[2]) > 1000


def test_the_code_list_linters_built_once_at_import() -> None:
    """``_one_of`` and ``_degrees`` make linters when the table is built; called here afresh, so
    a change to them is seen (the vectors above only reach the instances made at import)."""
    country = linters._one_of(frozenset({"792", "276"}), "a country")
    assert country("792", 2026) is None and country("276", 2026) is None
    assert country("793", 2026) == (Reason.INVALID_VALUE, "is not a country")
    assert country("", 2026) == (Reason.INVALID_VALUE, "is not a country")
    with_empty = linters._one_of(frozenset({""}), "anything")  # an empty value is never a code
    assert with_empty("", 2026) == (Reason.INVALID_VALUE, "is not anything")
    latitude = linters._degrees(1800000000, "latitude")
    assert latitude("0000000000", 2026) is None and latitude("1800000000", 2026) is None
    assert latitude("1800000001", 2026) == (Reason.INVALID_VALUE, "is not a valid latitude")
    assert latitude("180000000", 2026) == (Reason.INVALID_LENGTH, "is not a ten-digit latitude")
    assert latitude("18000000000", 2026) == (Reason.INVALID_LENGTH, "is not a ten-digit latitude")
    assert latitude("18000000a0", 2026) == (Reason.INVALID_CHARACTER, "must be digits")
    assert linters.LINTERS["longitude"]("3600000000", 2026) is None
    assert linters.LINTERS["longitude"]("3600000001", 2026) == (Reason.INVALID_VALUE, "is not a valid longitude")


def test_percent_encoding_is_checked_at_every_percent_sign() -> None:
    bad = (Reason.INVALID_VALUE, "has a bad percent-encoding")
    assert linters.pcenc("a%41b%2fc", 2026) is None and linters.pcenc("plain", 2026) is None
    assert linters.pcenc("%41%4", 2026) == bad  # the last one cut short
    assert linters.pcenc("%zz%41", 2026) == bad  # the first one, though a good one follows
    assert linters.pcenc("%41%zz", 2026) == bad  # right after a good one
    assert linters.pcenc("%41%zz%41", 2026) == bad  # between two good ones
    assert linters.pcenc("%%41", 2026) == bad


def iban_of(country: str, bban: str) -> str:
    """ISO 13616 check digits, computed the textbook way (one big integer), not as the linter does."""
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def test_iban_lengths_and_check_digits() -> None:
    assert linters.iban("GB82WEST12345698765432", 2026) is None  # the standard's own example
    assert linters.iban("TR330006100519786457841326", 2026) is None
    assert linters.iban(iban_of("TR", "7"), 2026) is None  # 5 characters: the shortest it takes
    assert linters.iban(iban_of("TR", "1" * 30), 2026) is None  # 34: the longest
    assert linters.iban(iban_of("TR", "1" * 31), 2026) == (Reason.INVALID_LENGTH, "is not the length of an IBAN")
    assert linters.iban("TR12", 2026) == (Reason.INVALID_LENGTH, "is not the length of an IBAN")
    assert linters.iban("TR1", 2026) == (Reason.INVALID_LENGTH, "is too short for an IBAN")
    assert linters.iban("XX12345", 2026) == (Reason.INVALID_VALUE, "does not start with an ISO 3166 country code")
    assert linters.iban("TR12a45", 2026) == (Reason.INVALID_CHARACTER, "has a character an IBAN cannot have")
    assert linters.iban("GB83WEST12345698765432", 2026) == (Reason.BAD_CHECK_DIGIT, "has wrong IBAN check digits")


def test_times_name_what_is_wrong() -> None:
    assert linters.ss("59", 2026) is None and linters.ss("60", 2026) == (Reason.INVALID_DATE, "has second 60")
    assert linters.mi("60", 2026) == (Reason.INVALID_DATE, "has minute 60")
    assert linters.hh("24", 2026) == (Reason.INVALID_DATE, "has hour 24") and linters.hh("23", 2026) is None


def pair_of(data: str) -> str:
    """GS1 GenSpecs §7.9.5 check characters, written again from the text: the n-th prime from the
    right weighs each character's position in set 82; the sum mod 1021 split 5 + 5 bits in set 32."""
    primes = [n for n in range(2, 600) if all(n % d for d in range(2, int(n**0.5) + 1))]
    order = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
    total = sum(order.index(c) * primes[len(data) - 1 - i] for i, c in enumerate(data)) % 1021
    set32 = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return set32[total // 32] + set32[total % 32]


def test_check_character_pairs_at_their_lengths() -> None:
    assert linters.csumalpha("1987654Ad4X4bL5ttr2310c2K", 2026) is None  # GenSpecs' example
    assert linters.csumalpha("1987654Ad4X4bL5ttr2310c2L", 2026) == (
        Reason.BAD_CHECK_DIGIT,
        "should end in check characters 2K, not 2L",
    )
    longest = "A" * 97
    assert linters.csumalpha(longest + pair_of(longest), 2026) is None  # 99: as long as there are weights
    too_long = "A" * 98
    assert linters.csumalpha(too_long + pair_of(too_long[1:]), 2026) == (
        Reason.INVALID_LENGTH,
        "is too long for its check character pair",
    )
    assert linters.csumalpha("2", 2026) == (Reason.INVALID_LENGTH, "is too short for its check character pair")


def test_a_piece_of_a_total() -> None:
    zero = (Reason.INVALID_VALUE, "has a piece or a total of zero")
    assert linters.pieceoftotal("001002", 2026) is None and linters.pieceoftotal("0202", 2026) is None
    assert linters.pieceoftotal("001000", 2026) == zero and linters.pieceoftotal("000001", 2026) == zero
    assert linters.pieceoftotal("002001", 2026) == (Reason.INVALID_VALUE, "has a piece number above the total")
    assert linters.pieceoftotal("00102", 2026) == (Reason.INVALID_LENGTH, "is not a piece and a total of equal length")


def test_dates_company_prefixes_and_character_sets_say_exactly_what_is_wrong() -> None:
    assert linters.yyyymmdd("20261301", 2026) == (Reason.INVALID_DATE, "has month 13")
    assert linters.yyyymmdd("20260230", 2026) == (
        Reason.INVALID_DATE,
        "has day 30, which month 02 of 2026 does not have",
    )
    assert linters.yyyymmdd("20240229", 2026) is None and linters.yyyymmdd("20240200", 2026) == (
        Reason.INVALID_DATE,
        "has day 00",
    )
    assert linters.yyyymmdd("2026011", 2026) == (Reason.INVALID_DATE, "is not a YYYYMMDD date")
    short = (Reason.INVALID_LENGTH, "is shorter than the shortest GS1 Company Prefix")
    not_gcp = (Reason.INVALID_VALUE, "does not start with a GS1 Company Prefix")
    assert linters.gcppos1("1234", 2026) is None and linters.gcppos1("123", 2026) == short
    assert linters.gcppos1("123A5", 2026) == not_gcp
    assert linters.gcppos2("X1234", 2026) is None and linters.gcppos2("1", 2026) == short
    assert linters.gcppos2("1952A", 2026) == not_gcp  # the prefix starts at the second character
    assert linters.cset("N", "12a4") == (Reason.INVALID_CHARACTER, "has 'a', which is not digits")
    assert linters.cset("X", "ab~") == (Reason.INVALID_CHARACTER, "has '~', which is not GS1 character set 82")
