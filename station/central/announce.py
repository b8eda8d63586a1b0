"""Announcements to the HBYS/ERP: refused and failed units, closed deliveries.

The ledger writes each announcement in the same commit as the change it tells of
(``announcements``, numbered in order: station.central.ledger.announce_units and
station.central.deliveries.close), so none is lost to a crash. A receiving system either pulls them
(``GET /api/v1/announcements?after=SEQ``) or has them pushed: each ``[[webhooks]]`` address gets
POSTs of up to 100 in order, at least once — its place is kept in the ledger and moves only on a
2xx answer, so a receiver that was down gets everything it missed, and it should drop a ``seq`` it
has seen. With a secret, each body is signed: ``X-Karekod-Signature: sha256=<HMAC-SHA256 hex>``.

On PostgreSQL two submitters may commit announcements out of number order; a reader never steps
over a missing number younger than ``SETTLE_SECONDS`` (it may still commit), and steps over an
older one (a rolled-back transaction leaves a hole for good).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from station.central.config import SubmitterConfig, Webhook
from station.central.ledger import Announced, Ledger

log = logging.getLogger("submitter.announce")
SETTLE_SECONDS = 10.0
BATCH = 100


@dataclass(frozen=True)
class Announcement:
    seq: int
    at: float
    kind: Announced
    body: dict[str, Any]
    """What the ledger wrote (our own JSON, never a stranger's)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.body,
            "seq": self.seq,
            "at": datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds"),
            "kind": str(self.kind),
        }


def last_seq(ledger: Ledger) -> int:
    rows = ledger.query("SELECT coalesce(max(seq), 0) FROM announcements")
    return int(rows[0][0])


def after(
    ledger: Ledger, seq: int, limit: int = BATCH, kinds: Sequence[str] = (), now: float | None = None
) -> tuple[list[Announcement], int]:
    """Announcements after ``seq``, in order, and the number to ask after next time (the last one
    read, even when ``kinds`` left it out)."""
    now = time.time() if now is None else now
    rows = ledger.query(
        "SELECT seq, at, kind, body FROM announcements WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
    )
    out: list[Announcement] = []
    cursor = seq
    for s, at, kind, body in rows:
        if int(s) != cursor + 1 and now - float(at) < SETTLE_SECONDS:
            break  # a hole that may still fill (another submitter's commit in progress)
        cursor = int(s)
        if not kinds or kind in kinds:
            out.append(Announcement(int(s), float(at), Announced(kind), json.loads(body)))
    return out, cursor


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhooks:
    """Pushes announcements to every ``[[webhooks]]`` address, each at its own pace."""

    def __init__(self, config: SubmitterConfig, ledger: Ledger, session: Any = None) -> None:
        import requests

        self.config = config
        self.ledger = ledger
        self.session = session or requests.Session()
        self._failing: dict[str, float] = {}
        self._next: dict[str, float] = {}

    @staticmethod
    def key(hook: Webhook) -> str:
        return "webhook:" + hashlib.sha256(hook.url.encode()).hexdigest()[:16]

    def position(self, hook: Webhook) -> int:
        """Where this address stands; a new address starts at the newest announcement (no flood)."""
        stored = self.ledger.meta(self.key(hook))
        if stored is None:
            start = last_seq(self.ledger)
            self.ledger.set_meta(self.key(hook), str(start))
            return start
        return int(stored)

    def push(self, hook: Webhook, now: float | None = None) -> int:
        """One batch to one address; returns how many it took (0: nothing new, or it failed)."""
        now = time.time() if now is None else now
        if self._next.get(hook.url, 0.0) > now:
            return 0
        position = self.position(hook)
        batch, cursor = after(self.ledger, position, BATCH, hook.kinds, now)
        if not batch:
            if cursor != position:
                self.ledger.set_meta(self.key(hook), str(cursor))
            return 0
        body = json.dumps({"announcements": [a.as_dict() for a in batch]}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "X-Karekod-Delivery": f"{batch[0].seq}-{batch[-1].seq}"}
        if hook.secret.file or hook.secret.env:
            headers["X-Karekod-Signature"] = signature(hook.secret.read("webhook secret"), body)
        try:
            answer = self.session.post(hook.url, data=body, headers=headers, timeout=self.config.timeout_seconds)
            ok, why = 200 <= answer.status_code < 300, f"HTTP {answer.status_code}"
        except Exception as e:  # any transport trouble: the same batch goes again later
            ok, why = False, type(e).__name__
        if not ok:
            failures = self._failing.get(hook.url, 0.0) + 1
            self._failing[hook.url] = failures
            self._next[hook.url] = now + min(300.0, 2.0**failures)
            if failures == 1:
                log.warning("webhook %s: %s; announcements %d.. kept and sent again", hook.url, why, batch[0].seq)
            return 0
        if self._failing.pop(hook.url, 0.0):
            log.info("webhook %s: answering again", hook.url)
        self._next.pop(hook.url, None)
        self.ledger.set_meta(self.key(hook), str(cursor))
        return len(batch)

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        while not stop.is_set():
            busy = False
            for hook in self.config.webhooks:
                try:
                    busy = self.push(hook) == BATCH or busy
                except Exception:
                    log.exception("webhook %s: unexpected error; trying again", hook.url)
            if not busy:
                stop.wait(interval)

    def lag(self) -> dict[str, int]:
        """How many announcements each address has not taken yet (for /metrics)."""
        newest = last_seq(self.ledger)  # read only: a scrape never sets an address's starting point
        stored = {hook.url: self.ledger.meta(self.key(hook)) for hook in self.config.webhooks}
        return {url: max(0, newest - int(at)) if at is not None else 0 for url, at in stored.items()}
