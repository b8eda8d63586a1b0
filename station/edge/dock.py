"""The dock's delivery session: the receiving clerk's way of working, with no screen.

The clerk opens a delivery by scanning its waybill's barcode (the document number) or the SSCC
of one of its pallets or cases, scans the boxes, and closes it with a command barcode (or it
closes itself after ``[delivery] idle_close_minutes``). Each box is judged at once against what
the delivery holds: expected -> accepted and counted received; not in it, or more of a lot than
were sent -> ``not_expected``; already received -> ``duplicate``; no delivery open where the site
requires one -> ``no_delivery``. Scanning a case's SSCC in its open delivery receives the whole
case when ``receive_cases`` is on.

Everything lives in the station file (``station.edge.store``): the session survives a restart or
a power cut exactly as it was, and the dock keeps working while the network is down.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from station.edge.config import DeliveryConfig
from station.edge.rules import UNKNOWN, Unknown
from station.edge.store import LOT, Receipt, Store
from station.gs1.reader import Karekod, Profile, plain, read
from station.gs1.reasons import Reason
from station.gs1.verdict import Verdict
from station.wire import ClosedBy, DeliveryState, SummaryMessage

log = logging.getLogger("station.dock")

_SSCC_LIKE = re.compile(r"\x1d?(00)?\d{18}")


class Action(StrEnum):
    """What a scan that is not a unit did."""

    OPEN = "open"
    CLOSE = "close"
    CASE = "case"


@dataclass(frozen=True)
class Command:
    """A scan the dock takes as a command, not a unit: which, for which delivery, which carrier."""

    action: Action
    delivery: str = ""
    sscc: str = ""


class Dock:
    """Decides what a scan means for the open delivery. Used by the scan thread only; the uplink
    thread calls :meth:`changed` after it stores a delivery."""

    def __init__(self, store: Store, config: DeliveryConfig, station: str) -> None:
        self.store = store
        self.config = config
        self.station = station
        self._stale = threading.Event()
        self._stale.set()
        self._documents: dict[str, str] = {}
        self._carriers: dict[str, str] = {}

    def changed(self) -> None:
        """A delivery was stored or changed: reload the index before the next scan."""
        self._stale.set()

    def _index(self) -> tuple[dict[str, str], dict[str, str]]:
        if self._stale.is_set():
            self._stale.clear()
            self._documents, self._carriers = self.store.delivery_index()
        return self._documents, self._carriers

    # -- commands --

    def command(self, raw: bytes) -> Command | None:
        """The command a scan is (close, a waybill, a known SSCC), or None for a unit."""
        body = plain(raw)  # any symbology: a waybill is often Code 128 (]C0), a label GS1-128 (]C1)
        if self.config.close_barcode and body == self.config.close_barcode:
            return Command(Action.CLOSE)
        documents, carriers = self._index()
        if not documents and not carriers:
            return None
        if body in documents and self._still_open(documents[body]):
            return Command(Action.OPEN, documents[body])
        if _SSCC_LIKE.fullmatch(body):
            k = read(raw, Profile.GS1).karekod if not body.isdigit() or body.startswith("00") else None
            sscc = k.sscc if k is not None and k.sscc else body[-18:]
            if sscc in carriers and self._still_open(carriers[sscc]):
                delivery = carriers[sscc]
                session = self.store.session()
                if self.config.receive_cases and session is not None and session[0] == delivery:
                    return Command(Action.CASE, delivery, sscc)
                return Command(Action.OPEN, delivery, sscc)
        return None

    def _still_open(self, delivery: str) -> bool:
        """The index may lag a close made elsewhere (``station delivery --close``): ask the file."""
        if self.store.delivery_state(delivery) == DeliveryState.OPEN:
            return True
        self._stale.set()
        return False

    # -- units --

    def judge(self, verdict: Verdict, open_delivery: str | Unknown | None = UNKNOWN) -> tuple[Verdict, Receipt | None]:
        """A unit's verdict against the open delivery, and what its event receives. ``open_delivery``:
        as the rules read it with the unit (saves a query), or unknown."""
        if open_delivery is UNKNOWN:
            session = self.store.session()
            open_delivery = session[0] if session else None
        if open_delivery is None:
            if verdict.ok and self.config.require:
                return verdict.refuse(Reason.NO_DELIVERY, Reason.NO_DELIVERY.description), None
            return verdict, None
        delivery = open_delivery
        k = verdict.karekod
        if not verdict.ok or k is None or k.di is None:
            return verdict, Receipt(delivery)
        line = self.store.expected_unit(delivery, k.di, k.serial, k.batch)
        if line is None and k.serial and k.batch:  # a serial unit of a delivery that lists lots only
            line = self.store.expected_unit(delivery, k.di, None, k.batch)
        if line is None:
            return verdict.refuse(Reason.NOT_EXPECTED, "Not in the open delivery: put it aside."), Receipt(delivery)
        key, quantity, received = line
        if received >= quantity:
            if key.startswith(LOT):
                why = f"All {quantity} of lot {k.batch} in this delivery are already received: put it aside."
                return verdict.refuse(Reason.NOT_EXPECTED, why), Receipt(delivery)
            return verdict.refuse(Reason.DUPLICATE, "Already received in this delivery."), Receipt(delivery)
        return verdict, Receipt(delivery, ((k.di, key, 1),))

    def case(self, command: Command) -> list[tuple[Verdict, Receipt]]:
        """Every unit of a case not yet received, each as an accepted verdict with its receipt."""
        out = []
        for di, key, batch, expiry, remaining in self.store.case_units(command.delivery, command.sscc):
            serial = None if key.startswith(LOT) else key
            k = Karekod(
                gtin=di if di.isdigit() and len(di) == 14 else None,
                serial=serial,
                batch=batch,
                expiry=_date(expiry),
                production_date=None,
                sscc=command.sscc,
                fields=(),
                di=di,
            )
            verdict = Verdict(True, None, f"Received with its case {command.sscc}.", k)
            for _ in range(remaining if serial is None else 1):
                out.append((verdict, Receipt(command.delivery, ((di, key, 1),))))
        return out

    # -- sessions --

    def open(self, delivery: str, now: float) -> SummaryMessage | None:
        """Open ``delivery``; another one open is closed first (its summary is returned)."""
        session = self.store.session()
        summary = None
        if session is not None and session[0] != delivery:
            summary = self.close(now, ClosedBy.NEXT)
        if session is None or session[0] != delivery:
            self.store.open_session(delivery, now)
        return summary

    def close(self, now: float, by: ClosedBy) -> SummaryMessage | None:
        self._stale.set()  # a closed delivery no longer opens
        return self.store.close_session(self.station, by, now)

    def idle(self, now: float) -> SummaryMessage | None:
        """Close the open delivery when it has had no scan for ``idle_close_minutes``."""
        if not self.config.idle_close_minutes:
            return None
        session = self.store.session()
        if session is None or now - session[2] < self.config.idle_close_minutes * 60:
            return None
        return self.close(now, ClosedBy.IDLE)


def _date(iso: str | None) -> date | None:
    return date.fromisoformat(iso) if iso else None
