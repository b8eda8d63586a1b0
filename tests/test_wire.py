"""The wire contract: every message kind checked at the edge, refused alone with a reason.

The hostile tests run both wings' real MQTT code (the station's uplink, the submitter's ingest)
against a real Mosquitto and send each kind malformed JSON, wrong types, missing keys, a 1 MB
payload and a forged identity; after each, a good message must be taken at once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from central import event_body, start_ingest, submitter_config
from harness import ROOT, Broker, wait_for
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from scans import GS, gtin

from station import wire
from station.central.config import load as load_submitter
from station.central.ingest import Central
from station.central.ledger import Ledger
from station.edge.config import MqttConfig
from station.edge.events import Scan
from station.edge.store import Store
from station.edge.uplink import MqttUplink
from station.gs1.reader import Profile
from station.gs1.verdict import Policy, judge
from station.wire import (
    AckMessage,
    BadMessage,
    CentralStatus,
    EventMessage,
    Kind,
    ResultMessage,
    State,
    StationStatus,
    Topics,
    batch_json,
    parse_events,
    parse_results,
)

TODAY = date(2026, 1, 1)


def event_json(station: str = "line-1", seq: int = 1, **kw: Any) -> bytes:
    return json.dumps(event_body(station, seq, **{"operation": "dispatch", "site": "depot", **kw})).encode()


# -- the checks, one reason each ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"5", "EventMessage: must be a JSON object, not 5"),
        (b"null", "EventMessage: must be a JSON object, not null"),
        (b"[]", "EventMessage: must be a JSON object, not []"),
        (b"{", "not JSON: "),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"seq": NaN}', "not JSON: NaN is not JSON"),
        (b"[" * 5_000 + b"]" * 5_000, "nested too deeply"),
        (b" " * (129 * 1024), "132096 bytes, more than the 131072 this message may have"),
        (event_json(seq="abc"), 'EventMessage.seq: must be an integer, not "abc"'),
        (event_json(seq=0), "EventMessage.seq: 0 is out of range"),
        (event_json(seq=2**63), "EventMessage.seq: 9223372036854775808 is out of range"),
        (event_json(seq=1.5), "EventMessage.seq: must be an integer, not 1.5"),
        (event_json(seq=True), "EventMessage.seq: must be an integer, not true"),
        (event_json(id=...), "EventMessage.id: required"),
        (event_json(id="a/b"), 'EventMessage.id: "a/b" is not a valid value'),
        (event_json(station="a+b"), 'EventMessage.station: "a+b" is not a valid value'),
        (event_json(ok="yes"), 'EventMessage.ok: must be true or false, not "yes"'),
        (event_json(operation="sell"), 'EventMessage.operation: "sell" is not one of receipt, dispatch'),
        (event_json(ok=False), "EventMessage: refused without a reason"),
        (event_json(reason="expired"), "EventMessage: accepted, yet with reason expired"),
        (event_json(ok=False, reason="bored"), 'EventMessage.reason: "bored" is not one of not_gs1'),
        (event_json(gtin="123"), 'EventMessage: accepted with gtin "123", not 14 digits'),
        (event_json(serial="S\x001"), 'EventMessage.serial: "S\\u00001" is not a valid value'),
        (event_json(message="a\x00b"), 'EventMessage.message: "a\\u0000b" is not a valid value'),
        (event_json(serial="A" * 21), "EventMessage: accepted with serial"),
        (event_json(at="yesterday"), 'EventMessage.at: "yesterday" is not a valid value'),
        (event_json(raw_hex="zz"), 'EventMessage.raw_hex: "zz" is not a valid value'),
    ],
)
def test_a_bad_event_is_refused_with_its_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(BadMessage) as e:
        EventMessage.from_json(payload)
    assert e.value.reason.startswith(reason), e.value.reason


def test_every_kind_round_trips_and_ignores_keys_it_does_not_know() -> None:
    event = EventMessage.from_json(event_json())
    assert EventMessage.from_json(event.to_json()) == event
    assert event.operation is wire.Operation.DISPATCH and event.ok is True and event.reason is None
    extra = json.loads(event.to_json()) | {"added_in_a_later_version": [1, 2]}
    assert EventMessage.from_dict(extra) == event
    ack = AckMessage(ids=("a", "b"))
    assert AckMessage.from_json(ack.to_json()) == ack
    result = ResultMessage("e-1", False, wire.Service.ITS, code="60007", message="Ürün geri çekilmiş.")
    assert parse_results(result.to_json()) == (result,)
    assert parse_results(json.dumps({"results": [json.loads(result.to_json())] * 2})) == (result, result)
    status = StationStatus(state=State.ONLINE, station="s1", backlog=3, scanners={"left": True})
    assert StationStatus.from_json(status.to_json()) == status
    assert StationStatus.from_json(b'{"state": "offline", "station": "s1"}').backlog is None  # the will
    central = CentralStatus(state=State.ONLINE, submitter="sub-1")
    assert CentralStatus.from_json(central.to_json()) == central


@pytest.mark.parametrize(
    ("kind", "payload", "reason"),
    [
        (AckMessage, b'{"ids": 5}', "AckMessage.ids: must be a list, not 5"),
        (AckMessage, b"{}", "AckMessage.ids: required"),
        (AckMessage, b'{"ids": [1]}', "AckMessage.ids[]: must be a string, not 1"),
        (AckMessage, json.dumps({"ids": ["a"] * 10_001}).encode(), "AckMessage.ids: more than 10000 items"),
        (StationStatus, b'{"state": "asleep", "station": "s"}', 'StationStatus.state: "asleep" is not one of'),
        (StationStatus, b'{"state": "online", "station": "s", "backlog": -1}', "StationStatus.backlog: -1 is out"),
        (StationStatus, b'{"state": "online", "station": "s", "scanners": [1]}', "StationStatus.scanners: must be"),
        (CentralStatus, b'{"state": "online"}', "CentralStatus.submitter: required"),
    ],
)
def test_other_kinds_refuse_with_their_reason(kind: type[wire.Message], payload: bytes, reason: str) -> None:
    with pytest.raises(BadMessage) as e:
        kind.from_json(payload)
    assert e.value.reason.startswith(reason), e.value.reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"5", "ResultMessage: must be a JSON object, not 5"),
        (b"null", "ResultMessage: must be a JSON object, not null"),
        (b'{"results": 5}', "ResultBatch.results: must be a list, not 5"),
        (b'{"results": [5]}', "ResultMessage: must be a JSON object, not 5"),
        (b'{"event_id": "e", "ok": "no"}', 'ResultMessage.ok: must be true or false, not "no"'),
        (b'{"event_id": "e", "ok": false, "service": "sgk"}', 'ResultMessage.service: "sgk" is not one of uts, its'),
    ],
)
def test_results_payloads_that_killed_the_network_thread_are_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(BadMessage) as e:
        parse_results(payload)
    assert e.value.reason.startswith(reason), e.value.reason


def test_topics_are_built_and_parsed_in_one_place() -> None:
    t = Topics("site/x/")
    assert t.station("s-1", Kind.EVENTS) == "site/x/stations/s-1/events"
    assert t.every_station(Kind.STATUS) == "site/x/stations/+/status"
    assert t.central("sub") == "site/x/central/status/sub" and t.every_central == "site/x/central/status/+"
    assert t.parse("site/x/stations/s-1/results") == ("s-1", Kind.RESULTS)
    assert t.parse("site/x/central/status/sub") == ("sub", None)
    for bad in ("site/x/stations/s-1/other", "site/x/stations/a/b/events", "elsewhere/stations/s/events", "site/x"):
        with pytest.raises(BadMessage):
            t.parse(bad)


# -- what the station writes, the central side reads ----------------------------------------------


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300) | st.text(alphabet="0123456789ABCabc\x1d]d2 -/", max_size=80).map(str.encode))
def test_every_event_a_station_can_write_passes_the_central_check(raw: bytes) -> None:
    """Whatever bytes a scanner sends, the event the station records is one the ledger accepts:
    an event the central side refused would stay undelivered at the station for ever."""
    from station.edge.events import event_fields, event_json, event_message

    for profile in Profile:
        verdict = judge(raw, Policy(profile), TODAY)
        scan = Scan(raw, "serial:/dev/ttyACM0", terminated_by="suffix")
        fields = event_fields("id-1", 7, "2026-01-01T10:00:00.000Z", "s1", "site", wire.Operation.USE, scan, verdict)
        sent = event_json(fields, "0123abcd")  # what the uplink sends: the message's own JSON, made faster
        assert sent == event_message(fields, "0123abcd").to_json()
        assert EventMessage.from_json(sent).ok == verdict.ok


def test_a_real_karekod_event_reads_back_whole() -> None:
    from station.edge.events import event_fields, event_message

    raw = f"]d201{gtin(3)}21SER1{GS}1726013110LOT9\r".encode()
    verdict = judge(raw, Policy(Profile.ITS), TODAY)
    assert verdict.ok
    message = event_message(
        event_fields("id-9", 9, "2026-01-01T10:00:00.000Z", "s1", "", wire.Operation.RECEIPT, Scan(raw), verdict)
    )
    back = EventMessage.from_json(message.to_json())
    assert (back.gtin, back.serial, back.batch, back.expiry, back.raw_hex) == (
        gtin(3),
        "SER1",
        "LOT9",
        "2026-01-31",
        raw.hex(),
    )


# -- the README's MQTT tables are the contract's ---------------------------------------------------


def test_the_readme_tables_are_written_from_the_contract() -> None:
    r = subprocess.run([sys.executable, "scripts/wire_doc.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    readme = (ROOT / "README.md").read_text()
    for topic in wire.TOPICS:
        assert f"| `{topic}` |" in readme


# -- hostile messages through a real broker -------------------------------------------------------


class Publisher:
    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"hostile-{uuid.uuid4()}", protocol=mqtt.MQTTv5
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


HOSTILE = {
    "malformed JSON": b'{"ids": [',
    "wrong types": b'{"ids": "all", "event_id": 5, "state": 1, "submitter": [], "ok": "yes", "station": 7}',
    "missing keys": b"{}",
    "a 1 MB payload": b'{"pad": "' + b"x" * (1024 * 1024) + b'"}',
    "a number": b"5",
    "null": b"null",
}


def scans_noted(ledger: Ledger) -> int | None:
    rows = ledger.query("SELECT status FROM stations WHERE station = 'line-1'")
    return json.loads(rows[0][0]).get("scans") if rows and rows[0][0] else None


def test_hostile_messages_to_the_submitter_are_refused_alone(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_submitter(submitter_config(tmp_path, broker.port, "http://127.0.0.1:1"))
    central, ledger, close = start_ingest(config)
    pub = Publisher(broker.port)
    topics = Topics()
    caplog.set_level(logging.WARNING, logger="submitter.mqtt")
    try:
        wait_for(central.connected.is_set, 10, what="the submitter to connect")
        seq = 0
        for kind in (Kind.EVENTS, Kind.STATUS):
            cases = dict(HOSTILE)
            if kind is Kind.EVENTS:
                cases["a forged station id"] = event_json(station="dock-1")
            else:
                cases["a forged station id"] = StationStatus(state=State.ONLINE, station="dock-1").to_json()
            for what, payload in cases.items():
                refused, lines = central.refused, len(caplog.records)
                pub.send(topics.station("line-1", kind), payload)
                seq += 1
                if kind is Kind.EVENTS:
                    good = event_json(seq=seq)
                    pub.send(topics.station("line-1", kind), good)
                    good_id = json.loads(good)["id"]
                    wait_for(lambda i=good_id: ledger.query("SELECT 1 FROM events WHERE id = ?", (i,)) != [], 5,
                             what=f"the good event after {what}")  # fmt: skip
                else:
                    pub.send(
                        topics.station("line-1", kind),
                        StationStatus(state=State.ONLINE, station="line-1", scans=seq).to_json(),
                    )
                    wait_for(lambda s=seq: scans_noted(ledger) == s, 5, what=f"the good status after {what}")
                assert central.refused == refused + 1, f"{kind} {what}: not refused"
                new = [r.getMessage() for r in caplog.records[lines:]]
                assert len(new) == 1 and new[0].startswith(
                    f"refused a message on {topics.station('line-1', kind)}: "
                ), new
        assert ledger.query("SELECT count(*) FROM events")[0][0] == len(HOSTILE) + 1
        assert ledger.query("SELECT station FROM stations") == [("line-1",)]
    finally:
        pub.close()
        close()


def test_hostile_messages_to_a_station_are_refused_alone(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "station.db"
    store = Store(db)
    scans = [f"]d201{gtin(1)}21S{i}{GS}1730123110B" for i in range(8)]
    events = [
        store.record(Scan(s.encode(), at=time.time()), judge(s, Policy(Profile.ITS), TODAY), "st-1", "", "receipt")
        for s in scans
    ]
    got: list[Any] = []
    uplink = MqttUplink(
        MqttConfig(host="127.0.0.1", port=broker.port, status_interval_seconds=1, ack_timeout_seconds=60),
        "st-1",
        str(db),
        lambda store, connected: {"station": "st-1"},
        got.append,
    )
    topics = Topics()
    pub = Publisher(broker.port)
    caplog.set_level(logging.WARNING, logger="station.edge.uplink")
    uplink.start()
    try:
        wait_for(lambda: uplink.connected, 10, what="the station to connect")
        time.sleep(0.3)  # its subscriptions are in place

        def check(what: str, refused: int, lines: int) -> None:
            wait_for(lambda: uplink.refused == refused + 1, 5, what=f"{what} to be refused")
            new = [r.getMessage() for r in caplog.records[lines:] if r.levelno >= logging.WARNING]
            assert len(new) == 1 and new[0].startswith("mqtt: refused a message on "), (what, new)

        cases = dict(HOSTILE) | {"a forged station id": b'{"ids": "not-mine"}'}
        for n, (what, payload) in enumerate(cases.items()):
            refused, lines = uplink.refused, len(caplog.records)
            pub.send(topics.station("st-1", Kind.ACKS), payload)
            check(f"ack {what}", refused, lines)
            pub.send(topics.station("st-1", Kind.ACKS), AckMessage(ids=(events[n].id,)).to_json())
            wait_for(lambda k=n: store.stats().backlog == 7 - k, 5, what=f"the good ack after {what}")

        cases = dict(HOSTILE) | {"a batch of a number": b'{"results": 5}'}
        for n, (what, payload) in enumerate(cases.items()):
            refused, lines = uplink.refused, len(caplog.records)
            pub.send(topics.station("st-1", Kind.RESULTS), payload)
            check(f"result {what}", refused, lines)
            good = ResultMessage(events[n].id, False, wire.Service.ITS, code="60007")
            pub.send(topics.station("st-1", Kind.RESULTS), good.to_json())
            wait_for(lambda k=n: len(got) == k + 1, 5, what=f"the good result after {what}")
            assert got[-1] == (events[n].seq, good)

        cases = dict(HOSTILE) | {
            "a forged submitter id": CentralStatus(state=State.ONLINE, submitter="other").to_json()
        }
        for what, payload in cases.items():
            refused, lines = uplink.refused, len(caplog.records)
            pub.send(topics.central("sub-1"), payload)
            check(f"central status {what}", refused, lines)
        pub.send(topics.central("sub-1"), CentralStatus(state=State.ONLINE, submitter="sub-1").to_json(), retain=True)
        wait_for(lambda: uplink._central_online, 5, what="the station to see the central side online")
        assert uplink.client.is_connected()  # the network thread survived every one of them
    finally:
        pub.send(topics.central("sub-1"), b"", retain=True)
        pub.close()
        uplink.stop()
        store.close()


def test_the_watchdog_goes_hungry_when_the_uplink_thread_dies(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead network thread used to leave the scan loop feeding the watchdog for ever."""
    from station import runtime
    from station.edge.config import Config, StationConfig, StorageConfig
    from station.edge.daemon import ScanLoop
    from station.edge.health import Health
    from station.edge.outputs.feedback import NoFeedback
    from station.edge.pipeline import Station

    sent: list[str] = []
    monkeypatch.setattr(runtime, "notify", lambda message: sent.append(message) or True)
    store = Store(tmp_path / "s.db")
    health = Health("st-9")
    uplink = MqttUplink(MqttConfig(host="127.0.0.1", port=broker.port), "st-9", str(tmp_path / "s.db"), health.status)
    config = Config(StationConfig("st-9"), storage=StorageConfig(str(tmp_path / "s.db")))
    station = Station(config.station, config.reader, store, NoFeedback(), uplink, health=health)
    loop = ScanLoop(config, station, [], NoFeedback())  # type: ignore[arg-type]
    uplink.start()
    try:
        wait_for(lambda: uplink.connected, 10, what="the uplink to connect")
        loop.feed_watchdog()
        assert sent == ["WATCHDOG=1"] and uplink.healthy
        uplink.client.loop_stop()  # paho's network thread ends, as an exception in a callback ended it
        assert not uplink.healthy
        loop.feed_watchdog()
        loop.feed_watchdog()
        assert sent == ["WATCHDOG=1"]
    finally:
        uplink.stop()
        store.close()


