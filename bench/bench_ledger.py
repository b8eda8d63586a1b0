"""The central side's reads at field scale: a ledger of 1,000,000 units (and their events, and
20,000 calls), then what an operator, the console, Prometheus and the HBYS ask of it.

    python bench/bench_ledger.py [--jobs 1000000] [--keep DIR]

Each figure is the second of two runs (the first warms the page cache, as a busy server's is),
in the same process, against the goal of 200 ms. The file is built directly (about 45 s for a
million units here), not through the ingest.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from figures import emit

from station.central import console, metrics
from station.central.config import parse
from station.central.ledger import Ledger

CONFIG = """
[submitter]
id = "bench"
ledger = "sqlite:///{path}"
[its]
[its.test]
username = "8680000000001"
password_env = "BENCH_UNUSED"
[sites.depot-line]
service = "its"
institution = "8680000000001"
operation = "dispatch"
counterpart = "8680000000009"
stations = [{stations}]
"""


def build(path: Path, n: int, stations: int = 50) -> None:
    Ledger(f"sqlite:///{path}").close()  # the schema and its indexes
    conn = sqlite3.connect(path)
    now = time.time()
    rng = random.Random(1)
    states = ["done"] * 97 + ["refused", "failed", "queued"]

    def events() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            yield (
                f"h.{i}", f"line-{i % stations}", i, "2026-01-01T10:00:00.000Z", now - (n - i) * 0.05, 1, None,
                "dispatch", f"0869953{i % 400:06d}0", f"S{i}", "B1", "2030-12-31", "{}", "h",
            )  # fmt: skip

    def jobs() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            state = rng.choice(states)
            yield (
                f"h.{i}", f"line-{i % stations}", "depot-line", "its", "dispatch", f"0869953{i % 400:06d}0", f"S{i}",
                "B1", "2030-12-31", state, 1, 0, f"r{i // 50}", int(state == "done"),
                "00000" if state == "done" else "60002", "Ürün 8680000000007 üzerinde kayıtlı.", "",
                now - (n - i) * 0.05, now - (n - i) * 0.05, 1,
            )  # fmt: skip

    conn.executemany(
        "INSERT INTO events (id, station, seq, at, received_at, ok, reason, operation, gtin, serial, batch, expiry,"
        " payload, history) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        events(),
    )
    conn.executemany(
        "INSERT INTO jobs (event_id, station, site, service, operation, gtin, serial, batch, expiry, state, attempts,"
        " next_at, request_id, ok, code, message, reference, created_at, updated_at, published)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        jobs(),
    )
    conn.executemany(
        "INSERT INTO requests (id, service, site, endpoint, body, state, submitter, created_at, answered_at,"
        " http_status, response) VALUES (?, 'its', 'depot-line', '/x', '{}', 'answered', 'b', ?, ?, 200, '{}')",
        ((f"r{i}", now - n * 0.05 + i * 2.5, now - n * 0.05 + i * 2.5 + 0.2) for i in range(n // 50)),
    )
    conn.execute(  # the per-station counters the ingest keeps
        "INSERT INTO stations (station, events) SELECT station, count(*) FROM events GROUP BY station"
        " ON CONFLICT (station) DO UPDATE SET events = excluded.events"
    )
    conn.commit()
    conn.close()


def timed(fn: Callable[[], object]) -> float:
    fn()
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--keep", metavar="DIR", help="build the ledger here and keep it (built once)")
    args = parser.parse_args()
    where = Path(args.keep or tempfile.mkdtemp(prefix="bench-ledger-"))
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"ledger-{args.jobs}.db"
    if not path.exists():
        start = time.perf_counter()
        build(path, args.jobs)
        print(f"built {args.jobs:,} units in {time.perf_counter() - start:.0f} s ({path.stat().st_size >> 20} MiB)")
    stations = ", ".join(f'"line-{i}"' for i in range(50))
    config = parse(CONFIG.format(path=path, stations=stations))
    ledger = Ledger(config.ledger)
    hour_ago = time.time() - 3600
    export_sql = (
        "SELECT j.event_id, j.station, j.gtin, j.serial, e.at, j.state, j.code FROM jobs j JOIN events e"
        " ON e.id = j.event_id WHERE j.created_at >= ? AND j.created_at < ? ORDER BY j.created_at"
    )
    from prometheus_client import generate_latest

    every_state = console.Filter(states=tuple(console.JobState))
    one_code = console.Filter("line-7", code="60002")
    figures = [
        ("status: stations", lambda: console.stations(ledger, config)),
        ("status: units by service and state", lambda: console.jobs_by_state(ledger)),
        ("failures (newest 100)", lambda: console.needing_person(ledger, limit=100)),
        ("failures by station and code", lambda: console.needing_person(ledger, one_code)),
        ("the codes to filter by", lambda: console.codes(ledger)),
        ("API results, every state (newest 500)", lambda: console.needing_person(ledger, every_state, limit=500)),
        ("a unit's history", lambda: console.unit_history(ledger, "08699530001230", "S123")),
        ("/metrics scrape", lambda: generate_latest(metrics.registry(config, ledger))),
        ("export: the last hour's rows, streamed", lambda: sum(1 for _ in ledger.stream(export_sql, (hour_ago, 2e9)))),
    ]  # fmt: skip
    print(f"{'figure':<42} {'ms':>8}  goal 200 ms")
    for name, fn in figures:
        ms = timed(fn)
        print(f"{name:<42} {ms:>8.1f}  {'met' if ms < 200 else 'NOT MET'}")
        emit("ledger", f"{args.jobs:,}-unit ledger: {name}", ms, "ms", "< 200 ms", ms < 200)


if __name__ == "__main__":
    main()
