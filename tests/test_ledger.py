"""The ledger's operator actions, pinned to the literal states a database holds."""

from __future__ import annotations

import json
from pathlib import Path

from central import event_body
from scans import gtin

from station.central.ledger import Ledger
from station.wire import EventMessage


def ledger_with_states(tmp_path: Path, states: list[str]) -> tuple[Ledger, list[str]]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", "test")
    events = []
    for i, _ in enumerate(states):
        text = json.dumps(event_body("dock-1", i + 1, gtin=gtin(i), serial=f"S{i}"))
        events.append((text, EventMessage.from_json(text)))
    ledger.ingest(events, lambda station: None)
    ids = [e.id for _, e in events]
    with ledger.tx() as c:
        for event_id, state in zip(ids, states, strict=True):
            c.execute("UPDATE jobs SET state = ?, attempts = 3, next_at = 99 WHERE event_id = ?", (state, event_id))
    return ledger, ids


def test_retry_requeues_failed_and_refused_and_rechecks_in_doubt(tmp_path: Path) -> None:
    states = ["failed", "refused", "in_doubt", "done", "queued", "in_flight", "cancelled"]
    ledger, ids = ledger_with_states(tmp_path, states)
    assert [ledger.retry(i) for i in ids] == [True, True, True, False, False, False, False]
    after = dict(ledger.query("SELECT event_id, state || ',' || attempts || ',' || next_at FROM jobs"))
    assert [after[i] for i in ids] == [
        "queued,0,0.0",
        "queued,0,0.0",
        "in_doubt,0,0.0",  # its status is asked again before anything is sent
        "done,3,99.0",
        "queued,3,99.0",
        "in_flight,3,99.0",
        "cancelled,3,99.0",
    ]
    assert ledger.retry("no-such-event") is False
