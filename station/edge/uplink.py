"""The uplink: the SQLite outbox delivered over MQTT 5 with paho-mqtt, until the central side acks.

A broker PUBACK is not delivery: neither paho nor Mosquitto persists a session by default, so an
event counts as delivered only when the central ledger says it stored it, on
``stations/{id}/acks``. Until then it is re-sent, oldest first, after every reconnect and after
``ack_timeout_seconds`` without an ack. The scan path never waits for any of this: it writes the
event and calls :meth:`MqttUplink.wake`.

Topics (under ``[mqtt] prefix``, default ``karekod/v1``)::

    stations/{id}/events    station -> central  QoS 1   every event, oldest first
    stations/{id}/acks      central -> station  QoS 1   {"ids": [event id, ...]}
    stations/{id}/status    station -> all      QoS 1   retained health; the will sets it offline
    stations/{id}/results   central -> station  QoS 1   the national service's answer per unit
    central/status/{sub}    central -> all      QoS 1   retained {"state": "online"|"offline"}, one per submitter

Like a Sparkplug host state, the central side's retained status gates the outbox: with
``wait_for_central`` (the default) events are sent only while at least one submitter reads
online, and the whole backlog is re-sent, in order, each time the central side comes back. A
ledger that was down therefore receives events oldest first, not the newest first and the rest
after a timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from station.edge.config import MqttConfig
from station.edge.store import StorageError, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """The national service's answer for one unit, as the central side reports it."""

    event_id: str
    seq: int
    service: str
    ok: bool
    code: str
    message: str


