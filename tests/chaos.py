"""The fleet under fire: two stations, the submitter, a slow and failing sandbox, a real Mosquitto;
processes SIGKILLed at random moments and the broker restarted, then every promise checked.

Used by ``tests/test_chaos.py`` (a short run in the suite) and ``bench/bench_chaos.py`` (hundreds of
kills). Each station scans codes it has never scanned before, some of them bad, while one process
at a time is killed (or the broker killed) and brought back. At the end, with everything running
again, the run waits until the fleet is quiet and checks:

- every station's ``seq`` is gap-free, and the ledger holds each (station, seq) once, under the
  station's own event id;
- every accepted scan was notified exactly once (the sandbox counts effects), no refused scan was;
- nothing is stuck: every outbox is empty, every job final;
- every result is back at its station exactly once, and a refusal was signalled once.
"""

from __future__ import annotations

import contextlib
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from central import SandboxServer, seed, submitter_config
from harness import ROOT, Broker, Daemon, station_cli, wait_for, write_config
from scans import GS, gtin


@dataclass
class Report:
    kills: Counter[str] = field(default_factory=Counter)
    scans_sent: int = 0
    accepted: dict[str, int] = field(default_factory=dict)
    refused_at_station: dict[str, int] = field(default_factory=dict)
    notified: int = 0
    refused_by_service: int = 0
    seconds: float = 0.0
    settle_seconds: float = 0.0


