"""The MQTT contract between a station and the central side: topics, messages, and the client.

Both wings speak only through this module. Every message is a frozen dataclass with ``to_json``
and ``from_json``; ``from_json`` checks the JSON, every field's type, length and form, and raises
one :class:`BadMessage` whose ``reason`` says what is wrong, so a bad message is refused alone, with
one log line, and never reaches a ledger or a light as a raw dict. Keys a reader does not know are
ignored (a newer sender may add some); a key it needs that is absent or wrong refuses the message.

Topics, under a prefix (``[mqtt] prefix``, default ``karekod/v1``)::

    stations/{id}/events    station -> central  QoS 1            EventMessage, oldest first
    stations/{id}/acks      central -> station  QoS 1            AckMessage
    stations/{id}/status    station -> all      QoS 1, retained  StationStatus (the will: offline)
    stations/{id}/results   central -> station  QoS 1            ResultMessage, or {"results": [...]}
    stations/{id}/result_acks station -> central QoS 1           AckMessage: results stored (by event id)
    stations/{id}/deliveries central -> station QoS 1            DeliveryMessage: what a delivery holds
    stations/{id}/delivery_acks station -> central QoS 1         AckMessage: deliveries stored (``id:version``)
    stations/{id}/summaries station -> central  QoS 1            SummaryMessage: a closed delivery or order
                                                                 (acked on acks)
    stations/{id}/orders    central -> station  QoS 1            OrderMessage: an order to dispatch
    stations/{id}/recalls   central -> station  QoS 1            RecallList: the whole recall list
    stations/{id}/patient   HBYS -> central     QoS 1            PatientMessage: who the units used there go to
                                       (both acked ``id:version`` on delivery_acks)
    central/status/{sub}    central -> all      QoS 1, retained  CentralStatus (the will: offline)

The README's MQTT tables are checked against :data:`MESSAGES` and :data:`TOPICS` by a test.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar, Self

from station.gs1.reasons import Reason
from station.gs1.udi import Issuer

DEFAULT_PREFIX = "karekod/v1"
EVENT_SCHEMA = "karekod.event/1"
STATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A station's or submitter's id: one topic level, so no ``/``, ``+`` or ``#``."""


