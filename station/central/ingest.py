"""The submitter's MQTT side: events in (persistent MQTT 5 session), acks and results out.

An event is PUBACKed to the broker and acked to its station only after the ledger commit that
stores it, so a crash loses nothing: the broker redelivers what was not PUBACKed, the station
re-sends what was not acked, and the ledger stores by event id, so neither makes a duplicate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from station.central.config import SubmitterConfig
from station.central.ledger import Job, Ledger

log = logging.getLogger("submitter.mqtt")


class Central:
    def __init__(self, config: SubmitterConfig, ledger: Ledger, batch: int = 1000) -> None:
        self.config = config
        self.ledger = ledger
        self.batch = batch
        self.prefix = config.mqtt_prefix.rstrip("/")
        self.inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.ingested = 0
        self.refused = 0
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"karekod-submitter-{cfg.id}", protocol=mqtt.MQTTv5, manual_ack=True
        )
        client.max_inflight_messages_set(1000)
        client.reconnect_delay_set(1, 30)
        if cfg.mqtt_username:
            client.username_pw_set(cfg.mqtt_username, cfg.mqtt_password.read("MQTT password"))
        if cfg.mqtt_tls:
            client.tls_set(ca_certs=cfg.mqtt_ca_file or None)
        client.will_set(
            f"{self.prefix}/central/status/{cfg.id}",
            json.dumps({"state": "offline", "submitter": cfg.id}),
            qos=1,
            retain=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
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
            self.client.publish(
                f"{self.prefix}/central/status/{self.config.id}",
                json.dumps({"state": "offline", "submitter": self.config.id}),
                qos=1,
                retain=True,
            ).wait_for_publish(3)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        events = f"{self.prefix}/stations/+/events"
        if self.config.shared_subscription:
            events = f"$share/karekod-submitters/{events}"
        client.subscribe([(events, 1), (f"{self.prefix}/stations/+/status", 1)])
        # Subscribed first, online second: stations start sending once they see this.
        client.publish(
            f"{self.prefix}/central/status/{self.config.id}",
            json.dumps({"state": "online", "submitter": self.config.id}),
            qos=1,
            retain=True,
        )
        self.connected.set()
        log.info(
            "connected to %s:%s (session %s)",
            self.config.mqtt_host,
            self.config.mqtt_port,
            "resumed" if flags.session_present else "new",
        )

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
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
            except Exception:
                log.exception("ingest failed; trying these %d message(s) again", len(msgs))
                time.sleep(1)
                for m in msgs:
                    self.inbox.put(m)

    def _ingest(self, msgs: list[mqtt.MQTTMessage]) -> None:
        events: list[tuple[str, dict[str, Any]]] = []
        for msg in msgs:
            parts = msg.topic.split("/")
            station = parts[-2] if len(parts) >= 2 else ""
            if msg.topic.endswith("/status"):
                with contextlib.suppress(ValueError):
                    self.ledger.note_station(station, json.loads(msg.payload))
                continue
            try:
                text = msg.payload.decode("utf-8")
                event = json.loads(text)
                if not isinstance(event, dict) or not event.get("id") or "seq" not in event:
                    raise ValueError("not an event")
            except ValueError:
                self.refused += 1
                log.warning("refused a message on %s: not an event", msg.topic)
                continue
            if event.get("station") != station:
                self.refused += 1
                log.warning(
                    "refused event %s: station %r does not match topic %s",
                    event.get("id"),
                    event.get("station"),
                    msg.topic,
                )
                continue
            events.append((text, event))
        stored = self.ledger.ingest(events, self.config.site_of) if events else []
        for msg in msgs:
            if msg.qos:
                self.client.ack(msg.mid, msg.qos)
        by_station: dict[str, list[str]] = {}
        for _, e in events:
            by_station.setdefault(e["station"], []).append(e["id"])
        for station, ids in by_station.items():
            self.client.publish(f"{self.prefix}/stations/{station}/acks", json.dumps({"ids": ids}), qos=1)
        self.ingested += len(stored)

    # -- results --

    def publish_results(self, jobs: list[Job]) -> list[str]:
        """Each unit's outcome to its station; returns the event ids the broker took (PUBACK)."""
        if not self.connected.is_set():
            return []
        sent = []
        for j in jobs:
            body = {
                "event_id": j.event_id,
                "service": j.service,
                "operation": j.operation,
                "ok": bool(j.ok),
                "code": j.code or "",
                "message": j.message or "",
                "gtin": j.gtin,
                "serial": j.serial,
                "reference": j.reference or None,
            }
            sent.append(
                (
                    j.event_id,
                    self.client.publish(
                        f"{self.prefix}/stations/{j.station}/results", json.dumps(body, ensure_ascii=False), qos=1
                    ),
                )
            )
        done = []
        for event_id, info in sent:
            try:
                info.wait_for_publish(5)
            except (RuntimeError, ValueError):
                continue
            if info.is_published():
                done.append(event_id)
        return done
