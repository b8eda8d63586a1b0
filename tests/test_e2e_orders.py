"""Orders and recalls end to end: a conveyor daemon, Mosquitto, the submitter and the sandbox İTS."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from central import DEPOT, SandboxServer, its_units, submitter_config
from chaos import Submitter, karekod
from harness import ROOT, Broker, Daemon, rows, station_cli, wait_for, write_config
from scans import check_digit, gtin

from station.central.services import pts
from station.wire import order_id

GS = "\x1d"
END = "KAREKOD-END-ORDER-L9"


def gln(n: int) -> str:
    body = f"868100000{n:03d}"
    return body + str(check_digit(body))


BUYERS = [gln(1), gln(2), gln(3)]


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    s = SandboxServer(seed=21)
    yield s
    s.close()


def submitter_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "station.central.cli", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


SITE = f"""
[sites.depot-line-9]
service = "its"
institution = "{DEPOT}"
operation = "dispatch"
counterpart = "{gln(99)}"
send_pts = true
stations = ["line-9"]
"""


def test_three_orders_three_buyers_each_box_once_to_its_own_and_a_pts_package_each(
    tmp_path: Path, broker: Broker, sandbox: SandboxServer
) -> None:
    units = its_units(60, DEPOT)
    units[33]["state"] = "recalled"  # İTS refuses it (60007): its batch goes on every station's list
    sandbox.sandbox.seed(
        {"its": {"users": [{"username": DEPOT, "password": "depot-pass", "gln": DEPOT}], "units": units}}
    )
    cfg = submitter_config(tmp_path, broker.port, sandbox.url, extra=SITE)
    first = [u for u in units if u["gtin"] in (gtin(0), gtin(1))]  # 2 of each
    # the first order comes from the warehouse system with its lines; the others from their labels only
    out = submitter_cli(
        cfg,
        "order",
        "--station",
        "line-9",
        "--buyer",
        BUYERS[0],
        "--document",
        "SIP-1",
        "--line",
        f"{gtin(0)}=3",
        "--line",
        f"{gtin(1)}=3",
    )
    assert out.returncode == 0, out.stderr
    (tmp_path / "line").mkdir()
    station_cfg = write_config(
        tmp_path / "line",
        broker.port,
        "line-9",
        station={"operation": "dispatch"},
        order={"require": True, "end_barcode": END},
    )
    db = tmp_path / "line" / "station.db"
    submitter = Submitter(cfg, tmp_path / "submitter.log")
    station = Daemon(station_cfg, tmp_path / "line" / "daemon.log")
    try:
        wait_for(lambda: rows(db, "SELECT document FROM orders") == [("SIP-1",)], 30, what="the order")
        plan: list[tuple[str, list[dict[str, Any]]]] = [
            ("]C0SIP-1", first),
            (f"]C1400SIP-2{GS}410{BUYERS[1]}", [u for u in units if u not in first][:20]),
            (f"]C1400SIP-3{GS}410{BUYERS[2]}", [u for u in units if u not in first][20:40]),
        ]
        wrong = units[47]  # a product the warehouse's order does not want (and no other tote takes)
        assert wrong["gtin"] == gtin(7) and all(wrong not in b for _, b in plan)
        for n, (tote, boxes) in enumerate(plan):
            station.scan(tote)
            for i, u in enumerate(boxes):
                station.scan(karekod(u["gtin"], u["sn"], u["bn"]))
                if n == 0 and i == 2:
                    station.scan(karekod(wrong["gtin"], wrong["sn"], wrong["bn"]))
        station.scan(END)
        wait_for(lambda: rows(db, "SELECT count(*) FROM orders WHERE state = 'closed'") == [(3,)], 15, what="3 ends")
        (first_order,) = station_cli(station_cfg, "order", order_id(BUYERS[0], "SIP-1"))
        assert (first_order["sent"], first_order["not_in_order"], first_order["open"]) == (4, 1, False)
        assert [(line["wanted"], line["sent"]) for line in first_order["lines"]] == [(3, 2), (3, 2)]
        dispatched = sum(len(b) for _, b in plan)
        wait_for(
            lambda: (
                rows(tmp_path / "ledger.db", "SELECT count(*) FROM jobs WHERE state IN ('done', 'refused')")
                == [(dispatched,)]
            ),
            60,
            what="every box notified",
        )
        effects = [e for e in sandbox.effects() if e["op"] == "dispatch"]
        by_unit = {(e["gtin"], e["sn"]): e["togln"] for e in effects}
        assert len(effects) == len(by_unit) == dispatched - 1  # each once; the recalled one refused
        for (_, boxes), buyer in zip(plan, BUYERS, strict=True):
            for u in boxes:
                if u is not units[33]:
                    assert by_unit[(u["gtin"], u["sn"])] == buyer
        assert (wrong["gtin"], wrong["sn"]) not in by_unit
        assert rows(db, "SELECT reason FROM events WHERE reason IS NOT NULL") == [("not_in_order",)]
        # each buyer's PTS package lists exactly its boxes
        wait_for(lambda: len([e for e in sandbox.effects() if e["op"] == "pts_send"]) == 3, 30, what="3 packages")
        for (_, boxes), buyer in zip(plan, BUYERS, strict=True):
            (package,) = [p for p in sandbox.sandbox.pts_packages.values() if p["to"] == buyer]
            read = pts.read_package(base64.b64decode(package["file"]))
            got = {(line.di, s) for line in read.lines for s in line.serials}
            assert got == {(u["gtin"], u["sn"]) for u in boxes if u is not units[33]}
            assert read.sender == DEPOT and read.receiver == buyer
        # the refusal fed the recall list, and the station has it
        listed = [json.loads(line) for line in submitter_cli(cfg, "recall", "list", "--json").stdout.splitlines()]
        assert [(r["gtin"], r["batch"], r["source"]) for r in listed] == [
            (units[33]["gtin"], units[33]["bn"], "İTS 60007")
        ]
        wait_for(lambda: len(rows(db, "SELECT * FROM recall_list")) == 1, 15, what="the recall list at the station")
    finally:
        station.close()
        submitter.stop()


def test_a_recall_reaches_a_station_that_was_away_and_holds_while_the_broker_is_down(
    tmp_path: Path, broker: Broker, sandbox: SandboxServer
) -> None:
    cfg = submitter_config(tmp_path, broker.port, sandbox.url)
    (tmp_path / "dock").mkdir()
    station_cfg = write_config(tmp_path / "dock", broker.port, "dock-1")
    db = tmp_path / "dock" / "station.db"
    log = tmp_path / "dock" / "daemon.log"
    submitter = Submitter(cfg, tmp_path / "submitter.log")
    station = Daemon(station_cfg, log)
    try:
        station.scan(karekod(gtin(1), "R0", "B7"))
        wait_for(lambda: rows(db, "SELECT count(*) FROM events WHERE ok = 1") == [(1,)], 10, what="a first scan")
        station.close()  # the station is away
        out = submitter_cli(cfg, "recall", "add", gtin(1), "--batch", "B7", "--note", "Genelge 2026/31")
        assert out.returncode == 0 and "added" in out.stdout, out.stderr
        station = Daemon(station_cfg, log)
        back = time.monotonic()
        wait_for(lambda: len(rows(db, "SELECT * FROM recall_list")) == 1, 5, what="the recall within 5 s")
        assert time.monotonic() - back < 5
        station.scan(karekod(gtin(1), "R1", "B7"))
        wait_for(lambda: rows(db, "SELECT reason FROM events WHERE seq = 2") == [("recalled",)], 10, what="recalled")
        broker.stop()  # offline: the list it holds still rejects
        station.scan(karekod(gtin(1), "R2", "B7"), karekod(gtin(1), "R3", "B8"))
        wait_for(lambda: len(rows(db, "SELECT seq FROM events")) == 4, 10, what="offline scans")
        assert rows(db, "SELECT serial, reason FROM events WHERE seq > 2 ORDER BY seq") == [
            ("R2", "recalled"),
            ("R3", None),
        ]
        assert "Genelge 2026/31" in rows(db, "SELECT message FROM events WHERE seq = 3")[0][0]
        broker.start()
    finally:
        station.close()
        submitter.stop()
