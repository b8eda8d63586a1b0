"""Deliveries: what is coming to a dock, what came, what is missing — before anything is notified.

A delivery is one waybill. The central side learns them from the services (ÜTS: the vermes
addressed to the institution, grouped by sender and waybill number ``BNO``; İTS: the PTS packages
addressed to its GLN), keeps them in the ledger, and sends each to the stations of its site
(``stations/{id}/deliveries``) until each has acked that version. A station's units scanned in a
delivery wait (``held``) until the station closes it and its summary arrives; then the received
units are notified with the delivery's own waybill number and sender, never a fixed one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from station.central.config import Site
from station.central.ledger import Announced, JobState, Ledger
from station.central.services.http import ServiceError
from station.central.services.its import ItsClient
from station.central.services.pts import Package, PackageError, decode_file_stream, read_package
from station.central.services.uts import UtsClient, uno_key
from station.wire import (
    BadMessage,
    DeliveryLine,
    DeliveryMessage,
    DeliveryState,
    Operation,
    Service,
    SummaryMessage,
)

log = logging.getLogger("submitter.deliveries")

RESEND_SECONDS = 60.0
"""A delivery a station has not acked is sent again after this long (and when it comes online)."""

# -- from the services ------------------------------------------------------------------------


def delivery_id(service: Service, *key: str) -> str:
    """A short stable id: the service and a hash of what names the delivery there."""
    digest = hashlib.sha1("\x1f".join(key).encode()).hexdigest()[:16]
    return f"{service}-{digest}"


def from_package(package: Package) -> DeliveryMessage:
    """A PTS package as a delivery (İTS mal alım)."""
    return DeliveryMessage(
        id=delivery_id(Service.ITS, package.transfer_id or package.sender + package.document),
        version=1,
        state=DeliveryState.OPEN,
        service=Service.ITS,
        document=package.document,
        sender=package.sender,
        document_date=package.document_date,
        carriers=package.carriers,
        lines=package.lines,
    )


def from_pending(rows: Iterable[dict[str, Any]]) -> tuple[list[DeliveryMessage], list[str]]:
    """ÜTS pending vermes grouped into deliveries by sender (``GKK``) and waybill (``BNO``); a row
    that cannot be read is left out with a reason (the others still make their delivery)."""
    groups: dict[tuple[str, str], list[DeliveryLine]] = {}
    names: dict[tuple[str, str], str] = {}
    dates: dict[tuple[str, str], str | None] = {}
    problems: list[str] = []
    for row in rows:
        try:
            gkk, bno = str(row["GKK"]), str(row.get("BNO") or "")
            sno, lno, adt = row.get("SNO"), row.get("LNO"), row.get("ADT")
            line = DeliveryLine.from_dict(
                {
                    "di": uno_key(str(row["UNO"])),
                    "batch": str(lno) if lno else None,
                    "serials": [str(sno)] if sno else [],
                    "quantity": 0 if sno else int(adt or 1),
                    "ref": str(row["BID"]),
                }
            )
        except (KeyError, TypeError, ValueError, BadMessage) as e:
            problems.append(f"pending verme {str(row.get('BID', '?'))[:40]}: {getattr(e, 'reason', e)}")
            continue
        groups.setdefault((gkk, bno), []).append(line)
        names[(gkk, bno)] = str(row.get("GKU") or "")[:200]
        git = str(row.get("GIT") or "")[:10]
        dates[(gkk, bno)] = git if len(git) == 10 and git[4] == "-" else None
    out = [
        DeliveryMessage(
            id=delivery_id(Service.UTS, gkk, bno),
            version=1,
            state=DeliveryState.OPEN,
            service=Service.UTS,
            document=bno[:100],
            sender=gkk[:64],
            sender_name=names[(gkk, bno)],
            document_date=dates[(gkk, bno)],
            lines=tuple(lines),
        )
        for (gkk, bno), lines in groups.items()
    ]
    return out, problems


@dataclass(frozen=True)
class FetchReport:
    site: str
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    withdrawn: int = 0
    problems: tuple[str, ...] = ()


def fetch(
    ledger: Ledger, site: Site, uts: UtsClient | None, its: ItsClient | None, days: int = 14, today: date | None = None
) -> FetchReport:
    """Learn a receipt site's incoming deliveries from its service and store them. A package that
    cannot be read is refused alone, with its reason; the others are stored."""
    problems: list[str] = []
    found: list[DeliveryMessage] = []
    if site.service is Service.UTS:
        if uts is None:
            return FetchReport(site.name, problems=("no [uts] service configured",))
        rows = uts.pending(site.counterpart or None)
        found, problems = from_pending(rows)
    else:
        if its is None:
            return FetchReport(site.name, problems=("no [its] service configured",))
        end = today or date.today()
        for transfer_id in its.pts_search(site.institution, (end - timedelta(days=days)).isoformat(), end.isoformat()):
            ident = delivery_id(Service.ITS, transfer_id)
            if ledger.query("SELECT 1 FROM deliveries WHERE id = ?", (ident,)):
                continue  # a package does not change: fetched once (İTS limits how often, 21012)
            try:
                package = read_package(decode_file_stream(its.pts_package(transfer_id)), transfer_id)
            except PackageError as e:
                problems.append(f"PTS package {transfer_id}: {e.reason}")
                continue
            except ServiceError as e:
                problems.append(f"PTS package {transfer_id}: {e}")
                continue
            if package.receiver != site.institution:
                problems.append(f"PTS package {transfer_id}: addressed to {package.receiver}, not {site.institution}")
                continue
            found.append(from_package(package))
    counts = {"new": 0, "changed": 0, "unchanged": 0}
    for delivery in found:
        counts[store(ledger, site.name, delivery)] += 1
    withdrawn = withdraw_gone(ledger, site.name, {d.id for d in found}) if site.service is Service.UTS else 0
    for p in problems:
        log.warning("site %s: %s", site.name, p)
    return FetchReport(site.name, withdrawn=withdrawn, problems=tuple(problems), **counts)


# -- in the ledger ----------------------------------------------------------------------------


def _body(delivery: DeliveryMessage) -> str:
    return delivery.to_json().decode()


def store(ledger: Ledger, site: str, delivery: DeliveryMessage) -> str:
    """Keep a delivery: ``new``, ``changed`` (its version grows, stations get it again) or ``unchanged``."""
    now = time.time()
    with ledger.tx() as c:
        row = c.execute("SELECT version, body, state FROM deliveries WHERE id = ?", (delivery.id,)).fetchone()
        if row is None:
            c.execute(
                "INSERT INTO deliveries (id, site, service, document, sender, state, version, units, body, fetched_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
                (
                    delivery.id,
                    site,
                    delivery.service,
                    delivery.document,
                    delivery.sender,
                    DeliveryState.OPEN,
                    units_of(delivery),
                    _body(replace(delivery, version=1)),
                    now,
                ),
            )
            return "new"
        version, body, state = int(row[0]), str(row[1]), str(row[2])
        if state != DeliveryState.OPEN or _body(replace(delivery, version=version)) == body:
            c.execute("UPDATE deliveries SET fetched_at = ? WHERE id = ?", (now, delivery.id))
            return "unchanged"
        c.execute(
            "UPDATE deliveries SET version = ?, units = ?, body = ?, fetched_at = ? WHERE id = ?",
            (version + 1, units_of(delivery), _body(replace(delivery, version=version + 1)), now, delivery.id),
        )
        return "changed"


def withdraw_gone(ledger: Ledger, site: str, seen: set[str]) -> int:
    """ÜTS deliveries no longer pending and never received here: the sender cancelled them."""
    rows = ledger.query(
        "SELECT id, version, body FROM deliveries WHERE site = ? AND service = ? AND state = ?",
        (site, Service.UTS, DeliveryState.OPEN),
    )
    n = 0
    for ident, version, body in rows:
        if ident in seen or ledger.query("SELECT 1 FROM jobs WHERE delivery = ? LIMIT 1", (ident,)):
            continue
        gone = replace(DeliveryMessage.from_json(body), version=int(version) + 1, state=DeliveryState.WITHDRAWN)
        with ledger.tx() as c:
            c.execute(
                "UPDATE deliveries SET state = ?, version = ?, body = ? WHERE id = ?",
                (DeliveryState.WITHDRAWN, gone.version, _body(gone), ident),
            )
        n += 1
    return n


def units_of(delivery: DeliveryMessage) -> int:
    return sum(line.count for line in delivery.lines)


def get(ledger: Ledger, ident: str) -> tuple[DeliveryMessage, str, SummaryMessage | None] | None:
    """A delivery, its site, and its summary once closed."""
    rows = ledger.query("SELECT body, site, summary, state, version FROM deliveries WHERE id = ?", (ident,))
    if not rows:
        return None
    body, site, summary, state, version = rows[0]
    delivery = replace(DeliveryMessage.from_json(body), state=DeliveryState(state), version=int(version))
    return delivery, str(site), SummaryMessage.from_json(summary) if summary else None


def site_of(ledger: Ledger, ident: str) -> str | None:
    rows = ledger.query("SELECT site FROM deliveries WHERE id = ?", (ident,))
    return str(rows[0][0]) if rows else None


def listing(ledger: Ledger, state: DeliveryState | None = None, ident: str | None = None) -> list[dict[str, Any]]:
    """Deliveries, newest first, with how far each has come (or only the one ``ident`` names)."""
    where, params = ("WHERE d.state = ?", [str(state)]) if state else ("", [])
    if ident is not None:
        where, params = ("WHERE d.id = ?", [ident])
    rows = ledger.query(
        "SELECT d.id, d.site, d.service, d.document, d.sender, d.state, d.units, d.fetched_at, d.closed_at,"
        f" (SELECT count(*) FROM jobs j WHERE j.delivery = d.id AND j.state = '{JobState.DONE}'),"
        f" (SELECT count(*) FROM jobs j WHERE j.delivery = d.id AND j.state IN ('{JobState.REFUSED}',"
        f" '{JobState.FAILED}')), d.summary, (SELECT count(*) FROM jobs j WHERE j.delivery = d.id)"
        f" FROM deliveries d {where} ORDER BY d.fetched_at DESC",
        params,
    )
    out = []
    for r in rows:
        summary = json.loads(r[11]) if r[11] else {}
        out.append(
            {
                "id": r[0],
                "site": r[1],
                "service": r[2],
                "document": r[3],
                "sender": r[4],
                "state": r[5],
                "expected": int(r[6]),
                "received": summary.get("received"),
                "received_so_far": int(r[12]),
                "missing": summary.get("missing"),
                "unexpected": summary.get("unexpected"),
                "notified": int(r[9]),
                "refused": int(r[10]),
            }
        )
    return out


def unit_states(ledger: Ledger, ident: str) -> list[tuple[Any, ...]]:
    """Each received unit of a delivery and where its notification stands."""
    return ledger.query(
        "SELECT station, di, gtin, serial, batch, state, code, message FROM jobs WHERE delivery = ?"
        " ORDER BY created_at",
        (ident,),
    )


# -- to and from the stations -----------------------------------------------------------------


def unacked(
    ledger: Ledger, wanted: Sequence[tuple[str, int, Sequence[str]]], resend_after: float = RESEND_SECONDS
) -> list[tuple[str, str]]:
    """(list id, station) pairs to send: each station named for a list (a delivery, an order, the
    recall list) that has not acked its current version, and was never sent it, was sent an older
    one, or was sent it ``resend_after`` seconds ago."""
    if not wanted:
        return []
    now = time.time()
    sends = {
        (str(d), str(s)): (int(v), float(at), bool(a))
        for d, s, v, at, a in ledger.query("SELECT delivery, station, version, sent_at, acked FROM delivery_sends")
    }
    out = []
    for ident, version, stations in wanted:
        for station in stations:
            sent = sends.get((ident, station))
            if sent is not None and sent[0] == version and (sent[2] or now - sent[1] < resend_after):
                continue
            out.append((ident, station))
    return out


def to_send(
    ledger: Ledger, stations_of: Mapping[str, Sequence[str]], resend_after: float = RESEND_SECONDS
) -> list[tuple[str, DeliveryMessage]]:
    """(station, delivery) pairs a station has not acked in their current version. A withdrawn
    delivery goes only to stations that were told of it."""
    rows = ledger.query(
        "SELECT id, site, version, body, state FROM deliveries WHERE state IN (?, ?) ORDER BY fetched_at",
        (DeliveryState.OPEN, DeliveryState.WITHDRAWN),
    )
    told = {(str(d), str(s)) for d, s in ledger.query("SELECT delivery, station FROM delivery_sends")}
    messages = {
        str(ident): replace(DeliveryMessage.from_json(body), version=int(version), state=DeliveryState(state))
        for ident, _site, version, body, state in rows
    }
    wanted = [
        (
            str(ident),
            int(version),
            [s for s in stations_of.get(site, ()) if state == DeliveryState.OPEN or (ident, s) in told],
        )
        for ident, site, version, _body, state in rows
    ]
    return [(station, messages[ident]) for ident, station in unacked(ledger, wanted, resend_after)]


def mark_sent(ledger: Ledger, sent: Iterable[tuple[str, str, int]]) -> None:
    """Lists the broker took: (list id, station, version)."""
    now = time.time()
    rows = [(ident, station, version, now) for ident, station, version in sent]
    if rows:
        with ledger.tx() as c:
            c.executemany(
                "INSERT INTO delivery_sends (delivery, station, version, sent_at, acked) VALUES (?, ?, ?, ?, 0)"
                " ON CONFLICT (delivery, station) DO UPDATE SET version = excluded.version,"
                " sent_at = excluded.sent_at, acked = 0",
                rows,
            )


def acked(ledger: Ledger, station: str, ack_ids: Iterable[str]) -> int:
    """The station stored these deliveries (``id:version``)."""
    n = 0
    with ledger.tx() as c:
        for ack in ack_ids:
            ident, _, version = ack.rpartition(":")
            if version.isdigit():
                n += c.execute(
                    "UPDATE delivery_sends SET acked = 1 WHERE delivery = ? AND station = ? AND version = ?",
                    (ident, station, int(version)),
                ).rowcount
    return n


def resend(ledger: Ledger, station: str) -> None:
    """A station came (back) online: what it has not acked goes again now."""
    with ledger.tx() as c:
        c.execute("UPDATE delivery_sends SET sent_at = 0 WHERE station = ? AND acked = 0", (station,))


def line_refs(delivery: DeliveryMessage) -> dict[tuple[str, str], str | None]:
    """Where each unit came from: (di, serial) or (di, batch) -> the line's ÜTS verme id."""
    refs: dict[tuple[str, str], str | None] = {}
    for line in delivery.lines:
        for serial in line.serials:
            refs[(line.di, serial)] = line.ref
        if not line.serials:
            refs.setdefault((line.di, line.batch or ""), line.ref)
    return refs