class BadMessage(ValueError):
    """A message refused at the edge of a wing; ``reason`` is one line for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Operation(StrEnum):
    """What a station does with the units it accepts (and what the central side notifies)."""

    RECEIPT = "receipt"
    DISPATCH = "dispatch"
    USE = "use"
    RETURN = "return"
    DEACTIVATION = "deactivation"


class Service(StrEnum):
    UTS = "uts"
    ITS = "its"


class State(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Kind(StrEnum):
    """The last level of a station topic."""

    EVENTS = "events"
    ACKS = "acks"
    STATUS = "status"
    RESULTS = "results"
    RESULT_ACKS = "result_acks"
    DELIVERIES = "deliveries"
    DELIVERY_ACKS = "delivery_acks"
    SUMMARIES = "summaries"
    ORDERS = "orders"
    RECALLS = "recalls"
    PATIENT = "patient"


class DeliveryState(StrEnum):
    """Where a delivery stands: ``open`` (expected at the dock), ``closed`` (its summary is in),
    ``withdrawn`` (the sender cancelled it, or it left the pending list unreceived)."""

    OPEN = "open"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


class SummaryKind(StrEnum):
    DELIVERY = "delivery"
    ORDER = "order"


class ClosedBy(StrEnum):
    """What closed a delivery session at the station."""

    COMMAND = "command"
    IDLE = "idle"
    OPERATOR = "operator"
    NEXT = "next"
    """The clerk opened another delivery."""


# -- fields: one declaration drives both the check and the README ---------------------------------

_TEXT = re.compile(r"[^\x00-\x1f\x7f]*")
"""No control characters: a NUL would be refused by PostgreSQL, a newline would forge a log line."""
_ANY = re.compile(r"[^\x00]*", re.S)
"""Free text that is never a column (a message, a scan as text): anything but NUL."""
_RAW = re.compile(r".*", re.S)
"""The scan as sent, NUL and all: it travels only inside the JSON, escaped."""
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_DIGITS = re.compile(r"\d{1,18}")
_PRINTABLE = re.compile(r"[!-~]{1,512}")
"""A field as read: GS1 character set 82 lies within printable ASCII; refused scans may be longer."""
_GTIN = re.compile(r"\d{14}")
_SSCC = re.compile(r"\d{18}")
_CODE = re.compile(r"[A-Za-z0-9_]{0,16}")
_SET82 = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}")
_MAX_INT = 2**63 - 1  # what SQLite and PostgreSQL's bigint hold


def _f(
    *,
    max_len: int = 200,
    pattern: re.Pattern[str] | None = None,
    lo: float | None = None,
    hi: float | None = None,
    default: Any = MISSING,
    doc: str = "",
) -> Any:
    meta = {"max_len": max_len, "pattern": pattern, "lo": lo, "hi": hi, "doc": doc}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


Checker = typing.Callable[[Any], Any]


def _checker(where: str, kind: Any, meta: typing.Mapping[str, Any]) -> Checker:
    """A function that checks one field's value against its type and constraints (built once per
    field, so a message is checked without looking at types again); it raises BadMessage."""
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        inner = _checker(where, next(a for a in typing.get_args(kind) if a is not type(None)), meta)
        return lambda v: None if v is None else inner(v)
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        members, names = kind._value2member_map_, ", ".join(kind)

        def check_enum(v: Any) -> Any:
            if isinstance(v, str) and v in members:
                return members[v]
            raise BadMessage(f"{where}: {_show(v)} is not one of {names}")

        return check_enum
    if kind is bool:

        def check_bool(v: Any) -> Any:
            if v is True or v is False:
                return v
            raise BadMessage(f"{where}: must be true or false, not {_show(v)}")

        return check_bool
    if kind is int or kind is float:
        lo = -_MAX_INT if meta.get("lo") is None else meta["lo"]
        hi = _MAX_INT if meta.get("hi") is None else meta["hi"]
        accepted = (int,) if kind is int else (int, float)
        noun = "an integer" if kind is int else "a number"

        def check_number(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, accepted):
                raise BadMessage(f"{where}: must be {noun}, not {_show(v)}")
            if isinstance(v, float) and not math.isfinite(v):
                raise BadMessage(f"{where}: must be a finite number")
            if not lo <= v <= hi:
                raise BadMessage(f"{where}: {v} is out of range")
            return v

        return check_number
    if kind is str:
        max_len = meta.get("max_len", 200)
        match = (meta.get("pattern") or _TEXT).fullmatch

        def check_str(v: Any) -> Any:
            if type(v) is not str:
                raise BadMessage(f"{where}: must be a string, not {_show(v)}")
            if len(v) > max_len:
                raise BadMessage(f"{where}: longer than {max_len} characters")
            if match(v) is None:
                raise BadMessage(f"{where}: {_show(v)} is not a valid value")
            return v

        return check_str
    if origin is tuple:
        item = typing.get_args(kind)[0]
        most = meta.get("max_len", 200)
        if isinstance(item, type) and issubclass(item, Message):
            each: Checker = item.from_dict
        else:
            each = _checker(f"{where}[]", item, {**meta, "max_len": 200})

        def check_list(v: Any) -> Any:
            if not isinstance(v, list):
                raise BadMessage(f"{where}: must be a list, not {_show(v)}")
            if len(v) > most:
                raise BadMessage(f"{where}: more than {most} items")
            return tuple(each(x) for x in v)

        return check_list
    if origin is dict:
        key_kind, value_kind = typing.get_args(kind)
        check_key = _checker(f"{where}{{}}", key_kind, {"max_len": 64})
        check_value = _checker(f"{where}[]", value_kind, {})

        def check_dict(v: Any) -> Any:
            if not isinstance(v, dict) or len(v) > 64:
                raise BadMessage(f"{where}: must be an object of at most 64 keys")
            return {check_key(k): check_value(x) for k, x in v.items()}

        return check_dict
    raise TypeError(f"{where}: unsupported field type {kind!r}")  # a programming error, caught by the tests


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def dump_json(obj: Any) -> str:
    """The contract's JSON text, as every message is sent: UTF-8 kept as it is, no spaces."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def load_json(data: bytes | bytearray | str, max_bytes: int) -> Any:
    """JSON from the wire, or BadMessage: too large, not UTF-8, not JSON, NaN/Infinity, too deep."""
    if len(data) > max_bytes:
        raise BadMessage(f"{len(data)} bytes, more than the {max_bytes} this message may have")
    with _json_faults():
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        return _DECODER.decode(text)