def test_the_submitter_refuses_a_station_no_site_names(tmp_path: Path) -> None:
    config = load_submitter(submitter_config(tmp_path, 1, "http://127.0.0.1:1"))
    central = Central(config, Ledger(config.ledger, config.id))
    msg = mqtt.MQTTMessage(topic=b"karekod/v1/stations/ghost-9/events")
    msg.payload = event_json(station="ghost-9")
    with pytest.raises(BadMessage, match=r"station 'ghost-9' is in no \[sites\.\*\] stations list"):
        central.parse(msg)
    msg = mqtt.MQTTMessage(topic=b"karekod/v1/stations/line-1/events")
    msg.payload = event_json(station="line-1")
    assert central.parse(msg)[0] == "line-1"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
FIELDS = sorted({f for m in wire.MESSAGES.values() for f in m.__dataclass_fields__} | {"results"})


@settings(max_examples=400, deadline=None)
@given(
    body=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=12) | JSON,
    raw=st.binary(max_size=200),
)
def test_no_message_of_any_shape_raises_anything_but_bad_message(body: Any, raw: bytes) -> None:
    """Fuzz: every kind, fed JSON of any shape built from the contract's own field names (so many
    fields are right and one is wrong) and raw bytes, is either a message or one BadMessage."""
    for kind in (*wire.MESSAGES.values(), wire.ResultBatch):
        for payload in (json.dumps(body).encode(), raw):
            try:
                message = kind.from_json(payload)
            except BadMessage as e:
                assert e.reason and "\n" not in e.reason
            else:
                assert kind.from_json(message.to_json()) == message  # what is taken round-trips
    with contextlib.suppress(BadMessage):
        parse_results(json.dumps(body))


