"""The karekod reader: raw scanner bytes to a decoded karekod, or a fault with a stable reason.

It never guesses. A scan is read exactly as the box says, or refused: when a USB keyboard-wedge
scanner drops the GS separators, the fields are split again from the fixed lengths, real dates and
the fields the site needs, and the scan is accepted only when exactly one split fits.

>>> r = read(b"]d20108699536090122" b"21ABCDEF12345\\x1d17260131" b"10LOT123\\r\\n")
>>> r.ok, r.karekod.gtin, r.karekod.serial, r.karekod.expiry.isoformat(), r.karekod.batch
(True, '08699536090122', 'ABCDEF12345', '2026-01-31', 'LOT123')
"""

from __future__ import annotations

from collections.abc import Container
from datetime import date
from enum import StrEnum
from typing import NamedTuple

from station.gs1.digital_link import is_digital_link, split_link
from station.gs1.elements import (
    GS,
    NOT_CSET82,
    Fault,
    Field,
    check_digit,
    check_fields,
    decode_date,
    split_fields,
)
from station.gs1.reasons import Reason
from station.gs1.udi import ENVELOPE, Issuer, Udi, read_hibc, read_isbt, read_iso15434

# -- the envelope: symbology identifier and suffix ------------------------------------------

#: ISO/IEC 15424 identifiers of symbols that carry GS1 element strings.
GS1_SYMBOLOGIES = {
    "]d2": "GS1 DataMatrix",
    "]C1": "GS1-128",
    "]Q3": "GS1 QR Code",
    "]e0": "GS1 DataBar",
    "]J1": "GS1 DotCode",
}
#: Identifiers of symbols that do not: told apart so the message says what was scanned.
OTHER_SYMBOLOGIES = {
    "]d1": "a plain DataMatrix (no FNC1, so not a GS1 karekod)",
    "]Q1": "a plain QR code (not a GS1 karekod)",
    "]C0": "a plain Code 128 barcode",
    "]E0": "a linear EAN-13/UPC barcode, not the karekod",
    "]E4": "a linear EAN-8 barcode, not the karekod",
    "]A0": "a Code 39 barcode",
    "]I0": "an ITF barcode",
    "]I1": "an ITF-14 barcode",
}
#: ``]d2``/``]C1`` as a scanner in US mode types them on a host set to Turkish Q or F.
GARBLED_SYMBOLOGIES = {"üd2": "Turkish Q", "üC1": "Turkish Q", "we2": "Turkish F", "wV1": "Turkish F"}
SUFFIX = "\r\n\t"


class Profile(StrEnum):
    """Which fields a site needs."""

    ITS = "its"
    """İTS medicine: GTIN, serial, expiry and batch."""
    UTS = "uts"
    """ÜTS medical device: a device identifier (GTIN, or a HIBCC, ICCBBA or IFA one, or a GS1 Digital
    Link) and at least one of serial and batch."""
    GS1 = "gs1"
    """Any valid GS1 message, element string or Digital Link, judged as the GS1 Syntax Engine does."""

    def missing(self, ais: Container[str]) -> list[str]:
        """The AIs (or ``21/10`` for either) this profile needs and ``ais`` lacks."""
        if self is Profile.ITS:
            return [ai for ai in ("01", "21", "17", "10") if ai not in ais]
        if self is Profile.UTS:
            need = [] if "01" in ais else ["01"]
            return need if ("21" in ais or "10" in ais) else [*need, "21/10"]
        return []


class Karekod(NamedTuple):
    """A decoded karekod: the fields a station and the national services work with.

    A NamedTuple rather than a frozen dataclass: as immutable, and four times cheaper to build
    on the scan path.
    """

    gtin: str | None
    """AI 01, 14 digits with a valid check digit."""
    serial: str | None
    """AI 21."""
    batch: str | None
    """AI 10."""
    expiry: date | None
    """AI 17; day 00 already turned into the month's last day."""
    production_date: date | None
    """AI 11."""
    sscc: str | None
    """AI 00, when a shipping label was scanned under the ``gs1`` profile."""
    fields: tuple[Field, ...]
    """Every element string in scan order, other AIs included, values as scanned."""
    recovered: bool = False
    """The scanner dropped separators and the one possible split was used."""
    symbology: str | None = None
    """The symbology identifier the scanner sent (``]d2``), if any."""
    issuer: Issuer = Issuer.GS1
    """Who issued the identifier: GS1, or for medical devices HIBCC, ICCBBA or IFA."""
    di: str | None = None
    """The device identifier ÜTS calls ``UNO``: the GTIN, or the other agencies' DI."""
    udi: str | None = None
    """A non-GS1 identifier as printed (what ÜTS's ``/essizKimlik`` calls take as ``UDI``)."""


