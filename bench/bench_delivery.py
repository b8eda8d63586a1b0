"""Deliveries at the dock, each figure beside its baseline measured in the same run.

- a 10,000-unit expected list from the central side to a station over Mosquitto: message size,
  time from publish to stored and acked (``delivery_acks``), beside a raw paho round trip of the
  same bytes
- scan-to-feedback latency (p50/p99) in an open 10,000-unit delivery, beside the same station with
  no delivery, interleaved scan by scan so disk noise falls on both alike        goal: <= 1.3x

    .venv/bin/python bench/bench_delivery.py [--units 10000] [--scans 2000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_station import free_port, pct
from figures import emit

from station.edge.config import DeliveryConfig, MqttConfig, ReaderConfig, StationConfig
from station.edge.dock import Dock
from station.edge.events import Scan
from station.edge.outputs.feedback import NoFeedback
from station.edge.pipeline import Station
from station.edge.store import Store
from station.edge.uplink import MqttUplink
from station.gs1.linters import check_digit
from station.wire import Carrier, DeliveryLine, DeliveryMessage, DeliveryState, Kind, Service, Topics

GS = "\x1d"
TODAY = date(2026, 11, 23)


def gtin(n: int) -> str:
    body = f"0869953{n:06d}"
    return body + str(check_digit(body))


def delivery(units: int, cases: int = 100) -> DeliveryMessage:
    per_case = units // cases
    sscc = [f"0868000000{c:07d}" for c in range(cases)]
    sscc = [s + str(check_digit(s)) for s in sscc]
    return DeliveryMessage(
        id="its-bench",
        version=1,
        state=DeliveryState.OPEN,
        service=Service.ITS,
        document="IRS-BENCH-1",
        sender="8680000000001",
        carriers=tuple(Carrier(sscc=s, kind="C") for s in sscc),
        lines=tuple(
            DeliveryLine(
                di=gtin(c % 50),
                batch=f"B{c % 7}",
                expiry="2030-12-31",
                carrier=sscc[c],
                serials=tuple(f"{c:03d}{i:09d}" for i in range(per_case)),
            )
            for c in range(cases)
        ),
    )


def bench_transfer(workdir: Path, units: int) -> None:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        message = delivery(units)
        payload = message.to_json()
        topics = Topics()
        acked = threading.Event()
        echoed = threading.Event()
        central = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        central.on_message = lambda c, u, m: (echoed if m.topic == "raw/echo" else acked).set()
        central.connect("127.0.0.1", port)
        central.subscribe([(topics.station("bench", Kind.DELIVERY_ACKS), 1), ("raw/echo", 1)])
        central.loop_start()
        # baseline: the same bytes to a bare subscriber that answers at once
        echo = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        echo.on_message = lambda c, u, m: c.publish("raw/echo", b"ok", qos=1)
        echo.connect("127.0.0.1", port)
        echo.subscribe("raw/in", qos=1)
        echo.loop_start()
        time.sleep(0.3)
        t = time.perf_counter()
        central.publish("raw/in", payload, qos=1)
        echoed.wait(30)
        raw = time.perf_counter() - t
        uplink = MqttUplink(
            MqttConfig(host="127.0.0.1", port=port, wait_for_central=False, status_interval_seconds=3600),
            "bench",
            str(workdir / "transfer.db"),
            lambda store, connected: {"station": "bench"},
        )
        uplink.start()
        time.sleep(0.5)
        t = time.perf_counter()
        central.publish(topics.station("bench", Kind.DELIVERIES), payload, qos=1)
        acked.wait(60)
        took = time.perf_counter() - t
        uplink.stop()
        for c in (central, echo):
            c.disconnect()
            c.loop_stop()
        print(
            f"expected list  {units:,} units, {len(payload) / 1024:,.0f} KiB: published -> stored and acked"
            f" {took * 1000:7.0f} ms   (raw paho round trip of the same bytes {raw * 1000:5.0f} ms;"
            f" {took / raw:4.1f}x)"
        )
        emit(
            "delivery",
            f"a {units:,}-unit expected list stored and acked",
            took * 1e3,
            "ms",
            "seconds, not minutes",
            took < 10,
            raw * 1e3,
            "raw paho round trip",
        )
    finally:
        broker.terminate()
        broker.wait(10)


def bench_latency(workdir: Path, units: int, n: int) -> None:
    message = delivery(units)
    stations = []
    for name, loaded in (("plain", False), ("delivery", True)):
        store = Store(workdir / f"{name}.db")
        dock = Dock(store, DeliveryConfig(), "bench")
        station = Station(
            StationConfig("bench", "", "receipt"), ReaderConfig(debounce_seconds=0), store, NoFeedback(), dock=dock
        )
        if loaded:
            store.store_delivery(message)
            dock.changed()
            station.handle(Scan(b"IRS-BENCH-1", "bench", time.time(), 0.0), TODAY)
        stations.append(station)
    lines = message.lines
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(n):
        line = lines[i % len(lines)]
        raw = f"]d201{line.di}21{line.serials[i // len(lines)]}{GS}1730123110{line.batch}".encode()
        for loaded, station in ((False, stations[0]), (True, stations[1])):  # interleaved
            scan = Scan(raw, "bench", time.time(), float(i))
            t = time.perf_counter()
            out = station.handle(scan, TODAY)
            times[loaded].append(time.perf_counter() - t)
            assert out.verdict.ok, out.verdict
    plain, loaded = times[False], times[True]
    ratio = statistics.median(loaded) / statistics.median(plain)
    print(
        f"scan latency   no delivery p50 {statistics.median(plain) * 1e3:.2f} ms p99 {pct(plain, 99) * 1e3:.2f} ms;"
        f" in a {units:,}-unit delivery p50 {statistics.median(loaded) * 1e3:.2f} ms p99 {pct(loaded, 99) * 1e3:.2f} ms"
        f"   ({ratio:.2f}x, goal <= 1.3x; {n:,} scans each, interleaved)"
    )
    p50 = statistics.median(loaded) * 1e3
    emit(
        "delivery",
        f"scan p50 in a {units:,}-unit delivery",
        p50,
        "ms",
        "<= 1.3x none open",
        ratio <= 1.3,
        statistics.median(plain) * 1e3,
        "no delivery open",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--scans", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_transfer(Path(tmp), args.units)
        bench_latency(Path(tmp), args.units, args.scans)


if __name__ == "__main__":
    main()
