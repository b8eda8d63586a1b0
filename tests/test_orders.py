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
from station.edge.orders import Orders
from station.edge.outputs.feedback import GpioFeedback, Signal
from station.edge.outputs.reject import RejectArm
from station.edge.pipeline import Station
from station.edge.presence import PhotoEye, Presence
from station.edge.store import Store
from station.edge.uplink import Result
from station.gs1.reasons import Reason
from station.wire import DeliveryState, OrderLine, OrderMessage, ResultMessage, Service, SummaryKind, order_id

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
    return [json.loads(store.payload(seq)) for (seq,) in store._query("SELECT seq FROM events ORDER BY seq")]


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
    assert out.summary is not None and out.summary.delivery == order_id(gln(2), "SIP-2")
    assert line.signals.shown[-1] is Signal.ORDER_END
    sent = [(e["serial"], e["buyer"], e["document"]) for e in payloads(line.store) if e["ok"]]
    assert sent == [("A0", gln(1), "SIP-1"), ("A1", gln(1), "SIP-1"), ("B1", gln(2), "SIP-2")]
    time.sleep(0.6)
    assert line.arm.fired >= 1  # the refused boxes were pushed off (overlapping pulses merge)


def test_a_belt_at_15_boxes_a_second_three_orders_a_photo_eye(tmp_path: Path) -> None:
    """Three totes (each with its label) and their boxes pass the eye at 15 a second: every box goes
    to its own order's buyer, the wrong one and the unread one (and only they) are kicked off, each
    timed from its own moment at the scanner."""
    ln = Line(tmp_path, require=True, eye=True)
    try:
        eye_pin = ln.factory.pin(5)
        ln.store.store_order(
            OrderMessage(
                id=order_id(gln(7), "SIP-7"),
                version=1,
                state=DeliveryState.OPEN,
                buyer=gln(7),
                document="SIP-7",
                lines=(OrderLine(gtin=gtin(4), quantity=9),),
            )
        )
        ln.orders.changed()
        rejected_at: list[float] = []
        original = ln.arm.reject
        ln.arm.reject = lambda at: (rejected_at.append(at), original(at))[1]  # type: ignore[method-assign]
        belt: list[tuple[str, str, bytes | str]] = []  # (kind, buyer, what the scanner reads)
        for n, buyer in enumerate((gln(7), gln(8), gln(9))):
            belt.append(("tote", buyer, label(f"SIP-{7 + n}", buyer)))
            for i in range(10):
                kind = "wrong" if (n, i) == (0, 4) else "unread" if (n, i) == (2, 6) else "good"
                product = gtin(5) if kind == "wrong" else gtin(4)
                belt.append((kind, buyer, box(product, f"O{n}-{i}")))
        passed: list[tuple[float, str, str, bytes | str]] = []
        started = time.monotonic()

        def sweep() -> None:
            for t in ln.presence.due(time.monotonic()):  # type: ignore[union-attr]
                ln.station.no_read(t)

        for i, (kind, buyer, code) in enumerate(belt):
            while time.monotonic() < started + i / 15:
                time.sleep(0.001)
                sweep()
            eye_pin.drive_high()
            at = time.monotonic()
            eye_pin.drive_low()
            passed.append((at, kind, buyer, code))
            if kind != "unread":
                ln.scan(code)
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            sweep()
            time.sleep(0.005)
        ln.scan(END)
        events = payloads(ln.store)
        sent = {e["serial"]: e["buyer"] for e in events if e["ok"]}
        good = [(code, buyer) for _, kind, buyer, code in passed if kind == "good"]
        assert len(sent) == len(good) == 28
        for code, buyer in good:
            assert isinstance(code, bytes) and sent[code.decode().split("21")[1].split(GS)[0]] == buyer
        assert sorted(e["reason"] for e in events if not e["ok"]) == ["no_read", "not_in_order"]
        unread_at = next(t for t, k, _, _ in passed if k == "unread")
        wrong_at = next(t for t, k, _, _ in passed if k == "wrong")
        assert sorted(rejected_at) == pytest.approx(sorted([unread_at, wrong_at]), abs=0.02)
        assert Signal.NO_READ in ln.signals.shown and ln.presence.waiting == 0  # type: ignore[union-attr]
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


def test_a_command_switches_the_operation_where_allowed_and_a_restart_keeps_it(tmp_path: Path) -> None:
    from station.edge import commands

    ln = Line(tmp_path, require=False)
    try:
        ln.station.operations = ("dispatch", "return")
        refused = ln.scan(commands.payload("line-2", commands.Command.OPERATION_USE))
        assert not refused.verdict.ok and "may not switch to use" in refused.verdict.message
        assert ln.scan(commands.payload("line-2", commands.Command.OPERATION_RETURN)).verdict.ok
        out = ln.scan(box(gtin(1), "RET-1"))
        assert out.event is not None and json.loads(ln.store.payload(out.event.seq))["operation"] == "return"
        assert ln.store.meta("operation") == "return"  # the daemon starts in it again
    finally:
        ln.close()