# -- several events in one message ----------------------------------------------------------------


def test_an_event_batch_is_read_event_by_event() -> None:
    one, two = event_json(seq=1), event_json(seq=2)
    single, refused = parse_events(one)
    assert refused == [] and [e.seq for _, e in single] == [1] and single[0][0] == one.decode()
    bad = event_json(seq=0)
    taken, refused = parse_events(batch_json([one, bad, b"5", two]))
    assert [e.seq for _, e in taken] == [1, 2]
    assert refused == [
        "events[1]: EventMessage.seq: 0 is out of range",
        "events[2]: EventMessage: must be a JSON object, not 5",
    ]
    assert json.loads(taken[1][0]) == json.loads(two)  # each event's own JSON, as the ledger keeps it
    for payload, reason in (
        (b'{"events": []}', "EventBatch.events: must be a list of 1 to 500 events"),
        (b'{"events": 5}', "EventBatch.events: must be a list of 1 to 500 events"),
        (batch_json([one] * 501), "EventBatch.events: must be a list of 1 to 500 events"),
        (b'{"events": [' + one + b'], "pad": 1}', "EventBatch: only `events` may be given"),
        (
            b" " * (129 * 1024),
            "132096 bytes, more than the 131072 this message may have",
        ),  # not a batch: an event's limit
    ):
        with pytest.raises(BadMessage) as e:
            parse_events(payload)
        assert e.value.reason == reason
    spaced = b'{ "events": [' + one + b", " + two + b"] }"  # laid out otherwise: read the general way
    assert [(json.loads(t), e.seq) for t, e in parse_events(spaced)[0]] == [(json.loads(one), 1), (json.loads(two), 2)]
    with pytest.raises(BadMessage, match="not JSON"):
        parse_events(b'{"events":[' + one[:-1] + b', "x": NaN}]}')
    escaped = event_json(seq=3).replace(b'"site": "depot"', b'"site": "\\u015fube"')
    (_, second), _ = parse_events(batch_json([one, escaped]))
    assert '"\\u015fube"' in second[0] and second[1].site == "şube"  # each event's own bytes, not re-written
    assert parse_events(spaced)[0][0][0] == json.dumps(json.loads(one), ensure_ascii=False, separators=(",", ":"))
    assert len(parse_events(batch_json([one] * 500))[0]) == 500  # the most a batch may carry
    with pytest.raises(BadMessage) as huge:
        parse_events(b'{"events":[' + b" " * (4 * 1024 * 1024) + b"]}")
    assert huge.value.reason == "4194317 bytes, more than the 4194304 this message may have"
    big = batch_json([event_json(seq=i + 1, raw="x" * 2000) for i in range(400)])
    assert len(big) > 128 * 1024 and len(parse_events(big)[0]) == 400  # a batch has room for a backlog
    assert CentralStatus.from_json(b'{"state": "online", "submitter": "s"}').batches == 0  # an older submitter
    with pytest.raises(BadMessage):
        CentralStatus.from_json(b'{"state": "online", "submitter": "s", "batches": 501}')


