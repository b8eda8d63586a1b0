"""Submitter figures, each beside its baseline in the same run.

- ingest: events/s into the SQLite ledger, PUBACKed and acked to stations, beside a bare paho
  subscriber draining the same queued messages from the same broker        goal: >= 15,000 events/s
- delivery: 1,000 units fully notified against the sandbox at 200 ms per call
  (ÜTS: one unit per call, bounded concurrency; İTS: batches)              goal: < 60 s

    .venv/bin/python bench/bench_submitter.py [--events 20000] [--units 1000] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from central import SandboxServer, seed, submitter_config  # noqa: E402
from figures import emit, stock_paho  # noqa: E402
from scans import gtin  # noqa: E402

from station import runtime  # noqa: E402
from station.central.config import Site, load  # noqa: E402
from station.central.ingest import Central  # noqa: E402
from station.central.ledger import Ledger  # noqa: E402
from station.central.notifier import Notifier  # noqa: E402
from station.gs1.reasons import Reason  # noqa: E402
from station.wire import EVENT_SCHEMA, EventMessage, Kind, Operation, Service, Topics, batch_json  # noqa: E402

TOPICS = Topics()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def persistent(client_id: str, port: int, topic: str) -> None:
    """Open a persistent session with a subscription, then leave: the broker queues for it."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    c.subscribe(topic, qos=1)[1]
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()


def event(station: str, seq: int, operation: Operation = Operation.RECEIPT, **verdict: object) -> EventMessage:
    """An event as a station writes it (``station.wire``): refused unless the verdict says otherwise."""
    fields: dict[str, object] = {"ok": False, "reason": Reason.NOT_GS1, "message": "Not a GS1 element string."}
    return EventMessage(
        schema=EVENT_SCHEMA,
        id=str(uuid.uuid4()),
        seq=seq,
        station=station,
        site="",
        operation=operation,
        at="2026-01-01T10:00:00.000Z",
        source="bench",
        raw="x" * 60,
        raw_hex="78" * 60,
        **{**fields, **verdict},  # type: ignore[arg-type]
    )