@contextlib.contextmanager
def _json_faults() -> typing.Iterator[None]:
    """What decoding JSON from the wire can raise, as one BadMessage with its reason."""
    try:
        yield
    except UnicodeDecodeError:
        raise BadMessage("not UTF-8") from None
    except RecursionError:
        raise BadMessage("nested too deeply") from None
    except ValueError as e:
        raise BadMessage(f"not JSON: {str(e)[:60]}") from None


_PLANS: dict[type, list[tuple[str, bool, Checker]]] = {}


class Message:
    """What every wire message shares: JSON in and out, checked field by field."""

    MAX_BYTES: ClassVar[int] = 128 * 1024

    @classmethod
    def _plan(cls) -> list[tuple[str, bool, Checker]]:
        """(field, required, checker) for each field, built on first use."""
        plan: list[tuple[str, bool, Checker]] | None = _PLANS.get(cls)
        if plan is None:
            hints = typing.get_type_hints(cls)
            plan = [
                (
                    f.name,
                    f.default is MISSING and f.default_factory is MISSING,
                    _checker(f"{cls.__name__}.{f.name}", hints[f.name], f.metadata),
                )
                for f in fields(cls)  # type: ignore[arg-type]
            ]
            _PLANS[cls] = plan
        return plan

    @classmethod
    def from_dict(cls, obj: Any) -> Self:
        if not isinstance(obj, dict):
            raise BadMessage(f"{cls.__name__}: must be a JSON object, not {_show(obj)}")
        values: dict[str, Any] = {}
        for name, required, check in cls._plan():
            if name in obj:
                values[name] = check(obj[name])
            elif required:
                raise BadMessage(f"{cls.__name__}.{name}: required")
        message = cls(**values)
        message.validate()
        return message

    @classmethod
    def from_json(cls, data: bytes | bytearray | str) -> Self:
        return cls.from_dict(load_json(data, cls.MAX_BYTES))

    def validate(self) -> None:
        """Checks across fields; a subclass raises BadMessage."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON object, fields in declaration order (StrEnum members are strings already)."""
        out = {name: getattr(self, name) for name, _, _ in self._plan()}
        for name, value in out.items():
            if isinstance(value, tuple):
                out[name] = [v.as_dict() if isinstance(v, Message) else v for v in value]
        return out

    def to_json(self) -> bytes:
        return dump_json(self.as_dict()).encode()


@dataclass(frozen=True, slots=True)
class EventMessage(Message):
    """One scan, accepted or not: ``stations/{id}/events``. ``seq`` is per station and gap-free."""

    schema: str = _f(max_len=32, pattern=re.compile(r"karekod\.event/1"), doc="always `karekod.event/1`")
    id: str = _f(pattern=_ID, doc="unique everywhere")
    seq: int = _f(lo=1, doc="1, 2, 3... per station, never reused")
    station: str = _f(pattern=STATION_ID, doc="must match the topic's station")
    site: str = _f(max_len=200, pattern=_ANY, doc="`[station] site`")
    operation: Operation = _f(doc="`[station] operation`")
    at: str = _f(max_len=40, pattern=_TIMESTAMP, doc="scan time, UTC ISO 8601")
    source: str = _f(max_len=200, pattern=_ANY, doc="which scanner")
    raw: str = _f(max_len=32768, pattern=_RAW, doc="the scan as text (bytes not UTF-8 escaped)")
    raw_hex: str = _f(max_len=16384, pattern=_HEX, doc="the scan's exact bytes")
    ok: bool = _f(doc="accepted")
    terminated_by: str | None = _f(max_len=16, default=None, doc="`suffix`, `idle` or `overflow`")
    reason: Reason | None = _f(default=None, doc="why refused (the reasons table)")
    message: str = _f(max_len=2000, pattern=_ANY, default="", doc="the verdict in words")
    gtin: str | None = _f(pattern=_PRINTABLE, max_len=512, default=None, doc="14 digits when accepted")
    serial: str | None = _f(pattern=_PRINTABLE, max_len=512, default=None)
    batch: str | None = _f(pattern=_PRINTABLE, max_len=512, default=None)
    expiry: str | None = _f(pattern=_DATE, default=None, doc="YYYY-MM-DD, day 00 already the month's last day")
    production_date: str | None = _f(pattern=_DATE, default=None)
    sscc: str | None = _f(pattern=_PRINTABLE, max_len=512, default=None)
    recovered: bool = _f(default=False, doc="read although separators were lost")
    issuer: Issuer | None = _f(default=None, doc="who issued the identifier: `gs1`, `hibcc`, `iccbba` or `ifa`")
    di: str | None = _f(
        pattern=_PRINTABLE,
        max_len=512,
        default=None,
        doc="the device identifier ÜTS calls `UNO`: the GTIN or another agency's",
    )
    udi: str | None = _f(
        max_len=4096, pattern=_RAW, default=None, doc="a non-GS1 identifier as printed, for ÜTS's `/essizKimlik` calls"
    )
    history: str | None = _f(
        pattern=_ID, default=None, doc="the station file's history id: new only after `station reset`"
    )
    reset_of: str | None = _f(pattern=_ID, default=None, doc="the history `station reset` ended, if this one began so")
    delivery: str | None = _f(
        pattern=_ID, default=None, doc="the delivery open at the station: its units wait for its summary"
    )
    carrier: str | None = _f(pattern=_SSCC, default=None, doc="the case's SSCC when the unit came with its whole case")
    order: str | None = _f(pattern=_ID, default=None, doc="the order open at the station (dispatch)")
    buyer: str | None = _f(pattern=_DIGITS, default=None, doc="the order's buyer: İTS `togln` or ÜTS `KUN`")
    document: str | None = _f(max_len=100, default=None, doc="the order's document number (ÜTS `BNO`)")
    cancels: str | None = _f(pattern=_ID, default=None, doc="reason `cancelled`: the event the operator took back")

    def validate(self) -> None:
        if self.ok and self.reason is not None:
            raise BadMessage(f"EventMessage: accepted, yet with reason {self.reason}")
        if not self.ok and self.reason is None:
            raise BadMessage("EventMessage: refused without a reason")
        if self.ok:
            if self.gtin is not None and not _GTIN.fullmatch(self.gtin):
                raise BadMessage(f"EventMessage: accepted with gtin {_show(self.gtin)}, not 14 digits")
            if self.issuer not in (None, Issuer.GS1) and (self.di is None or self.udi is None):
                raise BadMessage(f"EventMessage: accepted {self.issuer} unit without its di and udi")
            for name in ("serial", "batch"):
                value = getattr(self, name)
                if value is not None and not _SET82.fullmatch(value):
                    raise BadMessage(f"EventMessage: accepted with {name} {_show(value)}, not 1-20 GS1 characters")


