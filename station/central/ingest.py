"""The submitter's MQTT side: events in (persistent MQTT 5 session), acks and results out.

An event is PUBACKed to the broker and acked to its station only after the ledger commit that
stores it, so a crash loses nothing: the broker redelivers what was not PUBACKed, the station
re-sends what was not acked, and the ledger stores by event id, so neither makes a duplicate.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from station.central import deliveries, orders, recalls
from station.central.config import SubmitterConfig
from station.central.ledger import TRIES, Job, Ledger, passing
from station.mqtt import Broker, BrokerWatch, ack_all, json_properties, make_client
from station.wire import (
    MAX_EVENTS_PER_MESSAGE,
    AckMessage,
    BadMessage,
    CentralStatus,
    DeliveryMessage,
    EventMessage,
    Kind,
    Operation,
    OrderMessage,
    PatientMessage,
    RecallList,
    ResultMessage,
    Service,
    State,
    StationStatus,
    SummaryKind,
    SummaryMessage,
    Topics,
    parse_events,
)


@dataclass(frozen=True)
class EventsIn:
    """The events of one message (one, or an ``EventBatch``): those taken, each with its JSON text,
    and why each of the others was refused."""

    taken: tuple[tuple[str, EventMessage], ...]
    refused: tuple[str, ...] = ()


FromStation = EventsIn | StationStatus | AckMessage | SummaryMessage | PatientMessage

log = logging.getLogger("submitter.mqtt")

SHARED = (Kind.EVENTS, Kind.RESULT_ACKS, Kind.DELIVERY_ACKS, Kind.SUMMARIES, Kind.PATIENT)
"""What several submitters share (``shared_subscription``): one of them is enough to store it.
Both applying every result ack cost each a row lock wait on the other's, for the same rows."""


