"""The station's scan path: scan -> verdict -> station rules -> event on disk -> feedback -> uplink.

One thread runs :meth:`Station.handle` for every scan in arrival order. The order of the steps is
the station's promise: the event is on disk before the light says accept, and a scan that could
not be stored is refused (``storage_error``), never accepted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from station.edge import commands
from station.edge.config import ReaderConfig, StationConfig
from station.edge.dock import Action, Command, Dock
from station.edge.events import Event, Scan, judge_scan
from station.edge.health import Counters, Health
from station.edge.orders import OrderCommand, Orders
from station.edge.outputs.feedback import Feedback, Signal, signal_for
from station.edge.outputs.reject import RejectArm
from station.edge.presence import Presence
from station.edge.rules import Debounce, Rules
from station.edge.store import Receipt, StorageError, Store
from station.edge.uplink import NoUplink, Result, Uplink
from station.gs1.reader import plain
from station.gs1.reasons import Reason
from station.gs1.verdict import Verdict
from station.wire import ClosedBy, Operation, SummaryMessage

log = logging.getLogger("station.scan")

CANCEL_WITHIN = 300.0
"""How old an accepted scan may be and still be taken back with the cancel-last command."""

DEMO_PREFIX = "0952"
"""GS1 company prefix 952 is for demonstrations: a karekod with it (the command sheet's test code)
shows accept and is never recorded or notified."""


@dataclass
class Outcome:
    """What became of one scan: a new event, a re-read of an earlier one, a refusal not stored, or
    a dock command (a delivery opened or closed, a whole case received: ``events``)."""

    verdict: Verdict
    event: Event | None = None
    reread_of: int | None = None
    command: Command | None = None
    events: tuple[Event, ...] = ()
    summary: SummaryMessage | None = None


class Station:
    """Judges, records and signals scans. Its identity, reader settings, file, outputs, uplink and
    health are handed in: the scan path never reads the whole configuration."""

    def __init__(
        self,
        identity: StationConfig,
        reader: ReaderConfig,
        store: Store,
        feedback: Feedback,
        uplink: Uplink | None = None,
        reject_arm: RejectArm | None = None,
        health: Health | None = None,
        dock: Dock | None = None,
        orders: Orders | None = None,
        presence: Presence | None = None,
        command_secret: bytes = b"",
        operations: tuple[str, ...] = (),
    ) -> None:
        self.identity = identity
        self.reject_arm = reject_arm
        self.store = store
        self.feedback = feedback
        self.uplink: Uplink = uplink or NoUplink()
        self.health = health or Health(identity.id)
        self.rules = Rules(store, reader.duplicate_retention_days)
        self.debounce = Debounce(reader.debounce_seconds)
        self.policy = reader.policy
        self.dock = dock
        self.orders = orders
        self.presence = presence
        self.command_secret = command_secret
        self.operations = (identity.operation, *operations)
        """What this station may do: its configured operation and those it may switch to."""

    @property
    def counters(self) -> Counters:
        return self.health.counters

    def handle(self, scan: Scan, today: date | None = None) -> Outcome:
        """Judge, record and signal one scan. Never raises for a bad scan or a failing disk."""
        c = self.counters
        c.last_scan_at = scan.at or time.time()
        seq = self.debounce.reread_of(scan.raw, scan.mono)
        if seq is not None:
            c.rereads += 1
            try:
                self.store.add_reread(seq)
            except StorageError as e:
                log.warning("re-read of seq=%d not counted on disk: %s", seq, e)
            log.debug("re-read of seq=%d ignored", seq)
            return Outcome(Verdict(False, None, "Re-read of the previous scan.", None), reread_of=seq)

        c.scans += 1
        if self.presence is not None:
            self.presence.read(scan.mono)
        if scan.raw.startswith(b"KKC1:") or scan.raw[3:8] == b"KKC1:":
            parsed = commands.parse(plain(scan.raw), self.identity.id, self.command_secret)
            if parsed is not None:
                return self._sheet_command(parsed)
        try:
            command = self.dock.command(scan.raw) if self.dock is not None else None
            if command is not None:
                return self._command(scan, command)
            label = self.orders.command(scan.raw) if self.orders is not None else None
            if label is not None:
                return self._order(scan, label)
        except StorageError as e:
            return self._not_stored(scan, Verdict(False, None, "", None), e)
        verdict = judge_scan(scan, self.policy, today or date.today())
        k = verdict.karekod
        if verdict.ok and k is not None and k.gtin is not None and k.gtin.startswith(DEMO_PREFIX):
            self.feedback.show(Signal.ACCEPT)  # the sheet's test karekod: the scanner and the lights work
            log.info("test karekod read (GS1 demonstration GTIN %s): accepted, not recorded", k.gtin)
            return Outcome(verdict)
        try:
            with self.store.scan_transaction():  # the rules' reads and the record: one durable commit
                verdict = self.rules.apply(verdict, scan.at or None)
                receipt = dispatch = None
                if self.dock is not None:
                    verdict, receipt = self.dock.judge(verdict, self.rules.open_delivery)
                if self.orders is not None:
                    verdict, dispatch = self.orders.judge(verdict)
                event = self.store.record(
                    scan, verdict, self.identity.id, self.identity.site, self.identity.operation, receipt, dispatch
                )
        except StorageError as e:
            return self._not_stored(scan, verdict, e)
        self.feedback.show(signal_for(verdict))
        self.debounce.remember(scan.raw, scan.mono, event.seq)
        if not verdict.ok and self.reject_arm is not None:
            self.reject_arm.reject(scan.mono)
        self.uplink.wake()
        self.health.count(verdict)
        if verdict.ok:
            log.info(
                "scan seq=%d accept gtin=%s serial=%s batch=%s%s",
                event.seq,
                _f(verdict, "gtin"),
                _f(verdict, "serial"),
                _f(verdict, "batch"),
                " recovered" if verdict.karekod and verdict.karekod.recovered else "",
            )
        else:
            log.info("scan seq=%d reject reason=%s %s", event.seq, verdict.reason, verdict.message)
        return Outcome(verdict, event)

    def _not_stored(self, scan: Scan, verdict: Verdict, e: StorageError) -> Outcome:
        self.counters.storage_errors += 1
        verdict = verdict.refuse(Reason.STORAGE_ERROR, "Scan not stored; not accepted. Call a technician.")
        self.health.count(verdict)
        self.feedback.show(Signal.REJECT)
        if self.reject_arm is not None:
            self.reject_arm.reject(scan.mono)
        log.error("scan %s reason=storage_error raw=%r: %s", "reject", scan.raw, e)
        return Outcome(verdict)

    def _command(self, scan: Scan, command: Command) -> Outcome:
        """A waybill, an SSCC or the close barcode: the delivery session changes, durably, before the signal."""
        assert self.dock is not None
        now = scan.at or time.time()
        summary, events = None, []
        if command.action is Action.CLOSE:
            summary = self.dock.close(now, ClosedBy.COMMAND)
            signal = Signal.DELIVERY_CLOSED if summary else Signal.NO_DELIVERY
            message = "Delivery closed." if summary else "No delivery is open."
        elif command.action is Action.OPEN:
            summary = self.dock.open(command.delivery, now)
            signal, message = Signal.DELIVERY_OPEN, f"Delivery {command.delivery} open."
        else:
            items = self.dock.case(command)
            if items:
                units = tuple(u for _, receipt in items for u in receipt.units)
                events = self.store.record_many(
                    [(scan, verdict) for verdict, _ in items],
                    self.identity.id,
                    self.identity.site,
                    self.identity.operation,
                    Receipt(command.delivery, units),
                    command.sscc,
                )
                for event in events:
                    self.health.count(event.verdict)
                signal, message = Signal.CASE_RECEIVED, f"Case {command.sscc}: {len(events)} unit(s) received."
            else:
                signal, message = Signal.DUPLICATE, f"Case {command.sscc}: nothing left to receive."
        self.feedback.show(signal)
        self.uplink.wake()
        _log_summary(summary)
        log.info("command %s%s: %s", command.action, f" {command.sscc}" if command.sscc else "", message)
        return Outcome(
            Verdict(True, None, message, None),
            events[-1] if events else None,
            command=command,
            events=tuple(events),
            summary=summary,
        )

    def _order(self, scan: Scan, label: OrderCommand) -> Outcome:
        """An order label or the end barcode: the open order changes, durably, before the signal."""
        assert self.orders is not None
        now = scan.at or time.time()
        if label.end:
            summary = self.orders.end(now, ClosedBy.COMMAND)
            signal = Signal.ORDER_END if summary else Signal.NO_ORDER
            message = "Order ended." if summary else "No order is open."
        else:
            summary = self.orders.open(label, now)
            signal, message = Signal.ORDER_OPEN, f"Order {label.document} for {label.buyer} open."
        self.feedback.show(signal)
        self.uplink.wake()
        _log_summary(summary)
        log.info("order label: %s", message)
        return Outcome(Verdict(True, None, message, None), summary=summary)

    def no_read(self, passed_at: float) -> Outcome:
        """A box broke the photo-eye's beam at ``passed_at`` (monotonic) and no code was read:
        recorded, signalled, and rejected when it reaches the arm."""
        verdict = Verdict(False, Reason.NO_READ, Reason.NO_READ.description, None)
        scan = Scan(b"", "photo-eye", time.time(), passed_at, "presence")
        if self.reject_arm is not None:
            self.reject_arm.reject(passed_at)  # first: the arm's timing does not wait for the disk
        self.counters.scans += 1
        try:
            event = self.store.record(scan, verdict, self.identity.id, self.identity.site, self.identity.operation)
        except StorageError as e:
            self.counters.storage_errors += 1
            log.error("no-read not stored: %s", e)
            self.feedback.show(Signal.NO_READ)
            return Outcome(verdict)
        self.feedback.show(Signal.NO_READ)
        self.health.count(verdict)
        self.uplink.wake()
        log.info("scan seq=%d reject reason=no_read a box passed the photo-eye unread", event.seq)
        return Outcome(verdict, event)

    def _sheet_command(self, parsed: commands.Parsed) -> Outcome:
        """A command barcode from the sheet: refused with its reason, or done."""
        if parsed.command is None:
            log.warning("command barcode refused: %s", parsed.refusal)
            self.feedback.show(Signal.REJECT)
            return Outcome(Verdict(False, None, parsed.refusal, None))
        now, summary = time.time(), None
        c = parsed.command
        if c is commands.Command.CLOSE_DELIVERY and self.dock is not None:
            summary = self.dock.close(now, ClosedBy.COMMAND)
            self.feedback.show(Signal.DELIVERY_CLOSED if summary else Signal.NO_DELIVERY)
        elif c is commands.Command.END_ORDER and self.orders is not None:
            summary = self.orders.end(now, ClosedBy.COMMAND)
            self.feedback.show(Signal.ORDER_END if summary else Signal.NO_ORDER)
        elif c is commands.Command.STATUS:
            self.feedback.show(self._health_signal())
        elif c is commands.Command.CANCEL_LAST:
            taken = self.store.cancel_last(CANCEL_WITHIN, now)
            if taken is None:
                self.feedback.show(Signal.REJECT)
                why = f"nothing accepted in the last {CANCEL_WITHIN / 60:.0f} minutes to cancel"
                log.warning("command cancel-last: %s", why)
                return Outcome(Verdict(False, None, why, None))
            event, seq = taken
            self.debounce.forget()
            self.feedback.show(Signal.DUPLICATE)
            self.uplink.wake()
            log.info("command cancel-last: event %d taken back (event %d)", seq, event.seq)
            return Outcome(Verdict(True, None, f"Event {seq} cancelled.", None), event)
        elif c.operation is not None:
            if c.operation != self.identity.operation and c.operation not in self.operations:
                why = f"this station may not switch to {c.operation} ([commands] operations)"
                log.warning("command %s: %s", c, why)
                self.feedback.show(Signal.REJECT)
                return Outcome(Verdict(False, None, why, None))
            self.store.set_meta("operation", c.operation)  # a restart keeps it
            self.identity = replace(self.identity, operation=Operation(c.operation))
            self.feedback.show(Signal.ORDER_OPEN)
        elif c is commands.Command.TEST_FEEDBACK:
            for signal in (Signal.ACCEPT, Signal.REJECT, Signal.DUPLICATE):
                self.feedback.show(signal)
        else:
            log.warning("command %s: not for a %s station", c, self.identity.operation)
            self.feedback.show(Signal.REJECT)
            return Outcome(Verdict(False, None, f"{c} does nothing at a {self.identity.operation} station", None))
        if summary is not None:
            self.uplink.wake()
        log.info("command %s", c)
        return Outcome(Verdict(True, None, f"Command {c}.", None), summary=summary)

    def _health_signal(self) -> Signal:
        """The station's state on the lights: accept (green) when all is well, fault (amber) when
        the scanner or the uplink is away or the backlog is old, reject (red) when storage fails."""
        status = self.status()
        if str(status.get("storage", "ok")).startswith("error"):
            return Signal.REJECT
        if not status.get("mqtt_connected", True) or (status.get("oldest_undelivered_age_s") or 0) > 600:
            return Signal.FAULT
        return Signal.ACCEPT

    def tick(self, now: float | None = None) -> SummaryMessage | None:
        """Housekeeping on the scan thread: close a delivery left idle."""
        if self.dock is None:
            return None
        try:
            summary = self.dock.idle(time.time() if now is None else now)
        except StorageError as e:
            log.warning("idle delivery not closed: %s", e)
            return None
        if summary is not None:
            self.feedback.show(Signal.DELIVERY_CLOSED)
            self.uplink.wake()
            log.info(
                "delivery %s closed after %s idle: %d received", summary.delivery, summary.closed_by, summary.received
            )
        return summary

    def on_result(self, result: Result) -> None:
        show_result(self.feedback, result)

    def status(self) -> dict[str, Any]:
        """Health as reported to ``station status`` and MQTT (from the scan thread's connection)."""
        return self.health.status(self.store, self.uplink.connected)


def show_result(feedback: Feedback, result: Result) -> None:
    """A unit the station accepted was refused by the national service: say so at once."""
    seq, r = result
    if not r.ok:
        log.warning(
            "service refused seq=%d gtin=%s serial=%s: %s %s (take the box aside; station events --refused)",
            seq,
            r.gtin or "-",
            r.serial or "-",
            r.code,
            r.message,
        )
        feedback.show(Signal.REFUSED_LATER)


def _log_summary(summary: SummaryMessage | None) -> None:
    """One line for a delivery or order that ended."""
    if summary is not None:
        log.info(
            "%s %s ended (%s): %d expected, %d received, %d missing, %d refused as not in it",
            summary.kind,
            summary.delivery,
            summary.closed_by,
            summary.expected,
            summary.received,
            summary.missing,
            summary.unexpected,
        )


def _f(verdict: Verdict, name: str) -> str:
    k = verdict.karekod
    return str(getattr(k, name)) if k is not None and getattr(k, name) is not None else "-"
