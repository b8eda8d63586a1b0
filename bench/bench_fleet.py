"""A fleet, not a station (issue 12): simulated stations through one Mosquitto into two submitters
sharing a PostgreSQL ledger, one of them SIGKILLed midway and started again.

Each simulated station is a light publisher speaking the wire contract with a station's outbox
manners: its own client id, events ``{history}.{seq}`` gap-free, each kept until the central side
acks it and sent again when no ack came within ``--resend-after`` seconds or the round trip acks
take, doubling while re-sends bring no ack (the station's ``AckTimer``); results taken and acked
on ``result_acks``. The stations run in ``--workers`` processes (one paho client and network thread
each). Printed: the ingest rate, scan-to-ack latency p50/p99/max, re-sends, and the checks: every
event in the ledger once (by station and seq), every event acked at its station, every unit
notified to the İTS sandbox exactly once, every result back at its station.

    .venv/bin/python bench/bench_fleet.py [--stations 500] [--rate 1000] [--seconds 60]

PostgreSQL: ``KAREKOD_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``), in a
schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from central import DEPOT, PHARMACY, SandboxServer, seed, submitter_config  # noqa: E402
from figures import emit  # noqa: E402
from harness import PG_URL, free_port  # noqa: E402
from scans import gtin  # noqa: E402

from station.edge.uplink import AckTimer, pack  # noqa: E402
from station.wire import (  # noqa: E402
    EVENT_SCHEMA,
    AckMessage,
    EventMessage,
    Kind,
    Operation,
    Topics,
    batch_json,
    parse_results,
)

TOPICS = Topics()


def unit(index: int) -> dict[str, Any]:
    """The sandbox's depot unit ``index`` (tests/central.py ``its_units``), as an accepted verdict."""
    return {
        "ok": True,
        "gtin": gtin(index % 40),
        "serial": f"U{index:06d}",
        "batch": f"B{index % 5}",
        "expiry": "2030-12-31",
    }


class SimStation:
    """One station's outbox and its MQTT client."""

    def __init__(self, sid: str, number: int, count: int, port: int, timeout: float) -> None:
        self.sid, self.number, self.count = sid, number, count
        self.timer = AckTimer(timeout, random.random)
        self.history = uuid.uuid4().hex
        self.seq = 0
        self.lock = threading.Lock()
        self.outbox: dict[str, tuple[bytes, float, float]] = {}  # id -> (payload, first sent, last sent)
        self.latencies: list[float] = []
        self.timeline: list[tuple[float, float, int]] = []  # (wall time, ack latency or -1, events re-sent)
        self.results: set[str] = set()
        self.resends = 0
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"karekod-station-{sid}", protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(100)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe([(TOPICS.station(self.sid, Kind.ACKS), 1), (TOPICS.station(self.sid, Kind.RESULTS), 1)])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if msg.topic.endswith("/acks"):
            ids = AckMessage.from_json(msg.payload).ids
            with self.lock:
                rtt = None
                for i in ids:
                    entry = self.outbox.pop(i, None)
                    if entry is not None:
                        self.latencies.append(now - entry[1])
                        self.timeline.append((time.time(), now - entry[1], 0))
                        if entry[1] == entry[2]:  # sent once: a round trip (Karn)
                            rtt = max(rtt or 0.0, now - entry[1])
                self.timer.acked(rtt)
            return
        results = parse_results(msg.payload)
        with self.lock:
            self.results.update(r.event_id for r in results)
        ack = AckMessage(ids=tuple(r.event_id for r in results)).to_json()
        client.publish(TOPICS.station(self.sid, Kind.RESULT_ACKS), ack, qos=1)

    def scan(self) -> None:
        self.seq += 1
        event_id = f"{self.history}.{self.seq}"
        body = EventMessage(
            schema=EVENT_SCHEMA,
            id=event_id,
            seq=self.seq,
            station=self.sid,
            site="fleet",
            operation=Operation.DISPATCH,
            at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            source="fleet",
            raw="x" * 60,
            raw_hex="78" * 60,
            history=self.history,
            **unit((self.seq - 1) * self.count + self.number),
        ).to_json()
        now = time.monotonic()
        with self.lock:
            self.outbox[event_id] = (body, now, now)
        self.client.publish(TOPICS.station(self.sid, Kind.EVENTS), body, qos=1)

    def resend(self) -> None:
        """As the station's uplink does: when the oldest unacked event has waited its time
        (``--resend-after`` seconds or what acks take, doubled while re-sends bring no ack: the
        station's ``AckTimer``), everything unacked goes again, oldest first, packed as the
        station packs it (``pack``, batches of up to 100: the submitters say they take them)."""
        now = time.monotonic()
        with self.lock:
            if not self.outbox or now - min(e[2] for e in self.outbox.values()) <= self.timer.wait:
                return
            self.timer.timed_out()
            late = list(self.outbox.items())
            for i, (body, first, _) in late:
                self.outbox[i] = (body, first, now)
        for message in pack([(0, i, body) for i, (body, _, _) in late], 100):
            self.resends += len(message)
            self.timeline.append((time.time(), -1.0, len(message)))
            payload = message[0][2] if len(message) == 1 else batch_json([body for _, _, body in message])
            self.client.publish(TOPICS.station(self.sid, Kind.EVENTS), payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def fleet_worker(
    numbers: list[int], count: int, port: int, rate_each: float, start: float, seconds: float, args: Any, out: Any
) -> None:
    stations = [SimStation(f"fleet-{n:04d}", n, count, port, args.resend_after) for n in numbers]
    for s in stations:
        s.subscribed.wait(30)
    out.put(("ready", len(stations)))
    time.sleep(max(0.0, start - time.time()))
    begin = time.monotonic()
    period = 1.0 / rate_each
    ticks = 0
    last_resend = begin
    while time.monotonic() - begin < seconds:
        ticks += 1
        due = begin + ticks * period
        for i, s in enumerate(stations):  # each station's scans spread over the period
            at = due - period + period * i / len(stations)
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            s.scan()
        if time.monotonic() - last_resend > 1.0:
            last_resend = time.monotonic()
            for s in stations:
                s.resend()
    deadline = time.monotonic() + args.settle
    while time.monotonic() < deadline and any(s.outbox for s in stations):
        time.sleep(1.0)
        for s in stations:
            s.resend()
    sent_all = sum(s.seq for s in stations)
    out.put(
        (
            "events",
            {
                "sent": sent_all,
                "unacked": sum(len(s.outbox) for s in stations),
                "resends": sum(s.resends for s in stations),
                "latencies": [x for s in stations for x in s.latencies],
                "timeline": [x for s in stations for x in s.timeline],
                "last_seq": {s.sid: s.seq for s in stations},
                "history": {s.sid: s.history for s in stations},
            },
        )
    )
    # results arrive while the notifier works: wait for them, then report
    deadline = time.monotonic() + args.settle
    while time.monotonic() < deadline and sum(len(s.results) for s in stations) < sent_all:
        time.sleep(1.0)
    out.put(("results", {"results": sum(len(s.results) for s in stations)}))
    for s in stations:
        s.close()


@dataclass
class Submitter:
    name: str
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    kills: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "station.central.cli", "run", "-c", str(self.config)],
            cwd=ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills.append(time.time())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


