"""Orders: the boxes of a conveyor dispatched to the buyer of the order they were packed for.

An order reaches its station from here (``station-submitter order add``, or the warehouse system
through the same ledger) or is opened at the station from its tote label alone. Every box's event
carries its order's buyer and document, so each unit is dispatched to its own buyer. When the
station ends an order its summary arrives; for İTS sites with ``send_pts = true`` the notifier then
sends the buyer a PTS package of exactly the boxes dispatched (``/pts/app/SendPackage``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from station.central.config import Site
from station.central.deliveries import RESEND_SECONDS, unacked
from station.central.ledger import JobState, Ledger
from station.central.services.pts import Package
from station.wire import DeliveryLine, DeliveryState, OrderLine, OrderMessage, SummaryMessage, order_id


def add(
    ledger: Ledger, site: Site, station: str, buyer: str, document: str, lines: Sequence[tuple[str, int]] = ()
) -> OrderMessage:
    """Record an order for a station (a new version when it is there already and still open)."""
    ident = order_id(buyer, document)
    with ledger.tx() as c:
        row = c.execute("SELECT version, state FROM orders WHERE id = ?", (ident,)).fetchone()
        version = int(row[0]) + 1 if row else 1
        order = OrderMessage(
            id=ident,
            version=version,
            state=DeliveryState.OPEN,
            buyer=buyer,
            document=document,
            lines=tuple(OrderLine(gtin=g, quantity=q) for g, q in lines),
        )
        body = order.to_json().decode()
        if row is None:
            c.execute(
                "INSERT INTO orders (id, site, station, buyer, document, state, version, body, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ident, site.name, station, buyer, document, DeliveryState.OPEN, version, body, time.time()),
            )
        else:
            c.execute(
                "UPDATE orders SET version = ?, body = ?, station = ? WHERE id = ?", (version, body, station, ident)
            )
    return order


def to_send(ledger: Ledger, resend_after: float = RESEND_SECONDS) -> list[tuple[str, OrderMessage]]:
    rows = ledger.query(
        "SELECT id, station, version, body FROM orders WHERE state = ? AND version > 0", (DeliveryState.OPEN,)
    )
    messages = {str(i): OrderMessage.from_json(body) for i, _s, _v, body in rows}
    wanted = [(str(i), int(v), [str(s)]) for i, s, v, _b in rows]
    return [(station, messages[ident]) for ident, station in unacked(ledger, wanted, resend_after)]


def ended(ledger: Ledger, summary: SummaryMessage, site: Site | None) -> None:
    """A station ended an order: keep its summary (an order opened from a label is recorded now)."""
    now = time.time()
    with ledger.tx() as c:
        row = c.execute("SELECT state FROM orders WHERE id = ?", (summary.delivery,)).fetchone()
        if row is None:
            first = c.execute(
                "SELECT counterpart, document FROM jobs WHERE order_id = ? LIMIT 1", (summary.delivery,)
            ).fetchone()
            c.execute(
                "INSERT INTO orders (id, site, station, buyer, document, state, version, body, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 0, '{}', ?)",
                (
                    summary.delivery,
                    site.name if site else None,
                    summary.station,
                    first[0] if first else "",
                    first[1] if first else "",
                    DeliveryState.CLOSED,
                    now,
                ),
            )
        c.execute(
            "UPDATE orders SET state = ?, summary = ? WHERE id = ?",
            (DeliveryState.CLOSED, summary.to_json().decode(), summary.delivery),
        )


def ready_for_package(ledger: Ledger) -> list[tuple[str, str, str, str]]:
    """Ended orders with no package sent yet whose every unit is final: (id, site, buyer, document)."""
    final = f"('{JobState.DONE}', '{JobState.REFUSED}', '{JobState.FAILED}', '{JobState.CANCELLED}')"
    rows = ledger.query(
        "SELECT o.id, o.site, o.buyer, o.document FROM orders o WHERE o.state = ? AND o.package_request IS NULL"
        f" AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.order_id = o.id AND j.state NOT IN {final})"
        " AND EXISTS (SELECT 1 FROM jobs j WHERE j.order_id = o.id)",
        (DeliveryState.CLOSED,),
    )
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]


def package(ledger: Ledger, ident: str, sender: str, buyer: str, document: str) -> Package:
    """The PTS package of an order: exactly the units dispatched in it (done), by product, lot and expiry."""
    rows = ledger.query(
        f"SELECT gtin, batch, expiry, serial FROM jobs WHERE order_id = ? AND state = '{JobState.DONE}'"
        " AND serial IS NOT NULL ORDER BY gtin, batch, serial",
        (ident,),
    )
    grouped: dict[tuple[str, Any, Any], list[str]] = {}
    for gtin, batch, expiry, serial in rows:
        grouped.setdefault((str(gtin), batch, expiry), []).append(str(serial))
    lines = tuple(
        DeliveryLine(di=g, batch=b, expiry=e, serials=tuple(serials)) for (g, b, e), serials in grouped.items()
    )
    return Package(
        sender=sender, receiver=buyer, document=document, document_date=time.strftime("%Y-%m-%d"), lines=lines
    )


def packaged(ledger: Ledger, ident: str, request_id: str) -> None:
    with ledger.tx() as c:
        c.execute("UPDATE orders SET package_request = ? WHERE id = ?", (request_id, ident))


def listing(ledger: Ledger) -> list[dict[str, Any]]:
    rows = ledger.query(
        "SELECT o.id, o.site, o.station, o.buyer, o.document, o.state, o.summary, o.package_request,"
        f" (SELECT count(*) FROM jobs j WHERE j.order_id = o.id AND j.state = '{JobState.DONE}'),"
        " (SELECT count(*) FROM jobs j WHERE j.order_id = o.id), o.body"
        " FROM orders o ORDER BY o.created_at DESC"
    )
    out = []
    for ident, site, station, buyer, document, state, summary, request, done, so_far, order in rows:
        body = json.loads(summary) if summary else {}
        wanted = sum(line.quantity for line in OrderMessage.from_json(order).lines)
        out.append(
            {
                "id": ident,
                "site": site,
                "station": station,
                "buyer": buyer,
                "document": document,
                "state": state,
                "ordered": wanted or None,
                "sent": body.get("received"),
                "sent_so_far": int(so_far),
                "not_in_order": body.get("unexpected"),
                "notified": int(done),
                "package_request": request,
            }
        )
    return out
