"""Results are delivered like events: kept by the central side until the station acks them.

The outside probe lost 3.2 % of results: published while a station was away, with no persistent
session to hold them. Now a result stays "sent" in the ledger until ``result_acks`` names it,
goes again when the station comes back online (or after a timeout), and a result that arrives
twice is stored and signalled once.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from central import start_ingest, submitter_config
from harness import Broker, wait_for
from scans import GS, gtin

from station.central import notifier as notifier_module
from station.central.config import SubmitterConfig
from station.central.config import load as load_submitter
from station.central.ledger import Ledger, Outcome, Published
from station.central.notifier import Notifier
from station.central.services.http import Call
from station.edge.config import MqttConfig
from station.edge.events import Event, Scan
from station.edge.health import Health
from station.edge.store import Store
from station.edge.uplink import MqttUplink
from station.gs1.reader import Profile
from station.gs1.verdict import Policy, judge
from station.wire import EventMessage


def published(ledger: Ledger, event_id: str) -> int:
    return int(ledger.query("SELECT published FROM jobs WHERE event_id = ?", (event_id,))[0][0])


def dispatched(store: Store, ledger: Ledger, config: SubmitterConfig, *serials: str) -> tuple[list[Event], str]:
    """Boxes the station accepted for dispatch, in the ledger and sent to İTS in one call (its id)."""
    events = []
    for serial in serials:
        raw = f"]d201{gtin(2)}21{serial}{GS}1730123110B".encode()
        verdict = judge(raw, Policy(Profile.ITS), date(2026, 1, 1))
        event = store.record(Scan(raw, at=time.time()), verdict, "line-1", "", "dispatch")
        payload = store.payload(event.seq)
        ledger.ingest([(payload.decode(), EventMessage.from_json(payload))], config.site_of)
        events.append(event)
    claimed = ledger.claim("its", "depot-line", 10, lambda jobs: Call("/wholesale/app/dispatch/", {}))
    assert claimed is not None
    return events, claimed[0]


def station_uplink(broker: Broker, db: Path, got: list[Any]) -> MqttUplink:
    return MqttUplink(
        MqttConfig(host="127.0.0.1", port=broker.port, status_interval_seconds=1, wait_for_central=False),
        "line-1",
        str(db),
        Health("line-1").status,
        got.append,
    )


def test_a_result_published_while_the_station_is_away_reaches_it_once(tmp_path: Path, broker: Broker) -> None:
    config = load_submitter(submitter_config(tmp_path, broker.port, "http://127.0.0.1:1"))
    central, ledger, close = start_ingest(config)
    notifier = Notifier(config, ledger, central.publish_results)

    # the station accepted a box, the ledger has it, and İTS refused it later (recalled)
    db = tmp_path / "station.db"
    store = Store(db)
    (event,), request = dispatched(store, ledger, config, "R1")
    ledger.answer(request, 200, "{}", [Outcome(event.id, False, "60007", "Ürün geri çekilmiş.")])

    got: list[Any] = []
    uplink = station_uplink(broker, db, got)
    try:
        wait_for(central.connected.is_set, 10, what="the submitter to connect")
        notifier.publish_results()  # the station is away: the broker takes it, nobody receives it
        wait_for(lambda: published(ledger, event.id) == Published.SENT, 5, what="the result to be sent")
        time.sleep(0.3)
        notifier.publish_results()  # not acked, but not due again yet: nothing more is sent
        assert published(ledger, event.id) == Published.SENT

        uplink.start()  # the station comes back; its status says online, and the result goes again
        deadline = time.monotonic() + 15
        while published(ledger, event.id) != Published.ACKED and time.monotonic() < deadline:
            notifier.publish_results()
            time.sleep(0.2)
        assert published(ledger, event.id) == Published.ACKED
        assert [(seq, r.event_id, r.code) for seq, r in got] == [(event.seq, event.id, "60007")]

        # sent again (say the ack was lost): stored and shown once, acked again
        with ledger.tx() as c:
            c.execute(
                "UPDATE jobs SET published = ?, result_sent_at = 0 WHERE event_id = ?", (Published.SENT, event.id)
            )
        notifier.publish_results()
        wait_for(lambda: published(ledger, event.id) == Published.ACKED, 10, what="the second ack")
        assert len(got) == 1
        assert store.events(5, "refused_later")[0]["service_code"] == "60007"
    finally:
        uplink.stop()
        close()
        store.close()


def sent_at(ledger: Ledger, event_id: str) -> float:
    return float(ledger.query("SELECT result_sent_at FROM jobs WHERE event_id = ?", (event_id,))[0][0])


def test_a_result_the_broker_did_not_take_goes_again_within_seconds(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taken results are marked sent before they go; the ones the broker did not take (the
    submitter cut off) are due again ``UNSENT_RETRY_SECONDS`` later, not a whole resend period."""
    monkeypatch.setattr(notifier_module, "UNSENT_RETRY_SECONDS", 0.5)
    config = load_submitter(submitter_config(tmp_path, broker.port, "http://127.0.0.1:1"))
    central, ledger, close = start_ingest(config)
    notifier = Notifier(config, ledger, central.publish_results)
    db = tmp_path / "station.db"
    store = Store(db)
    events, request = dispatched(store, ledger, config, "U1", "U2")
    ledger.answer(request, 200, "{}", [Outcome(e.id, True, "00000", "") for e in events])
    got: list[Any] = []
    uplink = station_uplink(broker, db, got)
    try:
        # one taken by the broker, one not: only the one not taken comes back early
        partial = Notifier(config, ledger, lambda jobs: [events[0].id])
        before = time.time()
        partial.publish_results()
        assert sent_at(ledger, events[0].id) >= before
        early = before - notifier_module.RESULT_RESEND_SECONDS + 0.5
        assert early - 1 < sent_at(ledger, events[1].id) < early + 1
        time.sleep(0.6)
        assert [j.event_id for j in ledger.take_results(notifier_module.RESULT_RESEND_SECONDS)] == [events[1].id]
        with ledger.tx() as c:
            c.execute("UPDATE jobs SET published = 0")

        # the broker goes away: both are taken, neither sent, both due again half a second on
        wait_for(central.connected.is_set, 10, what="the submitter to connect")
        broker.stop()
        wait_for(lambda: not central.connected.is_set(), 10, what="the submitter to see the broker gone")
        notifier.publish_results()
        assert all(published(ledger, e.id) == Published.SENT for e in events)
        assert all(sent_at(ledger, e.id) < time.time() - 50 for e in events)
        broker.start()
        uplink.start()
        wait_for(central.connected.is_set, 15, what="the submitter to reconnect")
        deadline = time.monotonic() + 15
        while any(published(ledger, e.id) != Published.ACKED for e in events) and time.monotonic() < deadline:
            notifier.publish_results()
            time.sleep(0.2)
        assert sorted(r.event_id for _, r in got) == sorted(e.id for e in events)
    finally:
        uplink.stop()
        close()
        store.close()
