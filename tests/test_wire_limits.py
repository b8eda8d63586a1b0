"""Every field of every message kind at its exact limits, with the exact reason each breach gets.

Generated from the contract's own declarations (``dataclasses.fields`` and their metadata), but the
expectations are written here: a string of exactly ``max_len`` characters passes and one more is
refused as ``longer than N characters``; an integer at ``lo`` passes and one below is ``out of
range``; a list of ``max_len`` items passes and one more is ``more than N items``; a boolean takes
only true or false; an enum names its members; a required field missing is ``required``; an
optional one takes null. A change to any limit or message in station/wire.py fails here.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from enum import StrEnum
from typing import Any

import pytest
from central import event_body

from station import wire
from station.wire import BadMessage

MAX_INT = 2**63 - 1

#: A valid body of each kind (a refused event: the checks of an accepted one are tested elsewhere).
SAMPLES: dict[type[wire.Message], dict[str, Any]] = {
    wire.EventMessage: event_body(
        "s1", 1, ok=False, reason="not_gs1", gtin=None, serial=None, batch=None, expiry=None, operation="receipt"
    ),
    wire.AckMessage: {"ids": ["a"]},
    wire.ResultMessage: {"event_id": "e-1", "ok": True},
    wire.ResultBatch: {"results": [{"event_id": "e-1", "ok": True}]},
    wire.StationStatus: {"state": "online", "station": "s1"},
    wire.CentralStatus: {"state": "online", "submitter": "sub-1"},
    wire.Carrier: {"sscc": "086800000000000013"},
    wire.DeliveryLine: {"di": "08699536000010", "serials": ["S1"]},
    wire.DeliveryMessage: {
        "id": "its-1",
        "version": 1,
        "state": "open",
        "service": "its",
        "document": "IRS-1",
        "sender": "8680000000001",
        "carriers": [{"sscc": "086800000000000013"}],
        "lines": [{"di": "08699536000010", "serials": ["S1"]}],
    },
    wire.SummaryUnit: {"di": "08699536000010"},
    wire.OrderLine: {"gtin": "08699536000010", "quantity": 2},
    wire.OrderMessage: {
        "id": "ord-1",
        "version": 1,
        "state": "open",
        "buyer": "8680000000016",
        "document": "SIP-1",
        "lines": [{"gtin": "08699536000010", "quantity": 2}],
    },
    wire.Recall: {"gtin": "08699536000010"},
    wire.PatientMessage: {
        "id": "visit-1",
        "at": "2026-11-23T10:00:00Z",
        "tur": "KIMLIGI_BELIRSIZ",
        "tkn": "10000000146",  # every identity given: any TUR holds
        "ykn": "99123456789",
        "pan": "U1234567",
        "dta": "acil",
    },
    wire.RecallList: {"version": 1, "recalls": [{"gtin": "08699536000010", "batch": "B1"}]},
    wire.SummaryMessage: {
        "id": "its-1.s1",
        "delivery": "its-1",
        "station": "s1",
        "opened_at": "2026-11-20T10:00:00Z",
        "closed_at": "2026-11-20T11:00:00Z",
        "closed_by": "command",
        "expected": 2,
        "received": 1,
        "missing": 1,
        "unexpected": 1,
        "last_seq": 3,
        "missing_units": [{"di": "08699536000010", "serial": "S2"}],
        "unexpected_units": [{"di": "08699536000027", "serial": "X", "seq": 2}],
    },
}


def cases() -> list[tuple[type[wire.Message], dataclasses.Field[Any], Any]]:
    out = []
    for kind in SAMPLES:
        hints = typing.get_type_hints(kind)
        out += [(kind, f, hints[f.name]) for f in dataclasses.fields(kind) if f.name in hints]
    return out


def reason_for(kind: type[wire.Message], body: dict[str, Any]) -> str | None:
    try:
        kind.from_dict(body)
    except BadMessage as e:
        return e.reason
    return None


def base(kind: type[wire.Message]) -> dict[str, Any]:
    body = dict(SAMPLES[kind])
    assert reason_for(kind, body) is None, kind
    return body


def inner(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType) else hint


def fitting(pattern: Any, n: int) -> str | None:
    """A string of length ``n`` the field's pattern accepts, if one of a few simple ones does."""
    for c in ("a", "A", "1", "0"):
        text = c * n
        if pattern is None or pattern.fullmatch(text):
            return text
    return None


