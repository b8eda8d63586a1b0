"""Deliveries end to end: the sandbox's PTS package and pending vermes -> the submitter -> Mosquitto ->
a dock station (real process, simulated pins) -> its summary -> exactly what came is notified."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from central import DEPOT, HOSPITAL, KURUM, SUPPLIER, SandboxServer, submitter_config
from chaos import Submitter, karekod
from harness import Broker, Daemon, rows, station_cli, wait_for, write_config
from scans import gtin, sscc

GS = "\x1d"
WAYBILL = "IRS2026000777"
CLOSE = "KAREKOD-CLOSE-7f3a"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    s = SandboxServer(seed=11)
    yield s
    s.close()


def lot_box(g: str, batch: str) -> str:
    return f"]d201{g}17301231{GS}10{batch}"


def its_package() -> dict[str, Any]:
    pallet = sscc(1)
    return {
        "transfer_id": "900001",
        "sender": DEPOT,
        "receiver": HOSPITAL,
        "document": WAYBILL,
        "date": date.today().isoformat(),
        "carriers": [{"sscc": pallet, "kind": "P"}]
        + [{"sscc": sscc(10 + c), "parent": pallet, "kind": "C"} for c in range(3)],
        "lines": [
            {
                "di": gtin(c),
                "batch": f"B{c}",
                "expiry": "2030-12-31",
                "carrier": sscc(10 + c),
                "serials": [f"S{c}-{i:03d}" for i in range(40)],
            }
            for c in range(3)
        ],
    }


def test_a_pts_package_received_by_case_and_by_box_notifies_exactly_what_came(
    tmp_path: Path, broker: Broker, sandbox: SandboxServer
) -> None:
    sandbox.sandbox.seed(
        {
            "its": {
                "users": [{"username": HOSPITAL, "password": "hospital-pass", "gln": HOSPITAL}],
                "packages": [its_package()],
            }
        }
    )
    site = f"""
