"""The dock's delivery session in-process: real station file, MockFactory pins, every signal."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin
from harness import Signals
from scans import gtin, sscc

from station.edge.config import DeliveryConfig, FeedbackConfig, ReaderConfig, StationConfig
from station.edge.dock import Dock
from station.edge.events import Scan
from station.edge.outputs.feedback import GpioFeedback, Signal
from station.edge.pipeline import Station
from station.edge.store import Store
from station.gs1.reader import Profile
from station.gs1.reasons import Reason
from station.wire import (
    Carrier,
    ClosedBy,
    DeliveryLine,
    DeliveryMessage,
    DeliveryState,
    Service,
    SummaryMessage,
)

GS = "\x1d"
TODAY = date(2026, 11, 23)
WAYBILL = "IRS2026000123"
CLOSE = "KAREKOD-CLOSE-DOCK-A"


def karekod(g: str, serial: str, batch: str = "B1") -> bytes:
    return f"]d201{g}21{serial}{GS}1730123110{batch}".encode()


def lot_box(g: str, batch: str) -> bytes:
    return f"]d201{g}17301231{GS}10{batch}".encode()


def delivery(version: int = 1, cases: int = 3, per_case: int = 40) -> DeliveryMessage:
    pallet = sscc(1)
    return DeliveryMessage(
        id="its-0123456789abcdef",
        version=version,
        state=DeliveryState.OPEN,
        service=Service.ITS,
        document=WAYBILL,
        sender="8680000000001",
        carriers=(
            Carrier(sscc=pallet, kind="P"),
            *tuple(Carrier(sscc=sscc(10 + c), parent=pallet, kind="C") for c in range(cases)),
        ),
        lines=(
            *tuple(
                DeliveryLine(
                    di=gtin(c),
                    batch=f"B{c}",
                    expiry="2030-12-31",
                    carrier=sscc(10 + c),
                    serials=tuple(f"S{c}-{i:03d}" for i in range(per_case)),
                )
                for c in range(cases)
            ),
            DeliveryLine(di=gtin(9), batch="LOT-A", quantity=10),
        ),
    )


class Dockside:
    def __init__(self, tmp_path: Path, **config: Any) -> None:
        self.path = tmp_path / "station.db"
        self.config = DeliveryConfig(**{"close_barcode": CLOSE, **config})
        self.lights = Signals(GpioFeedback(FeedbackConfig(), MockFactory(pin_class=MockPWMPin)))
        self.mono = 100.0
        self.open()

    def open(self) -> None:
        self.store = Store(self.path)
        self.dock = Dock(self.store, self.config, "dock-a")
        self.station = Station(
            StationConfig("dock-a", "dock", "receipt"),
            ReaderConfig(profile=Profile.UTS),
            self.store,
            self.lights,  # type: ignore[arg-type]
            dock=self.dock,
        )

    def restart(self) -> None:
        self.store.close()
        self.open()

    def scan(self, raw: bytes | str) -> Any:
        self.mono += 5
        raw = raw.encode() if isinstance(raw, str) else raw
        return self.station.handle(Scan(raw, "test", time.time(), self.mono), TODAY)

    def close(self) -> None:
        self.lights.close()
        self.store.close()


@pytest.fixture
def dock(tmp_path: Path) -> Any:
    d = Dockside(tmp_path, receive_cases=True, require=True)
    d.store.store_delivery(delivery())
    d.dock.changed()
    yield d
    d.close()


def test_a_delivery_box_by_box_then_by_case_with_every_signal(dock: Dockside) -> None:
    out = dock.scan(karekod(gtin(0), "S0-000", "B0"))
    assert out.verdict.reason is Reason.NO_DELIVERY and dock.lights.shown[-1] is Signal.NO_DELIVERY
    out = dock.scan(f"]C0{WAYBILL}\r")  # the waybill's Code 128, with its symbology identifier and suffix
    assert out.command is not None and dock.lights.shown[-1] is Signal.DELIVERY_OPEN
    assert dock.store.session() is not None
    for i in range(38):  # case 0 box by box, two missing
        assert dock.scan(karekod(gtin(0), f"S0-{i:03d}", "B0")).verdict.ok
    assert dock.lights.shown[-1] is Signal.ACCEPT
    out = dock.scan(karekod(gtin(0), "S0-005", "B0"))
    assert out.verdict.reason is Reason.DUPLICATE and dock.lights.shown[-1] is Signal.DUPLICATE
    out = dock.scan(karekod(gtin(7), "STRANGER"))
    assert out.verdict.reason is Reason.NOT_EXPECTED and dock.lights.shown[-1] is Signal.NOT_EXPECTED
    out = dock.scan(f"]C1{GS}00{sscc(11)}")  # case 1 whole, by its SSCC label
    assert dock.lights.shown[-1] is Signal.CASE_RECEIVED and len(out.events) == 40
    assert all(e.verdict.ok for e in out.events)
    again = dock.scan(f"00{sscc(11)}")
    assert again.command is not None and dock.lights.shown[-1] is Signal.DUPLICATE and not again.events
    for i in range(40):
        dock.scan(karekod(gtin(2), f"S2-{i:03d}", "B2"))
    for _ in range(7):  # 7 of the lot of 10
        assert dock.scan(lot_box(gtin(9), "LOT-A")).verdict.ok
    progress = dock.store.progress("its-0123456789abcdef")
    assert (progress["expected"], progress["received"], progress["missing"], progress["unexpected"]) == (
        130,
        125,
        5,
        1,
    )
    out = dock.scan(CLOSE)
    assert dock.lights.shown[-1] is Signal.DELIVERY_CLOSED
    summary = out.summary
    assert isinstance(summary, SummaryMessage) and summary.closed_by is ClosedBy.COMMAND
    assert (summary.expected, summary.received, summary.missing, summary.unexpected) == (130, 125, 5, 1)
    missing = {(u.di, u.serial, u.batch, u.quantity) for u in summary.missing_units}
    assert missing == {
        (gtin(0), "S0-038", "B0", 1),
        (gtin(0), "S0-039", "B0", 1),
        (gtin(9), None, "LOT-A", 3),
    }
    assert [(u.di, u.serial) for u in summary.unexpected_units] == [(gtin(7), "STRANGER")]
    # every received unit's event names the delivery; the case's units name their case
    events = [json.loads(dock.store.payload(s)) for (s,) in dock.store._query("SELECT seq FROM events WHERE ok = 1")]
    assert len(events) == 125 and {e["delivery"] for e in events} == {"its-0123456789abcdef"}
    assert sum(e["carrier"] == sscc(11) for e in events) == 40
    # closed: the waybill no longer opens it, and a box is refused as having no delivery
    assert dock.scan(f"]C0{WAYBILL}").command is None
    assert dock.scan(karekod(gtin(0), "S0-039", "B0")).verdict.reason is Reason.NO_DELIVERY


def test_an_open_delivery_survives_a_restart_exactly(dock: Dockside) -> None:
    dock.scan(WAYBILL)
    for i in range(10):
        dock.scan(karekod(gtin(0), f"S0-{i:03d}", "B0"))
    dock.restart()  # the same file, a new process
    assert dock.store.session() is not None
    assert dock.scan(karekod(gtin(0), "S0-003", "B0")).verdict.reason is Reason.DUPLICATE
    assert dock.scan(karekod(gtin(0), "S0-010", "B0")).verdict.ok
    summary = dock.scan(CLOSE).summary
    assert summary is not None and summary.received == 11


def test_a_new_version_keeps_what_was_received_and_another_waybill_closes_the_first(dock: Dockside) -> None:
    dock.scan(WAYBILL)
    dock.scan(karekod(gtin(0), "S0-000", "B0"))
    assert dock.store.store_delivery(delivery(version=2, cases=1, per_case=5))
    assert not dock.store.store_delivery(delivery(version=2))  # the same version again: nothing to do
    dock.dock.changed()
    progress = dock.store.progress("its-0123456789abcdef")
    assert (progress["expected"], progress["received"]) == (15, 1)
    other = DeliveryMessage(
        id="uts-1",
        version=1,
        state=DeliveryState.OPEN,
        service=Service.UTS,
        document="IRS-U-9",
        sender="2000002",
        lines=(DeliveryLine(di=gtin(30), serials=("D1",), ref="bid-1"),),
    )
    dock.store.store_delivery(other)
    dock.dock.changed()
    out = dock.scan("IRS-U-9")
    assert out.summary is not None and out.summary.closed_by is ClosedBy.NEXT and out.summary.received == 1
    assert dock.store.session() is not None and dock.store.session()[0] == "uts-1"  # type: ignore[index]


def test_an_idle_delivery_closes_itself(tmp_path: Path) -> None:
    d = Dockside(tmp_path, idle_close_minutes=1)
    try:
        d.store.store_delivery(delivery())
        d.dock.changed()
        d.scan(WAYBILL)
        assert d.station.tick(time.time() + 30) is None
        summary = d.station.tick(time.time() + 61)
        assert summary is not None and summary.closed_by is ClosedBy.IDLE
        assert d.lights.shown[-1] is Signal.DELIVERY_CLOSED and d.store.session() is None
        # not required here: a box with no delivery open is judged as before
        assert d.scan(karekod(gtin(0), "S0-000", "B0")).verdict.ok
    finally:
        d.close()


def test_a_summary_waits_until_its_events_are_delivered(dock: Dockside) -> None:
    dock.scan(WAYBILL)
    out = dock.scan(karekod(gtin(0), "S0-000", "B0"))
    dock.scan(CLOSE)
    assert dock.store.summaries_to_send() == []  # its unit's event is not acked yet
    assert out.event is not None
    dock.store.mark_delivered([out.event.id])
    ((summary_id, payload),) = dock.store.summaries_to_send()
    assert SummaryMessage.from_json(payload).id == summary_id
    dock.store.mark_delivered([summary_id])
    assert dock.store.summaries_to_send() == []


def test_a_case_of_an_unopened_delivery_opens_it_and_without_receive_cases_never_receives(tmp_path: Path) -> None:
    d = Dockside(tmp_path)
    try:
        d.store.store_delivery(delivery())
        d.dock.changed()
        assert d.scan(sscc(12)).command is not None and d.lights.shown[-1] is Signal.DELIVERY_OPEN
        out = d.scan(sscc(12))
        assert not out.events and d.lights.shown[-1] is Signal.DELIVERY_OPEN
        unknown = d.scan(f"]C1{GS}00{sscc(999)}")
        assert unknown.command is None and unknown.verdict.reason is Reason.MISSING_FIELD  # an SSCC label, named
    finally:
        d.close()


def test_a_closed_delivery_is_purged_with_the_delivered_events(dock: Dockside) -> None:
    dock.scan(WAYBILL)
    out = dock.scan(karekod(gtin(0), "S0-000", "B0"))
    dock.scan(CLOSE)
    assert out.event is not None
    dock.store.purge(730, 1)
    assert dock.store.delivery_state("its-0123456789abcdef") == "closed"  # not yet past keeping
    ((summary_id, _),) = [(i, p) for i, p in dock.store._query("SELECT id, payload FROM summaries")]
    dock.store.mark_delivered([out.event.id, summary_id])
    dock.store._query("UPDATE deliveries SET stored_at = 0")
    dock.store._query("UPDATE events SET delivered_at = '2000-01-01T00:00:00Z'")
    dock.store.purge(730, 1)
    assert dock.store.delivery_state("its-0123456789abcdef") is None
    assert dock.store._query("SELECT count(*) FROM delivery_units")[0][0] == 0


def test_cancel_last_takes_back_the_last_box_and_its_count(dock: Dockside) -> None:
    from station.edge import commands

    dock.scan(WAYBILL)
    first = dock.scan(karekod(gtin(0), "S0-000", "B0"))
    dock.scan(karekod(gtin(0), "S0-001", "B0"))
    out = dock.scan(commands.payload("dock-a", commands.Command.CANCEL_LAST))
    assert out.event is not None and out.verdict.message == "Event 2 cancelled."  # the waybill is no event
    body = json.loads(dock.store.payload(out.event.seq))
    assert (body["reason"], body["serial"], body["delivery"]) == ("cancelled", "S0-001", "its-0123456789abcdef")
    assert dock.store.progress("its-0123456789abcdef")["received"] == 1
    again = dock.scan(commands.payload("dock-a", commands.Command.CANCEL_LAST))  # the one before it
    assert again.verdict.message == "Event 1 cancelled." and first.event is not None
    assert json.loads(dock.store.payload(again.event.seq))["cancels"] == first.event.id  # type: ignore[union-attr]
    # the boxes can be scanned again: they are not duplicates any more
    assert dock.scan(karekod(gtin(0), "S0-001", "B0")).verdict.ok
    assert dock.store.progress("its-0123456789abcdef")["received"] == 1