def test_a_batch_to_the_submitter_is_stored_and_acked_event_by_event(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_submitter(submitter_config(tmp_path, broker.port, "http://127.0.0.1:1"))
    central, ledger, close = start_ingest(config)
    pub = Publisher(broker.port)
    acks: list[str] = []
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    listener.on_message = lambda c, u, m: acks.extend(AckMessage.from_json(m.payload).ids)
    listener.connect("127.0.0.1", broker.port)
    listener.subscribe(Topics().station("line-1", Kind.ACKS), qos=1)
    listener.loop_start()
    caplog.set_level(logging.WARNING, logger="submitter.mqtt")
    try:
        wait_for(central.connected.is_set, 10, what="the submitter to connect")
        status = CentralStatus.from_json(pub_retained(broker.port, Topics().central(config.id)))
        assert status.batches == wire.MAX_EVENTS_PER_MESSAGE  # it says it reads batches
        good = [event_json(seq=i) for i in (1, 2, 3)]
        forged = event_json(station="dock-1", seq=4)
        pub.send(Topics().station("line-1", Kind.EVENTS), batch_json([good[0], event_json(seq=-1), forged, *good[1:]]))
        ids = [json.loads(g)["id"] for g in good]
        wait_for(lambda: sorted(acks) == sorted(ids), 10, what="the good events acked")
        assert ledger.query("SELECT seq FROM events ORDER BY seq") == [(1,), (2,), (3,)]
        assert central.refused == 2
        lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(lines) == 2 and "events[1]: EventMessage.seq: -1 is out of range" in lines[0]
        assert "station 'dock-1' does not match the topic" in lines[1]
    finally:
        listener.disconnect()
        listener.loop_stop()
        pub.close()
        close()


def pub_retained(port: int, topic: str) -> bytes:
    got: list[bytes] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_message = lambda client, userdata, m: got.append(m.payload)
    c.connect("127.0.0.1", port)
    c.subscribe(topic, qos=1)
    c.loop_start()
    try:
        wait_for(lambda: bool(got), 5, what=f"the retained message on {topic}")
    finally:
        c.disconnect()
        c.loop_stop()
    return got[0]


def test_the_wait_for_an_ack_follows_the_acks_round_trip_and_doubles_while_none_comes() -> None:
    from station.edge.uplink import RESEND_CAP, AckTimer

    timer = AckTimer(30, lambda: 0.5)  # draw 0.5: no spread
    assert timer.wait == 30  # no round trip measured yet: ack_timeout_seconds
    waits = []
    for _ in range(6):
        timer.timed_out()
        waits.append(timer.wait)
    assert waits == [60, 120, 240, RESEND_CAP, RESEND_CAP, RESEND_CAP] == [60, 120, 240, 300, 300, 300]
    timer.acked(None)  # an ack of re-sent events only: no round trip (Karn), the doubling ends
    assert (timer.wait, timer.unanswered, timer.srtt) == (30, 0, None)
    timer.acked(40.0)  # a central side 40 s behind: RFC 6298's first sample, 40 + 4 x 20
    assert (timer.srtt, timer.rttvar, timer.wait) == (40.0, 20.0, 120.0)
    timer.acked(40.0)  # steady: the variation shrinks by a quarter
    assert (timer.srtt, timer.rttvar, timer.wait) == (40.0, 15.0, 100.0)
    timer.acked(48.0)
    assert (timer.srtt, timer.rttvar, timer.wait) == (41.0, 13.25, 94.0)
    timer.timed_out()
    assert timer.wait == 188.0  # doubled from what the round trip says
    for _ in range(200):
        timer.acked(0.05)  # the backlog drained: back to ack_timeout_seconds, never below
    assert timer.wait == 30 and timer.srtt is not None and timer.srtt < 0.06
    assert AckTimer(30, lambda: 0.0).wait == 27 and AckTimer(30, lambda: 0.999999).wait < 33  # ±10 %
    slow = AckTimer(600, lambda: 0.5)
    slow.timed_out()
    assert slow.wait == 600  # a timeout longer than the cap is kept


def test_a_backlog_is_packed_by_count_and_by_bytes_oldest_first() -> None:
    from station.edge.uplink import pack

    rows = [(q, f"h.{q}", b"x" * 100) for q in range(1, 8)]
    assert pack(rows, 0) == pack(rows, 1) == [[r] for r in rows]  # submitters that take one event a message
    assert pack(rows[:1], 500) == [rows[:1]]  # one event goes as itself, not as a batch of one
    assert [[q for q, _, _ in m] for m in pack(rows, 3)] == [[1, 2, 3], [4, 5, 6], [7]]
    assert [[q for q, _, _ in m] for m in pack(rows, 500, limit=250)] == [[1, 2], [3, 4], [5, 6], [7]]  # 101+100 <= 250
    assert [len(m) for m in pack(rows, 500, limit=201)] == [2, 2, 2, 1] and [len(m) for m in pack(rows, 500, 200)] == [
        1
    ] * 7
    big = [(1, "h.1", b"x" * 300), *rows[1:3]]
    assert [len(m) for m in pack(big, 500, limit=250)] == [1, 2]  # an event larger than the limit goes alone


def test_without_wait_for_central_a_backlog_goes_one_event_a_message(tmp_path: Path, broker: Broker) -> None:
    """Without ``wait_for_central`` the station does not go by who is online: a submitter it has
    not heard of may read one event a message, so it never batches."""
    messages: list[bytes] = []
    takes = CentralStatus(state=State.ONLINE, submitter="takes", batches=50)
    with uplink_beside(tmp_path / "s.db", broker.port, "st-2", takes, 60, messages.append, wait_for_central=False) as (
        store,
        _,
        uplink,
    ):
        for i in range(5):
            s = f"]d201{gtin(3)}21N{i}{GS}1730123110B"
            store.record(Scan(s.encode(), at=time.time()), judge(s, Policy(Profile.ITS), TODAY), "st-2", "", "receipt")
        uplink.start()
        wait_for(lambda: len(messages) >= 5, 10, what="the backlog")
        assert [EventMessage.from_json(m).seq for m in messages] == [1, 2, 3, 4, 5]


@contextlib.contextmanager
def uplink_beside(
    db: Path, port: int, station: str, central: CentralStatus, ack_timeout: float, on_event: Any, **mqtt_config: Any
) -> Iterator[tuple[Store, Publisher, MqttUplink]]:
    """A station's file and its uplink (not started yet), a submitter's retained status saying
    ``central``, and a client handing each message on the station's events topic to ``on_event``;
    all closed after."""
    store, topics = Store(db), Topics()
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda c, u, m: on_event(m.payload)
    watcher.connect("127.0.0.1", port)
    watcher.subscribe(topics.station(station, Kind.EVENTS), qos=1)
    watcher.loop_start()
    pub = Publisher(port)
    pub.send(topics.central(central.submitter), central.to_json(), True)
    uplink = MqttUplink(
        MqttConfig(host="127.0.0.1", port=port, ack_timeout_seconds=ack_timeout, **mqtt_config),
        station,
        str(db),
        lambda store, connected: {"station": station},
    )
    try:
        yield store, pub, uplink
    finally:
        pub.send(topics.central(central.submitter), b"", retain=True)
        pub.close()
        uplink.stop()
        watcher.disconnect()
        watcher.loop_stop()
        store.close()


def test_a_station_backs_off_while_its_re_sends_bring_no_ack(tmp_path: Path, broker: Broker) -> None:
    """A central side that reads events but acks none (stalled, overloaded) gets a station's
    re-sends after 1, 2, 4... times ack_timeout_seconds, not every ack_timeout_seconds; an ack sets
    the wait back."""
    sent: list[tuple[float, int]] = []
    quiet = CentralStatus(state=State.ONLINE, submitter="quiet")
    with uplink_beside(
        tmp_path / "station.db",
        broker.port,
        "st-9",
        quiet,
        1,
        lambda payload: sent.append((time.monotonic(), EventMessage.from_json(payload).seq)),
    ) as (store, pub, uplink):

        def scan(serial: str) -> None:
            s = f"]d201{gtin(1)}21{serial}{GS}1730123110B"
            store.record(Scan(s.encode(), at=time.time()), judge(s, Policy(Profile.ITS), TODAY), "st-9", "", "receipt")

        scan("Q1")
        uplink.start()
        wait_for(lambda: len(sent) >= 4, 15, what="three re-sends")
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(sent[:4])]
        assert {q for _, q in sent} == {1}
        # 1, 2, 4 s (±10 %, and the uplink's 0.25 s round)
        assert 0.8 < gaps[0] < 1.8 and 1.7 < gaps[1] < 2.9 and 3.5 < gaps[2] < 5.2, gaps
        time.sleep(1.5)  # the ack comes late for the last re-send: a re-sent event gives no round trip (Karn)
        pub.send(Topics().station("st-9", Kind.ACKS), AckMessage(ids=(f"{store.history}.1",)).to_json())
        wait_for(lambda: store.stats().backlog == 0, 5, what="the event delivered")
        sent.clear()
        scan("Q2")
        uplink.wake()
        wait_for(lambda: len(sent) >= 2, 5, what="the new event and a re-send")
        assert [q for _, q in sent[:2]] == [2, 2] and sent[1][0] - sent[0][0] < 1.6  # the wait is 1 s again