def buckets(timeline: list[tuple[float, float, int]], start: float, a_killed: float, step: float) -> list[str]:
    """What the fleet saw, ``step`` seconds at a time from the first scan: events acked, their
    scan-to-ack p50, events re-sent (the kill's second marked ``*``): where a run that fell short
    fell."""
    rows: dict[int, tuple[list[float], int]] = {}
    for at, latency, resent in timeline:
        acked, n = rows.setdefault(int((at - start) // step), ([], 0))
        if latency >= 0:
            acked.append(latency)
        rows[int((at - start) // step)] = (acked, n + resent)
    return [
        f"{k * step:+5.0f}s{'*' if k * step <= a_killed < (k + 1) * step else ' '} acked {len(acked):6,}"
        f" p50 {pct(acked, 50) * 1e3:8.0f} ms  re-sent {n:6,}"
        for k, (acked, n) in sorted(rows.items())
    ]


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import psycopg

    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n"
        "max_connections -1\n"
    )
    broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    schema = f"fleet{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    ledger = f"{PG_URL}?options=-csearch_path%3D{schema}"
    total = int(args.rate * args.seconds) + args.stations
    sandbox = SandboxServer()
    seed(sandbox.sandbox, depot_units=total)
    names = [f"fleet-{n:04d}" for n in range(args.stations)]
    site = (
        f'[sites.fleet]\nservice = "its"\ninstitution = "{DEPOT}"\noperation = "dispatch"\n'
        f'counterpart = "{PHARMACY}"\nstations = {json.dumps(names)}\n'
    )
    submitters = []
    for x in ("a", "b"):
        d = tmp / x
        d.mkdir()
        cfg = submitter_config(d, port, sandbox.url, ledger, sub_id=f"fleet-{x}", shared=True, extra=site)
        submitters.append(Submitter(x, cfg, tmp / f"submitter-{x}.log"))
    try:
        time.sleep(0.5)
        for s in submitters:
            s.start()
        time.sleep(3)  # both subscribed (their shared subscription) before the fleet starts
        out: Any = mp.get_context("fork").Queue()
        start = time.time() + 10 + args.stations / 50  # time for every client to connect
        groups = [list(range(args.stations))[w :: args.workers] for w in range(args.workers)]
        workers = [
            mp.get_context("fork").Process(
                target=fleet_worker,
                args=(g, args.stations, port, args.rate / args.stations, start, args.seconds, args, out),
            )
            for g in groups
        ]
        for w in workers:
            w.start()
        ready = sum(out.get(timeout=120)[1] for _ in workers)
        # the kill: submitter a, midway, for --down seconds
        time.sleep(max(0.0, start + args.seconds / 2 - time.time()))
        submitters[0].kill()
        time.sleep(args.down)
        submitters[0].start()
        reports: dict[str, list[dict[str, Any]]] = {"events": [], "results": []}
        t_end_of_scans = start + args.seconds
        for _ in range(2 * len(workers)):
            kind, report = out.get(timeout=args.settle * 2 + args.seconds + 120)
            reports[kind].append(report)
            if kind == "events" and len(reports["events"]) == len(workers):
                all_acked_at = time.time()
        for w in workers:
            w.join(30)
        sent = sum(r["sent"] for r in reports["events"])
        latencies = [x for r in reports["events"] for x in r["latencies"]]
        timeline = [x for r in reports["events"] for x in r["timeline"]]
        last_seq: dict[str, int] = {k: v for r in reports["events"] for k, v in r["last_seq"].items()}
        with psycopg.connect(ledger, autocommit=True) as conn:
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]
            twice = conn.execute(
                "SELECT count(*) FROM (SELECT station, seq FROM events GROUP BY station, seq HAVING count(*) > 1) d"
            ).fetchone()[0]  # type: ignore[index]
            by_station: dict[str, int] = dict(
                conn.execute("SELECT station, max(seq) FROM events GROUP BY station").fetchall()
            )
            states: dict[str, int] = dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        effects = sandbox.effect_counts()
        figures = {
            "stations": args.stations,
            "rate_wanted": args.rate,
            "seconds": args.seconds,
            "clients_ready": ready,
            "sent": sent,
            "ingest_per_s": sent / max(1e-9, all_acked_at - start),
            "ack_p50_ms": pct(latencies, 50) * 1e3,
            "ack_p99_ms": pct(latencies, 99) * 1e3,
            "ack_max_ms": max(latencies, default=float("nan")) * 1e3,
            "acked_after_scans_s": all_acked_at - t_end_of_scans,
            "resends": sum(r["resends"] for r in reports["events"]),
            "unacked": sum(r["unacked"] for r in reports["events"]),
            "stored": stored,
            "stored_twice": twice,
            "gapless": all(by_station.get(k) == v for k, v in last_seq.items()),
            "jobs": states,
            "notified_once": len(effects) == sent and all(n == 1 for n in effects.values()),
            "notified": len(effects),
            "results_at_stations": sum(r["results"] for r in reports["results"]),
            "timeline": buckets(timeline, start, a_killed=submitters[0].kills[0] - start, step=5.0),
        }
        return figures
    finally:
        for s in submitters:
            s.stop()
            shutil.copy(s.log, ROOT / "var" / f"fleet-submitter-{s.name}.log")  # read after a run that fell short
        sandbox.close()
        broker.terminate()
        broker.wait(10)
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stations", type=int, default=500)
    parser.add_argument("--rate", type=float, default=1000, help="events per second, the whole fleet")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--down", type=float, default=10, help="seconds submitter a stays killed")
    parser.add_argument("--resend-after", type=float, default=10)
    parser.add_argument("--settle", type=float, default=180)
    args = parser.parse_args()
    (ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "var") as d:
        f = run(args, Path(d))
    print(
        f"fleet       {f['stations']} stations, {f['sent']:,} events at {f['rate_wanted']:,.0f}/s wanted:"
        f" ingest {f['ingest_per_s']:,.0f}/s; scan-to-ack p50 {f['ack_p50_ms']:.1f} ms, p99 {f['ack_p99_ms']:.0f} ms,"
        f" max {f['ack_max_ms']:.0f} ms; {f['resends']:,} re-sends; submitter a SIGKILLed midway"
    )
    ok = (
        f["stored"] == f["sent"]
        and f["stored_twice"] == 0
        and f["unacked"] == 0
        and f["gapless"]
        and f["notified_once"]
        and f["results_at_stations"] == f["sent"]
    )
    print(
        f"            stored {f['stored']:,} (twice: {f['stored_twice']}), unacked {f['unacked']}, seq gap-free"
        f" {f['gapless']}, notified once {f['notified_once']} ({f['notified']:,}), results back"
        f" {f['results_at_stations']:,}, jobs {f['jobs']}: {'all held' if ok else 'NOT HELD'}"
    )
    print("\n".join(f"            {line}" for line in f.pop("timeline")))
    print(json.dumps({"python": sys.version.split()[0], "cpus": os.cpu_count(), **f}, default=str))
    fleet = f"{f['stations']} stations at {f['rate_wanted']:,.0f} events/s, 2 submitters on PostgreSQL"
    emit(
        "fleet",
        f"{fleet}: ingest",
        f["ingest_per_s"],
        "events/s",
        "keeps up with the fleet",
        f["ingest_per_s"] >= 0.95 * f["rate_wanted"],
        f["rate_wanted"],
        "offered",
    )
    emit("fleet", f"{fleet}: scan-to-ack p50", f["ack_p50_ms"], "ms", "(reported)", None)
    emit("fleet", f"{fleet}: scan-to-ack p99", f["ack_p99_ms"], "ms", "(reported)", None)
    emit(
        "fleet",
        f"{fleet}, one SIGKILLed: each event stored, acked, notified and answered once",
        f["sent"],
        "events",
        "all hold",
        ok,
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
