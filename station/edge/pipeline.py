"""The station's scan path: scan -> verdict -> station rules -> event on disk -> feedback -> uplink.

One thread runs :meth:`Station.handle` for every scan in arrival order. The order of the steps is
the station's promise: the event is on disk before the light says accept, and a scan that could
not be stored is refused (``storage_error``), never accepted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from station.edge.config import ReaderConfig, StationConfig
from station.edge.dock import Action, Command, Dock
from station.edge.events import Event, Scan, judge_scan
from station.edge.health import Counters, Health
from station.edge.outputs.feedback import Feedback, Signal, signal_for
from station.edge.outputs.reject import RejectArm
from station.edge.rules import Debounce, Rules
from station.edge.store import Receipt, StorageError, Store
from station.edge.uplink import NoUplink, Result, Uplink
from station.gs1.reasons import Reason
from station.gs1.verdict import Verdict
from station.wire import ClosedBy, SummaryMessage

log = logging.getLogger("station.scan")


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
        try:
            command = self.dock.command(scan.raw) if self.dock is not None else None
            if command is not None:
                return self._command(scan, command)
        except StorageError as e:
            return self._not_stored(scan, Verdict(False, None, "", None), e)
        verdict = judge_scan(scan, self.policy, today or date.today())
        try:
            verdict = self.rules.apply(verdict, scan.at or None)
            receipt = None
            if self.dock is not None:
                verdict, receipt = self.dock.judge(verdict)
            event = self.store.record(
                scan, verdict, self.identity.id, self.identity.site, self.identity.operation, receipt
            )
        except StorageError as e:
            return self._not_stored(scan, verdict, e)
        self.debounce.remember(scan.raw, scan.mono, event.seq)
        self.feedback.show(signal_for(verdict))
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
        if summary is not None:
            log.info(
                "delivery %s closed (%s): %d expected, %d received, %d missing, %d unexpected",
                summary.delivery,
                summary.closed_by,
                summary.expected,
                summary.received,
                summary.missing,
                summary.unexpected,
            )
        log.info("command %s%s: %s", command.action, f" {command.sscc}" if command.sscc else "", message)
        return Outcome(
            Verdict(True, None, message, None),
            events[-1] if events else None,
            command=command,
            events=tuple(events),
            summary=summary,
        )

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
        log.warning("service refused seq=%d: %s %s", seq, r.code, r.message)
        feedback.show(Signal.REFUSED_LATER)


def _f(verdict: Verdict, name: str) -> str:
    k = verdict.karekod
    return str(getattr(k, name)) if k is not None and getattr(k, name) is not None else "-"