def release(ledger: Ledger, ident: str, jobs: Sequence[tuple[str, str | None, str | None, str | None]]) -> int:
    """Held units of a closed delivery go to the queue with its waybill, sender and ÜTS verme ids.
    ``jobs``: (event id, di, serial, batch)."""
    found = get(ledger, ident)
    if found is None:
        return 0
    delivery = found[0]
    refs = line_refs(delivery)
    now = time.time()
    rows = [
        (
            refs.get((di or "", serial or "")) if serial else refs.get((di or "", batch or "")),
            delivery.document,
            delivery.sender,
            now,
            event_id,
        )
        for event_id, di, serial, batch in jobs
    ]
    with ledger.tx() as c:
        c.executemany(
            f"UPDATE jobs SET state = '{JobState.QUEUED}', line = ?, document = ?, counterpart = ?, updated_at = ?"
            f" WHERE event_id = ? AND state = '{JobState.HELD}'",
            rows,
        )
    return len(rows)


def close(ledger: Ledger, summary: SummaryMessage) -> int:
    """A station's summary: the delivery is closed and its received units are released to be
    notified. Idempotent (a summary sent again changes nothing). Returns the units released."""
    found = get(ledger, summary.delivery)
    if found is None:
        log.warning("summary %s names an unknown delivery %s: kept, units stay held", summary.id, summary.delivery)
    now = time.time()
    with ledger.tx() as c:
        before = c.execute("SELECT state FROM deliveries WHERE id = ?", (summary.delivery,)).fetchone()
        c.execute(
            "UPDATE deliveries SET state = ?, closed_at = coalesce(closed_at, ?), summary = ? WHERE id = ?",
            (DeliveryState.CLOSED, now, summary.to_json().decode(), summary.delivery),
        )
        if before is None or before[0] != DeliveryState.CLOSED:  # once, when it closes
            c.execute(
                "INSERT INTO announcements (at, kind, body) VALUES (?, ?, ?)",
                (
                    now,
                    Announced.DELIVERY_CLOSED,
                    json.dumps(_closing(summary, found[1] if found else None)),
                ),
            )
    return close_again(ledger, summary.delivery, summary.station)


