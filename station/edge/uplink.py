"""The uplink: the SQLite outbox delivered over MQTT 5 with paho-mqtt, until the central side acks.

A broker PUBACK is not delivery: neither paho nor Mosquitto persists a session by default, so an
event counts as delivered only when the central ledger says it stored it, on
``stations/{id}/acks``. Until then it is re-sent, oldest first, after every reconnect and after
a wait that follows how long acks take (:class:`AckTimer`, as TCP's retransmission timer: a
busy central side is not buried under a fleet's re-sends of what it is still working through). The scan
path never waits for any of this: it writes the event and calls :meth:`MqttUplink.wake`.

Topics and messages are the wire contract's (``station.wire``).

Like a Sparkplug host state, the central side's retained status gates the outbox: with
``wait_for_central`` (the default) events are sent only while at least one submitter reads
online, and the whole backlog is re-sent, in order, each time the central side comes back. A
ledger that was down therefore receives events oldest first, not the newest first and the rest
after a timeout.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from station.edge.config import MqttConfig
from station.edge.store import StorageError, Store
from station.mqtt import Broker, BrokerWatch, json_properties, make_client
from station.tomlcheck import read_secret
from station.wire import (
    AckMessage,
    BadMessage,
    CentralStatus,
    DeliveryMessage,
    Kind,
    OrderMessage,
    RecallList,
    ResultMessage,
    State,
    StationStatus,
    Topics,
    batch_json,
    parse_results,
)

log = logging.getLogger(__name__)


Result = tuple[int, ResultMessage]
"""A result for one of this station's events: (its seq, the central side's message)."""


BATCH_BYTES = 256 * 1024
"""The most event JSON one ``EventBatch`` carries (a backlog goes in messages of up to 500 events)."""

RESEND_CAP = 300.0
"""The longest wait for an ack before a re-send, however many brought none (unless
``ack_timeout_seconds`` is longer)."""

HEARTBEAT_LIMIT = 30.0
"""Seconds the sender thread may go without a round before the uplink counts as hung."""


class AckTimer:
    """How long to wait for an ack before re-sending, as TCP's retransmission timer (RFC 6298):
    the smoothed round trip of acks plus four times its variation, never less than ``timeout``
    (``ack_timeout_seconds``); doubled for each re-send in a row that brought no ack; at most
    :data:`RESEND_CAP` (unless ``timeout`` is longer). A central side working through a backlog
    acks late but steadily, and its stations wait that long instead of re-sending what it is still
    reading. Only events sent once give a round trip (Karn): an ack of a re-sent one is ambiguous.
    ``draw`` (uniform in [0, 1)) spreads each wait by ±10 %, so that stations that timed out
    together do not re-send together again. A pure state machine: fed round trips and timeouts."""

    def __init__(self, timeout: float, draw: Callable[[], float]) -> None:
        self.timeout = timeout
        self.draw = draw
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.unanswered = 0
        """Re-sends in a row after a timeout that brought no ack."""
        self.wait = self._next()

    def _next(self) -> float:
        base = self.timeout if self.srtt is None else max(self.timeout, self.srtt + 4 * self.rttvar)
        return min(base * 2.0 ** min(self.unanswered, 16), max(self.timeout, RESEND_CAP)) * (0.9 + 0.2 * self.draw())

    def acked(self, rtt: float | None) -> None:
        """An ack came; ``rtt``: how long an event sent once waited for it (None: only re-sent ones)."""
        if rtt is not None:
            if self.srtt is None:
                self.srtt, self.rttvar = rtt, rtt / 2
            else:
                self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
                self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.unanswered = 0
        self.wait = self._next()

    def timed_out(self) -> None:
        """The oldest event waited :attr:`wait` without an ack: everything unacked goes again."""
        self.unanswered += 1
        self.wait = self._next()


Row = tuple[int, str, bytes]
"""An undelivered event: (seq, id, payload)."""


def pack(rows: list[Row], most: int, limit: int = BATCH_BYTES) -> list[list[Row]]:
    """Rows as messages, oldest first: one event each, or (a backlog, when ``most`` > 1: every
    submitter online takes an ``EventBatch`` of that many) up to ``most`` events and ``limit``
    bytes of their JSON in one. ``most`` is 0 without ``wait_for_central``: submitters unheard of
    may be older ones that read one event a message."""
    if most <= 1 or len(rows) == 1:
        return [[row] for row in rows]
    messages: list[list[Row]] = [[]]
    size = 0
    for row in rows:
        if messages[-1] and (len(messages[-1]) >= most or size + len(row[2]) > limit):
            messages.append([])
            size = 0
        messages[-1].append(row)
        size += len(row[2]) + 1
    return messages


class Uplink(Protocol):
    def start(self) -> None: ...

    @property
    def healthy(self) -> bool:
        """Its threads are alive and going round: the scan loop feeds the watchdog only while true."""
        ...

    def wake(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def connected(self) -> bool: ...


class NoUplink:
    """``[mqtt] enabled = false``: events stay in the outbox for later."""

    connected = False
    healthy = True

    def start(self) -> None:
        pass

    def wake(self) -> None:
        pass

    def stop(self) -> None:
        pass


class MqttUplink:
    """Publishes the outbox from its own thread with its own SQLite connection."""

    def __init__(
        self,
        config: MqttConfig,
        station_id: str,
        db_path: str,
        status: Callable[[Store, bool], dict[str, Any]],
        on_result: Callable[[Result], None] | None = None,
        batch: int = 200,
        on_delivery: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.station_id = station_id
        self.topics = Topics(config.prefix)
        self.t_events = self.topics.station(station_id, Kind.EVENTS)
        self.t_acks = self.topics.station(station_id, Kind.ACKS)
        self.t_status = self.topics.station(station_id, Kind.STATUS)
        self.t_results = self.topics.station(station_id, Kind.RESULTS)
        self.t_result_acks = self.topics.station(station_id, Kind.RESULT_ACKS)
        self.t_deliveries = self.topics.station(station_id, Kind.DELIVERIES)
        self.t_delivery_acks = self.topics.station(station_id, Kind.DELIVERY_ACKS)
        self.t_summaries = self.topics.station(station_id, Kind.SUMMARIES)
        self.t_orders = self.topics.station(station_id, Kind.ORDERS)
        self.t_recalls = self.topics.station(station_id, Kind.RECALLS)
        self.on_delivery = on_delivery
        """Called after a delivery is stored (the dock reloads its index)."""
        self._deliveries: list[DeliveryMessage | OrderMessage | RecallList] = []
        self._summaries_sent: dict[str, float] = {}
        self.store = Store(db_path, durable=False)
        self.status = status
        self.on_result = on_result
        self.batch = batch
        self._cond = threading.Condition()
        self._connected = False
        self._central_online = not config.wait_for_central
        self._submitters: dict[str, bool] = {}  # submitter id -> online, from central/status/{id}
        self._batches: dict[str, int] = {}  # submitter id -> events it takes in one message
        self._resend = True
        self._stopping = False
        self._acks: list[str] = []
        self._results: list[ResultMessage] = []
        self.refused = 0
        """Messages refused as malformed (logged once each)."""
        self._inflight: OrderedDict[str, tuple[int, float, bool]] = OrderedDict()  # id -> (seq, sent at, again)
        self._sent_through = 0
        """The highest seq sent so far: an event at or below it that goes out again is a re-send."""
        self._timer = AckTimer(config.ack_timeout_seconds, random.random)
        self._cursor = 0
        self._thread: threading.Thread | None = None
        self._last_status = 0.0
        self._beat = time.monotonic()
        self._network: threading.Thread | None = None
        self.client = self._make_client()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def healthy(self) -> bool:
        """The sender thread went round lately and paho's network thread is alive. A thread that
        died (or hangs) makes this false, the watchdog goes hungry, and systemd restarts us."""
        if self._thread is None:
            return True  # not started yet
        network = self._network
        return (
            self._thread.is_alive()
            and time.monotonic() - self._beat < HEARTBEAT_LIMIT
            and (network is None or network.is_alive() or self._stopping)
        )

    # -- paho --

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        password = (
            read_secret(cfg.password_file, "[mqtt] password_file") if cfg.username and cfg.password_file else None
        )
        broker = Broker(
            cfg.host, cfg.port, cfg.keepalive, cfg.username, password, cfg.tls, cfg.ca_file, cfg.cert_file, cfg.key_file
        )
        will = StationStatus(state=State.OFFLINE, station=self.station_id)
        client = make_client(broker, cfg.client_id or f"karekod-station-{self.station_id}", (self.t_status, will))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.broker_watch = BrokerWatch(log, cfg.host, cfg.port)
        client.on_connect_fail = self.broker_watch.failed
        return client

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("mqtt: broker refused the connection: %s", reason_code)
            self.broker_watch.failed()
            return
        self.broker_watch.up()
        log.info("mqtt: connected to %s:%s", self.config.host, self.config.port)
        subs = [(t, 1) for t in (self.t_acks, self.t_results, self.t_deliveries, self.t_orders, self.t_recalls)]
        if self.config.wait_for_central:
            subs.append((self.topics.every_central, 1))
        client.subscribe(subs)
        with self._cond:
            self._connected = True
            self._resend = True
            self._last_status = 0.0
            self._cond.notify()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if self._connected and not self._stopping:
            log.warning("mqtt: disconnected (%s); will reconnect", reason_code)
            self.broker_watch.down()
        with self._cond:
            self._connected = False
            if self.config.wait_for_central:
                self._central_online = False
                self._submitters.clear()  # retained statuses come again on the next subscribe

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """Parse at the edge: a bad message is refused alone, with one log line, and never raises
        into paho's network thread (which would end the connection for good)."""
        try:
            self._take(msg.topic, msg.payload)
        except BadMessage as e:
            log.warning("mqtt: refused a message on %s: %s", msg.topic, e.reason)
            self.refused += 1
        except Exception:  # never let a callback kill the network thread
            log.exception("mqtt: could not handle a message on %s", msg.topic)
            self.refused += 1

    def _take(self, topic: str, payload: bytes | bytearray) -> None:
        if topic == self.t_acks:
            ids = AckMessage.from_json(payload).ids
            with self._cond:
                self._acks.extend(ids)
                self._cond.notify()
        elif topic == self.t_results:
            results = parse_results(payload)
            with self._cond:
                self._results.extend(results)
                self._cond.notify()
        elif topic in (self.t_deliveries, self.t_orders, self.t_recalls):
            listed: DeliveryMessage | OrderMessage | RecallList
            if topic == self.t_deliveries:
                listed = DeliveryMessage.from_json(payload)
            elif topic == self.t_orders:
                listed = OrderMessage.from_json(payload)
            else:
                listed = RecallList.from_json(payload)
            with self._cond:
                self._deliveries.append(listed)
                self._cond.notify()
        elif mqtt.topic_matches_sub(self.topics.every_central, topic):
            submitter, _ = self.topics.parse(topic)
            if payload:
                status = CentralStatus.from_json(payload)
                if status.submitter != submitter:
                    raise BadMessage(f"submitter {status.submitter!r} does not match the topic")
                online, batches = status.state is State.ONLINE, status.batches
            else:
                online, batches = False, 0  # a cleared retained status: that submitter is gone
            with self._cond:
                self._submitters[submitter] = online
                self._batches[submitter] = batches
                now_online = any(self._submitters.values())
                if now_online and not self._central_online:
                    log.info("mqtt: central side online; sending the backlog from the oldest event")
                    self._resend = True
                elif not now_online and self._central_online:
                    log.warning("mqtt: central side offline; holding events in the outbox")
                self._central_online = now_online
                self._cond.notify()

    # -- lifecycle --

    def start(self) -> None:
        self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive)
        self.client.loop_start()
        self._network = getattr(self.client, "_thread", None)  # paho's network thread
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(5)
        if self._connected:
            info = self.client.publish(self.t_status, self._status(State.OFFLINE), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()
        self.store.close()

    # -- the sender thread --

    def _run(self) -> None:
        while True:
            self._beat = time.monotonic()
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(0.25)
                acks, self._acks = self._acks, []
                results, self._results = self._results, []
                deliveries, self._deliveries = self._deliveries, []
                connected = self._connected
                resend = self._resend
                if connected and self._central_online:
                    self._resend = False
            try:
                self._apply(acks, results)
                self._keep(deliveries)
                if connected:
                    self._send(resend, self._central_online)
            except StorageError as e:
                log.error("uplink: storage: %s", e)
                time.sleep(1)
            except Exception:  # the uplink must outlive any bad message or library hiccup
                log.exception("uplink: unexpected error")
                time.sleep(1)

    def _apply(self, acks: list[str], results: list[ResultMessage]) -> None:
        if acks:
            self.store.mark_delivered(acks)
            now, rtt = time.monotonic(), None
            for event_id in acks:
                entry = self._inflight.pop(event_id, None)
                if entry is not None and not entry[2]:
                    rtt = max(rtt or 0.0, now - entry[1])  # the longest an event sent once waited
            self._timer.acked(rtt)
        stored: list[str] = []
        for r in results:
            found = self.store.record_result(r.event_id, r.service or "", r.ok, r.code, r.message)
            if found is None:
                log.warning("uplink: result for an unknown event %s ignored", r.event_id)
                continue
            seq, new = found
            stored.append(r.event_id)
            if not new:
                continue  # sent again before our ack arrived: stored and shown once
            log.info("result seq=%d service=%s ok=%s code=%s %s", seq, r.service, r.ok, r.code, r.message)
            if self.on_result is not None:
                self.on_result((seq, r))
        if stored and self._connected:  # the central side keeps each result until this ack
            ack = AckMessage(ids=tuple(stored)).to_json()
            self.client.publish(self.t_result_acks, ack, qos=1)

    def _keep(self, deliveries: list[DeliveryMessage | OrderMessage | RecallList]) -> None:
        """Store deliveries, orders and the recall list the central side sent, then ack them
        (``id:version``): stored first."""
        if not deliveries:
            return
        changed = False
        for d in deliveries:
            if isinstance(d, RecallList):
                if d.version > self.store.recalls_version():
                    self.store.replace_recalls(((r.gtin, r.batch, r.serial, r.note) for r in d.recalls), d.version)
                    log.info("recall list version %d stored: %d entries", d.version, len(d.recalls))
            elif isinstance(d, OrderMessage):
                if self.store.store_order(d):
                    changed = True
                    log.info(
                        "order %s (%s for %s, %d line(s)) stored: %s", d.id, d.document, d.buyer, len(d.lines), d.state
                    )
            elif self.store.store_delivery(d):
                changed = True
                units = sum(line.count for line in d.lines)
                log.info(
                    "delivery %s (%s, waybill %s, %d unit(s)) stored: %s", d.id, d.service, d.document, units, d.state
                )
        if changed and self.on_delivery is not None:
            self.on_delivery()
        if self._connected:
            ack = AckMessage(ids=tuple(d.ack_id for d in deliveries)).to_json()
            self.client.publish(self.t_delivery_acks, ack, qos=1)

    def _send_summaries(self, resend: bool) -> None:
        """Closed deliveries' summaries, once every event before them is delivered; again after
        ``ack_timeout_seconds`` without an ack."""
        now = time.monotonic()
        for summary_id, payload in self.store.summaries_to_send():
            sent = self._summaries_sent.get(summary_id)
            if sent is not None and not resend and now - sent < self.config.ack_timeout_seconds:
                continue
            info = self.client.publish(self.t_summaries, payload, qos=1, properties=json_properties())
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return
            self._summaries_sent[summary_id] = now

    def _send(self, resend: bool, central_online: bool) -> None:
        now = time.monotonic()
        if now - self._last_status >= self.config.status_interval_seconds:
            self._publish_status()
            self._last_status = now
        if not central_online:
            return
        if not resend and self._inflight:
            _, (_, sent, _) = next(iter(self._inflight.items()))
            resend = now - sent > self._timer.wait
            if resend:
                self._timer.timed_out()
                log.warning(
                    "uplink: no ack for %.0f s; re-sending from the oldest undelivered event (next in %.0f s)",
                    now - sent,
                    self._timer.wait,
                )
        if resend:
            oldest = self.store.oldest_undelivered_seq()
            self._cursor = (oldest - 1) if oldest else self._cursor
            self._inflight.clear()
        props = json_properties()
        self._send_summaries(resend)
        while self._connected and self._central_online and len(self._inflight) < self.config.window:
            rows = self.store.pending(self._cursor, min(self.batch, self.config.window - len(self._inflight)))
            if not rows:
                break
            for message in self._messages(rows):
                payload = message[0][2] if len(message) == 1 else batch_json([p for _, _, p in message])
                info = self.client.publish(self.t_events, payload, qos=1, properties=props)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # not connected any more: the next connect re-sends from the oldest
                sent = time.monotonic()
                for seq, event_id, _ in message:
                    self._inflight[event_id] = (seq, sent, seq <= self._sent_through)
                    self._cursor = seq
                    self._sent_through = max(self._sent_through, seq)

    def _messages(self, rows: list[Row]) -> list[list[Row]]:
        """Rows as messages, as many events in one as every submitter online takes."""
        with self._cond:
            online = [self._batches.get(s, 0) for s, up in self._submitters.items() if up]
        return pack(rows, min(online, default=0) if self.config.wait_for_central else 0)

    def _status(self, state: State) -> bytes:
        try:
            return StationStatus.from_dict({**self.status(self.store, self._connected), "state": state}).to_json()
        except BadMessage as e:  # our own health did not fit the contract: say so, and still say we live
            log.error("uplink: status not sent in full: %s", e.reason)
            return StationStatus(state=state, station=self.station_id).to_json()

    def _publish_status(self) -> None:
        self.client.publish(self.t_status, self._status(State.ONLINE), qos=1, retain=True, properties=json_properties())
