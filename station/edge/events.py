"""Events: what a station records and publishes for every scan, accepted or not.

An event is stored as columns (:data:`STORED`), and its payload is built from them when the
outbox sends it, not on the scan path: the light waits for a row, not for JSON, and the row is less
than half the size. The same columns always build the same bytes, so a re-send is byte-identical.
(Files written before kept the payload as JSON in the row; it is sent as it is.)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from station.gs1.reasons import Reason
from station.gs1.verdict import VERDICT_FIELDS, Policy, Verdict, judge
from station.wire import EVENT_SCHEMA, EventMessage, Operation, dump_json


@dataclass(frozen=True, slots=True)
class Scan:
    """Raw bytes from one scanner, exactly as received, and when they arrived."""

    raw: bytes
    source: str = "stdin"
    """Which scanner: a port, an input device, or ``stdin``."""
    at: float = 0.0
    """Wall-clock time (``time.time()``)."""
    mono: float = 0.0
    """Monotonic time (``time.monotonic()``): for debounce and the reject arm, never for records."""
    terminated_by: str = ""
    """What ended the scan on the wire: ``suffix``, ``idle``, ``overflow`` (see station.edge.scanners.framing)."""
    detail: str = ""
    """What broke a broken frame (``Frame.detail``), named in its refusal."""


#: Scans the scanner layer already knows are not whole: refused without reading them, each with
#: its own reason (``terminated_by`` from station.edge.scanners.framing and .hid).
BROKEN_FRAMES: dict[str, tuple[Reason, str]] = {
    "overflow": (Reason.INVALID_LENGTH, "The scan ran past the scanner's max_length without a suffix; cut."),
    "unmapped": (
        Reason.INVALID_CHARACTER,
        "The scanner typed a key this station's keyboard layout cannot map; check the scanner's "
        "keyboard setting against [scanner] layout (station trace shows the keys).",
    ),
    "cut": (Reason.CUT_SCAN, "Key events were lost while this was scanned; scan the box again."),
}


def judge_scan(scan: Scan, policy: Policy, today: date) -> Verdict:
    """The verdict on one scan: a frame the scanner layer knows is broken is refused unread."""
    broken = BROKEN_FRAMES.get(scan.terminated_by)
    if broken is not None:
        return Verdict(False, broken[0], f"{broken[1]} ({scan.detail})" if scan.detail else broken[1], None)
    return judge(scan.raw, policy, today)


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The open order a scan belongs to; ``gtin``: the order line an accepted box fills (None: the
    order has no lines, or the box was refused)."""

    order: str
    buyer: str
    document: str
    gtin: str | None = None


class Event(NamedTuple):
    """One recorded scan. ``seq`` is per station and gap-free; ``id`` (``{history}.{seq}``) is unique
    everywhere. Its payload is built when it is sent (``Store.payload``). A NamedTuple, as
    immutable as a frozen dataclass and cheaper to make on the scan path."""

    id: str
    seq: int
    at: str
    verdict: Verdict


STORED: tuple[str, ...] = (
    *("id", "seq", "at", "station", "site", "operation", "source", "terminated_by", "raw"),
    *VERDICT_FIELDS,
    *("delivery", "carrier", "order", "buyer", "document", "cancels"),
)
"""An event's fields as its row keeps them, in the row's order (:func:`event_row`): ``raw`` as the
scan's bytes (the message's ``raw`` and ``raw_hex`` are both made from them), then the verdict's
(:data:`~station.gs1.verdict.VERDICT_FIELDS`); the file's history and the message's schema are
not per row."""


def utc_iso(ts: float) -> str:
    """``ts`` in UTC, ISO 8601 to the millisecond (``2026-01-01T08:30:00.123Z``), exactly as
    ``datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")`` writes it (microseconds
    rounded half to even, then cut to milliseconds). The scan path stamps every event: the
    second's text is made once a second, not once a scan (7 us of a scan's 0.1 ms of Python)."""
    frac, whole = math.modf(ts)  # as CPython splits a timestamp, so the same instant comes out
    micros = round(frac * 1e6)
    second = int(whole)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    return f"{_utc_second(second)}.{micros // 1000:03d}Z"


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds").removesuffix("+00:00")


def event_row(
    event_id: str,
    seq: int,
    at: str,
    station: str,
    site: str,
    operation: Operation,
    scan: Scan,
    verdict: Verdict,
    delivery: str | None = None,
    carrier: str | None = None,
    order: Dispatch | None = None,
) -> tuple[Any, ...]:
    """One scan's event as its row: the :data:`STORED` fields' values, in their order, as the scan
    path writes them (no dict on the way); ``order``: the open order (:class:`Dispatch`: its id,
    buyer and document)."""
    head = (event_id, seq, at, station, site, operation, scan.source, scan.terminated_by or None, scan.raw)
    if order is None:
        return (*head, *verdict.values(), delivery, carrier, None, None, None, None)
    return (*head, *verdict.values(), delivery, carrier, order.order, order.buyer, order.document, None)


def event_fields(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`event_row`'s values by their :data:`STORED` names."""
    return dict(zip(STORED, event_row(*args, **kwargs), strict=True))


def fields_of(message: EventMessage) -> dict[str, Any]:
    """An event message's :data:`STORED` fields (a message built from them gives them back)."""
    return {name: bytes.fromhex(message.raw_hex) if name == "raw" else getattr(message, name) for name in STORED}


_MESSAGE_FIELDS = tuple(f.name for f in dataclass_fields(EventMessage))


def _message_values(fields: Mapping[str, Any], history: str | None, reset_of: str | None) -> dict[str, Any]:
    """An event message's values, in its fields' order, from the :data:`STORED` fields."""
    raw: bytes = fields["raw"]
    made = {
        "schema": EVENT_SCHEMA,
        "raw": raw.decode("utf-8", "backslashreplace"),
        "raw_hex": raw.hex(),
        "history": history or None,
        "reset_of": reset_of or None,
        "ok": bool(fields["ok"]),
        "recovered": bool(fields["recovered"]),
    }
    return {name: made[name] if name in made else fields[name] for name in _MESSAGE_FIELDS}


def event_message(fields: Mapping[str, Any], history: str | None = None, reset_of: str | None = None) -> EventMessage:
    """The message published on ``stations/{id}/events`` (``station.wire.EventMessage``), built
    from an event's :data:`STORED` fields (a row gives ``ok`` and ``recovered`` as 0 or 1) and the
    station file's history."""
    return EventMessage(**_message_values(fields, history, reset_of))


def event_json(fields: Mapping[str, Any], history: str | None = None, reset_of: str | None = None) -> bytes:
    """``event_message(fields, history, reset_of).to_json()``, without making the message: what
    the uplink sends for each stored event."""
    return dump_json(_message_values(fields, history, reset_of)).encode()
