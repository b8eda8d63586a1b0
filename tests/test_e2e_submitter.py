"""End to end: station daemons -> Mosquitto -> the submitter process -> sandbox ÜTS/İTS -> results back."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from central import PHARMACY, SandboxServer, seed, submitter_config
from chaos import Submitter, karekod
from harness import ROOT, Broker, Daemon, station_cli, wait_for, write_config
from scans import gtin


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    s = SandboxServer(seed=3)
    yield s
    s.close()


def results(db: Path) -> dict[str, tuple[int, str]]:
    with sqlite3.connect(db) as conn:
        return {
            r[0]: (r[1], r[2])
            for r in conn.execute("SELECT e.serial, r.ok, r.code FROM results r JOIN events e ON e.id = r.event_id")
        }


def accepted(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM events WHERE ok = 1").fetchone()[0])


def wait_drained(*configs: Path, timeout: float) -> None:
    """Every station's outbox empty: the central side acked all it was sent."""
    wait_for(
        lambda: all(station_cli(c, "queue")["undelivered"] == 0 for c in configs),
        timeout,
        what="the stations' outboxes to drain",
    )


def start_stations(tmp_path: Path, broker: Broker) -> tuple[Daemon, Path, Daemon, Path]:
    (tmp_path / "line").mkdir()
    (tmp_path / "dock").mkdir()
    line_cfg = write_config(tmp_path / "line", broker.port, "line-1")
    dock_cfg = write_config(tmp_path / "dock", broker.port, "dock-1", reader={"profile": "uts"})
    line = Daemon(line_cfg, tmp_path / "line" / "daemon.log")
    dock = Daemon(dock_cfg, tmp_path / "dock" / "daemon.log")
    return line, line_cfg, dock, dock_cfg


