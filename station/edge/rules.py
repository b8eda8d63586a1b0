"""Station rules: what the station knows beyond the karekod itself.

Applied after the reader accepted a scan: the same unit already accepted here (``duplicate``),
a recalled batch (``recalled``), a unit outside the expected delivery (``not_expected``). The
conveyor re-read debounce sits in front of everything: one box read twice in a second is one scan.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from enum import Enum

from station.edge.store import Store
from station.gs1.reasons import Reason
from station.gs1.verdict import Verdict


class Unknown(Enum):
    """Not read with the unit: ask the file."""

    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN


class Debounce:
    """Remembers recent raw scans so a re-read within ``window`` seconds of the last read is one scan.

    The window slides: a box that sits under a fixed scanner and is read every 300 ms stays one
    scan for as long as it is read.
    """

    def __init__(self, window: float, size: int = 256) -> None:
        self.window = window
        self.size = size
        self._seen: OrderedDict[bytes, tuple[float, int]] = OrderedDict()

    def reread_of(self, raw: bytes, mono: float) -> int | None:
        """The seq of the event this scan repeats, or None if it is a new scan."""
        hit = self._seen.get(raw)
        if hit is None or mono - hit[0] > self.window:
            return None
        self._seen[raw] = (mono, hit[1])
        self._seen.move_to_end(raw)
        return hit[1]

    def forget(self) -> None:
        """A scan was taken back: the same box scanned again at once is a new scan."""
        self._seen.clear()

    def remember(self, raw: bytes, mono: float, seq: int) -> None:
        self._seen[raw] = (mono, seq)
        self._seen.move_to_end(raw)
        while len(self._seen) > self.size:
            del self._seen[next(iter(self._seen))]  # the least recently read


class Rules:
    """Duplicate, recall and expected-delivery checks against the station file."""

    def __init__(self, store: Store, duplicate_retention_days: int) -> None:
        self.store = store
        self.retention = duplicate_retention_days * 86400
        self.open_delivery: str | Unknown | None = UNKNOWN
        """The open delivery the last :meth:`apply` read with the unit (the dock then asks no more)."""

    def apply(self, verdict: Verdict, now: float | None = None) -> Verdict:
        """Refuse an accepted reading when a station rule says so; pass refusals through unchanged."""
        k = verdict.karekod
        self.open_delivery = UNKNOWN
        if not verdict.ok or k is None or k.di is None:
            return verdict
        now = time.time() if now is None else now
        seq, note, expected, self.open_delivery = self.store.unit_facts(k.di, k.serial, k.batch, now - self.retention)
        if seq is not None and k.serial is not None:
            return verdict.refuse(Reason.DUPLICATE, f"Already accepted here (event {seq}).")
        if note is not None:
            return verdict.refuse(Reason.RECALLED, f"Batch {k.batch} is recalled{': ' + note if note else ''}.")
        if not expected:
            return verdict.refuse(Reason.NOT_EXPECTED, "Not in the expected delivery.")
        return verdict
