"""Shared fixtures: a real Mosquitto on a free port, a central-side ack responder, a daemon process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from station.wire import AckMessage, CentralStatus, State

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "karekod/v1"
ONLINE = CentralStatus(state=State.ONLINE, submitter="test").to_json()
OFFLINE = CentralStatus(state=State.OFFLINE, submitter="test").to_json()


PG_URL = os.environ.get("KAREKOD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same tests on both databases a ledger runs on; PostgreSQL in a schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    import psycopg

    schema = f"t{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Broker:
    """A Mosquitto process of the test's own, stoppable and restartable on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(self.binary):
            pytest.fail("mosquitto is not installed: run the README's test command, which installs it")
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 100000\nmax_inflight_messages 0\n"
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=self.log.open("ab"), stderr=subprocess.STDOUT
        )

        def up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_for(up, 10, what="mosquitto to listen")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Central:
    """Stands in for the central submitter: records every event and (optionally) acks it."""

    def __init__(self, port: int, ack: bool = True) -> None:
        self.ack = ack
        self.events: list[dict[str, Any]] = []
        self.status: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self._pending: dict[str, list[str]] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"central-{port}-{time.monotonic_ns()}", protocol=mqtt.MQTTv5
        )
        self.client.reconnect_delay_set(0.2, 1)
        self.client.will_set(f"{PREFIX}/central/status/test", OFFLINE, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(self.connected.is_set, 10, what="central to connect")
        self._stop = threading.Event()
        self._acker = threading.Thread(target=self._ack_loop, daemon=True)
        self._acker.start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe([(f"{PREFIX}/stations/+/events", 1), (f"{PREFIX}/stations/+/status", 1)])
        client.publish(f"{PREFIX}/central/status/test", ONLINE, qos=1, retain=True)
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        station = msg.topic.split("/")[-2]
        with self.lock:
            if msg.topic.endswith("/status"):
                self.status[station] = body
                return
            self.events.append(body)
            self._pending.setdefault(station, []).append(body["id"])

    def _ack_loop(self) -> None:
        while not self._stop.wait(0.05):
            if not self.ack:
                continue
            with self.lock:
                pending, self._pending = self._pending, {}
            for station, ids in pending.items():
                self.client.publish(f"{PREFIX}/stations/{station}/acks", AckMessage(ids=tuple(ids)).to_json(), qos=1)

    def publish_result(self, station: str, body: dict[str, Any]) -> None:
        self.client.publish(f"{PREFIX}/stations/{station}/results", json.dumps(body), qos=1).wait_for_publish(5)

    def unique_events(self) -> list[dict[str, Any]]:
        """First sight of each event id, in arrival order."""
        seen: set[str] = set()
        out = []
        with self.lock:
            for e in self.events:
                if e["id"] not in seen:
                    seen.add(e["id"])
                    out.append(e)
        return out

    def close(self) -> None:
        self._stop.set()
        self.client.publish(f"{PREFIX}/central/status/test", OFFLINE, qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def central(broker: Broker) -> Iterator[Central]:
    c = Central(broker.port)
    yield c
    c.close()


def write_config(tmp_path: Path, port: int, station_id: str = "test-1", **extra: dict[str, Any]) -> Path:
    sections: dict[str, dict[str, Any]] = {
        "station": {
            "id": station_id,
            "site": "test site",
            "operation": "dispatch" if station_id.startswith("line") else "receipt",  # as tests/central.py's sites
        },
        "reader": {"profile": "its"},
        "storage": {"path": str(tmp_path / "station.db")},
        "mqtt": {"host": "127.0.0.1", "port": port, "ack_timeout_seconds": 5, "status_interval_seconds": 1},
    }
    for name, values in extra.items():
        sections.setdefault(name, {}).update(values)
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items())
    path = tmp_path / "station.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Daemon:
    """``station run --simulate`` as a real process, scans written to its stdin."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "station.edge.cli", "run", "--simulate", "-c", str(config), "--drain-seconds", "0"],
            stdin=subprocess.PIPE,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        wait_for(lambda: b"ready" in log.read_bytes(), 20, what="the daemon to be ready")

    def scan(self, *raws: bytes | str) -> None:
        assert self.proc.stdin is not None
        for raw in raws:
            self.proc.stdin.write((raw.encode() if isinstance(raw, str) else raw) + b"\n")
        self.proc.stdin.flush()

    def close(self, timeout: float = 20) -> int:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def station_cli(config: Path, *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "station.edge.cli", *args, "-c", str(config), "--json"],
        capture_output=True,
        check=args[0] != "status",  # status exits 1 when the station is unhealthy
        cwd=ROOT,
    ).stdout.decode()
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return lines[0] if len(lines) == 1 and args[0] in ("status", "queue") else lines


class Signals:
    """A feedback that remembers every signal shown, in order, and passes each on."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self.shown: list[Any] = []

    def show(self, signal: Any) -> None:
        self.shown.append(signal)
        if self.inner is not None:
            self.inner.show(signal)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A query on a station file or a ledger that may not be made yet (then: no rows)."""
    try:
        with sqlite3.connect(db) as conn:
            return list(conn.execute(sql, params))
    except sqlite3.OperationalError:
        return []