@dataclass(frozen=True, slots=True)
class AckMessage(Message):
    """Events the central ledger has stored (``stations/{id}/acks``: only this makes one delivered), or
    results the station has stored (``stations/{id}/result_acks``: the central side keeps and re-sends
    a result until then)."""

    MAX_BYTES: ClassVar[int] = 1024 * 1024
    ids: tuple[str, ...] = _f(max_len=10_000, pattern=_ID, doc="event ids")


@dataclass(frozen=True, slots=True)
class ResultMessage(Message):
    """The national service's answer for one unit: ``stations/{id}/results``."""

    event_id: str = _f(pattern=_ID)
    ok: bool = _f(doc="notified")
    service: Service | None = _f(default=None, doc="`uts` or `its` (none: the station has no site)")
    operation: Operation | None = _f(default=None)
    code: str = _f(max_len=64, default="", doc="the service's code (`00000`, `60007`, `UTS-H018`...)")
    message: str = _f(max_len=2000, pattern=_ANY, default="", doc="its message, placeholders filled")
    gtin: str | None = _f(max_len=64, default=None)
    serial: str | None = _f(max_len=64, default=None)
    reference: str | None = _f(max_len=100, default=None, doc="ÜTS BID / İTS notification id")


@dataclass(frozen=True, slots=True)
class ResultBatch(Message):
    """Several results in one message."""

    MAX_BYTES: ClassVar[int] = 1024 * 1024
    results: tuple[ResultMessage, ...] = _f(max_len=1000)


MAX_EVENTS_PER_MESSAGE = 500
"""The most events one ``EventBatch`` carries."""


@dataclass(frozen=True, slots=True)
class EventBatch(Message):
    """Several events of one station in one message, oldest first (``stations/{id}/events``): a
    station with a backlog sends them so, when every online submitter's status allows it
    (``batches``). Each event is checked, stored and acked on its own; a bad one is refused alone."""

    MAX_BYTES: ClassVar[int] = 4 * 1024 * 1024
    events: tuple[EventMessage, ...] = _f(max_len=MAX_EVENTS_PER_MESSAGE)


def batch_json(payloads: typing.Sequence[bytes]) -> bytes:
    """An ``EventBatch`` of events already serialised (a station's outbox rows), without parsing them."""
    return _BATCH_START + b",".join(payloads) + b"]}"


