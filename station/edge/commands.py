"""Command barcodes: a small set of commands a person gives the station by scanning a sheet.

A command is read before the karekod reader. Its payload names the station it is for and carries
a MAC, so a random label cannot trigger one and a sheet printed for one dock does nothing at
another::

    KKC1:{station}:{command}:{mac}

``mac`` is the first 12 hex digits of HMAC-SHA256 over ``KKC1:{station}:{command}`` keyed with
``[commands] secret_file``'s contents; with no secret the key is the station id (station-specific,
not secret: anyone who knows this scheme can print one). ``station sheet`` prints them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "KKC1"


class Command(StrEnum):
    """What a command barcode asks for, with the caption printed under it."""

    CLOSE_DELIVERY = "close-delivery"
    END_ORDER = "end-order"
    STATUS = "status"
    TEST_FEEDBACK = "test-feedback"
    CANCEL_LAST = "cancel-last"
    OPERATION_RECEIPT = "operation-receipt"
    OPERATION_DISPATCH = "operation-dispatch"
    OPERATION_USE = "operation-use"
    OPERATION_RETURN = "operation-return"
    OPERATION_DEACTIVATION = "operation-deactivation"

    @property
    def operation(self) -> str | None:
        """The operation a switch command switches to."""
        return self.value.removeprefix("operation-") if self.value.startswith("operation-") else None

    @property
    def caption(self) -> str:
        return CAPTIONS[self]


CAPTIONS = {
    Command.CLOSE_DELIVERY: "Teslimatı kapat / Close the delivery",
    Command.END_ORDER: "Siparişi bitir / End the order",
    Command.STATUS: "Durumu göster / Show the station's state on the lights",
    Command.TEST_FEEDBACK: "Işık ve ses testi / Test the lights and buzzer",
    Command.CANCEL_LAST: "Son okutmayı iptal et / Cancel the last accepted scan",
    Command.OPERATION_RECEIPT: "İşlem: mal alım / Switch to receipt",
    Command.OPERATION_DISPATCH: "İşlem: satış, verme / Switch to dispatch",
    Command.OPERATION_USE: "İşlem: kullanım, sarf / Switch to use",
    Command.OPERATION_RETURN: "İşlem: iade / Switch to return",
    Command.OPERATION_DEACTIVATION: "İşlem: deaktivasyon / Switch to deactivation",
}


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:12]


def payload(station: str, command: Command, secret: bytes = b"") -> str:
    """The text a command barcode carries."""
    body = f"{PREFIX}:{station}:{command}"
    return f"{body}:{_mac(secret or station.encode(), body)}"


@dataclass(frozen=True)
class Parsed:
    """A scan that is a command barcode: the command, or why it is refused."""

    command: Command | None
    refusal: str = ""


def parse(text: str, station: str, secret: bytes = b"") -> Parsed | None:
    """A command barcode's meaning, None for any other scan. One for another station, with a wrong
    MAC or an unknown command is refused with its reason (and never taken for a karekod)."""
    if not text.startswith(PREFIX + ":"):
        return None
    parts = text.split(":")
    if len(parts) != 4:
        return Parsed(None, "not a command barcode of this version")
    _, target, name, mac = parts
    if target != station:
        return Parsed(None, f"a command barcode for station {target[:64]!r}, not this one")
    if not hmac.compare_digest(mac, _mac(secret or station.encode(), f"{PREFIX}:{target}:{name}")):
        return Parsed(None, "a command barcode whose signature does not match (another sheet, or a forged one)")
    try:
        return Parsed(Command(name))
    except ValueError:
        return Parsed(None, f"an unknown command {name[:40]!r}")