def test_scans_become_notifications_and_outcomes_reach_the_stations(
    tmp_path: Path, broker: Broker, sandbox: SandboxServer
) -> None:
    seed(sandbox.sandbox, depot_units=80, hospital_vermes=30)
    units = sandbox.sandbox.its_units
    units[(gtin(5), "U000005")]["state"] = "sold"
    units[(gtin(6), "U000006")]["state"] = "recalled"
    units[(gtin(7), "U000007")]["state"] = "deactivated"
    cfg = submitter_config(tmp_path, broker.port, sandbox.url)
    submitter = Submitter(cfg, tmp_path / "submitter.log")
    line, line_cfg, dock, dock_cfg = start_stations(tmp_path, broker)
    try:
        line.scan(*(karekod(gtin(i % 40), f"U{i:06d}", f"B{i % 5}") for i in range(80)))
        line.scan(karekod(gtin(3), "NEVER-SEEN"))
        dock.scan(*(karekod(gtin(i % 40), f"D{i:06d}") for i in range(30)))
        dock.scan(karekod(gtin(2), "NOT-SENT-TO-US"))
        line_db, dock_db = tmp_path / "line" / "station.db", tmp_path / "dock" / "station.db"
        wait_for(
            lambda: len(results(line_db)) == 81 and len(results(dock_db)) == 31,
            90,
            what="every unit's outcome at its station",
        )
        line_results, dock_results = results(line_db), results(dock_db)
        assert line_results["U000005"] == (0, "10204") and line_results["U000006"] == (0, "60007")
        assert line_results["U000007"] == (0, "60000") and line_results["NEVER-SEEN"] == (0, "10001")
        assert sum(ok for ok, _ in line_results.values()) == 77
        assert dock_results["NOT-SENT-TO-US"] == (0, "NO_PENDING_VERME")
        assert sum(ok for ok, _ in dock_results.values()) == 30
        refusals = station_cli(line_cfg, "events", "--reason", "refused_later")
        assert {r["serial"] for r in refusals} == {"U000005", "U000006", "U000007", "NEVER-SEEN"}
        assert "refused" in (tmp_path / "line" / "daemon.log").read_text()  # the refusal was signalled
        wait_drained(line_cfg, dock_cfg, timeout=30)
        effects = sandbox.effect_counts()
        assert set(effects.values()) == {1} and len(effects) == 77 + 30
        assert all(u["owner"] == PHARMACY for k, u in units.items() if u["state"] == "active")
        status = json.loads(
            subprocess.run(
                [sys.executable, "-m", "station.central.cli", "status", "-c", str(cfg), "--json"],
                capture_output=True,
                check=True,
                cwd=ROOT,
            ).stdout
        )
        assert status["services"]["its"] == {"done": 77, "refused": 4} and status["stations"]["line-1"]["events"] == 81
        failures = subprocess.run(
            [sys.executable, "-m", "station.central.cli", "failures", "-c", str(cfg)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        assert "NO_PENDING_VERME" in failures and "60007" in failures
        export = subprocess.run(
            [
                sys.executable,
                "-m",
                "station.central.cli",
                "export",
                "-c",
                str(cfg),
                "--from",
                "2000-01-01",
                "--to",
                "2100-01-01",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.splitlines()
        assert export[0].startswith("event_id,station,site,service") and len(export) == 1 + 81 + 31
    finally:
        line.close()
        dock.close()
        assert submitter.stop() == 0
    log = (tmp_path / "submitter.log").read_text()
    assert "depot-pass" not in log and "uts-token-hospital" not in log  # credentials never logged


def test_sigkill_the_submitter_again_and_again(tmp_path: Path, broker: Broker, sandbox: SandboxServer) -> None:
    seed(sandbox.sandbox, depot_units=240, hospital_vermes=60)
    sandbox.sandbox.latency_ms = 60
    sandbox.sandbox.lost_answer_rate = 0.1
    cfg = submitter_config(tmp_path, broker.port, sandbox.url)
    submitter = Submitter(cfg, tmp_path / "submitter.log")
    line, line_cfg, dock, dock_cfg = start_stations(tmp_path, broker)
    rng = random.Random(11)
    try:
        scanned = 0
        for _ in range(8):
            line.scan(*(karekod(gtin(i % 40), f"U{i:06d}") for i in range(scanned * 3, scanned * 3 + 30)))
            dock.scan(*(karekod(gtin(i % 40), f"D{i:06d}") for i in range(scanned * 3 // 4, scanned * 3 // 4 + 7)))
            scanned += 10
            time.sleep(rng.uniform(0.2, 1.2))  # before, during or after a service call
            submitter.kill()
            submitter.restart()
        line_db, dock_db = tmp_path / "line" / "station.db", tmp_path / "dock" / "station.db"
        wait_for(
            lambda: (
                len(results(line_db)) == accepted(line_db)
                and len(results(dock_db)) == accepted(dock_db)
                and accepted(line_db) > 0
            ),
            120,
            what="every outcome after the kills",
        )
        wait_drained(line_cfg, dock_cfg, timeout=60)
        effects = sandbox.effect_counts()
        assert set(effects.values()) == {1}  # nothing notified twice
        assert sum(1 for ok, _ in results(line_db).values() if ok) == accepted(line_db)  # nothing lost
        assert sum(1 for ok, _ in results(dock_db).values() if ok) == accepted(dock_db)
        assert len(effects) == accepted(line_db) + accepted(dock_db)
    finally:
        line.close()
        dock.close()
        submitter.stop()


def test_two_submitters_share_the_work(tmp_path: Path, broker: Broker, sandbox: SandboxServer) -> None:
    seed(sandbox.sandbox, depot_units=120, hospital_vermes=60)
    sandbox.sandbox.latency_ms = 30
    ledger = f"sqlite:///{tmp_path / 'shared-ledger.db'}"
    subs = [
        Submitter(
            submitter_config(
                tmp_path, broker.port, sandbox.url, ledger, sub_id=f"central-{x}", shared=True, name=f"{x}.toml"
            ),
            tmp_path / f"submitter-{x}.log",
        )
        for x in ("a", "b")
    ]
    for x in ("a", "b"):  # both at work before the first scan (a slow start must not leave it all to one)
        wait_for(lambda x=x: b"ready" in (tmp_path / f"submitter-{x}.log").read_bytes(), 30, what=f"submitter {x}")
    line, _, dock, _ = start_stations(tmp_path, broker)
    try:
        line.scan(*(karekod(gtin(i % 40), f"U{i:06d}") for i in range(120)))
        dock.scan(*(karekod(gtin(i % 40), f"D{i:06d}") for i in range(60)))
        line_db, dock_db = tmp_path / "line" / "station.db", tmp_path / "dock" / "station.db"
        wait_for(lambda: len(results(line_db)) == 120 and len(results(dock_db)) == 60, 90, what="all outcomes")
        effects = sandbox.effect_counts()
        assert set(effects.values()) == {1} and len(effects) == 180
        with sqlite3.connect(tmp_path / "shared-ledger.db") as conn:
            senders = dict(conn.execute("SELECT submitter, count(*) FROM requests GROUP BY submitter").fetchall())
        assert set(senders) == {"central-a", "central-b"}, senders  # both did part of the work

        def acked() -> int:  # the stations' result acks, each to one of the two (shared as events are)
            with sqlite3.connect(tmp_path / "shared-ledger.db") as conn:
                return int(conn.execute("SELECT count(*) FROM jobs WHERE published = 1").fetchone()[0])

        wait_for(lambda: acked() == 180, 30, what="every result acked by its station")
        for x in ("a", "b"):
            assert "ready" in (tmp_path / f"submitter-{x}.log").read_text()
    finally:
        line.close()
        dock.close()
        for s in subs:
            s.stop()


@pytest.mark.parametrize("before", [False, True])
def test_a_submitter_switched_to_or_from_sharing_gets_each_message_once(
    tmp_path: Path, broker: Broker, before: bool
) -> None:
    """Its MQTT session is persistent: the subscriptions of the setting it ran with before (or of
    a release that shared only the events) would stay, and every ack come twice."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from station.central.config import load
    from station.central.ingest import Central
    from station.central.ledger import Ledger
    from station.wire import AckMessage, Kind, Topics

    def central(shared: bool) -> Central:
        config = load(submitter_config(tmp_path, broker.port, "http://127.0.0.1:1", shared=shared))
        c = Central(config, Ledger(config.ledger, config.id))
        c.start()
        wait_for(c.connected.is_set, 10, what="the submitter to connect")
        time.sleep(0.3)  # its subscribe and unsubscribe answered
        return c

    central(before).stop()  # the session, with its subscriptions, stays at the broker
    now = central(not before)
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    try:
        ack = AckMessage(ids=("a.1",)).to_json()
        sender.publish(Topics().station("line-1", Kind.RESULT_ACKS), ack, qos=1).wait_for_publish(5)
        wait_for(lambda: now.inbox.qsize() >= 1, 10, what="the ack")
        time.sleep(0.5)
        assert now.inbox.qsize() == 1
    finally:
        sender.disconnect()
        sender.loop_stop()
        now.stop()
