"""Orders on the conveyor: boxes dispatched to the buyer of the order they belong to.

Each tote carries an order label. Scanning it opens that order: a GS1 label with the order
number in AI 400 and the buyer's GLN in AI 410 (GS1's own "customer's purchase order" and "ship
to" keys) opens it even when the central side never sent it; a plain label with the document
number of an order the central side or the warehouse system sent (``stations/{id}/orders``)
opens that one, with its lines. The boxes that follow belong to it until the next order label or
the end-of-order barcode. With lines, a box whose product the order does not want, or one too
many, is refused (``not_in_order``) and the reject arm takes it off; with no order open where
``[order] require`` is set, ``no_order``. Every accepted box's event carries the order, its buyer
and document, so the central side dispatches each to its own buyer (İTS ``togln``, ÜTS ``KUN``
and ``BNO``), never to a fixed one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from station.edge.config import OrderConfig
from station.edge.events import Dispatch
from station.edge.store import Store
from station.gs1.reader import Profile, plain, read
from station.gs1.reasons import Reason
from station.gs1.verdict import Verdict
from station.wire import ClosedBy, DeliveryState, SummaryMessage, order_id


@dataclass(frozen=True)
class OrderCommand:
    """An order label (open ``order``, made from the label when ``buyer`` is set) or the end barcode."""

    end: bool = False
    order: str = ""
    buyer: str = ""
    document: str = ""


class Orders:
    """Decides what a scan means for the open order. Scan thread only; the uplink calls :meth:`changed`."""

    def __init__(self, store: Store, config: OrderConfig, station: str) -> None:
        self.store = store
        self.config = config
        self.station = station
        self._stale = threading.Event()
        self._stale.set()
        self._documents: dict[str, str] = {}

    def changed(self) -> None:
        self._stale.set()

    def command(self, raw: bytes) -> OrderCommand | None:
        body = plain(raw)  # any symbology: a waybill is often Code 128 (]C0), a label GS1-128 (]C1)
        if self.config.end_barcode and body == self.config.end_barcode:
            return OrderCommand(end=True)
        if self._stale.is_set():
            self._stale.clear()
            self._documents = self.store.order_documents()
        known = self._documents.get(body)
        if known is not None:
            state = self.store.order(known)
            if state is not None and state[0] == DeliveryState.OPEN:
                return OrderCommand(order=known, buyer=state[1], document=state[2])
            self._stale.set()
        if body.lstrip("\x1d").startswith(("400", "410")):  # a label's AIs come first: boxes start with 01
            k = read(raw, Profile.GS1).karekod
            fields = dict(k.fields) if k is not None and k.gtin is None and k.di is None else {}
            if "400" in fields:
                document, buyer = fields["400"], fields.get("410", "")
                known = self._documents.get(document)
                if known is not None and not buyer:
                    state = self.store.order(known)
                    if state is not None:
                        return OrderCommand(order=known, buyer=state[1], document=state[2])
                if buyer:
                    return OrderCommand(order=known or order_id(buyer, document), buyer=buyer, document=document)
        return None

    def judge(self, verdict: Verdict) -> tuple[Verdict, Dispatch | None]:
        """A box's verdict against the open order, and the order its event belongs to."""
        session = self.store.order_session()
        if session is None:
            if verdict.ok and self.config.require:
                return verdict.refuse(Reason.NO_ORDER, Reason.NO_ORDER.description), None
            return verdict, None
        order, buyer, document, _ = session
        k = verdict.karekod
        if not verdict.ok or k is None or k.di is None:
            return verdict, Dispatch(order, buyer, document)
        line = self.store.order_line(order, k.di)
        if line is None:
            return verdict.refuse(Reason.NOT_IN_ORDER, f"Order {document} does not want {k.di}."), Dispatch(
                order, buyer, document
            )
        quantity, sent = line
        if quantity and sent >= quantity:
            why = f"Order {document} wants {quantity} of {k.di}, all sent: one too many."
            return verdict.refuse(Reason.NOT_IN_ORDER, why), Dispatch(order, buyer, document)
        return verdict, Dispatch(order, buyer, document, k.di if quantity else None)

    def open(self, command: OrderCommand, now: float) -> SummaryMessage | None:
        """Open the order a label names; the one open before ends first (its summary is returned)."""
        session = self.store.order_session()
        summary = None
        if session is not None and session[0] != command.order:
            summary = self.end(now, ClosedBy.NEXT)
        if session is None or session[0] != command.order:
            self.store.open_order(command.order, command.buyer, command.document, now)
        return summary

    def end(self, now: float, by: ClosedBy) -> SummaryMessage | None:
        self._stale.set()
        return self.store.close_order(self.station, by, now)
