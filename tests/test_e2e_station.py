"""End to end on real parts: the daemon process, a real Mosquitto, a central-side responder."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from harness import Broker, Central, Daemon, station_cli, wait_for, write_config
from scans import REREAD, stream


def expected_events(scans: list[tuple[str, str | None]]) -> list[str | None]:
    return [reason for _, reason in scans if reason != REREAD]


def db_rows(path: Path) -> list[tuple[int, str, int, str | None]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT seq, id, ok, reason FROM events ORDER BY seq").fetchall()


def test_thousand_scans_reach_the_central_side_in_order(tmp_path: Path, broker: Broker, central: Central) -> None:
    scans = stream(1000)
    want = expected_events(scans)
    assert {None, "duplicate", "not_gs1", "expired", "bad_check_digit"} <= set(want)
    assert len(want) < len(scans)  # there are re-reads
    config = write_config(tmp_path, broker.port)
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        daemon.scan(*(raw for raw, _ in scans))
        wait_for(lambda: len(central.unique_events()) >= len(want), 120, what="every event at the central side")
        events = central.unique_events()
        assert [e["seq"] for e in events] == list(range(1, len(want) + 1))
        assert [e["reason"] for e in events] == want
        assert all(e["ok"] == (r is None) for e, r in zip(events, want, strict=True))
        raw_by_seq = [raw for raw, reason in scans if reason != REREAD]
        assert [e["raw"] for e in events] == raw_by_seq
        wait_for(lambda: station_cli(config, "queue")["undelivered"] == 0, 60, what="the outbox to drain")
        status = station_cli(config, "status")
        assert status["daemon"] == "running" and status["backlog"] == 0 and status["events"] == len(want)
        assert status["problems"] == []  # healthy: exit 0
        assert central.status["test-1"]["state"] == "online"
    finally:
        assert daemon.close() == 0
    wait_for(lambda: central.status["test-1"]["state"] == "offline", 10, what="offline status")
    log = (tmp_path / "daemon.log").read_text()
    assert log.count(" accept gtin=") == want.count(None)
    assert "reason=duplicate" in log


def test_broker_down_mid_run_loses_nothing(tmp_path: Path, broker: Broker, central: Central) -> None:
    first, second = stream(200, seed=1, serial_prefix="F"), stream(500, seed=2, serial_prefix="G")
    want = expected_events(first) + expected_events(second)
    config = write_config(tmp_path, broker.port)
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        daemon.scan(*(raw for raw, _ in first))
        n1 = len(expected_events(first))
        wait_for(
            lambda: station_cli(config, "queue")["undelivered"] == 0 and len(central.unique_events()) == n1,
            60,
            what="the first batch delivered",
        )
        broker.stop()
        daemon.scan(*(raw for raw, _ in second))
        wait_for(lambda: station_cli(config, "status")["events"] == len(want), 60, what="scans recorded offline")
        assert station_cli(config, "queue")["undelivered"] == len(want) - n1
        broker.start()
        wait_for(lambda: len(central.unique_events()) >= len(want), 120, what="the backlog after the restart")
        events = central.unique_events()
        assert [e["seq"] for e in events] == list(range(1, len(want) + 1))
        assert [e["reason"] for e in events] == want
        wait_for(lambda: station_cli(config, "queue")["undelivered"] == 0, 60, what="the outbox to drain")
    finally:
        daemon.close()


def test_sigkill_mid_run_keeps_every_accepted_scan(tmp_path: Path, broker: Broker, central: Central) -> None:
    config = write_config(tmp_path, broker.port)
    log = tmp_path / "daemon.log"
    first = stream(600, seed=3, serial_prefix="K")
    daemon = Daemon(config, log)
    daemon.scan(*(raw for raw, _ in first))
    wait_for(lambda: log.read_text().count("scan seq=") >= 150, 60, what="some scans processed")
    daemon.kill()
    # the broker speaks the will of a station that died without a word
    wait_for(lambda: central.status.get("test-1", {}).get("state") == "offline", 10, what="the will: offline")
    before = log.read_text()
    accepted_before = [int(line.split("seq=")[1].split()[0]) for line in before.splitlines() if " accept gtin=" in line]
    rows = db_rows(tmp_path / "station.db")
    assert accepted_before, "the kill came too early to prove anything"
    ok_seqs = {seq for seq, _, ok, _ in rows if ok}
    assert set(accepted_before) <= ok_seqs  # the green light came after the commit
    n_before = len(rows)

    # The same units again after the restart: refused as duplicates, because the file remembers.
    again = [raw for raw, reason in first[: n_before // 2] if reason is None][:20]
    assert again
    daemon = Daemon(config, log)
    try:
        later = stream(200, seed=4, serial_prefix="L")
        daemon.scan(*("]d2" + raw if not raw.startswith("]") else raw[3:] for raw in again))
        daemon.scan(*(raw for raw, _ in later))
        total = n_before + len(again) + len(expected_events(later))
        wait_for(lambda: len(db_rows(tmp_path / "station.db")) == total, 60, what="all scans after the restart")
        wait_for(lambda: station_cli(config, "queue")["undelivered"] == 0, 90, what="the outbox to drain")
    finally:
        daemon.close()
    rows = db_rows(tmp_path / "station.db")
    assert [seq for seq, *_ in rows] == list(range(1, len(rows) + 1))  # gap-free
    assert [reason for *_, reason in rows[n_before : n_before + len(again)]] == ["duplicate"] * len(again)
    ids_by_seq: dict[int, set[str]] = {}
    for e in central.events:
        ids_by_seq.setdefault(e["seq"], set()).add(e["id"])
    assert all(len(ids) == 1 for ids in ids_by_seq.values())  # never sent twice with different ids
    assert sorted(ids_by_seq) == [seq for seq, *_ in rows]
    assert {next(iter(ids)) for ids in ids_by_seq.values()} == {i for _, i, _, _ in rows}