def parse_events(data: bytes | bytearray | str) -> tuple[list[tuple[str, EventMessage]], list[str]]:
    """An events message: one event, or ``{"events": [...]}``. Returns (each good event with its
    JSON text, the reasons the bad ones were refused): a bad event is refused alone. Raises
    BadMessage when the message as a whole is not one of the two."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    batch = raw.startswith(_BATCH_START)  # as batch_json writes it: only a batch gets the batch's size
    elements = _batch_elements(raw) if batch else None
    if elements is None:
        obj = load_json(raw, EventBatch.MAX_BYTES if batch else EventMessage.MAX_BYTES)
        if not (isinstance(obj, dict) and "events" in obj):
            return [(raw.decode("utf-8"), EventMessage.from_dict(obj))], []
        items = obj["events"]
        if len(obj) != 1:
            raise BadMessage("EventBatch: only `events` may be given")
        if isinstance(items, list):
            elements = [(dump_json(item), item) for item in items]
    if not elements or len(elements) > MAX_EVENTS_PER_MESSAGE:
        raise BadMessage(f"EventBatch.events: must be a list of 1 to {MAX_EVENTS_PER_MESSAGE} events")
    good, bad = [], []
    for i, (text, item) in enumerate(elements):
        try:
            good.append((text, EventMessage.from_dict(item)))
        except BadMessage as e:
            bad.append(f"events[{i}]: {e.reason}")
    return good, bad


_BATCH_START = b'{"events":['


def _batch_elements(raw: bytes) -> list[tuple[str, Any]] | None:
    """A batch laid out as :func:`batch_json` writes it, read in one pass of the decoder: each
    event with its exact text (the ledger keeps what the station sent). None when it is laid out
    otherwise (spaces, other keys): then it is read the general way. Raises BadMessage as
    :func:`load_json` does."""
    if len(raw) > EventBatch.MAX_BYTES:
        raise BadMessage(f"{len(raw)} bytes, more than the {EventBatch.MAX_BYTES} this message may have")
    with _json_faults():
        text = raw.decode("utf-8")
        out: list[tuple[str, Any]] = []
        pos = len(_BATCH_START)
        while pos < len(text) and text[pos] == "{":
            obj, end = _DECODER.raw_decode(text, pos)
            out.append((text[pos:end], obj))
            if text.startswith(",{", end):
                pos = end + 1
            elif text[end:] == "]}":
                return out
            else:
                return None
        return None


def parse_results(data: bytes | bytearray | str) -> tuple[ResultMessage, ...]:
    """A results message: one result, or ``{"results": [...]}``."""
    obj = load_json(data, ResultBatch.MAX_BYTES)
    if isinstance(obj, dict) and "results" in obj:
        return ResultBatch.from_dict(obj).results
    return (ResultMessage.from_dict(obj),)


@dataclass(frozen=True, slots=True)
class StationStatus(Message):
    """A station's health: ``stations/{id}/status``, retained; the will is ``{state: offline, station}``."""

    state: State = _f()
    station: str = _f(pattern=STATION_ID)
    version: str | None = _f(max_len=40, default=None)
    pid: int | None = _f(lo=0, default=None)
    started_at: str | None = _f(pattern=_TIMESTAMP, default=None)
    at: str | None = _f(pattern=_TIMESTAMP, default=None)
    scanner_connected: bool | None = _f(default=None, doc="every scanner connected")
    scanners: dict[str, bool] | None = _f(default=None, doc="each scanner by name")
    mqtt_connected: bool | None = _f(default=None)
    scans: int | None = _f(lo=0, default=None)
    rereads: int | None = _f(lo=0, default=None)
    storage_errors: int | None = _f(lo=0, default=None)
    last_scan_at: str | None = _f(pattern=_TIMESTAMP, default=None)
    backlog: int | None = _f(lo=0, default=None, doc="events not yet acked")
    last_seq: int | None = _f(lo=0, default=None)
    oldest_undelivered_age_s: float | None = _f(lo=0, default=None)
    storage: str | None = _f(max_len=2000, pattern=_ANY, default=None, doc="`ok` or `error: ...`")
    disk_free_bytes: int | None = _f(lo=0, default=None)


@dataclass(frozen=True, slots=True)
class CentralStatus(Message):
    """A submitter's presence: ``central/status/{submitter}``, retained; stations send while one is online."""

    state: State = _f()
    submitter: str = _f(pattern=STATION_ID)
    batches: int = _f(
        lo=0,
        hi=MAX_EVENTS_PER_MESSAGE,
        default=0,
        doc="events a station may send in one message (`EventBatch`); 0: one event a message",
    )


