"""Orders on a conveyor, the photo-eye and late refusals, in-process: real station file,
MockFactory pins for the lights, the reject arm and the eye, a belt simulated at 15 boxes a second."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin
from harness import Signals
from scans import check_digit, gtin

from station.edge.config import FeedbackConfig, OrderConfig, ReaderConfig, StationConfig
from station.edge.events import Scan
from station.edge.orders import Orders, label_order_id
from station.edge.outputs.feedback import GpioFeedback, Signal
from station.edge.outputs.reject import RejectArm
from station.edge.pipeline import Station
from station.edge.presence import PhotoEye, Presence
from station.edge.store import Store
from station.edge.uplink import Result
from station.gs1.reasons import Reason
from station.wire import DeliveryState, OrderLine, OrderMessage, ResultMessage, Service, SummaryKind

GS = "\x1d"
TODAY = date(2026, 11, 23)
END = "KAREKOD-END-ORDER-L2"


def gln(n: int) -> str:
    body = f"868000000{n:03d}"
    return body + str(check_digit(body))


def label(document: str, buyer: str) -> str:
    """A tote's GS1-128 order label: (400) the order number, (410) the buyer's GLN."""
    return f"]C1400{document}{GS}410{buyer}"


def box(g: str, serial: str) -> bytes:
    return f"]d201{g}21{serial}{GS}1730123110B1".encode()


class Line:
    """A conveyor station: scanner, photo-eye and reject arm on one mock pin factory."""

    def __init__(self, tmp_path: Path, require: bool = True, eye: bool = False, late_pin: int = -1) -> None:
        self.factory = MockFactory(pin_class=MockPWMPin)
        self.store = Store(tmp_path / "station.db")
        self.signals = Signals(GpioFeedback(FeedbackConfig(late_pin=late_pin, late_seconds=0.5), self.factory))
        self.arm = RejectArm(24, 0.5, 0.03, "pulse", pin_factory=self.factory)
        self.orders = Orders(self.store, OrderConfig(require=require, end_barcode=END), "line-2")
        self.presence = Presence(0.05) if eye else None
        self.eye = PhotoEye(5, self.presence, time.monotonic, pin_factory=self.factory) if self.presence else None
        self.station = Station(
            StationConfig("line-2", "depot", "dispatch"),
            ReaderConfig(debounce_seconds=0.0),
            self.store,
            self.signals,  # type: ignore[arg-type]
            reject_arm=self.arm,
            orders=self.orders,
            presence=self.presence,
        )

    def scan(self, raw: bytes | str) -> Any:
        raw = raw.encode() if isinstance(raw, str) else raw
        return self.station.handle(Scan(raw, "belt", time.time(), time.monotonic()), TODAY)

    def close(self) -> None:
        if self.eye is not None:
            self.eye.close()
        self.arm.close()
        self.signals.close()
        self.store.close()


@pytest.fixture
def line(tmp_path: Path) -> Any:
    ln = Line(tmp_path)
    yield ln
    ln.close()


def payloads(store: Store) -> list[dict[str, Any]]:
    return [json.loads(p) for (p,) in store._query("SELECT payload FROM events ORDER BY seq")]


def test_orders_by_label_and_by_list_each_box_to_its_own_buyer(line: Line) -> None:
    assert line.scan(box(gtin(1), "S0")).verdict.reason is Reason.NO_ORDER
    assert line.signals.shown[-1] is Signal.NO_ORDER
    # an order the warehouse system sent, with lines: 2 of gtin 1, 1 of gtin 2
    listed = OrderMessage(
        id="ord-wms-1",
        version=1,
        state=DeliveryState.OPEN,
        buyer=gln(1),
        document="SIP-1",
        lines=(OrderLine(gtin=gtin(1), quantity=2), OrderLine(gtin=gtin(2), quantity=1)),
    )
    assert line.store.store_order(listed)
    line.orders.changed()
    out = line.scan("]C0SIP-1")  # its tote label names the document only
    assert out.summary is None and line.signals.shown[-1] is Signal.ORDER_OPEN
    assert [line.scan(box(gtin(1), f"A{i}")).verdict.ok for i in range(2)] == [True, True]
    third = line.scan(box(gtin(1), "A2"))
    assert third.verdict.reason is Reason.NOT_IN_ORDER and "one too many" in third.verdict.message
    wrong = line.scan(box(gtin(3), "W1"))
    assert wrong.verdict.reason is Reason.NOT_IN_ORDER and line.signals.shown[-1] is Signal.NOT_IN_ORDER
    # the next tote's label (a GS1 label: order number and buyer) ends the first and opens its own
    out = line.scan(label("SIP-2", gln(2)))
    assert out.summary is not None and out.summary.kind is SummaryKind.ORDER
    s = out.summary
    assert (s.delivery, s.expected, s.received, s.missing, s.unexpected) == ("ord-wms-1", 3, 2, 1, 2)
    assert [(u.di, u.quantity) for u in s.missing_units] == [(gtin(2), 1)]
    assert line.scan(box(gtin(3), "B1")).verdict.ok  # no lines: any box goes
    out = line.scan(END)
    assert out.summary is not None and out.summary.delivery == label_order_id(gln(2), "SIP-2")
    assert line.signals.shown[-1] is Signal.ORDER_END
    sent = [(e["serial"], e["buyer"], e["document"]) for e in payloads(line.store) if e["ok"]]
    assert sent == [("A0", gln(1), "SIP-1"), ("A1", gln(1), "SIP-1"), ("B1", gln(2), "SIP-2")]
    time.sleep(0.6)
    assert line.arm.fired >= 1  # the refused boxes were pushed off (overlapping pulses merge)


def test_a_belt_at_15_boxes_a_second_with_a_photo_eye(tmp_path: Path) -> None:
    ln = Line(tmp_path, require=True, eye=True)
    try:
        eye_pin = ln.factory.pin(5)
        ln.store.store_order(
            OrderMessage(
                id=label_order_id(gln(9), "SIP-9"),
                version=1,
                state=DeliveryState.OPEN,
                buyer=gln(9),
                document="SIP-9",
                lines=(OrderLine(gtin=gtin(4), quantity=28),),
            )
        )
        ln.orders.changed()
        ln.scan(label("SIP-9", gln(9)))
        rejected_at: list[float] = []
        original = ln.arm.reject
        ln.arm.reject = lambda at: (rejected_at.append(at), original(at))[1]  # type: ignore[method-assign]
        boxes: list[tuple[float, str]] = []
        started = time.monotonic()
        for i in range(30):  # 2 s of belt
            t = started + i / 15
            while time.monotonic() < t:
                time.sleep(0.001)
                for passed in ln.presence.due(time.monotonic()):  # type: ignore[union-attr]
                    ln.station.no_read(passed)
            eye_pin.drive_high()
            passed_at = time.monotonic()
            eye_pin.drive_low()
            kind = "unread" if i == 11 else "wrong" if i == 20 else "good"
            if kind == "good":
                out = ln.scan(box(gtin(4), f"C{i}"))
            elif kind == "wrong":
                out = ln.scan(box(gtin(5), f"X{i}"))  # the order does not want this product
                assert out.verdict.reason is Reason.NOT_IN_ORDER
            boxes.append((passed_at, kind))
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            for passed in ln.presence.due(time.monotonic()):  # type: ignore[union-attr]
                ln.station.no_read(passed)
            time.sleep(0.005)
        reasons = [e["reason"] for e in payloads(ln.store)]
        assert reasons.count("no_read") == 1 and ln.presence.no_reads == 1  # type: ignore[union-attr]
        unread_at = next(t for t, k in boxes if k == "unread")
        wrong_at = next(t for t, k in boxes if k == "wrong")
        assert len(rejected_at) == 2  # the wrong box and the unread one, nothing else
        assert abs(rejected_at[0] - unread_at) < 0.02  # timed from the beam, not from the verdict
        assert abs(rejected_at[1] - wrong_at) < 0.02
        assert reasons.count(None) == 28  # every other box (30 - the unread - the wrong) dispatched once
        assert Signal.NO_READ in ln.signals.shown
        assert ln.presence.waiting == 0  # type: ignore[union-attr]
    finally:
        ln.close()


def test_a_late_refusal_names_the_box_and_lights_its_own_output(tmp_path: Path, caplog: Any) -> None:
    ln = Line(tmp_path, require=False, late_pin=6)
    try:
        out = ln.scan(box(gtin(1), "LATE-1"))
        assert out.event is not None
        result = ResultMessage(
            out.event.id, False, Service.ITS, code="60007", message="Ürün geri çekilmiş.", gtin=gtin(1), serial="LATE-1"
        )
        caplog.set_level("WARNING")
        seq_result: Result = (out.event.seq, result)
        ln.station.on_result(seq_result)
        assert f"gtin={gtin(1)} serial=LATE-1: 60007" in caplog.text
        assert ln.signals.shown[-1] is Signal.REFUSED_LATER
        deadline = time.monotonic() + 0.3
        while not ln.factory.pin(6).state and time.monotonic() < deadline:
            time.sleep(0.005)
        assert ln.factory.pin(6).state  # the late-refusal output is on
    finally:
        ln.close()
