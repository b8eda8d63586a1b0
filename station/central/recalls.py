"""The recall list: batches, single units and whole products no station may accept.

Fed by an operator (``station-submitter recall add|remove|list``) and by the services' own answers
(İTS 60007 "recalled", 40009 "recalled at another stakeholder's level", ÜTS UTS-H018), kept in the
ledger with a version, and sent whole to every station (``stations/{id}/recalls``) until each acks
that version: a station that was offline has it within seconds of coming back, and rejects a
recalled unit at once, offline too.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from station.central.deliveries import RESEND_SECONDS, unacked
from station.central.ledger import Ledger
from station.wire import Recall, RecallList

RECALL_CODES = {"60007": "İTS 60007", "40009": "İTS 40009", "UTS-H018": "ÜTS UTS-H018"}
"""Answers that say a unit is recalled: its batch (or the unit, when no batch is known) is added."""


def version(ledger: Ledger) -> int:
    return int(ledger.meta("recalls_version") or 0)


def _bump(c: Any) -> None:
    row = c.execute("SELECT value FROM meta WHERE key = 'recalls_version'").fetchone()
    c.execute(
        "INSERT INTO meta (key, value) VALUES ('recalls_version', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(int(row[0]) + 1 if row else 1),),
    )


def add(
    ledger: Ledger, gtin: str, batch: str = "*", serial: str = "*", note: str = "", source: str = "operator"
) -> bool:
    """Add a recall; False when it was already on the list (the version does not change)."""
    with ledger.tx() as c:
        known = c.execute(
            "SELECT 1 FROM recalls WHERE gtin = ? AND batch = ? AND serial = ?", (gtin, batch, serial)
        ).fetchone()
        if known:
            return False
        c.execute(
            "INSERT INTO recalls (gtin, batch, serial, note, source, added_at) VALUES (?, ?, ?, ?, ?, ?)",
            (gtin, batch, serial, note, source, time.time()),
        )
        _bump(c)
    return True


def remove(ledger: Ledger, gtin: str, batch: str = "*", serial: str = "*") -> bool:
    with ledger.tx() as c:
        n = c.execute("DELETE FROM recalls WHERE gtin = ? AND batch = ? AND serial = ?", (gtin, batch, serial)).rowcount
        if n:
            _bump(c)
    return bool(n)


def listing(ledger: Ledger) -> list[dict[str, Any]]:
    rows = ledger.query("SELECT gtin, batch, serial, note, source, added_at FROM recalls ORDER BY added_at")
    keys = ("gtin", "batch", "serial", "note", "source", "added_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def current(ledger: Ledger) -> RecallList:
    rows = ledger.query("SELECT gtin, batch, serial, note FROM recalls ORDER BY gtin, batch, serial")
    return RecallList(
        version=max(1, version(ledger)),
        recalls=tuple(Recall(gtin=g, batch=b, serial=s, note=(n or "")[:200]) for g, b, s, n in rows),
    )


def to_send(
    ledger: Ledger, stations: Collection[str], resend_after: float = RESEND_SECONDS
) -> list[tuple[str, RecallList]]:
    """The list to every station that has not acked its current version (nothing before the first recall)."""
    v = version(ledger)
    if not v:
        return []
    pairs = unacked(ledger, [("recalls", v, sorted(stations))], resend_after)
    if not pairs:
        return []
    whole = current(ledger)
    return [(station, whole) for _ident, station in pairs]


def from_answer(ledger: Ledger, code: str, gtin: str | None, batch: str | None, serial: str | None) -> bool:
    """A service said a unit is recalled: its batch goes on the list (the unit alone without a batch)."""
    if code not in RECALL_CODES or not gtin:
        return False
    if batch:
        return add(ledger, gtin, batch, "*", f"{RECALL_CODES[code]} on serial {serial}", RECALL_CODES[code])
    return add(ledger, gtin, "*", serial or "*", RECALL_CODES[code], RECALL_CODES[code])