@pytest.mark.parametrize(("kind", "f", "hint"), cases(), ids=lambda x: getattr(x, "name", getattr(x, "__name__", "")))
def test_each_field_at_its_limits(kind: type[wire.Message], f: dataclasses.Field[Any], hint: Any) -> None:
    where = f"{kind.__name__}.{f.name}"
    meta = f.metadata
    optional = f.default is not dataclasses.MISSING
    body = base(kind)
    if not optional:
        missing = {k: v for k, v in body.items() if k != f.name}
        assert reason_for(kind, missing) == f"{where}: required"
    elif f.default is None:  # null passes the field's own check (a rule across fields may still refuse)
        assert not (reason_for(kind, {**body, f.name: None}) or "").startswith(f"{where}:")
    t = inner(hint)
    origin = typing.get_origin(t)
    if t is bool:
        assert reason_for(kind, {**body, f.name: body.get(f.name, True)}) is None
        assert reason_for(kind, {**body, f.name: 1}) == f"{where}: must be true or false, not 1"
    elif isinstance(t, type) and issubclass(t, StrEnum):
        assert reason_for(kind, {**body, f.name: list(t)[-1].value}) is None
        assert reason_for(kind, {**body, f.name: "nope"}) == f'{where}: "nope" is not one of {", ".join(t)}'
        assert reason_for(kind, {**body, f.name: 5}) == f"{where}: 5 is not one of {', '.join(t)}"
    elif t is float:
        lo = -MAX_INT if meta.get("lo") is None else meta["lo"]
        assert reason_for(kind, {**body, f.name: lo}) is None and reason_for(kind, {**body, f.name: lo + 0.5}) is None
        assert reason_for(kind, {**body, f.name: lo - 0.5}) == f"{where}: {lo - 0.5} is out of range"
        assert reason_for(kind, {**body, f.name: "x"}) == f'{where}: must be a number, not "x"'
        assert reason_for(kind, {**body, f.name: float("inf")}) == f"{where}: must be a finite number"
    elif t is int:
        lo = -MAX_INT if meta.get("lo") is None else meta["lo"]
        hi = MAX_INT if meta.get("hi") is None else meta["hi"]
        for good in (lo, hi):
            assert reason_for(kind, {**body, f.name: good}) is None, good
        assert reason_for(kind, {**body, f.name: lo - 1}) == f"{where}: {lo - 1} is out of range"
        assert reason_for(kind, {**body, f.name: hi + 1}) == f"{where}: {hi + 1} is out of range"
        assert reason_for(kind, {**body, f.name: 1.5}) == f"{where}: must be an integer, not 1.5"
        assert reason_for(kind, {**body, f.name: True}) == f"{where}: must be an integer, not true"
    elif t is str:
        max_len = meta.get("max_len", 200)
        text = fitting(meta.get("pattern"), max_len)
        if text is not None:
            assert reason_for(kind, {**body, f.name: text}) is None, where
            assert reason_for(kind, {**body, f.name: text + text[0]}) == f"{where}: longer than {max_len} characters"
        assert reason_for(kind, {**body, f.name: 7}) == f"{where}: must be a string, not 7"
    elif origin is tuple:
        most = meta.get("max_len", 200)
        item = body[f.name][0]
        assert reason_for(kind, {**body, f.name: [item] * most}) is None
        assert reason_for(kind, {**body, f.name: [item] * (most + 1)}) == f"{where}: more than {most} items"
        assert reason_for(kind, {**body, f.name: "x"}) == f'{where}: must be a list, not "x"'
    elif origin is dict:
        assert reason_for(kind, {**body, f.name: {"k" * 64: True}}) is None
        assert reason_for(kind, {**body, f.name: {"k" * 65: True}}) == f"{where}{{}}: longer than 64 characters"
        assert reason_for(kind, {**body, f.name: {str(i): True for i in range(64)}}) is None
        assert reason_for(kind, {**body, f.name: {str(i): True for i in range(65)}}) == (
            f"{where}: must be an object of at most 64 keys"
        )
        assert reason_for(kind, {**body, f.name: {"k": 1}}) == f"{where}[]: must be true or false, not 1"
    else:
        pytest.fail(f"{where}: a field type this test does not know: {t}")