def publish(port: int, n: int, stations: int = 10, batch: int = 1) -> None:
    """``n`` events of ``stations`` stations, one a message or ``batch`` a message (a backlog)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = []
    per_station = n // stations
    for st in (f"bench-{k}" for k in range(stations)):
        bodies = [event(st, q + 1).to_json() for q in range(per_station)]
        for i in range(0, per_station, batch):
            part = bodies[i : i + batch]
            payload = part[0] if batch == 1 else batch_json(part)
            infos.append(c.publish(TOPICS.station(st, Kind.EVENTS), payload, qos=1))
    for info in infos:
        info.wait_for_publish(30)
    c.disconnect()
    c.loop_stop()


def bench_ingest(tmp: Path, n: int, batch: int = 1) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n"
    )
    broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stock_paho()  # the bare subscriber: paho as it ships (the submitter's client makes it lean again)
    try:
        time.sleep(0.5)
        topic = TOPICS.every_station(Kind.EVENTS)
        persistent("raw-sub", port, topic)
        publish(port, n)  # the baseline's messages: one event each

        got = threading.Event()
        count = [0]

        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            count[0] += 1
            if count[0] >= n:
                got.set()

        raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw-sub", protocol=mqtt.MQTTv5)
        raw.on_message = on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        t = time.perf_counter()
        raw.connect("127.0.0.1", port, clean_start=False, properties=props)
        raw.loop_start()
        got.wait(120)
        raw_rate = count[0] / (time.perf_counter() - t)
        raw.disconnect()
        raw.loop_stop()

        persistent("karekod-submitter-bench", port, topic)
        publish(port, n, batch=batch)  # the submitter's: as stations send them (a backlog: batches)
        collector = gc.get_threshold()
        runtime.collect_less()  # as the submitter's `run` does once it has started
        cfg = load(submitter_config(tmp, port, "http://127.0.0.1:9"))
        site = Site("bench", Service.ITS, "8680000000001", Operation.DISPATCH, tuple(f"bench-{i}" for i in range(10)))
        cfg = type(cfg)(**{**cfg.__dict__, "id": "bench", "sites": {"bench": site}})
        ledger = Ledger(f"sqlite:///{tmp / 'ingest.db'}", "bench")
        central = Central(cfg, ledger)
        stop = threading.Event()
        t = time.perf_counter()
        central.start()
        worker = threading.Thread(target=central.run, args=(stop,), daemon=True)
        worker.start()
        while central.ingested < n and time.perf_counter() - t < 120:
            time.sleep(0.01)
        rate = central.ingested / (time.perf_counter() - t)
        stop.set()
        worker.join(5)
        central.stop()
        gc.set_threshold(*collector)  # the next run's bare subscriber: Python as it ships
        gc.unfreeze()
        stored = ledger.query("SELECT count(*) FROM events")[0][0]
        how = "one event a message" if batch == 1 else f"{batch} events a message"
        print(
            f"ingest      raw paho subscriber {raw_rate:9,.0f} msg/s   submitter {rate:9,.0f} events/s into SQLite"
            f" ({how}),"
            f" acked ({rate / raw_rate:4.0%} of raw; goal >= 15,000/s; {stored:,} stored)"
        )
        emit(
            "submitter",
            f"ingest of {n:,} queued events into SQLite, acked ({how})",
            rate,
            "events/s",
            ">= 15,000/s",
            rate >= 15000,
            raw_rate,
            "bare paho subscriber (msg/s)",
        )
    finally:
        broker.terminate()
        broker.wait(10)


def bench_delivery(tmp: Path, units: int, latency_ms: float) -> None:
    for service, site, station in (("uts", "hospital-dock", "dock-1"), ("its", "depot-line", "line-1")):
        sandbox = SandboxServer()
        seed(
            sandbox.sandbox,
            depot_units=units if service == "its" else 0,
            hospital_vermes=units if service == "uts" else 0,
        )
        sandbox.sandbox.latency_ms = latency_ms
        d = tmp / service
        d.mkdir()
        cfg = load(submitter_config(d, 1, sandbox.url))
        ledger = Ledger(cfg.ledger, cfg.id)
        notifier = Notifier(cfg, ledger)
        prefix = "D" if service == "uts" else "U"
        events = []
        for i in range(units):
            e = event(
                station,
                i + 1,
                Operation.RECEIPT if service == "uts" else Operation.DISPATCH,  # as each site says
                ok=True,
                reason=None,
                message="",
                gtin=gtin(i % 40),
                serial=f"{prefix}{i:06d}",
                batch=f"B{i % 5}",
                expiry="2030-12-31",
            )
            events.append((e.to_json().decode(), e))
        ledger.ingest(events, cfg.site_of)
        stop = threading.Event()
        t = time.perf_counter()
        worker = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
        worker.start()
        while ledger.query("SELECT count(*) FROM jobs WHERE state IN ('done', 'refused', 'failed')")[0][0] < units:
            time.sleep(0.05)
            if time.perf_counter() - t > 300:
                break
        took = time.perf_counter() - t
        stop.set()
        worker.join(30)
        done = ledger.query("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0]
        calls = sum(sandbox.sandbox.calls.values())
        print(
            f"delivery    {service.upper()} {units:,} units at {latency_ms:.0f} ms/call: {took:5.1f} s"
            f" ({done:,} done, {calls:,} calls; goal < 60 s)  [{site}]"
        )
        emit(
            "submitter",
            f"{units:,} {service.upper()} units notified at {latency_ms:.0f} ms a call",
            took,
            "s",
            "< 60 s",
            took < 60 and done == units,
        )
        sandbox.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--batch", type=int, default=100, help="events a message for the batched ingest run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "var" if (ROOT / "var").exists() else None) as d:
        bench_ingest(Path(d), args.events)
        bench_ingest(Path(d) / "batched", args.events, args.batch)
        bench_delivery(Path(d), args.units, args.latency_ms)


if __name__ == "__main__":
    main()