class Reading(NamedTuple):
    """What the reader made of one scan: a karekod, or the first fault in reporting order."""

    karekod: Karekod | None
    reason: Reason | None = None
    message: str = "Karekod read."

    @property
    def ok(self) -> bool:
        return self.reason is None


def strip_suffix(text: str) -> str:
    """The scan without its CR, LF and Tab suffix (never ``str.strip()``: it takes GS too)."""
    end = len(text)
    while end and text[end - 1] in SUFFIX:
        end -= 1
    return text[:end]


def plain(raw: bytes) -> str:
    """A scan as text without its suffix and whatever symbology identifier it carries: how a
    waybill's Code 128, a tote's label or a command barcode is compared."""
    text = strip_suffix(raw.decode("utf-8", "replace"))
    return text[3:] if text[:1] == "]" else text


def unwrap(text: str) -> tuple[str | None, str, Fault | None]:
    """Split off the suffix and the symbology identifier.

    Returns (identifier, the rest, fault). Never uses ``str.strip()``: Python counts GS as white
    space.
    """
    text = strip_suffix(text)
    symbology = None
    if text[:1] == "]":
        symbology = text[:3]
        if symbology in OTHER_SYMBOLOGIES:
            return symbology, text, Fault(Reason.NOT_GS1, f"Scanned {OTHER_SYMBOLOGIES[symbology]}.")
        if symbology not in GS1_SYMBOLOGIES:
            return symbology, text, Fault(Reason.NOT_GS1, f"Unknown symbology identifier {symbology!r}.")
        text = text[3:]
    elif text[:3] in GARBLED_SYMBOLOGIES:
        layout = GARBLED_SYMBOLOGIES[text[:3]]
        return (
            None,
            text,
            Fault(
                Reason.INVALID_CHARACTER,
                f"Scan starts with {text[:3]!r}: the scanner types on a {layout} keyboard layout; "
                "set it to the station's layout.",
            ),
        )
    return symbology, text, None


def trim_separators(data: str, symbology: str | None, strict: bool) -> tuple[str, Fault | None]:
    """Drop the GS a scanner puts before the first AI or after the last.

    ``strict`` (the ``gs1`` profile) allows what the GS1 Syntax Engine allows: a leading GS only as
    the FNC1 of a scan without a symbology identifier, and one trailing GS.
    """
    start, end = 0, len(data)
    while start < end and data[start] == GS:
        start += 1
    while end > start and data[end - 1] == GS:
        end -= 1
    if strict and ((start and symbology is not None) or start > 1 or len(data) - end > 1):
        return data, Fault(Reason.NOT_GS1, "A separator (GS) where an application identifier should be.")
    return data[start:end], None


def _not_gs1(data: str, symbology: str | None) -> Fault | None:
    """Explain early what kind of not-a-karekod this is: empty, a linear barcode, a text.

    A scan that says it is a GS1 symbol (``]d2``...) is read as one, never taken for an EAN.
    """
    if not data:
        return Fault(Reason.NOT_GS1, "Empty scan.")
    if (
        symbology is None
        and data.isdigit()
        and len(data) in (8, 12, 13)
        and data.isascii()
        and check_digit(data[:-1]) == int(data[-1])
    ):
        return Fault(Reason.NOT_GS1, f"Scanned a linear EAN/UPC barcode ({data}), not the karekod.")
    if data[0] == "(":
        return Fault(Reason.NOT_GS1, "Scanned human-readable text with brackets, not the karekod.")
    if not data[:2].isdigit():
        return Fault(Reason.NOT_GS1, f"Not a GS1 element string: starts with {data[:4]!r}.")
    return None


# -- lost separators -------------------------------------------------------------------------

#: The AIs a karekod carries, and their fixed lengths (None: variable, at most 20).
KAREKOD_AIS: dict[str, int | None] = {"01": 14, "17": 6, "11": 6, "21": None, "10": None}
VARIABLE_MAX = 20


