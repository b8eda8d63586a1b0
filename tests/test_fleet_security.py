"""The secured fleet: a real Mosquitto started with the shipped broker/mosquitto.conf and the ACL
and certificates scripts/fleet-certs.sh makes. A station is its certificate: it publishes only its
own events and status, reads only its own acks and results, cannot take another's session, and a
client without a certificate from the fleet's CA gets nothing."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from central import start_ingest, submitter_config
from harness import ROOT, free_port, wait_for
from paho.mqtt.enums import CallbackAPIVersion
from scans import GS, gtin

from station.central.config import load as load_submitter
from station.edge.config import MqttConfig
from station.edge.events import Scan
from station.edge.health import Health
from station.edge.store import Store
from station.edge.uplink import MqttUplink
from station.gs1.verdict import Policy, judge
from station.wire import AckMessage, Kind, Topics

T = Topics()
CERTS = str(ROOT / "scripts" / "fleet-certs.sh")


class Fleet:
    def __init__(self, tmp: Path) -> None:
        # Mosquitto drops root for its own user before it reads the ACL: the fleet's files go in a
        # folder that user can reach (pytest's temporary folders are root's alone).
        self.base = Path(tempfile.mkdtemp(prefix="karekod-fleet-"))
        self.base.chmod(0o755)
        self.dir = self.base / "fleet"
        names = ["--station", "dock-a", "--station", "dock-b", "--submitter", "central-1"]
        subprocess.run([CERTS, str(self.dir), "--broker", "127.0.0.1", *names], check=True, capture_output=True)
        for key in self.dir.glob("*.key"):
            key.chmod(0o644)  # test keys only: the broker's user reads them
        self.port = free_port()
        conf = (ROOT / "broker" / "mosquitto.conf").read_text()
        conf = conf.replace("/etc/mosquitto/karekod/", f"{self.dir}/").replace(
            "listener 8883", f"listener {self.port} 127.0.0.1"
        )
        conf = conf.replace("persistence true", "persistence false")
        (tmp / "mosquitto.conf").write_text(conf)
        self.log = tmp / "mosquitto.log"
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [binary, "-c", str(tmp / "mosquitto.conf")], stdout=self.log.open("wb"), stderr=subprocess.STDOUT
        )
        time.sleep(0.5)

    def client(self, name: str | None, client_id: str = "") -> Client:
        return Client(self, name, client_id or f"c-{uuid.uuid4().hex[:8]}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)


class Client:
    """A TLS client with the certificate ``name`` (station-dock-a, submitter-central-1) or none."""

    def __init__(self, fleet: Fleet, name: str | None, client_id: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.refused: Any = None
        self.disconnects = 0
        self.suback: list[Any] = []
        self.puback: dict[int, Any] = {}
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        certfile = str(fleet.dir / f"{name}.crt") if name else None
        keyfile = str(fleet.dir / f"{name}.key") if name else None
        c.tls_set(ca_certs=str(fleet.dir / "ca.crt"), certfile=certfile, keyfile=keyfile, cert_reqs=ssl.CERT_REQUIRED)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: setattr(self, "disconnects", self.disconnects + 1)
        c.on_message = lambda cl, u, m: self.got.append((m.topic, m.payload))
        c.on_subscribe = lambda cl, u, mid, codes, p: self.suback.extend(codes)
        c.on_publish = lambda cl, u, mid, rc, p: self.puback.__setitem__(mid, rc)
        c.reconnect_delay_set(5, 10)
        self.c = c
        try:
            c.connect("127.0.0.1", fleet.port)
        except (ssl.SSLError, OSError) as e:
            self.refused = e
            return
        c.loop_start()
        deadline = time.monotonic() + 5
        while not self.connected.is_set() and self.refused is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.connected.is_set() and self.refused is None:
            self.refused = "no CONNACK"

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            self.refused = rc
        else:
            self.connected.set()

    def publish(self, topic: str, payload: bytes) -> Any:
        info = self.c.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        wait_for(lambda: info.mid in self.puback, 5, what="a PUBACK")
        return self.puback[info.mid]

    def subscribe(self, topic: str) -> Any:
        n = len(self.suback)
        self.c.subscribe(topic, qos=1)
        wait_for(lambda: len(self.suback) > n, 5, what="a SUBACK")
        return self.suback[-1]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    yield f
    f.close()


def test_no_certificate_no_entry(fleet: Fleet) -> None:
    anonymous = fleet.client(None)
    assert anonymous.refused is not None and not anonymous.connected.is_set()
    # a certificate from another CA is refused too
    other = fleet.base / "other"
    subprocess.run(
        [str(ROOT / "scripts" / "fleet-certs.sh"), str(other), "--station", "dock-a"], check=True, capture_output=True
    )
    shutil.copy(other / "station-dock-a.crt", fleet.dir / "rogue.crt")
    shutil.copy(other / "station-dock-a.key", fleet.dir / "rogue.key")
    rogue = fleet.client("rogue")
    assert rogue.refused is not None and not rogue.connected.is_set()


def test_a_station_is_only_itself(fleet: Fleet) -> None:
    central = fleet.client("submitter-central-1")
    a = fleet.client("station-dock-a")
    b = fleet.client("station-dock-b", client_id="karekod-station-dock-b")
    try:
        assert central.connected.is_set() and a.connected.is_set() and b.connected.is_set()
        assert central.subscribe(T.every_station(Kind.EVENTS)).value == 1
        assert b.subscribe(T.station("dock-b", Kind.RESULTS)).value == 1
        assert b.subscribe(T.station("dock-b", Kind.ACKS)).value == 1

        # its own events go through; an event on B's topic is refused by the broker
        assert not a.publish(T.station("dock-a", Kind.EVENTS), b'{"own": 1}').is_failure
        denied = a.publish(T.station("dock-b", Kind.EVENTS), b'{"forged": 1}')
        assert denied.is_failure and denied.getName() == "Not authorized"
        wait_for(lambda: len(central.got) >= 1, 5, what="the station's own event")
        time.sleep(0.3)
        assert [json.loads(p) for _, p in central.got] == [{"own": 1}]

        # A cannot read B's results (Mosquitto grants the subscription and delivers nothing), nor
        # ack or answer for B
        a.subscribe(T.station("dock-b", Kind.RESULTS))
        a.subscribe(T.station("dock-b", Kind.ACKS))
        assert a.publish(T.station("dock-b", Kind.ACKS), AckMessage(ids=("e1",)).to_json()).is_failure
        assert a.publish(T.station("dock-b", Kind.RESULTS), b"{}").is_failure
        assert a.publish(T.central("central-1"), b'{"state": "offline", "submitter": "central-1"}').is_failure
        # the submitter may
        assert not central.publish(T.station("dock-b", Kind.RESULTS), b'{"r": 1}').is_failure
        wait_for(lambda: len(b.got) == 1, 5, what="B's result")
        time.sleep(0.3)
        assert b.got == [(T.station("dock-b", Kind.RESULTS), b'{"r": 1}')]
        assert a.got == []

        # A asking for B's client id gets its own: B's session is not taken over
        taker = fleet.client("station-dock-a", client_id="karekod-station-dock-b")
        time.sleep(0.5)
        assert b.disconnects == 0 and b.c.is_connected()
        taker.close()
    finally:
        for c in (central, a, b):
            c.close()


def test_station_and_submitter_speak_through_the_secured_broker(tmp_path: Path, fleet: Fleet) -> None:
    """The real uplink and ingest, each with its own certificate: an event goes in, its ack comes back."""
    d = fleet.dir
    cert = f"{d}/submitter-central-1"
    tls = f'tls = true\nca_file = "{d}/ca.crt"\ncert_file = "{cert}.crt"\nkey_file = "{cert}.key"\n'
    path = submitter_config(tmp_path, fleet.port, "http://127.0.0.1:1", sub_id="central-1", extra="")
    text = (
        path.read_text().replace("[mqtt]\n", "[mqtt]\n" + tls).replace('stations = ["dock-1"]', 'stations = ["dock-a"]')
    )
    path.write_text(text)
    config = load_submitter(path)
    central, ledger, close = start_ingest(config)
    store = Store(tmp_path / "station.db")
    raw = f"]d201{gtin(4)}21SEC1{GS}1730123110B".encode()
    store.record(Scan(raw, at=time.time()), judge(raw, Policy(), date(2026, 1, 1)), "dock-a", "", "receipt")
    mq = MqttConfig(
        host="127.0.0.1", port=fleet.port, tls=True, ca_file=f"{d}/ca.crt",
        cert_file=f"{d}/station-dock-a.crt", key_file=f"{d}/station-dock-a.key",
    )  # fmt: skip
    uplink = MqttUplink(mq, "dock-a", str(tmp_path / "station.db"), Health("dock-a").status)
    uplink.start()
    try:
        wait_for(lambda: store.stats().backlog == 0, 20, what="the event to be acked through the secured broker")
        assert ledger.query("SELECT station, gtin, serial FROM events") == [("dock-a", gtin(4), "SEC1")]
        assert central.refused == 0
    finally:
        uplink.stop()
        close()
        store.close()