def test_a_station_sends_its_backlog_in_batches_when_every_submitter_takes_them(tmp_path: Path, broker: Broker) -> None:
    messages: list[bytes] = []
    topics = Topics()
    new = CentralStatus(state=State.ONLINE, submitter="new", batches=50)
    with uplink_beside(tmp_path / "station.db", broker.port, "st-1", new, 60, messages.append) as (store, pub, uplink):
        for i in range(120):
            s = f"]d201{gtin(1)}21B{i}{GS}1730123110B"
            store.record(Scan(s.encode(), at=time.time()), judge(s, Policy(Profile.ITS), TODAY), "st-1", "", "receipt")
        uplink.start()
        try:
            wait_for(lambda: sum(len(parse_events(m)[0]) for m in messages) >= 120, 10, what="the backlog")
            assert [len(parse_events(m)[0]) for m in messages] == [50, 50, 20]  # up to what the submitter takes
            seqs = [e.seq for m in messages for _, e in parse_events(m)[0]]
            assert seqs == list(range(1, 121))  # oldest first, each once
            ids = tuple(f"{store.history}.{q}" for q in seqs)
            pub.send(topics.station("st-1", Kind.ACKS), AckMessage(ids=ids).to_json())
            wait_for(lambda: store.stats().backlog == 0, 10, what="every event delivered")
            # an older submitter comes online beside it: one event a message again
            pub.send(topics.central("old"), CentralStatus(state=State.ONLINE, submitter="old").to_json(), True)
            time.sleep(0.3)
            messages.clear()
            for i in range(3):
                s = f"]d201{gtin(2)}21C{i}{GS}1730123110B"
                verdict = judge(s, Policy(Profile.ITS), TODAY)
                store.record(Scan(s.encode(), at=time.time()), verdict, "st-1", "", "receipt")
            uplink.wake()
            wait_for(lambda: len(messages) >= 3, 10, what="the new events")
            assert [len(parse_events(m)[0]) for m in messages] == [1, 1, 1]
            assert not messages[0].startswith(b'{"events"')
        finally:
            pub.send(topics.central("old"), b"", retain=True)