def _splits(data: str, profile: Profile, this_year: int, check_dates: bool, limit: int = 2) -> list[tuple[Field, ...]]:
    """Up to ``limit`` ways to cut ``data`` into karekod fields that the profile accepts.

    Each AI at most once, fixed lengths, variable fields of 1 to 20 characters, and (with
    ``check_dates``) real dates. Plain recursion, not generators: this is the worst-case path.
    """
    end = len(data)
    path: list[Field] = []
    found: list[tuple[Field, ...]] = []

    def walk(pos: int, used: frozenset[str]) -> bool:
        """True when enough splits are found to stop."""
        if pos == end:
            if not profile.missing(used):
                found.append(tuple(path))
            return len(found) >= limit
        ai = data[pos : pos + 2]
        if ai not in KAREKOD_AIS or ai in used:
            return False
        used = used | {ai}
        start = pos + 2
        fixed = KAREKOD_AIS[ai]
        if fixed is not None:
            value = data[start : start + fixed]
            if len(value) != fixed or not value.isdigit():
                return False
            if check_dates and ai != "01" and decode_date(value, this_year) is None:
                return False
            path.append((ai, value))
            done = walk(start + fixed, used)
            path.pop()
            return done
        for stop in range(start + 1, min(start + VARIABLE_MAX, end) + 1):
            if stop < end and data[stop : stop + 2] not in KAREKOD_AIS:
                continue  # the next field could not start here
            path.append((ai, data[start:stop]))
            done = walk(stop, used)
            path.pop()
            if done:
                return True
        return False

    walk(0, frozenset())
    return found


def _var_not_last(fields: tuple[Field, ...] | list[Field]) -> bool:
    return any(KAREKOD_AIS.get(ai, 0) is None for ai, _ in fields[:-1])


def _recover(data: str, profile: Profile, this_year: int) -> tuple[list[Field], list[Fault], bool]:
    """Read a scan that has no GS at all: the one split that fits, ambiguous, or the plain faults.

    The plain reading (a variable field runs to the end) competes with the karekod splits, so a
    string that reads two ways is refused even when one of the ways is perfectly valid GS1.
    """
    plain, plain_faults = split_fields(data)
    plain_ok = not plain_faults and not any(f.reason is Reason.INVALID_DATE for f in check_fields(plain, this_year))
    for check_dates in (True, False):
        found = _splits(data, profile, this_year, check_dates)
        if check_dates and plain_ok and not profile.missing(dict(plain)) and tuple(plain) not in found:
            found.append(tuple(plain))
        if len(found) > 1:
            shown = " or ".join("".join(f"({ai}){v}" for ai, v in s) for s in found[:2])
            return (
                [],
                [
                    Fault(
                        Reason.AMBIGUOUS,
                        f"Separators lost; the scan reads as {shown}. Rescan or fix the scanner's GS setting.",
                    )
                ],
                False,
            )
        if found:
            return list(found[0]), [], _var_not_last(found[0])
    return plain, plain_faults, False


# -- the reader ------------------------------------------------------------------------------


def read(raw: bytes | str, profile: Profile = Profile.ITS, this_year: int | None = None) -> Reading:
    """Read one raw scan. Never raises: every bad input comes back as a fault with a reason.

    ``this_year`` anchors the GS1 century rule (default: this year).
    """
    if this_year is None:
        this_year = date.today().year
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if profile is not Profile.ITS:
        other = _read_other(text, profile, this_year)
        if other is not None:
            return other
    symbology, data, fault = unwrap(text)
    if fault is None:
        data, fault = trim_separators(data, symbology, strict=profile is Profile.GS1)
    if fault is None:
        fault = _not_gs1(data, symbology)
    if fault is None:
        bad = NOT_CSET82.search(data)
        if bad is not None:
            ch = bad.group()
            hint = " (is the scanner on a Turkish keyboard layout?)" if ch in "ıİşŞğĞüÜöÖçÇ" else ""
            fault = Fault(Reason.INVALID_CHARACTER, f"Character {ch!r} at position {bad.start()} is not allowed{hint}.")
    if fault is not None:
        return Reading(None, fault.reason, fault.message)

    recovered = False
    if GS in data or profile is Profile.GS1:
        fields, faults = split_fields(data)
    else:
        fields, faults, recovered = _recover(data, profile, this_year)
    faults += check_fields(fields, this_year)
    values = dict(fields)
    if not faults:
        lacking = profile.missing(values)
        if lacking:
            faults.append(Fault(Reason.MISSING_FIELD, _missing_message(lacking, values, profile)))
    karekod = None
    if fields and (not faults or not any(f.reason.rank <= Reason.INVALID_LENGTH.rank for f in faults)):
        karekod = _gs1_karekod(fields, values, this_year, symbology, recovered)
    if faults:
        first = min(faults, key=lambda f: f.reason.rank)
        return Reading(karekod, first.reason, first.message)
    return Reading(karekod, None, "Karekod read from a scan with lost separators." if recovered else "Karekod read.")