def test_every_kind_has_a_sample_and_the_sizes_hold() -> None:
    assert set(SAMPLES) >= set(wire.MESSAGES.values())
    big = json.dumps({**SAMPLES[wire.AckMessage], "pad": "x" * (1024 * 1024)}).encode()
    with pytest.raises(BadMessage, match="more than the 1048576 this message may have"):
        wire.AckMessage.from_json(big)


def test_values_are_shown_escaped_and_cut_at_40() -> None:
    assert wire._show("ş" * 5) == '"\\u015f\\u015f\\u015f\\u015f\\u015f"'  # ASCII only: safe in any log
    exactly = "a" * 38  # 40 with its quotes: shown whole
    assert wire._show(exactly) == f'"{exactly}"'
    assert wire._show(exactly + "b") == f'"{exactly[:36]}...'  # 41: cut to 37 and "..."
    with pytest.raises(BadMessage) as e:
        wire.EventMessage.from_dict({**SAMPLES[wire.EventMessage], "station": "ş" * 30})
    assert e.value.reason == 'EventMessage.station: "' + "\\u015f" * 6 + "... is not a valid value"


def test_the_size_limit_is_inclusive_and_json_errors_are_cut() -> None:
    body = json.dumps(SAMPLES[wire.CentralStatus]).encode()
    limit = wire.CentralStatus.MAX_BYTES
    padded = body[:-1] + b" " * (limit - len(body)) + b"}"
    assert len(padded) == limit and wire.CentralStatus.from_json(padded).submitter == "sub-1"
    with pytest.raises(BadMessage, match="more than"):
        wire.CentralStatus.from_json(padded + b" ")
    assert wire.CentralStatus.from_json(bytearray(body)).submitter == "sub-1"  # bytes, bytearray and text
    assert wire.CentralStatus.from_json(body.decode()).submitter == "sub-1"
    with pytest.raises(BadMessage) as e:
        wire.CentralStatus.from_json(b"{" + b'"k": 1, ' * 20 + b"x")
    assert e.value.reason.startswith("not JSON: ") and len(e.value.reason) == len("not JSON: ") + 60


def test_to_json_is_compact_utf8() -> None:
    result = wire.ResultMessage("e-1", False, wire.Service.ITS, code="60007", message="Ürün")
    text = result.to_json()
    assert text.startswith(b'{"event_id":"e-1","ok":false,"service":"its","operation":null,"code":"60007"')
    assert '"message":"Ürün"'.encode() in text and b": " not in text and b", " not in text
    batch = wire.ResultBatch((result,))
    assert json.loads(batch.to_json())["results"][0]["message"] == "Ürün"


def test_an_accepted_udi_event_needs_its_di_and_udi() -> None:
    base = event_body("s1", 1, issuer="hibcc", di="A99912345", udi="+A9991234", gtin=None)
    assert wire.EventMessage.from_dict(base).di == "A99912345"
    for missing in ("di", "udi"):
        with pytest.raises(BadMessage) as e:
            wire.EventMessage.from_dict({**base, missing: None})
        assert e.value.reason == "EventMessage: accepted hibcc unit without its di and udi"
    with pytest.raises(BadMessage) as e:
        wire.EventMessage.from_dict({**event_body("s1", 1), "batch": "#1"})
    assert e.value.reason == 'EventMessage: accepted with batch "#1", not 1-20 GS1 characters'


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("karekod/v1/stations/dock-1/events", ("dock-1", wire.Kind.EVENTS)),
        ("karekod/v1/stations/dock-1/result_acks", ("dock-1", wire.Kind.RESULT_ACKS)),
        ("karekod/v1/central/status/sub-1", ("sub-1", None)),
    ],
)
def test_topics_parse(topic: str, parsed: tuple[str, wire.Kind | None]) -> None:
    assert wire.Topics().parse(topic) == parsed


@pytest.mark.parametrize(
    "topic",
    [
        "karekod/v1/stations/dock-1/nonsense",
        "karekod/v1/stations/a+b/events",
        "karekod/v1/stations/dock-1/events/more",
        "karekod/v1/stations/events",
        "other/v1/stations/dock-1/events",
        "karekod/v1stations/dock-1/events",
        "stations/dock-1/events",
        "karekod/v1/central/status/a+b",
        "karekod/v1/central/other/sub-1",
    ],
)
def test_topics_outside_the_contract(topic: str) -> None:
    with pytest.raises(BadMessage) as e:
        wire.Topics().parse(topic)
    assert e.value.reason == f"topic {topic!r} is not part of the contract"