class Uplink(Protocol):
    def start(self) -> None: ...

    def wake(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def connected(self) -> bool: ...


class NoUplink:
    """``[mqtt] enabled = false``: events stay in the outbox for later."""

    connected = False

    def start(self) -> None:
        pass

    def wake(self) -> None:
        pass

    def stop(self) -> None:
        pass


def topics(prefix: str, station: str) -> dict[str, str]:
    base = f"{prefix.rstrip('/')}/stations/{station}"
    names = {name: f"{base}/{name}" for name in ("events", "acks", "status", "results")}
    names["central"] = f"{prefix.rstrip('/')}/central/status/+"
    return names


def _json_props() -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = "application/json"
    return props


class MqttUplink:
    """Publishes the outbox from its own thread with its own SQLite connection."""

    def __init__(
        self,
        config: MqttConfig,
        station_id: str,
        db_path: str,
        status: Callable[[Store], dict[str, Any]],
        on_result: Callable[[Result], None] | None = None,
        batch: int = 200,
    ) -> None:
        self.config = config
        self.station_id = station_id
        self.topics = topics(config.prefix, station_id)
        self.store = Store(db_path, durable=False)
        self.status = status
        self.on_result = on_result
        self.batch = batch
        self._cond = threading.Condition()
        self._connected = False
        self._central_online = not config.wait_for_central
        self._submitters: dict[str, bool] = {}  # submitter id -> online, from central/status/{id}
        self._resend = True
        self._stopping = False
        self._acks: list[str] = []
        self._results: list[dict[str, Any]] = []
        self._inflight: OrderedDict[str, tuple[int, float]] = OrderedDict()  # id -> (seq, sent at)
        self._cursor = 0
        self._thread: threading.Thread | None = None
        self._last_status = 0.0
        self.client = self._make_client()

    @property
    def connected(self) -> bool:
        return self._connected

    # -- paho --

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id or f"karekod-station-{self.station_id}",
            protocol=mqtt.MQTTv5,
        )
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        if cfg.username:
            password = Path(cfg.password_file).read_text().strip() if cfg.password_file else None
            client.username_pw_set(cfg.username, password)
        if cfg.tls:
            client.tls_set(ca_certs=cfg.ca_file or None, certfile=cfg.cert_file or None, keyfile=cfg.key_file or None)
        client.will_set(
            self.topics["status"], json.dumps({"state": "offline", "station": self.station_id}), qos=1, retain=True
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("mqtt: broker refused the connection: %s", reason_code)
            return
        log.info("mqtt: connected to %s:%s", self.config.host, self.config.port)
        subs = [(self.topics["acks"], 1), (self.topics["results"], 1)]
        if self.config.wait_for_central:
            subs.append((self.topics["central"], 1))
        client.subscribe(subs)
        with self._cond:
            self._connected = True
            self._resend = True
            self._last_status = 0.0
            self._cond.notify()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if self._connected and not self._stopping:
            log.warning("mqtt: disconnected (%s); will reconnect", reason_code)
        with self._cond:
            self._connected = False
            if self.config.wait_for_central:
                self._central_online = False
                self._submitters.clear()  # retained statuses come again on the next subscribe

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            log.warning("mqtt: ignored a message on %s that is not JSON", msg.topic)
            return
        with self._cond:
            if msg.topic == self.topics["acks"]:
                ids = body.get("ids") if isinstance(body, dict) else None
                if isinstance(ids, list):
                    self._acks.extend(str(i) for i in ids)
            elif mqtt.topic_matches_sub(self.topics["central"], msg.topic):
                self._submitters[msg.topic.rsplit("/", 1)[-1]] = (
                    isinstance(body, dict) and body.get("state") == "online"
                )
                online = any(self._submitters.values())
                if online and not self._central_online:
                    log.info("mqtt: central side online; sending the backlog from the oldest event")
                    self._resend = True
                elif not online and self._central_online:
                    log.warning("mqtt: central side offline; holding events in the outbox")
                self._central_online = online
            elif msg.topic == self.topics["results"]:
                items = body.get("results", [body]) if isinstance(body, dict) else body
                self._results.extend(r for r in items if isinstance(r, dict))
            self._cond.notify()

    # -- lifecycle --

    def start(self) -> None:
        self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive)
        self.client.loop_start()
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
            info = self.client.publish(
                self.topics["status"], json.dumps({**self.status(self.store), "state": "offline"}), qos=1, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()
        self.store.close()

    # -- the sender thread --

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(0.25)
                acks, self._acks = self._acks, []
                results, self._results = self._results, []
                connected = self._connected
                resend = self._resend
                if connected and self._central_online:
                    self._resend = False
            try:
                self._apply(acks, results)
                if connected:
                    self._send(resend, self._central_online)
            except StorageError as e:
                log.error("uplink: storage: %s", e)
                time.sleep(1)
            except Exception:  # the uplink must outlive any bad message or library hiccup
                log.exception("uplink: unexpected error")
                time.sleep(1)

    def _apply(self, acks: list[str], results: list[dict[str, Any]]) -> None:
        if acks:
            self.store.mark_delivered(acks)
            for event_id in acks:
                self._inflight.pop(event_id, None)
        for r in results:
            event_id = str(r.get("event_id", ""))
            ok, code, message = bool(r.get("ok")), str(r.get("code", "")), str(r.get("message", ""))
            service = str(r.get("service", ""))
            seq = self.store.record_result(event_id, service, ok, code, message)
            if seq is None:
                log.warning("uplink: result for an unknown event %s ignored", event_id)
                continue
            log.info("result seq=%d service=%s ok=%s code=%s %s", seq, service, ok, code, message)
            if self.on_result is not None:
                self.on_result(Result(event_id, seq, service, ok, code, message))

    def _send(self, resend: bool, central_online: bool) -> None:
        now = time.monotonic()
        if now - self._last_status >= self.config.status_interval_seconds:
            self._publish_status()
            self._last_status = now
        if not central_online:
            return
        if not resend and self._inflight:
            _, (_, sent) = next(iter(self._inflight.items()))
            resend = now - sent > self.config.ack_timeout_seconds
            if resend:
                log.warning("uplink: no ack for %.0f s; re-sending from the oldest undelivered event", now - sent)
        if resend:
            oldest = self.store.oldest_undelivered_seq()
            self._cursor = (oldest - 1) if oldest else self._cursor
            self._inflight.clear()
        props = _json_props()
        while self._connected and self._central_online and len(self._inflight) < self.config.window:
            rows = self.store.pending(self._cursor, min(self.batch, self.config.window - len(self._inflight)))
            if not rows:
                break
            for seq, event_id, payload in rows:
                info = self.client.publish(self.topics["events"], payload, qos=1, properties=props)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # not connected any more: the next connect re-sends from the oldest
                self._inflight[event_id] = (seq, time.monotonic())
                self._cursor = seq

    def _publish_status(self) -> None:
        body = {**self.status(self.store), "state": "online"}
        self.client.publish(self.topics["status"], json.dumps(body), qos=1, retain=True, properties=_json_props())