@dataclass(frozen=True, slots=True)
class Carrier(Message):
    """A pallet, case or bundle of a delivery, by its SSCC (PTS ``carrier``)."""

    sscc: str = _f(pattern=_SSCC, doc="18 digits")
    parent: str | None = _f(pattern=_SSCC, default=None, doc="the carrier it sits in")
    kind: str = _f(pattern=_CODE, max_len=16, default="", doc="PTS `containerType`: P pallet, C case...")


@dataclass(frozen=True, slots=True)
class DeliveryLine(Message):
    """Units of one product, batch and carrier in a delivery: serials, or a quantity of a lot."""

    di: str = _f(pattern=_PRINTABLE, max_len=64, doc="GTIN (14 digits) or another agency's device identifier")
    batch: str | None = _f(pattern=_PRINTABLE, max_len=64, default=None)
    expiry: str | None = _f(pattern=_DATE, default=None)
    carrier: str | None = _f(pattern=_SSCC, default=None, doc="the innermost carrier holding them")
    serials: tuple[str, ...] = _f(pattern=_PRINTABLE, max_len=200_000, default=(), doc="one per unit")
    quantity: int = _f(lo=0, hi=10_000_000, default=0, doc="a lot line without serials: how many (else unused)")
    ref: str | None = _f(pattern=_ID, default=None, doc="ÜTS: the verme's `BID`, sent as `VBI` in alma")

    def validate(self) -> None:
        if not self.serials and self.quantity < 1:
            raise BadMessage("DeliveryLine: neither serials nor a quantity")

    @property
    def count(self) -> int:
        return len(self.serials) or self.quantity


@dataclass(frozen=True, slots=True)
class DeliveryMessage(Message):
    """What one delivery (one waybill) holds: ``stations/{id}/deliveries``, re-sent until the station
    acks ``id:version`` on ``delivery_acks``. Compact: 10,000 serials take about 200 KB."""

    MAX_BYTES: ClassVar[int] = 16 * 1024 * 1024
    id: str = _f(pattern=_ID, doc="the central side's delivery id")
    version: int = _f(lo=1, doc="grows when the delivery changes")
    state: DeliveryState = _f(doc="`open`, `closed` or `withdrawn`")
    service: Service = _f(doc="`uts` (pending vermes) or `its` (a PTS package)")
    document: str = _f(max_len=100, doc="the waybill number (ÜTS `BNO`, PTS `documentNumber`)")
    sender: str = _f(max_len=64, doc="ÜTS `GKK` or the PTS `sourceGLN`")
    sender_name: str = _f(max_len=200, default="")
    document_date: str | None = _f(pattern=_DATE, default=None)
    carriers: tuple[Carrier, ...] = _f(max_len=100_000, default=())
    lines: tuple[DeliveryLine, ...] = _f(max_len=200_000, default=())

    @property
    def ack_id(self) -> str:
        return f"{self.id}:{self.version}"


@dataclass(frozen=True, slots=True)
class SummaryUnit(Message):
    """A unit (or a lot quantity) in a summary."""

    di: str = _f(pattern=_PRINTABLE, max_len=512)
    serial: str | None = _f(pattern=_PRINTABLE, max_len=512, default=None)
    batch: str | None = _f(pattern=_PRINTABLE, max_len=512, default=None)
    quantity: int = _f(lo=1, hi=10_000_000, default=1)
    carrier: str | None = _f(pattern=_SSCC, default=None)
    seq: int | None = _f(lo=1, default=None, doc="unexpected: the event that refused it")


@dataclass(frozen=True, slots=True)
class SummaryMessage(Message):
    """A delivery closed at a station: ``stations/{id}/summaries``, acked by its id on ``acks``.
    Only after it does the central side notify the received units."""

    MAX_BYTES: ClassVar[int] = 16 * 1024 * 1024
    id: str = _f(pattern=_ID, doc="`{delivery}.{station}`")
    delivery: str = _f(pattern=_ID, doc="the delivery (or order) id")
    station: str = _f(pattern=STATION_ID)
    opened_at: str = _f(pattern=_TIMESTAMP)
    closed_at: str = _f(pattern=_TIMESTAMP)
    closed_by: ClosedBy = _f(doc="`command`, `idle`, `operator` or `next`")
    expected: int = _f(lo=0)
    received: int = _f(lo=0)
    missing: int = _f(lo=0)
    unexpected: int = _f(lo=0)
    last_seq: int = _f(lo=0, doc="the station's last event in the session")
    missing_units: tuple[SummaryUnit, ...] = _f(max_len=200_000, default=())
    unexpected_units: tuple[SummaryUnit, ...] = _f(max_len=200_000, default=())
    kind: SummaryKind = _f(default=SummaryKind.DELIVERY, doc="`delivery` (receipt) or `order` (dispatch)")