def _gs1_karekod(
    fields: list[Field], values: dict[str, str], this_year: int, symbology: str | None, recovered: bool = False
) -> Karekod:
    """A karekod from GS1 fields (an element string or a Digital Link) and ``dict(fields)``."""
    return Karekod(
        gtin=values.get("01"),
        serial=values.get("21"),
        batch=values.get("10"),
        expiry=decode_date(values["17"], this_year) if "17" in values else None,
        production_date=decode_date(values["11"], this_year) if "11" in values else None,
        sscc=values.get("00"),
        fields=tuple(fields),
        recovered=recovered,
        symbology=symbology,
        di=values.get("01"),
    )


def _missing_message(lacking: list[str], values: dict[str, str], profile: Profile) -> str:
    if "00" in values and "01" not in values:
        return "Scanned a shipping label (SSCC), not a product karekod."
    names = {
        "01": "GTIN (01)",
        "21": "serial (21)",
        "17": "expiry (17)",
        "10": "batch (10)",
        "21/10": "serial (21) or batch (10)",
    }
    return f"Missing {', '.join(names[ai] for ai in lacking)} needed by the {profile.value} profile."


# -- the other forms a device label takes (``uts``; Digital Link also under ``gs1``) -------------

#: Identifiers of symbols that carry data other than GS1 element strings: where UDIs of the
#: other agencies and Digital Link URIs come from.
PLAIN_SYMBOLOGIES = frozenset({"]d1", "]Q1", "]J0", "]C0", "]A0"})


def _read_other(text: str, profile: Profile, this_year: int) -> Reading | None:
    """A Digital Link, HIBC, ISBT 128 or ISO/IEC 15434 scan; None when the scan is none of them."""
    body, symbology = strip_suffix(text), None
    if body[:1] == "]" and len(body) >= 3:
        symbology, body = body[:3], body[3:]
        if symbology not in PLAIN_SYMBOLOGIES:
            return None
    if is_digital_link(body):
        fields, faults = split_link(body)
        faults = faults or check_fields(fields, this_year)
        if faults:
            return Reading(None, faults[0].reason, faults[0].message)
        values = dict(fields)
        lacking = profile.missing(values)
        karekod = _gs1_karekod(fields, values, this_year, symbology)
        if lacking:
            return Reading(karekod, Reason.MISSING_FIELD, _missing_message(lacking, values, profile))
        return Reading(karekod, None, "GS1 Digital Link read.")
    if profile is not Profile.UTS:
        return None
    result: Udi | Fault | str
    if body.startswith("+"):
        result = read_hibc(body, this_year)
    elif body.startswith(ENVELOPE):
        result = read_iso15434(body, this_year)
        if isinstance(result, str):  # format 05: GS1 element strings in the envelope
            return read(result, profile, this_year)
    elif body[:1] in ("=", "&"):
        result = read_isbt(body, this_year)
    elif body and not body[:2].isdigit() and body[:1] != GS:
        shown = body[:12] + ("…" if len(body) > 12 else "")
        return Reading(None, Reason.NOT_UDI, f"Not a UDI of GS1, HIBCC, ICCBBA or IFA: starts with {shown!r}.")
    else:
        return None
    if isinstance(result, Fault):
        return Reading(None, result.reason, result.message)
    karekod = Karekod(
        gtin=result.gtin,
        serial=result.serial,
        batch=result.batch,
        expiry=result.expiry,
        production_date=result.production_date,
        sscc=None,
        fields=result.fields,
        symbology=symbology,
        issuer=result.issuer,
        di=result.di,
        udi=body,
    )
    agency = {Issuer.HIBCC: "HIBC", Issuer.ICCBBA: "ISBT 128", Issuer.IFA: "IFA"}[result.issuer]
    if result.di is None:
        return Reading(karekod, Reason.MISSING_FIELD, f"{agency} code without its device identifier (the primary).")
    if result.serial is None and result.batch is None:
        return Reading(karekod, Reason.MISSING_FIELD, f"{agency} code without a serial or lot number, which ÜTS needs.")
    return Reading(karekod, None, f"{agency} device identifier read.")
