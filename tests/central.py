"""Helpers for submitter tests: the sandbox on a free port, seeds, configuration files."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from harness import wait_for
from scans import gtin

from station.central.config import SubmitterConfig
from station.central.ingest import Central
from station.central.ledger import Ledger
from station.central.notifier import Notifier
from station.central.services.sandbox import Sandbox, make_server

DEPOT = "8680000000001"  # İTS GLN of the depot running the conveyor (dispatch)
PHARMACY = "8680000000009"  # the buyer
HOSPITAL = "8680000000005"  # İTS GLN of a hospital receiving medicine
KURUM = "1000001"  # ÜTS institution of the hospital dock
SUPPLIER = "2000002"  # ÜTS institution of the device supplier


class SandboxServer:
    def __init__(self, **kw: Any) -> None:
        self.sandbox = Sandbox(**kw)
        self.server = make_server(self.sandbox)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def effects(self) -> list[dict[str, Any]]:
        return list(requests.get(f"{self.url}/_sandbox/effects", timeout=5).json()["effects"])

    def effect_counts(self, op: str | None = None) -> Counter[tuple[str, str, str]]:
        """How many times each (operation, product, serial) took effect: exactly once means all 1."""
        return Counter(
            (e["op"], e.get("gtin") or e.get("uno"), e.get("sn") or e.get("sno"))
            for e in self.effects()
            if op is None or e["op"] == op
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def its_units(n: int, owner: str, prefix: str = "U", **extra: Any) -> list[dict[str, Any]]:
    return [
        {"gtin": gtin(i % 40), "sn": f"{prefix}{i:06d}", "bn": f"B{i % 5}", "xd": "2030-12-31", "owner": owner, **extra}
        for i in range(n)
    ]


def seed(sandbox: Sandbox, depot_units: int = 0, hospital_vermes: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {
        "its": {
            "users": [
                {"username": DEPOT, "password": "depot-pass", "gln": DEPOT},
                {"username": HOSPITAL, "password": "hospital-pass", "gln": HOSPITAL},
            ],
            "units": its_units(depot_units, DEPOT),
        },
        "uts": {
            "institutions": [
                {"kurum": KURUM, "token": "uts-token-hospital"},
                {"kurum": SUPPLIER, "token": "uts-token-supplier"},
            ],
            "vermes": [
                {"from": SUPPLIER, "to": KURUM, "uno": gtin(i % 40), "sno": f"D{i:06d}", "bno": "IRS-1"}
                for i in range(hospital_vermes)
            ],
        },
    }
    sandbox.seed(data)
    return data


def submitter_config(
    tmp: Path,
    mqtt_port: int,
    sandbox_url: str,
    ledger: str | None = None,
    its_user: str = DEPOT,
    extra: str = "",
    sub_id: str = "central-test",
    shared: bool = False,
    name: str = "submitter.toml",
) -> Path:
    (tmp / "uts-token").write_text("uts-token-hospital\n")
    (tmp / "its-password").write_text("depot-pass\n")
    for secret in ("uts-token", "its-password"):
        (tmp / secret).chmod(0o600)
    path = tmp / name
    path.write_text(f"""
[submitter]
id = "{sub_id}"
environment = "test"
ledger = {json.dumps(ledger or f"sqlite:///{tmp / 'ledger.db'}")}
timeout_seconds = 3

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
shared_subscription = {"true" if shared else "false"}

[uts]
concurrency = 16
[uts.test]
base_url = "{sandbox_url}"
token_file = "{tmp / "uts-token"}"

[its]
batch_size = 50
batch_wait_ms = 150
[its.test]
base_url = "{sandbox_url}"
username = "{its_user}"
password_file = "{tmp / "its-password"}"

[sites.depot-line]
service = "its"
institution = "{DEPOT}"
operation = "dispatch"
counterpart = "{PHARMACY}"
stations = ["line-1"]

[sites.hospital-dock]
service = "uts"
institution = "{KURUM}"
operation = "receipt"
stations = ["dock-1"]
{extra}
""")
    return path


def event_body(station: str = "line-1", seq: int = 1, **fields: Any) -> dict[str, Any]:
    """An accepted event's JSON body as a station sends it; ``fields`` override, ``...`` removes one."""
    body = {
        "schema": "karekod.event/1",
        "id": str(uuid.uuid4()),
        "seq": seq,
        "station": station,
        "site": "",
        "operation": "dispatch" if station.startswith("line") else "receipt",  # as the sites below say
        "at": "2026-01-01T10:00:00.000Z",
        "source": "test",
        "raw": "",
        "raw_hex": "",
        "ok": True,
        "gtin": gtin(1),
        "serial": "S1",
        "batch": "B1",
        "expiry": "2030-12-31",
        **fields,
    }
    return {k: v for k, v in body.items() if v is not ...}


def start_ingest(config: SubmitterConfig) -> tuple[Central, Ledger, Callable[[], None]]:
    """The submitter's real MQTT ingest on its own thread; returns it, its ledger and the stop."""
    ledger = Ledger(config.ledger, config.id)
    central = Central(config, ledger)
    stop = threading.Event()
    runner = threading.Thread(target=central.run, args=(stop,), daemon=True)
    central.start()
    runner.start()

    def close() -> None:
        stop.set()
        runner.join(10)
        central.stop()

    return central, ledger, close


def run_until_final(notifier: Notifier, ledger: Ledger, n: int, timeout: float = 60) -> None:
    stop = threading.Event()
    t = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    t.start()
    try:
        wait_for(
            lambda: ledger.query("SELECT count(*) FROM jobs WHERE state IN ('done', 'refused', 'failed')")[0][0] >= n,
            timeout,
            interval=0.1,
            what=f"{n} units notified",
        )
    finally:
        stop.set()
        t.join(30)
