"""The station's health: counters kept as scans happen, scanner states, and the status both the
status file (``station status``) and MQTT (``stations/{id}/status``) report.

Made before the scan path and the uplink, and handed to both: the scan path counts into it, the
uplink and the daemon read it. Nothing here waits on a lock or grows with the station file.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from station import __version__
from station.edge.events import utc_iso
from station.edge.store import NEAR_CAP, StorageError, Store
from station.gs1.verdict import Verdict


@dataclass
class Counters:
    scans: int = 0
    rereads: int = 0
    accepted: int = 0
    refused: int = 0
    storage_errors: int = 0
    last_scan_at: float | None = None
    by_reason: dict[str, int] = field(default_factory=dict)


class Health:
    def __init__(self, station_id: str) -> None:
        self.station_id = station_id
        self.started = time.time()
        self.counters = Counters()
        self.scanners: dict[str, bool] = {}
        """Each scanner by name: connected or not."""

    def count(self, verdict: Verdict) -> None:
        c = self.counters
        if verdict.ok:
            c.accepted += 1
        else:
            c.refused += 1
            key = verdict.reason.value if verdict.reason else "unknown"
            c.by_reason[key] = c.by_reason.get(key, 0) + 1

    def status(self, store: Store, mqtt_connected: bool) -> dict[str, Any]:
        """Health as the ``StationStatus`` fields (``station.wire``). ``store`` is the calling thread's own."""
        c = self.counters
        body: dict[str, Any] = {
            "station": self.station_id,
            "version": __version__,
            "pid": os.getpid(),
            "started_at": utc_iso(self.started),
            "at": utc_iso(time.time()),
            "scanner_connected": all(self.scanners.values()) if self.scanners else False,
            "scanners": dict(self.scanners),
            "mqtt_connected": mqtt_connected,
            "scans": c.scans,
            "rereads": c.rereads,
            "storage_errors": c.storage_errors,
            "last_scan_at": utc_iso(c.last_scan_at) if c.last_scan_at else None,
        }
        try:
            backlog, last_seq, oldest = store.backlog()
            body["backlog"] = backlog
            body["last_seq"] = last_seq
            body["oldest_undelivered_age_s"] = age(oldest)
            body["storage"] = storage_state(store.fullness(), store.max_size_mb)
        except StorageError as e:
            body.update(backlog=None, oldest_undelivered_age_s=None, storage=f"error: {e}"[:2000])
        try:
            body["disk_free_bytes"] = shutil.disk_usage(os.path.dirname(os.path.abspath(store.path))).free
        except OSError:
            body["disk_free_bytes"] = None
        return body


def storage_state(fullness: float, cap_mb: int) -> str:
    """``ok``, or a warning once the file has used 90 % of what ``[storage] max_size_mb`` leaves it.

    >>> storage_state(0.5, 100), storage_state(0.95, 100)
    ('ok', 'near the cap: 95 % of [storage] max_size_mb = 100 used; scans are refused when full')
    """
    if not cap_mb or fullness < NEAR_CAP:
        return "ok"
    return (
        f"near the cap: {int(fullness * 100)} % of [storage] max_size_mb = {cap_mb} used; scans are refused when full"
    )


def age(iso: str | None) -> float | None:
    """Seconds since an ISO time, or None."""
    if not iso:
        return None
    then = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    return round(max(0.0, time.time() - then), 1)
