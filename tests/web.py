"""Helpers for the console tests: a ledger with units in every state, and the console served for real."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests
from central import event_body, submitter_config
from harness import free_port, wait_for

from station.central.config import SubmitterConfig, load
from station.central.ledger import Ledger, Outcome
from station.central.web import serve
from station.wire import EventMessage, State, StationStatus

PASSWORD_FOR_TESTS = "correct horse battery"
WEB = """
[web]
refresh_seconds = 1
stale_after_seconds = 30
language = "en"
"""


def console_config(tmp: Path, mqtt_port: int = 1, extra: str = "", ledger: str | None = None) -> SubmitterConfig:
    return load(submitter_config(tmp, mqtt_port, "http://127.0.0.1:9", ledger, extra=WEB + extra))


def ingest(ledger: Ledger, config: SubmitterConfig, station: str, seqs: range, **fields: Any) -> list[str]:
    events = [EventMessage.from_dict(event_body(station, seq, serial=f"S{seq}", **fields)) for seq in seqs]
    return ledger.ingest([(json.dumps(e.as_dict()), e) for e in events], config.site_of)


def refuse(ledger: Ledger, service: str, code: str, message: str, n: int) -> list[str]:
    """Claim ``n`` queued units of ``service`` and record the service's refusal of each."""
    claimed = ledger.claim(service, None, n, lambda jobs: SimpleNamespace(path="/test", body={}))
    assert claimed is not None
    request_id, jobs = claimed
    ledger.answer(request_id, 200, "{}", [Outcome(j.event_id, False, code, message) for j in jobs])
    return [j.event_id for j in jobs]


def status(ledger: Ledger, station: str, state: State = State.ONLINE, **fields: Any) -> None:
    ledger.note_station(StationStatus(state=state, station=station, **fields))


class ConsoleServer:
    """``station.central.web.serve`` on a free port, on a thread, until :meth:`close`."""

    def __init__(self, config: SubmitterConfig, ledger: Ledger) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = replace(config, web=replace(config.web, port=self.port))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=serve, args=(self.config, ledger, self.stop), daemon=True)
        self.thread.start()

        def up() -> bool:
            try:
                return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(up, 20, what="the console to serve")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