[sites.pharmacy-dock]
service = "its"
institution = "{HOSPITAL}"
operation = "receipt"
stations = ["pharm-dock"]
"""
    cfg = submitter_config(tmp_path, broker.port, sandbox.url, its_user=HOSPITAL, extra=site)
    (tmp_path / "its-password").write_text("hospital-pass\n")
    (tmp_path / "pharm").mkdir()
    station_cfg = write_config(
        tmp_path / "pharm",
        broker.port,
        "pharm-dock",
        delivery={"require": True, "receive_cases": True, "close_barcode": CLOSE},
    )
    db = tmp_path / "pharm" / "station.db"
    submitter = Submitter(cfg, tmp_path / "submitter.log")
    station = Daemon(station_cfg, tmp_path / "pharm" / "daemon.log")
    ledger = tmp_path / "ledger.db"
    try:
        wait_for(lambda: rows(db, "SELECT document FROM deliveries") == [(WAYBILL,)], 30, what="the delivery")
        station.scan(karekod(gtin(7), "EARLY"))  # before the waybill: no delivery open
        station.scan(f"]C0{WAYBILL}")
        station.scan(f"]C1{GS}00{sscc(10)}")  # case 0: all 40 at once
        station.scan(*(karekod(gtin(1), f"S1-{i:03d}", "B1") for i in range(40)))
        station.scan(*(karekod(gtin(2), f"S2-{i:03d}", "B2") for i in range(38)))  # two of case 2 never came
        station.scan(karekod(gtin(7), "STRANGER"))  # not in the package
        wait_for(
            lambda: rows(ledger, "SELECT count(*) FROM jobs WHERE state = 'held'") == [(118,)],
            30,
            what="118 units held at the central side",
        )
        progress = station_cli(station_cfg, "delivery")[0]
        assert (progress["expected"], progress["received"], progress["missing"], progress["unexpected"]) == (
            120,
            118,
            2,
            1,
        )
        assert [c["missing"] for c in progress["carriers"]] == [0, 0, 2]
        assert not sandbox.effects()  # nothing notified while the delivery is open
        station.scan(CLOSE)
        wait_for(
            lambda: rows(ledger, "SELECT count(*) FROM jobs WHERE state = 'done'") == [(118,)],
            60,
            what="118 units notified",
        )
        counts = sandbox.effect_counts("accept")
        assert len(counts) == 118 and set(counts.values()) == {1}
        assert ("accept", gtin(2), "S2-038") not in counts and ("accept", gtin(7), "STRANGER") not in counts
        assert rows(ledger, "SELECT DISTINCT document, counterpart FROM jobs") == [(WAYBILL, DEPOT)]
        (summary,) = rows(ledger, "SELECT summary FROM deliveries WHERE state = 'closed'")
        body = json.loads(summary[0])
        assert (body["expected"], body["received"], body["missing"], body["unexpected"]) == (120, 118, 2, 1)
        assert {(u["di"], u["serial"]) for u in body["missing_units"]} == {(gtin(2), "S2-038"), (gtin(2), "S2-039")}
        assert [(u["di"], u["serial"]) for u in body["unexpected_units"]] == [(gtin(7), "STRANGER")]
        reasons = rows(db, "SELECT reason, count(*) FROM events GROUP BY reason ORDER BY reason")
        assert reasons == [(None, 118), ("no_delivery", 1), ("not_expected", 1)]
        log = (tmp_path / "pharm" / "daemon.log").read_text()
        assert f"command case {sscc(10)}: Case {sscc(10)}: 40 unit(s) received." in log
        assert "delivery its-" in log and "ended (command): 120 expected, 118 received, 2 missing, 1 refused" in log
        # the results came back to the dock
        wait_for(lambda: rows(db, "SELECT count(*) FROM results WHERE ok = 1") == [(118,)], 30, what="results")
    finally:
        station.close()
        submitter.stop()


def test_a_waybill_of_pending_vermes_through_an_outage_and_a_kill(
    tmp_path: Path, broker: Broker, sandbox: SandboxServer
) -> None:
    vermes = [
        {"bid": f"verme-{i}", "from": SUPPLIER, "to": KURUM, "uno": gtin(20 + i), "sno": f"D{i}", "bno": "IRS-U-1"}
        for i in range(5)
    ]
    vermes.append(
        {
            "bid": "verme-lot",
            "from": SUPPLIER,
            "to": KURUM,
            "uno": gtin(30),
            "lno": "LOT-A",
            "adt": 10,
            "bno": "IRS-U-1",
        }
    )
    vermes.append({"bid": "verme-other", "from": SUPPLIER, "to": KURUM, "uno": gtin(31), "sno": "X1", "bno": "IRS-U-2"})
    sandbox.sandbox.seed(
        {
            "uts": {
                "institutions": [{"kurum": KURUM, "token": "uts-token-hospital"}],
                "units": [
                    {
                        "owner": SUPPLIER,
                        "uno": v["uno"],
                        "sno": v.get("sno"),
                        "lno": v.get("lno"),
                        "adt": v.get("adt", 1),
                        "state": "askida",
                    }
                    for v in vermes
                ],
                "vermes": vermes,
            }
        }
    )
    cfg = submitter_config(tmp_path, broker.port, sandbox.url)
    (tmp_path / "dock").mkdir()
    station_cfg = write_config(
        tmp_path / "dock",
        broker.port,
        "dock-1",
        reader={"profile": "uts", "debounce_seconds": 0.0},  # lot boxes carry identical labels
        delivery={"require": True, "close_barcode": CLOSE},
    )
    db = tmp_path / "dock" / "station.db"
    log = tmp_path / "dock" / "daemon.log"
    submitter = Submitter(cfg, tmp_path / "submitter.log")
    station = Daemon(station_cfg, log)
    ledger = tmp_path / "ledger.db"
    try:
        wait_for(lambda: len(rows(db, "SELECT id FROM deliveries")) == 2, 30, what="both waybills")
        station.scan("IRS-U-1")
        station.scan(*(karekod(gtin(20 + i), f"D{i}") for i in range(3)))
        wait_for(lambda: rows(ledger, "SELECT count(*) FROM jobs WHERE state = 'held'") == [(3,)], 30, what="held")
        broker.stop()  # the network goes; the dock keeps judging against its stored list
        station.scan(*(karekod(gtin(20 + i), f"D{i}") for i in (3, 4)))
        station.scan(karekod(gtin(31), "X1"))  # on the other waybill: not in this delivery
        station.scan(*(lot_box(gtin(30), "LOT-A") for _ in range(4)))
        wait_for(lambda: rows(db, "SELECT count(*) FROM events") == [(10,)], 10, what="scans judged offline")
        station.kill()  # SIGKILL mid-delivery
        broker.start()
        station = Daemon(station_cfg, log)
        station.scan(*(lot_box(gtin(30), "LOT-A") for _ in range(3)))  # the same session, resumed
        wait_for(lambda: rows(db, "SELECT count(*) FROM events") == [(13,)], 10, what="scans after the restart")
        wait_for(lambda: rows(ledger, "SELECT count(*) FROM jobs WHERE state = 'held'") == [(12,)], 30, what="held")
        assert not sandbox.effects()
        station.scan(CLOSE)
        wait_for(lambda: rows(ledger, "SELECT count(*) FROM jobs WHERE state = 'done'") == [(12,)], 60, what="notified")
        almas = [e for e in sandbox.effects() if e["op"] == "alma"]
        assert sorted((e["vbi"], e["adt"]) for e in almas) == [
            ("verme-0", 1),
            ("verme-1", 1),
            ("verme-2", 1),
            ("verme-3", 1),
            ("verme-4", 1),
            ("verme-lot", 7),  # one alma for what came of the lot
        ]
        assert sandbox.sandbox.uts_vermes["verme-lot"]["state"] == "pending"  # 3 still to come or refuse
        assert sandbox.sandbox.uts_vermes["verme-other"]["state"] == "pending"  # the other waybill: untouched
        assert rows(ledger, "SELECT DISTINCT document, counterpart FROM jobs") == [("IRS-U-1", SUPPLIER)]
        (summary,) = rows(ledger, "SELECT summary FROM deliveries WHERE state = 'closed'")
        body = json.loads(summary[0])
        assert (body["expected"], body["received"], body["missing"], body["unexpected"]) == (15, 12, 3, 1)
        assert rows(db, "SELECT reason FROM events WHERE reason IS NOT NULL") == [("not_expected",)]
    finally:
        station.close()
        submitter.stop()