class Central:
    def __init__(self, config: SubmitterConfig, ledger: Ledger, batch: int = 1000) -> None:
        self.config = config
        self.ledger = ledger
        self.batch = batch
        self.topics = Topics(config.mqtt_prefix)
        self.status_topic = self.topics.central(config.id)
        self.stations = {s for site in config.sites.values() for s in site.stations}
        """The stations some site lists: events and statuses from any other are refused."""
        self.inbox: queue.SimpleQueue[mqtt.MQTTMessage] = queue.SimpleQueue()
        self._tries: dict[int, int] = {}
        """Messages tried again after a passing ledger error (by identity): how many times."""
        self.connected = threading.Event()
        self.ingested = 0
        self.refused = 0
        """Messages refused at the edge (malformed, forged, unknown station): logged once each, PUBACKed."""
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        cfg = self.config
        password = cfg.mqtt_password.read("MQTT password") if cfg.mqtt_username else None
        broker = Broker(
            cfg.mqtt_host,
            cfg.mqtt_port,
            30,
            cfg.mqtt_username,
            password,
            cfg.mqtt_tls,
            cfg.mqtt_ca_file,
            cfg.mqtt_cert_file,
            cfg.mqtt_key_file,
        )
        will = CentralStatus(state=State.OFFLINE, submitter=cfg.id)
        client = make_client(
            broker,
            f"karekod-submitter-{cfg.id}",
            (self.status_topic, will),
            manual_ack=True,
            max_inflight=1000,
            max_reconnect_delay=30,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.broker_watch = BrokerWatch(log, cfg.mqtt_host, cfg.mqtt_port)
        client.on_connect_fail = self.broker_watch.failed
        return client

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 7 * 24 * 3600  # the broker keeps our queue while we restart
        self.client.connect_async(
            self.config.mqtt_host, self.config.mqtt_port, keepalive=30, clean_start=False, properties=props
        )
        self.client.loop_start()

    def stop(self) -> None:
        if self.connected.is_set():
            offline = CentralStatus(state=State.OFFLINE, submitter=self.config.id).to_json()
            self.client.publish(self.status_topic, offline, qos=1, retain=True).wait_for_publish(3)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            self.broker_watch.failed()
            return
        self.broker_watch.up()
        # Statuses are retained, which a shared subscription never delivers: every submitter reads
        # them all, from its start.
        share = "$share/karekod-submitters/"
        shared = [self.topics.every_station(kind) for kind in SHARED]
        now, before = (share, "") if self.config.shared_subscription else ("", share)
        client.subscribe([(now + topic, 1) for topic in shared] + [(self.topics.every_station(Kind.STATUS), 1)])
        # The session is persistent: a submitter that ran with the other setting (or a release
        # that shared only the events) still holds those subscriptions, and would get each message
        # twice, or every one the others take.
        client.unsubscribe([before + topic for topic in shared])
        # Subscribed first, online second: stations start sending once they see this.
        online = CentralStatus(state=State.ONLINE, submitter=self.config.id, batches=MAX_EVENTS_PER_MESSAGE).to_json()
        client.publish(self.status_topic, online, qos=1, retain=True, properties=json_properties())
        self.connected.set()
        log.info(
            "connected to %s:%s (session %s)",
            self.config.mqtt_host,
            self.config.mqtt_port,
            "resumed" if flags.session_present else "new",
        )

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if self.connected.is_set():
            log.warning("disconnected from the broker (%s); will reconnect", reason_code)
            self.broker_watch.down()
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(msg)

    # -- ingest --

    def run(self, stop: threading.Event) -> None:
        """Store batches of events in one commit each, then PUBACK and ack them."""
        while not stop.is_set():
            try:
                first = self.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            msgs = [first]
            deadline = time.monotonic() + 0.005
            while len(msgs) < self.batch:
                try:
                    msgs.append(self.inbox.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            try:
                self._ingest(msgs)
            except Exception as e:
                self._isolate(msgs, e)

    def _isolate(self, msgs: list[mqtt.MQTTMessage], error: Exception) -> None:
        """A batch failed. Each message alone: when some go in and others still fail, those are
        refused (a message the ledger cannot take must not stop the rest) — unless what failed was
        passing (a deadlock, a serialization failure, a busy file: :func:`passing`), which is
        tried again, up to :data:`TRIES` times; when all fail, the ledger itself is unwell, and the
        batch waits and is tried again, lost never."""
        failed: list[tuple[mqtt.MQTTMessage, Exception]] = []
        if len(msgs) > 1:
            for m in msgs:
                try:
                    self._ingest([m])
                except Exception as e:
                    failed.append((m, e))
        else:
            failed = [(msgs[0], error)]
        if len(failed) < len(msgs):
            for m, why in failed:
                tries = self._tries.pop(id(m), 0) + 1
                if passing(why) and tries < TRIES:
                    log.warning("a message on %s met a passing ledger error (%s); trying it again", m.topic, why)
                    self._tries[id(m)] = tries
                    self.inbox.put(m)
                    continue
                self._refuse(m, f"the ledger could not store it ({why})")
                if m.qos:
                    self.client.ack(m.mid, m.qos)
            return
        log.error("ledger unavailable (%s); trying %d message(s) again in 1 s", error, len(msgs))
        time.sleep(1)
        for m in msgs:
            self.inbox.put(m)

    def _refuse(self, msg: mqtt.MQTTMessage, why: str) -> None:
        log.warning("refused a message on %s: %s", msg.topic, why)
        self.refused += 1

    def parse(self, msg: mqtt.MQTTMessage) -> tuple[str, Kind | None, FromStation]:
        """A message from a station, typed, with the station its topic names; or BadMessage:
        malformed, or its payload names another station than its topic."""
        station, kind = self.topics.parse(msg.topic)
        message: StationStatus | SummaryMessage
        if kind is Kind.EVENTS:
            taken, refused = parse_events(msg.payload)
            mine = [(text, e) for text, e in taken if e.station == station]
            if len(taken) == 1 and not mine and not refused:
                raise BadMessage(f"station {taken[0][1].station!r} does not match the topic")
            refused += [
                f"event {e.id}: station {e.station!r} does not match the topic"
                for _, e in taken
                if e.station != station
            ]
            if station not in self.stations:
                raise BadMessage(f"station {station!r} is in no [sites.*] stations list")
            return station, kind, EventsIn(tuple(mine), tuple(refused))
        if kind is Kind.STATUS:
            message = StationStatus.from_json(msg.payload)
        elif kind is Kind.SUMMARIES:
            message = SummaryMessage.from_json(msg.payload)
        elif kind is Kind.PATIENT:  # from the HBYS, about the station: no station field to match
            if station not in self.stations:
                raise BadMessage(f"station {station!r} is in no [sites.*] stations list")
            return station, kind, PatientMessage.from_json(msg.payload)
        elif kind in (Kind.RESULT_ACKS, Kind.DELIVERY_ACKS):
            if station not in self.stations:
                raise BadMessage(f"station {station!r} is in no [sites.*] stations list")
            return station, kind, AckMessage.from_json(msg.payload)
        else:
            raise BadMessage(f"a submitter does not take {kind or 'central status'} messages")
        if message.station != station:
            raise BadMessage(f"station {message.station!r} does not match the topic")
        if station not in self.stations:
            raise BadMessage(f"station {station!r} is in no [sites.*] stations list")
        return station, kind, message

    def _ingest(self, msgs: list[mqtt.MQTTMessage]) -> None:
        events: list[tuple[str, EventMessage]] = []
        summaries: list[SummaryMessage] = []
        summaries_acked: list[SummaryMessage] = []
        results_acked: dict[str, list[str]] = {}  # by station: one commit for the batch's result acks
        for msg in msgs:
            try:
                station, kind, message = self.parse(msg)
            except BadMessage as e:
                self._refuse(msg, e.reason)
                continue
            if isinstance(message, StationStatus):
                before = self.ledger.note_station(message)
                if message.state is State.ONLINE and before != State.ONLINE:
                    n = self.ledger.resend_results(station)
                    deliveries.resend(self.ledger, station)
                    if n:
                        log.info("station %s is online: sending its %d unacked result(s) again", station, n)
            elif isinstance(message, AckMessage):
                if kind is Kind.DELIVERY_ACKS:
                    deliveries.acked(self.ledger, station, message.ids)
                else:
                    results_acked.setdefault(station, []).extend(message.ids)
            elif isinstance(message, PatientMessage):
                self.ledger.note_patient(station, message)
                log.info("patient for station %s from %s (%s)", station, message.at, message.tur)
            elif isinstance(message, SummaryMessage) and message.kind is SummaryKind.ORDER:
                orders.ended(self.ledger, message, self.config.site_of(station))
                summaries_acked.append(message)
            elif isinstance(message, SummaryMessage):
                owner = deliveries.site_of(self.ledger, message.delivery)
                site = self.config.site_of(station)
                if owner is not None and (site is None or site.name != owner):
                    self._refuse(msg, f"summary of delivery {message.delivery}, which is not for this station's site")
                    continue
                summaries.append(message)
            else:
                for why in message.refused:
                    self._refuse(msg, why)
                events.extend(message.taken)
        self.ledger.results_acked_many(results_acked)
        broken = self.ledger.history_faults([event for _, event in events]) if events else {}
        for _, event in events:
            if event.id in broken:
                log.error(
                    "refused event %s of station %s: %s; its station file was lost or replaced: restore it or"
                    " run `station reset` there",
                    event.id,
                    event.station,
                    broken[event.id],
                )
                self.refused += 1
        events = [(text, event) for text, event in events if event.id not in broken]
        stored = self.ledger.ingest(events, self.config.site_of) if events else []
        for _, taken in events:
            if taken.cancels and taken.id in stored:
                state = self.ledger.cancel_requested(taken.cancels, taken.id)
                if state != "cancelled":
                    log.warning(
                        "station %s took back event %s, which is already %s: cancel it with"
                        " `station-submitter cancel %s` if the service has it",
                        taken.station,
                        taken.cancels,
                        state,
                        taken.cancels,
                    )
        late = {e.delivery for _, e in events if e.delivery and e.id in stored}
        for ident in deliveries.closed(self.ledger, late):  # units that came after their summary
            deliveries.close_again(self.ledger, ident)
        for summary in summaries:  # after the events of the same batch: their units are held by now
            n = deliveries.close(self.ledger, summary)
            log.info(
                "delivery %s closed at %s: %d expected, %d received, %d missing, %d unexpected; %d unit(s) released",
                summary.delivery,
                summary.station,
                summary.expected,
                summary.received,
                summary.missing,
                summary.unexpected,
                n,
            )
        for msg in msgs:
            self._tries.pop(id(msg), None)
        ack_all(self.client, msgs)  # refused ones too: a bad message never blocks the ones behind it
        by_station: dict[str, list[str]] = {}
        for _, event in events:
            by_station.setdefault(event.station, []).append(event.id)
        for summary in summaries + summaries_acked:
            by_station.setdefault(summary.station, []).append(summary.id)
        for station, ids in by_station.items():
            ack = AckMessage(ids=tuple(ids)).to_json()
            self.client.publish(self.topics.station(station, Kind.ACKS), ack, qos=1)
        self.ingested += len(stored)

    # -- deliveries --

    def publish_deliveries(self, resend_after: float = deliveries.RESEND_SECONDS) -> int:
        """Each open delivery to every station of its site, each order to its station, the recall
        list to every station: each until that station acks its version."""
        if not self.connected.is_set():
            return 0
        stations_of = {site.name: site.stations for site in self.config.sites.values() if deliveries.is_receipt(site)}
        pending: list[tuple[str, Kind, DeliveryMessage | OrderMessage | RecallList]] = [
            (station, Kind.DELIVERIES, d) for station, d in deliveries.to_send(self.ledger, stations_of, resend_after)
        ]
        pending += [(station, Kind.ORDERS, o) for station, o in orders.to_send(self.ledger, resend_after)]
        pending += [
            (station, Kind.RECALLS, r) for station, r in recalls.to_send(self.ledger, self.stations, resend_after)
        ]
        sent = []
        for station, kind, message in pending:
            info = self.client.publish(self.topics.station(station, kind), message.to_json(), qos=1)
            sent.append((station, message, info))
        done = []
        for station, message, info in sent:
            try:
                info.wait_for_publish(10)
            except (RuntimeError, ValueError):
                continue
            if info.is_published():
                ident = "recalls" if isinstance(message, RecallList) else message.id
                done.append((ident, station, message.version))
        deliveries.mark_sent(self.ledger, done)
        return len(done)

    # -- results --

    def publish_results(self, jobs: list[Job]) -> list[str]:
        """Each unit's outcome to its station; returns the event ids the broker took (PUBACK)."""
        if not self.connected.is_set():
            return []
        sent = []
        for j in jobs:
            result = ResultMessage(
                event_id=j.event_id,
                service=Service(j.service) if j.service else None,
                operation=Operation(j.operation) if j.operation else None,
                ok=bool(j.ok),
                code=j.code or "",
                message=j.message or "",
                gtin=j.gtin,
                serial=j.serial,
                reference=j.reference or None,
            )
            topic = self.topics.station(j.station, Kind.RESULTS)
            sent.append((j.event_id, self.client.publish(topic, result.to_json(), qos=1)))
        done = []
        for event_id, info in sent:
            try:
                info.wait_for_publish(5)
            except (RuntimeError, ValueError):
                continue
            if info.is_published():
                done.append(event_id)
        return done
