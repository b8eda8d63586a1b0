"""The one vocabulary of verdict reasons.

The values are stable strings: they are stored in events, printed in logs, sent over MQTT,
matched by the feedback mapping and by tests. Add new ones at the end of their group; never
rename one.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a scan was refused. Reader reasons come first, in the order faults are reported."""

    # -- the karekod reader (station.gs1.reader), in reporting order --
    NOT_GS1 = "not_gs1"
    INVALID_CHARACTER = "invalid_character"
    INVALID_LENGTH = "invalid_length"
    AMBIGUOUS = "ambiguous"
    BAD_CHECK_DIGIT = "bad_check_digit"
    INVALID_DATE = "invalid_date"
    MISSING_FIELD = "missing_field"
    EXPIRED = "expired"
    SHORT_DATED = "short_dated"
    INVALID_VALUE = "invalid_value"
    INVALID_COMBINATION = "invalid_combination"
    CUT_SCAN = "cut_scan"
    NOT_UDI = "not_udi"
    # -- station rules (station.edge.rules) --
    DUPLICATE = "duplicate"
    RECALLED = "recalled"
    NOT_EXPECTED = "not_expected"
    NO_DELIVERY = "no_delivery"
    NOT_IN_ORDER = "not_in_order"
    NO_ORDER = "no_order"
    NO_READ = "no_read"
    CANCELLED = "cancelled"
    # -- the station itself --
    STORAGE_ERROR = "storage_error"

    @property
    def rank(self) -> int:
        """Position in the reporting order: when a scan has several faults, the lowest wins."""
        return _ORDER[self]

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]


_ORDER = {reason: i for i, reason in enumerate(Reason)}

DESCRIPTIONS: dict[Reason, str] = {
    Reason.NOT_GS1: "Not a GS1 karekod.",
    Reason.INVALID_CHARACTER: "A character outside the GS1 character set.",
    Reason.INVALID_LENGTH: "A field is longer or shorter than GS1 allows.",
    Reason.AMBIGUOUS: "Separators were lost and the fields can be split more than one way.",
    Reason.BAD_CHECK_DIGIT: "A check digit is wrong.",
    Reason.INVALID_DATE: "A date is not a real date.",
    Reason.MISSING_FIELD: "A field this site needs is missing.",
    Reason.EXPIRED: "The product has expired.",
    Reason.SHORT_DATED: "The product expires too soon for this site.",
    Reason.INVALID_VALUE: "A field's content breaks its GS1 or issuing agency rule (a code list, a range).",
    Reason.INVALID_COMBINATION: "Fields GS1 does not allow together, or one field twice with different values.",
    Reason.CUT_SCAN: "The scan was cut in transmission (keyboard events lost); scan the box again.",
    Reason.NOT_UDI: "Not a device identifier of any issuing agency ÜTS accepts (GS1, HIBCC, ICCBBA, IFA).",
    Reason.DUPLICATE: "This unit was already accepted here.",
    Reason.RECALLED: "This batch is recalled.",
    Reason.NOT_EXPECTED: "This unit is not in the expected delivery.",
    Reason.NO_DELIVERY: "No delivery is open: scan the waybill or a pallet's or case's SSCC first.",
    Reason.NOT_IN_ORDER: "The open order does not want this product, or has all it wants of it.",
    Reason.NO_ORDER: "No order is open: scan the tote's order label first.",
    Reason.NO_READ: "A box passed the photo-eye and no code was read from it.",
    Reason.STORAGE_ERROR: "The scan could not be stored; not accepted.",
}