@dataclass(frozen=True, slots=True)
class OrderLine(Message):
    """What an order wants of one product."""

    gtin: str = _f(pattern=_PRINTABLE, max_len=64, doc="GTIN (14 digits) or device identifier")
    quantity: int = _f(lo=1, hi=1_000_000)


def order_id(buyer: str, document: str) -> str:
    """An order's id from its buyer and document: the same whether the central side sent the order
    or a station opened it from its tote label alone, so a label scanned twice is one order."""
    return "ord-" + hashlib.sha1(f"{buyer}\x1f{document}".encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class OrderMessage(Message):
    """An order to fill at a conveyor: ``stations/{id}/orders`` (from the central side or the
    warehouse system), acked ``id:version`` on ``delivery_acks``. Without lines any box goes."""

    MAX_BYTES: ClassVar[int] = 1024 * 1024
    id: str = _f(pattern=_ID)
    version: int = _f(lo=1)
    state: DeliveryState = _f(doc="`open`, or `withdrawn` (cancelled)")
    buyer: str = _f(pattern=_DIGITS, doc="İTS: the buyer's GLN (`togln`); ÜTS: its institution number (`KUN`)")
    document: str = _f(max_len=100, doc="the order's document number: the tote label, ÜTS `BNO`")
    lines: tuple[OrderLine, ...] = _f(max_len=10_000, default=())

    @property
    def ack_id(self) -> str:
        return f"{self.id}:{self.version}"


@dataclass(frozen=True, slots=True)
class Recall(Message):
    """A recalled batch, a single unit, or a whole product (``batch`` and ``serial`` ``*``)."""

    gtin: str = _f(pattern=_PRINTABLE, max_len=64)
    batch: str = _f(pattern=_PRINTABLE, max_len=64, default="*")
    serial: str = _f(pattern=_PRINTABLE, max_len=64, default="*")
    note: str = _f(max_len=200, default="")


@dataclass(frozen=True, slots=True)
class RecallList(Message):
    """The whole recall list, replacing the station's: ``stations/{id}/recalls``, acked
    ``recalls:version`` on ``delivery_acks``."""

    MAX_BYTES: ClassVar[int] = 16 * 1024 * 1024
    version: int = _f(lo=1)
    recalls: tuple[Recall, ...] = _f(max_len=200_000, default=())

    @property
    def ack_id(self) -> str:
        return f"recalls:{self.version}"


class PatientIdentity(StrEnum):
    """ÜTS kullanım ``TUR``: which identity the patient is given by."""

    TC_KIMLIK = "TC_KIMLIK_NUMARASI_VAR"
    YABANCI_KIMLIK = "YABANCI_KIMLIK_NUMARASI_VAR"
    PASAPORT = "PASAPORT_NUMARASI_VAR"
    YENI_DOGAN = "YENI_DOGAN"
    KIMLIGI_BELIRSIZ = "KIMLIGI_BELIRSIZ"
    DIGER = "DIGER"


def tc_kimlik_ok(number: str) -> bool:
    """The T.C. kimlik numarası's own check: 11 digits, no leading zero, digits 10 and 11 from the rest."""
    if len(number) != 11 or not number.isdigit() or number[0] == "0":
        return False
    d = [int(c) for c in number]
    tenth = ((d[0] + d[2] + d[4] + d[6] + d[8]) * 7 - (d[1] + d[3] + d[5] + d[7])) % 10
    return tenth == d[9] and sum(d[:10]) % 10 == d[10]


@dataclass(frozen=True, slots=True)
class PatientMessage(Message):
    """The patient the units used at a station go to, from the HBYS: ``stations/{id}/patient``, read
    by the central side only (an identity never reaches the station). Units used there from ``at``
    until the next message (or ``until``) are notified to ÜTS kullanım with these fields."""

    id: str = _f(pattern=_ID, doc="the HBYS's id for this (a visit, an operation)")
    at: str = _f(pattern=_TIMESTAMP, doc="from when")
    tur: PatientIdentity = _f(doc="ÜTS `TUR`")
    until: str | None = _f(pattern=_TIMESTAMP, default=None, doc="until when (none: until the next)")
    tkn: str | None = _f(pattern=_DIGITS, default=None, doc="T.C. kimlik numarası (with `TC_KIMLIK_NUMARASI_VAR`)")
    ykn: str | None = _f(max_len=20, pattern=_PRINTABLE, default=None, doc="yabancı kimlik numarası")
    pan: str | None = _f(max_len=20, pattern=_PRINTABLE, default=None, doc="passport number")
    dta: str | None = _f(max_len=200, default=None, doc="what `DIGER` means here")

    def validate(self) -> None:
        needs = {
            PatientIdentity.TC_KIMLIK: "tkn",
            PatientIdentity.YABANCI_KIMLIK: "ykn",
            PatientIdentity.PASAPORT: "pan",
            PatientIdentity.DIGER: "dta",
        }.get(self.tur)
        if needs and not getattr(self, needs):
            raise BadMessage(f"PatientMessage: {self.tur} without {needs}")
        if self.tur is PatientIdentity.TC_KIMLIK and not tc_kimlik_ok(self.tkn or ""):
            raise BadMessage("PatientMessage.tkn: not a valid T.C. kimlik numarası")

    def fields(self) -> dict[str, str]:
        """The kullanım body's identity fields."""
        out = {"TUR": str(self.tur)}
        for name in ("tkn", "ykn", "pan", "dta"):
            value = getattr(self, name)
            if value:
                out[name.upper()] = value
        return out


MESSAGES: dict[str, type[Message]] = {
    "events": EventMessage,
    "acks": AckMessage,
    "status": StationStatus,
    "results": ResultMessage,
    "result_acks": AckMessage,
    "deliveries": DeliveryMessage,
    "delivery_acks": AckMessage,
    "summaries": SummaryMessage,
    "orders": OrderMessage,
    "recalls": RecallList,
    "patient": PatientMessage,
    "central/status": CentralStatus,
}


# -- topics ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topics:
    """Every topic of the contract under one prefix: built here, and parsed here, only."""

    prefix: str = DEFAULT_PREFIX

    @property
    def base(self) -> str:
        return self.prefix.rstrip("/")

    def station(self, station: str, kind: Kind) -> str:
        return f"{self.base}/stations/{station}/{kind}"

    def every_station(self, kind: Kind) -> str:
        """The subscription to one kind from every station."""
        return f"{self.base}/stations/+/{kind}"

    def central(self, submitter: str) -> str:
        return f"{self.base}/central/status/{submitter}"

    @property
    def every_central(self) -> str:
        return f"{self.base}/central/status/+"

    def parse(self, topic: str) -> tuple[str, Kind | None]:
        """``(station, kind)`` of a station topic, ``(submitter, None)`` of a central status topic.

        Raises BadMessage for a topic outside the contract.
        """
        rest = topic[len(self.base) + 1 :] if topic.startswith(self.base + "/") else ""
        parts = rest.split("/")
        if len(parts) == 3 and parts[0] == "stations" and STATION_ID.fullmatch(parts[1]):
            try:
                return parts[1], Kind(parts[2])
            except ValueError:
                pass
        if len(parts) == 3 and parts[:2] == ["central", "status"] and STATION_ID.fullmatch(parts[2]):
            return parts[2], None
        raise BadMessage(f"topic {topic!r} is not part of the contract")


TOPICS: dict[str, tuple[str, str, int, bool]] = {
    "stations/{id}/events": ("station -> central", "events", 1, False),
    "stations/{id}/acks": ("central -> station", "acks", 1, False),
    "stations/{id}/status": ("station -> all", "status", 1, True),
    "stations/{id}/results": ("central -> station", "results", 1, False),
    "stations/{id}/result_acks": ("station -> central", "result_acks", 1, False),
    "stations/{id}/deliveries": ("central -> station", "deliveries", 1, False),
    "stations/{id}/delivery_acks": ("station -> central", "delivery_acks", 1, False),
    "stations/{id}/summaries": ("station -> central", "summaries", 1, False),
    "stations/{id}/orders": ("central -> station", "orders", 1, False),
    "stations/{id}/recalls": ("central -> station", "recalls", 1, False),
    "stations/{id}/patient": ("HBYS -> central", "patient", 1, False),
    "central/status/{submitter}": ("central -> all", "central/status", 1, True),
}
"""topic -> (direction, message kind in MESSAGES, QoS, retained)."""
