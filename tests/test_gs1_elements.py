"""Element strings split and values explained: the exact words a person reads when a scan is
refused, for the faults the reference's vectors judge only by their reason."""

from __future__ import annotations

from station.gs1 import elements
from station.gs1.reader import Fault
from station.gs1.reasons import Reason

GS = "\x1d"
GTIN = "08699530000011"


def test_where_the_splitting_stops_and_why() -> None:
    assert elements.split_fields(f"01{GTIN}{GS}{GS}10ABC") == (
        [("01", GTIN)],
        [Fault(Reason.NOT_GS1, "Two separators in a row.")],
    )
    assert elements.split_fields(f"01{GTIN}2399999") == (
        [("01", GTIN)],
        [Fault(Reason.NOT_GS1, "No GS1 application identifier at '2399'.")],  # four characters shown
    )
    assert elements.split_fields(f"01{GTIN}10ABC{GS}21S1") == ([("01", GTIN), ("10", "ABC"), ("21", "S1")], [])


def test_an_ai_is_found_at_its_own_length() -> None:
    assert elements.find_ai(f"01{GTIN}", 0) == "01"
    assert elements.find_ai("253123", 0) == "253"
    assert elements.find_ai("8003123", 0) == "8003"
    assert elements.find_ai("2399", 0) is None


def test_each_value_fault_is_named_with_its_ai_and_what_it_needs() -> None:
    def fault(ai: str, value: str) -> Fault | None:
        return elements.check_value(ai, value, 2026)

    assert fault("01", "123") == Fault(Reason.INVALID_LENGTH, "AI 01 (GTIN) has 3 characters; exactly 14 needed.")
    assert fault("8003", "01234567890") == Fault(
        Reason.INVALID_LENGTH, "AI 8003 (GRAI) has 11 characters; 14 to 30 needed."
    )
    assert fault("10", "A" * 21) == Fault(Reason.INVALID_LENGTH, "AI 10 (BATCH/LOT) has 21 characters; at most 20.")
    assert fault("8006", "123456789012310102X") == Fault(
        Reason.INVALID_LENGTH,
        "AI 8006 (ITIP) has 19 characters; at most 18.",  # both parts counted
    )
    assert fault("8003", "01234567890128") is None  # the optional serial left out
    assert fault("8003", "01234567890128A~") == Fault(
        Reason.INVALID_CHARACTER, "AI 8003 (GRAI) '01234567890128A~' has '~', which is not GS1 character set 82."
    )
    assert fault("17", "261332") == Fault(Reason.INVALID_DATE, "AI 17 (USE BY or EXPIRY) '261332' has month 13.")


def test_optional_parts_are_checked_when_present_and_skipped_when_not() -> None:
    assert elements.check_value("7007", "260101", 2026) is None  # a harvest date without the range's end
    assert elements.check_value("7007", "260101260131", 2026) is None
    assert elements.check_value("7007", "260101261331", 2026) == Fault(
        Reason.INVALID_DATE, "AI 7007 (HARVEST DATE) '260101261331' has month 13."
    )
    assert elements.check_value("8008", "26010112", 2026) is None  # hours alone; minutes and seconds optional
    assert elements.check_value("8008", "2601011260", 2026) == Fault(
        Reason.INVALID_DATE, "AI 8008 (PROD TIME) '2601011260' has minute 60."
    )