def _closing(summary: SummaryMessage, site: str | None) -> dict[str, Any]:
    """What a ``delivery.closed`` announcement says: the figures, and the whole summary."""
    return {
        "delivery": summary.delivery,
        "site": site,
        "station": summary.station,
        "received": summary.received,
        "missing": summary.missing,
        "unexpected": summary.unexpected,
        "summary": summary.as_dict(),
    }


def close_again(ledger: Ledger, ident: str, station: str | None = None) -> int:
    """Release what is still held in a closed delivery (by one station, or any): units whose
    events arrived after the summary."""
    held = ledger.query(
        f"SELECT event_id, di, serial, batch FROM jobs WHERE delivery = ? AND state = '{JobState.HELD}'"
        + (" AND station = ?" if station else ""),
        (ident, station) if station else (ident,),
    )
    return release(ledger, ident, held)


def closed(ledger: Ledger, idents: Iterable[str]) -> set[str]:
    """Which of these deliveries are already closed (a unit arriving after its summary is not held)."""
    ids = sorted(set(idents))
    if not ids:
        return set()
    rows = ledger.query(
        f"SELECT id FROM deliveries WHERE state = ? AND id IN ({', '.join('?' * len(ids))})",
        (DeliveryState.CLOSED, *ids),
    )
    return {str(r[0]) for r in rows}


def is_receipt(site: Site) -> bool:
    return site.operation is Operation.RECEIPT