class Submitter:
    """``station-submitter run`` as a real process."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc = self.start()

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "station.central.cli", "run", "-c", str(self.config)],
            cwd=ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def restart(self) -> None:
        self.proc = self.start()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def karekod(g: str, sn: str, batch: str = "B1") -> str:
    return f"]d201{g}21{sn}{GS}1730123110{batch}"


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


def run(tmp: Path, kills: int, seed_value: int = 1, per_round: int = 6, log: Any = None) -> Report:
    """``kills`` SIGKILLs (stations, submitter) and broker kills, one at a time, then every check."""
    rng = random.Random(seed_value)
    say = log or (lambda *_: None)
    report = Report()
    started = time.monotonic()
    units = per_round * (kills + 2)
    broker = Broker(tmp)
    broker.start()
    sandbox = SandboxServer(seed=seed_value, latency_ms=40, error_rate=0.05, lost_answer_rate=0.05)
    seed(sandbox.sandbox, depot_units=units, hospital_vermes=units)
    sold = {f"U{i:06d}" for i in range(0, units, 17)}  # İTS refuses these: sold elsewhere
    for (_, sn), unit in sandbox.sandbox.its_units.items():
        if sn in sold:
            unit["state"] = "sold"
    config = submitter_config(tmp, broker.port, sandbox.url)
    submitter = Submitter(config, tmp / "submitter.log")
    stations: dict[str, tuple[Path, Daemon, str]] = {}
    for name, station_id, profile, prefix in (("line", "line-1", "its", "U"), ("dock", "dock-1", "uts", "D")):
        (tmp / name).mkdir()
        cfg = write_config(tmp / name, broker.port, station_id, reader={"profile": profile})
        stations[name] = (cfg, Daemon(cfg, tmp / name / "daemon.log"), prefix)
    next_unit = {"line": 0, "dock": 0}

    def scan_round() -> None:
        for name, (_cfg, daemon, prefix) in stations.items():
            batch = []
            for _ in range(per_round):
                i = next_unit[name]
                next_unit[name] += 1
                batch.append(karekod(gtin(i % 40), f"{prefix}{i:06d}", f"B{i % 5}"))
            batch.append(f"NOT-A-CODE-{name}-{next_unit[name]}")  # refused at the station, never notified
            report.scans_sent += len(batch)
            with contextlib.suppress(BrokenPipeError, ValueError):  # killed a moment ago: never read, never accepted
                daemon.scan(*batch)

    victims: list[str] = []
    try:
        for n in range(kills):
            scan_round()
            time.sleep(rng.uniform(0.0, 0.6))  # kill before, during or after the work
            if not victims:  # each process in turn, in a random order each time round
                victims = ["line", "dock", "submitter", "broker"]
                rng.shuffle(victims)
            victim = victims.pop()
            report.kills[victim] += 1
            say(f"kill {n + 1}/{kills}: {victim}")
            if victim == "submitter":
                submitter.kill()
                submitter.restart()
            elif victim == "broker":
                assert broker.proc is not None
                broker.proc.send_signal(signal.SIGKILL)
                broker.proc.wait(10)
                time.sleep(rng.uniform(0.0, 1.0))
                broker.start()
            else:
                cfg, daemon, prefix = stations[victim]
                daemon.kill()
                stations[victim] = (cfg, Daemon(cfg, tmp / victim / "daemon.log"), prefix)
        scan_round()
        report.seconds = time.monotonic() - started
        settle = time.monotonic()
        check(tmp, stations, sandbox, submitter, report)
        report.settle_seconds = time.monotonic() - settle
    finally:
        for _cfg, daemon, _prefix in stations.values():
            try:
                daemon.close()
            except Exception:  # best effort at the end of a chaos run
                daemon.kill()
        submitter.stop()
        broker.stop()
        sandbox.close()
    return report


Stations = dict[str, tuple[Path, Daemon, str]]


def check(tmp: Path, stations: Stations, sandbox: SandboxServer, submitter: Submitter, report: Report) -> None:
    dbs = {name: tmp / name / "station.db" for name in stations}

    def quiet() -> bool:
        for name, db in dbs.items():
            accepted = rows(db, "SELECT count(*) FROM events WHERE ok = 1")[0][0]
            results = rows(db, "SELECT count(*) FROM results")[0][0]
            if results != accepted or station_cli(stations[name][0], "queue")["undelivered"] != 0:
                return False
        return True

    wait_for(quiet, 300, interval=0.5, what="every outbox empty and every result back")
    ledger = tmp / "ledger.db"
    effects = sandbox.effect_counts()
    twice = [k for k, v in effects.items() if v > 1]
    assert effects and not twice, f"notified more than once: {twice}"
    notified_serials = {sn for (_op, _product, sn) in effects}
    for name, db in dbs.items():
        station_id = "line-1" if name == "line" else "dock-1"
        events = rows(db, "SELECT seq, id, ok, serial FROM events ORDER BY seq")
        seqs = [e[0] for e in events]
        assert seqs == list(range(1, len(seqs) + 1)), f"{name}: seq has gaps"
        in_ledger = dict(rows(ledger, f"SELECT seq, id FROM events WHERE station = '{station_id}'"))
        assert in_ledger == {seq: event_id for seq, event_id, _ok, _sn in events}, f"{name}: ledger differs"
        accepted = [e for e in events if e[2]]
        refused = [e for e in events if not e[2]]
        report.accepted[name] = len(accepted)
        report.refused_at_station[name] = len(refused)
        assert not {e[3] for e in refused if e[3]} & notified_serials, f"{name}: a refused scan was notified"
        results = rows(db, "SELECT r.event_id, r.ok FROM results r")
        assert sorted(r[0] for r in results) == sorted(e[1] for e in accepted), f"{name}: results differ"
        jobs = dict(rows(ledger, f"SELECT event_id, state FROM jobs WHERE station = '{station_id}'"))
        assert set(jobs.values()) <= {"done", "refused"}, f"{name}: jobs not final: {Counter(jobs.values())}"
        done = {e[3] for e in accepted if jobs.get(e[1]) == "done"}
        assert done <= notified_serials, f"{name}: done yet not notified"
        report.notified += len(done)
        report.refused_by_service += sum(1 for e in accepted if jobs.get(e[1]) == "refused")
        signalled = Counter(re.findall(r"service refused seq=(\d+)", (tmp / name / "daemon.log").read_text()))
        assert all(v == 1 for v in signalled.values()), f"{name}: a refusal signalled twice"
        assert len(signalled) == sum(1 for r in results if not r[1]), f"{name}: refusals not all signalled"
    assert len(effects) == report.notified, "a notification no station accepted"
    assert submitter.proc.poll() is None, "the submitter died"
