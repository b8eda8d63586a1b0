"""The station's scan path: scan -> verdict -> station rules -> event on disk -> feedback -> uplink.

One thread runs :meth:`Station.handle` for every scan in arrival order. The order of the steps is
the station's promise: the event is on disk before the light says accept, and a scan that could
not be stored is refused (``storage_error``), never accepted.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from station import __version__
from station.edge.config import Config
from station.edge.events import Event, Scan, utc_iso
from station.edge.outputs.feedback import Feedback, Signal, signal_for
from station.edge.outputs.reject import RejectArm
from station.edge.rules import Debounce, Rules
from station.edge.store import StorageError, Store
from station.edge.uplink import NoUplink, Result, Uplink
from station.gs1.reasons import Reason
from station.gs1.verdict import Verdict, judge

log = logging.getLogger("station.scan")


@dataclass
class Outcome:
    """What became of one scan: a new event, a re-read of an earlier one, or a refusal not stored."""

    verdict: Verdict
    event: Event | None = None
    reread_of: int | None = None


@dataclass
class Counters:
    scans: int = 0
    rereads: int = 0
    accepted: int = 0
    refused: int = 0
    storage_errors: int = 0
    last_scan_at: float | None = None
    by_reason: dict[str, int] = field(default_factory=dict)


class Station:
    """Judges, records and signals scans. The scanner, pins and broker are handed in."""

    def __init__(
        self,
        config: Config,
        store: Store,
        feedback: Feedback,
        uplink: Uplink | None = None,
        reject_arm: RejectArm | None = None,
    ) -> None:
        self.config = config
        self.reject_arm = reject_arm
        self.store = store
        self.feedback = feedback
        self.uplink: Uplink = uplink or NoUplink()
        self.rules = Rules(store, config.reader.duplicate_retention_days)
        self.debounce = Debounce(config.reader.debounce_seconds)
        self.policy = config.reader.policy
        self.counters = Counters()
        self.scanners_connected: dict[str, bool] = {}
        self.started = time.time()

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
        verdict = judge(scan.raw, self.policy, today or date.today())
        try:
            verdict = self.rules.apply(verdict, scan.at or None)
            event = self.store.record(
                scan, verdict, self.config.station.id, self.config.station.site, self.config.station.operation
            )
        except StorageError as e:
            c.storage_errors += 1
            verdict = verdict.refuse(Reason.STORAGE_ERROR, "Scan not stored; not accepted. Call a technician.")
            self._count(verdict)
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
        self._count(verdict)
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

    def _count(self, verdict: Verdict) -> None:
        c = self.counters
        if verdict.ok:
            c.accepted += 1
        else:
            c.refused += 1
            key = verdict.reason.value if verdict.reason else "unknown"
            c.by_reason[key] = c.by_reason.get(key, 0) + 1

    def on_result(self, result: Result) -> None:
        """A unit the station accepted was refused by the national service: say so at once."""
        seq, r = result
        if not r.ok:
            log.warning("service refused seq=%d: %s %s", seq, r.code, r.message)
            self.feedback.show(Signal.REFUSED_LATER)

    def status(self, store: Store | None = None) -> dict[str, Any]:
        """Health for MQTT and the status file. ``store`` is the calling thread's own connection."""
        body: dict[str, Any] = {
            "station": self.config.station.id,
            "version": __version__,
            "pid": os.getpid(),
            "started_at": utc_iso(self.started),
            "at": utc_iso(time.time()),
            "scanner_connected": all(self.scanners_connected.values()) if self.scanners_connected else False,
            "scanners": dict(self.scanners_connected),
            "mqtt_connected": self.uplink.connected,
            "scans": self.counters.scans,
            "rereads": self.counters.rereads,
            "storage_errors": self.counters.storage_errors,
            "last_scan_at": utc_iso(self.counters.last_scan_at) if self.counters.last_scan_at else None,
        }
        try:
            stats = (store or self.store).stats()
            body["backlog"] = stats.backlog
            body["last_seq"] = stats.last_seq
            body["oldest_undelivered_age_s"] = _age(stats.oldest_undelivered_at)
            body["storage"] = "ok"
        except StorageError as e:
            body.update(backlog=None, oldest_undelivered_age_s=None, storage=f"error: {e}"[:2000])
        try:
            body["disk_free_bytes"] = shutil.disk_usage(os.path.dirname(os.path.abspath(self.store.path))).free
        except OSError:
            body["disk_free_bytes"] = None
        return body


def _f(verdict: Verdict, name: str) -> str:
    k = verdict.karekod
    return str(getattr(k, name)) if k is not None and getattr(k, name) is not None else "-"


def _age(iso: str | None) -> float | None:
    if not iso:
        return None
    from datetime import datetime

    then = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    return round(max(0.0, time.time() - then), 1)
