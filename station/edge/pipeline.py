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
from station.edge.events import Event, Scan, judge_scan
from station.edge.health import Counters, Health
from station.edge.outputs.feedback import Feedback, Signal, signal_for
from station.edge.outputs.reject import RejectArm
from station.edge.rules import Debounce, Rules
from station.edge.store import StorageError, Store
from station.edge.uplink import NoUplink, Result, Uplink
from station.gs1.reasons import Reason
from station.gs1.verdict import Verdict

log = logging.getLogger("station.scan")


@dataclass
class Outcome:
    """What became of one scan: a new event, a re-read of an earlier one, or a refusal not stored."""

    verdict: Verdict
    event: Event | None = None
    reread_of: int | None = None


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
        verdict = judge_scan(scan, self.policy, today or date.today())
        try:
            verdict = self.rules.apply(verdict, scan.at or None)
            event = self.store.record(scan, verdict, self.identity.id, self.identity.site, self.identity.operation)
        except StorageError as e:
            c.storage_errors += 1
            verdict = verdict.refuse(Reason.STORAGE_ERROR, "Scan not stored; not accepted. Call a technician.")
            self.health.count(verdict)
            self.feedback.show(Signal.REJECT)
            if self.reject_arm is not None:
                self.reject_arm.reject(scan.mono)
            log.error("scan %s reason=storage_error raw=%r: %s", "reject", scan.raw, e)
            return Outcome(verdict)
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
