"""Station figures, each beside its own baseline measured in the same run on the same disk.

- scan-to-feedback latency (p50/p99) vs a bare fsync'd SQLite insert   goal: <= 1.3x
- outbox drain rate to Mosquitto vs raw paho QoS 1 publishing           goal: >= 60 %
- daemon RSS and time to ready

    .venv/bin/python bench/bench_station.py [--scans 2000] [--events 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import paho.mqtt.client as mqtt
from figures import emit, stock_paho
from gpiozero.pins.mock import MockFactory, MockPWMPin
from paho.mqtt.enums import CallbackAPIVersion

from station.edge.config import Config, MqttConfig, StationConfig, StorageConfig
from station.edge.events import Scan
from station.edge.outputs.feedback import GpioFeedback
from station.edge.pipeline import Station
from station.edge.store import Store
from station.edge.uplink import MqttUplink
from station.gs1.verdict import Policy, judge
from station.wire import AckMessage, Kind, Topics, parse_events

GS = "\x1d"
ROOT = Path(__file__).resolve().parent.parent


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


class StampedPin(MockPWMPin):  # type: ignore[misc]
    """A simulated pin that notes when it was last switched on: scan to light ends at the pin
    write, not when ``handle()`` returns (what the scan path does after the light is not latency)."""

    lit_at = 0.0

    def _change_state(self, value: float) -> bool:
        if value:
            self.lit_at = time.perf_counter()
        changed: bool = super()._change_state(value)
        return changed


GAP = 0.002
"""Seconds between one write and the next in the latency run: scans come tens of milliseconds
apart on a line, and the station's threads (the feedback player woken by each signal) are done
before the bare insert is timed, not slowing it (back to back, they flattered the ratio by ~0.15x)."""

WARM = 1000
"""Writes of each kind made before any is timed: until the bare file's WAL has filled and been
checkpointed once, each of its commits grows the WAL file, and an fsync that changes a file's size
costs more (0.29 against 0.19 ms here); the station's WAL (1 KiB pages, about nine a scan) wraps
within its first 120 scans. Timed from a cold start, a 1,000-scan run read 1.09-1.22x and the
same code 1.4-1.5x from its 1,000th scan on."""


def bench_latency(workdir: Path, n: int) -> None:
    # Baseline: one row of the same size, one transaction, WAL + synchronous=FULL, nothing else.
    bare = sqlite3.connect(workdir / "bare.db", isolation_level=None)
    bare.execute("PRAGMA journal_mode=WAL")
    bare.execute("PRAGMA synchronous=FULL")
    bare.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, raw BLOB, payload BLOB)")
    payload = b"x" * 520
    config = Config(station=StationConfig("bench"), storage=StorageConfig(str(workdir / "station.db")))
    factory = MockFactory(pin_class=StampedPin)
    feedback = GpioFeedback(config.feedback, factory)
    green = factory.pin(config.feedback.green_pin)
    station = Station(config.station, config.reader, Store(config.storage.path), feedback)
    today = date(2026, 1, 1)
    base: list[float] = []
    ours: list[float] = []
    cpu = 0.0
    for i in range(-WARM, n):  # interleaved, scan by scan: disk noise falls on both alike
        t = time.perf_counter()
        bare.execute("BEGIN IMMEDIATE")
        bare.execute("INSERT INTO t (raw, payload) VALUES (?, ?)", (b"r" * 60, payload))
        bare.execute("COMMIT")
        if i >= 0:
            base.append(time.perf_counter() - t)
        time.sleep(GAP)
        raw = f"]d2010869953609012221S{i + WARM:09d}{GS}1730123110LOT1\r".encode()
        scan = Scan(raw, "bench", time.time(), time.monotonic() + (i + WARM) * 10)
        green.lit_at = 0.0
        cpu0, t = time.process_time(), time.perf_counter()
        out = station.handle(scan, today)
        assert green.lit_at > t, "the green light did not come on"
        if i >= 0:
            cpu += time.process_time() - cpu0
            ours.append(green.lit_at - t)  # scan to the green pin's write
        assert out.verdict.ok, out.verdict
        time.sleep(GAP)
    feedback.close()
    b50, b99, o50, o99 = pct(base, 50), pct(base, 99), pct(ours, 50), pct(ours, 99)
    print(f"latency     bare fsync'd insert p50 {b50 * 1e3:7.3f} ms  p99 {b99 * 1e3:7.3f} ms")
    print(
        f"            scan-to-feedback    p50 {o50 * 1e3:7.3f} ms  p99 {o99 * 1e3:7.3f} ms"
        f"   ratio p50 {o50 / b50:4.2f}x  p99 {o99 / b99:4.2f}x (goal <= 1.3x)"
    )
    print(
        f"            reader verdict alone p50 {_verdict_cost() * 1e3:6.3f} ms   CPU per scan {cpu / n * 1e3:6.3f} ms"
    )
    emit("station", "CPU per scan (every thread; the Pi estimate's base)", cpu / n * 1e3, "ms", "", None)
    bare_name = "bare fsync'd insert"
    emit("station", "scan to light, p50", o50 * 1e3, "ms", "<= 1.3x", o50 / b50 <= 1.3, b50 * 1e3, bare_name)
    emit("station", "scan to light, p99", o99 * 1e3, "ms", "(reported)", None, b99 * 1e3, bare_name)


def written() -> int:
    """Bytes this process has had written to the block device (Linux ``/proc/self/io``)."""
    line = next(x for x in Path("/proc/self/io").read_text().splitlines() if x.startswith("write_bytes"))
    return int(line.split()[1])


def bench_writes(workdir: Path, n: int) -> None:
    """SD-card wear: bytes reaching the disk per scan (WAL frames, checkpoints, the files' growth),
    for the station and for the bare insert, each over ``n`` in a row, with the checkpoint that
    follows them counted in."""
    bare = sqlite3.connect(workdir / "bare-w.db", isolation_level=None)
    bare.execute("PRAGMA journal_mode=WAL")
    bare.execute("PRAGMA synchronous=FULL")
    bare.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, raw BLOB, payload BLOB)")
    start = written()
    for _ in range(n):
        bare.execute("BEGIN IMMEDIATE")
        bare.execute("INSERT INTO t (raw, payload) VALUES (?, ?)", (b"r" * 60, b"x" * 520))
        bare.execute("COMMIT")
    bare.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    base = (written() - start) / n
    config = Config(station=StationConfig("bench-w"), storage=StorageConfig(str(workdir / "station-w.db")))
    factory = MockFactory(pin_class=MockPWMPin)
    feedback = GpioFeedback(config.feedback, factory)
    store = Store(config.storage.path)
    station = Station(config.station, config.reader, store, feedback)
    today = date(2026, 1, 1)
    start = written()
    for i in range(n):
        raw = f"]d2010869953609012221W{i:09d}{GS}1730123110LOT1\r".encode()
        station.handle(Scan(raw, "bench", time.time(), time.monotonic() + i * 10), today)
    store.open().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ours = (written() - start) / n
    feedback.close()
    print(
        f"writes      bare insert {base / 1024:5.1f} KiB/scan   station {ours / 1024:5.1f} KiB/scan"
        f"   ({ours / base:3.1f}x; {ours * 100_000 / 2**30:4.2f} GiB per 100,000 scans, checkpoints included)"
    )
    emit(
        "station",
        "bytes reaching the disk per scan",
        ours / 1024,
        "KiB",
        "measured, reduced",
        None,
        base / 1024,
        "bare fsync'd insert",
    )


def _verdict_cost() -> float:
    raw = f"]d2010869953609012221S000000001{GS}1730123110LOT1".encode()
    policy, today = Policy(), date(2026, 1, 1)
    t = time.perf_counter()
    for _ in range(2000):
        judge(raw, policy, today)
    return (time.perf_counter() - t) / 2000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Counter:
    """A subscriber that counts messages on a topic and notes when the n-th arrives."""

    def __init__(self, port: int, topic: str, expect: int) -> None:
        self.expect = expect
        self.count = 0
        self.done = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        time.sleep(0.3)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.count += 1
        if self.count >= self.expect:
            self.done.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Acker(Counter):
    """The central side of a drain: counts the station's events and acks their ids every 5 ms, as
    a submitter acks what each of its batches stored (only that makes an event delivered, and frees
    its place in the uplink's window)."""

    def __init__(self, port: int, station: str, expect: int) -> None:
        self.ids: list[str] = []
        self.lock = threading.Lock()
        self.ack_topic = Topics().station(station, Kind.ACKS)
        self._stop = threading.Event()
        super().__init__(port, Topics().station(station, Kind.EVENTS), expect)
        self._flusher = threading.Thread(target=self._flush, daemon=True)
        self._flusher.start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        taken, _ = parse_events(msg.payload)
        with self.lock:
            self.ids += [event.id for _, event in taken]
            self.count += len(taken)
        if self.count >= self.expect:
            self.done.set()

    def _flush(self) -> None:
        while not self._stop.wait(0.005):
            with self.lock:
                ids, self.ids = self.ids, []
            for i in range(0, len(ids), 5000):
                self.client.publish(self.ack_topic, AckMessage(ids=tuple(ids[i : i + 5000])).to_json(), qos=1)

    def close(self) -> None:
        self._stop.set()
        self._flusher.join()
        super().close()


class PeakRss:
    """This process's largest RSS while the block runs, sampled every 20 ms, less its RSS before."""

    def __enter__(self) -> PeakRss:
        self.before = self.peak = rss_mib(os.getpid())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mib(os.getpid()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(os.getpid()))

    @property
    def growth(self) -> float:
        return self.peak - self.before


RAW_QUEUE = 10_000
"""Messages the raw paho reference of the drain has published and not had acked, at most."""


def drain_phase(kind: str, workdir: Path, port: int, n: int) -> dict[str, float]:
    """One side of :func:`bench_drain`, in a process of its own (``--drain-phase``): ``raw``
    publishes ``n`` messages of the outbox's payload size with paho as it ships, until the broker
    has acked them all; ``outbox`` starts the station's uplink (its default window) on the filled
    outbox, until the central side (:class:`Acker`, in the parent) has acked every event. Says
    ``go`` as it starts (the parent times from there until its subscriber has them all); returns
    how many went and its RSS growth meanwhile."""
    with PeakRss() as rss:
        if kind == "raw":
            stock_paho()  # paho as it ships (the uplink's client makes its properties the lean way)
            store = Store(workdir / "outbox.db", durable=False)
            body = b"x" * len(store.pending(0, 1)[0][2])
            store.close()
            raw = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            raw.max_inflight_messages_set(100)
            # At most RAW_QUEUE published and not yet acked: paho keeps each message until its
            # PUBACK, keyed by a 16-bit packet id: a backlog of more than 65,535 at once loses some.
            room = threading.Semaphore(RAW_QUEUE)
            acked = [0]

            def on_publish(*args: object) -> None:
                acked[0] += 1
                room.release()

            raw.on_publish = on_publish
            raw.connect("127.0.0.1", port)
            raw.loop_start()
            print("go", flush=True)
            t = time.perf_counter()
            for _ in range(n):
                room.acquire()
                raw.publish("raw/events", body, qos=1)
            while acked[0] < n and time.perf_counter() - t < 300:  # the parent times; this only waits
                time.sleep(0.05)
            raw.disconnect()
            raw.loop_stop()
            done = acked[0]
        else:
            uplink = MqttUplink(
                MqttConfig(host="127.0.0.1", port=port, wait_for_central=False, status_interval_seconds=3600),
                "bench",
                str(workdir / "outbox.db"),
                lambda store, connected: {"station": "bench"},
            )
            watch = Store(workdir / "outbox.db", durable=False)
            print("go", flush=True)
            t = time.perf_counter()
            uplink.start()
            while watch.oldest_undelivered_seq() is not None and time.perf_counter() - t < 300:
                time.sleep(0.05)  # the parent times; this only waits, and asks the file seldom
            done = n if watch.oldest_undelivered_seq() is None else 0
            uplink.stop()
            watch.close()
    return {"count": done, "rss_growth": rss.growth}


def bench_drain(workdir: Path, n: int) -> None:
    """The outbox's backlog of ``n`` events (a broker outage's), drained once the broker is there,
    beside raw paho publishing as many messages of the same size: each in a fresh process, so
    each one's time and RSS growth are its own; a subscriber in this process takes the messages
    (and, for the outbox, acks the events as a submitter would)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n")
    broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        store = Store(workdir / "outbox.db", durable=False)
        today = date(2026, 1, 1)
        v = judge(f"010869953609012221S1{GS}1730123110L", Policy(), today)
        for _ in range(n):
            store.record(
                Scan(b"]d2" + os.urandom(20).hex().encode(), "bench", time.time(), 0.0), v, "bench", "", "receipt"
            )
        payload_size = len(store.pending(0, 1)[0][2])
        store.close()
        runs = {}
        for kind in ("raw", "outbox"):
            central = Counter(port, "raw/#", n) if kind == "raw" else Acker(port, "bench", n)
            argv = [sys.executable, __file__, "--drain-phase", kind, "--port", str(port), "--events", str(n)]
            child = subprocess.Popen([*argv, "--workdir", str(workdir)], stdout=subprocess.PIPE, text=True)
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "go"
            t = time.perf_counter()
            central.done.wait(300)
            seconds = time.perf_counter() - t  # until the subscriber has them all, either way
            runs[kind] = {**json.loads(child.stdout.read().strip().splitlines()[-1]), "seconds": seconds}
            assert child.wait(60) == 0
            central.close()
        raw, ours = runs["raw"], runs["outbox"]
        raw_rate, drain_rate = raw["count"] / raw["seconds"], ours["count"] / ours["seconds"]
        assert raw["count"] == ours["count"] == n, (raw, ours)
        print(
            f"drain       raw paho QoS 1 {raw_rate:9,.0f} msg/s   outbox {drain_rate:9,.0f} events/s"
            f"   ({drain_rate / raw_rate:4.0%} of raw, goal >= 60 %; {n:,} x {payload_size} B)"
            f"   RSS growth raw {raw['rss_growth']:.1f} MiB, outbox {ours['rss_growth']:.1f} MiB"
        )
        emit(
            "station",
            f"outbox drain of {n:,} events",
            drain_rate,
            "events/s",
            ">= 60 % of raw paho",
            drain_rate >= 0.6 * raw_rate,
            raw_rate,
            "raw paho QoS 1",
        )
        emit("station", f"outbox drain of {n:,} events: time", ours["seconds"], "s", "(reported)", None,
             raw["seconds"], "raw paho QoS 1")  # fmt: skip
        emit("station", f"outbox drain of {n:,} events: RSS growth", ours["rss_growth"], "MiB", "(reported)", None,
             raw["rss_growth"], "raw paho QoS 1")  # fmt: skip
    finally:
        broker.terminate()
        broker.wait(10)


def simulated_daemon(db: Path, output: int) -> subprocess.Popen[bytes]:
    """``station run --simulate`` on ``db`` without MQTT, scans on its stdin."""
    cfg = db.with_suffix(".toml")
    cfg.write_text(f'[station]\nid = "bench"\n[storage]\npath = "{db}"\n[mqtt]\nenabled = false\n')
    return subprocess.Popen(
        [sys.executable, "-m", "station.edge.cli", "run", "--simulate", "-c", str(cfg)],
        stdin=subprocess.PIPE,
        stdout=output,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def bench_daemon(workdir: Path) -> None:
    t = time.perf_counter()
    proc = simulated_daemon(workdir / "daemon.db", subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    for line in proc.stdout:
        if b"ready" in line:
            break
    ready = time.perf_counter() - t
    out = proc.stdout
    threading.Thread(target=lambda: [None for _ in out], daemon=True).start()  # keep the pipe flowing
    for i in range(500):
        proc.stdin.write(f"]d2010869953609012221M{i:06d}{GS}1730123110LOT1\n".encode())
    proc.stdin.flush()
    time.sleep(2)
    status = Path(f"/proc/{proc.pid}/status").read_text()
    rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024
    proc.stdin.close()
    proc.wait(30)
    print(f"daemon      time to ready {ready * 1e3:6.0f} ms   RSS after 500 scans {rss:5.1f} MiB")
    emit("station", "daemon time to READY (empty file)", ready * 1e3, "ms", "", None)


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024


def bench_rss(workdir: Path, n: int) -> None:
    """The daemon's RSS over ``n`` scans (simulated pins, as ``--simulate`` runs them; no MQTT):
    after the first 10,000 (warm: caches and the file's pages) and at the end. Scans are fed as a
    scanner would, never far ahead of the station (a pipe written flat out would fill the daemon's
    scan queue instead, and measure that)."""
    db = workdir / "rss.db"
    proc = simulated_daemon(db, subprocess.DEVNULL)
    assert proc.stdin is not None

    def done() -> int:
        try:
            with contextlib.closing(sqlite3.connect(db)) as conn:
                return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
        except sqlite3.Error:
            return 0

    n_warm = min(10_000, n // 2)
    warm = 0.0
    t = time.perf_counter()
    for start in range(0, n, 500):
        for i in range(start, min(n, start + 500)):
            proc.stdin.write(f"]d2010869953609012221R{i:09d}{GS}1730123110LOT1\n".encode())
        proc.stdin.flush()
        while done() < start - 500:  # at most a thousand scans ahead
            time.sleep(0.05)
        if not warm and start >= n_warm:
            warm = rss_mib(proc.pid)
    while done() < n:
        time.sleep(0.2)
    took = time.perf_counter() - t
    end = rss_mib(proc.pid)
    proc.stdin.close()
    proc.wait(60)
    growth = end - warm
    print(
        f"memory      daemon RSS after {n_warm:,} scans {warm:5.1f} MiB, after {n:,} {end:5.1f} MiB"
        f"   ({growth:+.1f} MiB; {n / took:,.0f} scans/s through stdin)"
    )
    emit(
        "station",
        f"daemon RSS growth over {n:,} scans (after {n_warm:,})",
        growth,
        "MiB",
        "flat (< 2 MiB)",
        growth < 2,
        warm,
        "RSS when warm",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scans", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rss-scans", type=int, default=0, help="the daemon's RSS over this many scans (0: skip)")
    parser.add_argument("--drain-phase", choices=("raw", "outbox"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drain_phase:  # one side of bench_drain, in its own process
        print(json.dumps(drain_phase(args.drain_phase, args.workdir, args.port, args.events)))
        return
    # On the project's own disk (not /tmp, which may be tmpfs): fsync must cost what it costs.
    (ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "var") as d:
        workdir = Path(d)
        bench_latency(workdir, args.scans)
        bench_writes(workdir, args.scans)
        bench_drain(workdir, args.events)
        bench_daemon(workdir)
        if args.rss_scans:
            bench_rss(workdir, args.rss_scans)
    print(json.dumps({"python": sys.version.split()[0], "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
