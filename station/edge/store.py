"""The station's SQLite file: events, the outbox, accepted units, results, recall and expected lists.

WAL with ``synchronous=FULL`` on the scan path: a commit is on disk (fsync'd) when
:meth:`Store.record` returns, which is before any light says accept. Other connections (the
uplink thread, the field CLI) read alongside the daemon; the CLI opens the file read-only.

Schema changes are numbered migrations in plain SQL, kept in ``PRAGMA user_version``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from station.edge.events import Event, Scan, event_message, new_event_id, utc_iso
from station.gs1.verdict import Verdict
from station.wire import Operation


class StorageError(Exception):
    """The file could not be written or read: disk full, read-only, corrupt, missing."""


MIGRATION_1 = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, at TEXT NOT NULL, source TEXT, raw BLOB NOT NULL,
    ok INTEGER NOT NULL, reason TEXT, message TEXT, gtin TEXT, serial TEXT, batch TEXT, expiry TEXT,
    production_date TEXT, sscc TEXT, recovered INTEGER, payload BLOB NOT NULL,
    rereads INTEGER NOT NULL DEFAULT 0, sent_at REAL, delivered_at TEXT);
CREATE UNIQUE INDEX idx_events_id ON events (id);
CREATE INDEX events_undelivered ON events (seq) WHERE delivered_at IS NULL;
CREATE TABLE accepted_units (gtin TEXT NOT NULL, serial TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (gtin, serial)) WITHOUT ROWID;
CREATE TABLE results (event_id TEXT PRIMARY KEY, seq INTEGER, service TEXT, ok INTEGER, code TEXT, message TEXT,
    at TEXT);
CREATE TABLE recalls (gtin TEXT NOT NULL, batch TEXT NOT NULL, note TEXT, PRIMARY KEY (gtin, batch)) WITHOUT ROWID;
CREATE TABLE expected (gtin TEXT NOT NULL, serial TEXT NOT NULL, delivery TEXT, PRIMARY KEY (gtin, serial))
    WITHOUT ROWID;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
"""
"""The first schema, in plain SQL (the same tables sqlite-utils made before 0.2: files made then open as they are)."""


#: Migration n+1 takes the schema from version n to n+1. Append; never edit a released one.
MIGRATIONS: list[str] = [MIGRATION_1]


@dataclass(frozen=True)
class Stats:
    """What ``station queue``/``status`` and the MQTT status report."""

    events: int
    last_seq: int
    backlog: int
    oldest_undelivered_at: str | None
    last_scan_at: str | None
    refused_later: int


class Store:
    """One connection to the station file. Not shared between threads: open one per thread."""

    def __init__(self, path: str | Path, *, max_size_mb: int = 0, readonly: bool = False, durable: bool = True):
        self.path = str(path)
        self.max_size_mb = max_size_mb
        self.readonly = readonly
        self.durable = durable
        self._conn: sqlite3.Connection | None = None
        self._seq = 0

    # -- opening --

    def open(self) -> sqlite3.Connection:
        """Open (or reopen after a failure), migrate, and return the connection."""
        if self._conn is not None:
            return self._conn
        try:
            if self.readonly:
                if not os.path.exists(self.path):
                    raise StorageError(f"{self.path}: no such file")
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA busy_timeout = 5000")
            else:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA busy_timeout = 5000")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
                conn.execute("PRAGMA journal_size_limit = 4194304")
                self._migrate(conn)
                if self.max_size_mb:
                    page = conn.execute("PRAGMA page_size").fetchone()[0]
                    conn.execute(f"PRAGMA max_page_count = {self.max_size_mb * 1024 * 1024 // page}")
            row = conn.execute(
                "SELECT max(coalesce((SELECT max(seq) FROM events), 0),"
                " coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_seq'), 0))"
            ).fetchone()
            self._seq = row[0]
        except (sqlite3.Error, OSError) as e:
            raise StorageError(f"{self.path}: {e}") from e
        self._conn = conn
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StorageError(f"{self.path}: schema version {version} is newer than this station knows")
        for n in range(version, len(MIGRATIONS)):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[n].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {n + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _fail(self, e: BaseException) -> StorageError:
        """Drop a connection that failed, so the next call reopens it (the disk may be back)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.rollback()
                conn.close()
            except sqlite3.Error:
                pass
        return StorageError(f"{self.path}: {e}")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        try:
            return self.open().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as e:
            raise self._fail(e) from e

    # -- the scan path --

    def record(self, scan: Scan, verdict: Verdict, station: str, site: str, operation: str) -> Event:
        """Write one event, durably, and return it. Raises :class:`StorageError`; never half-writes."""
        conn = self.open()
        seq = self._seq + 1
        event_id = new_event_id()
        at = utc_iso(scan.at or time.time())
        d = verdict.as_dict()
        payload = event_message(event_id, seq, at, station, site, Operation(operation), scan, d).to_json()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO events (seq, id, at, source, raw, ok, reason, message, gtin, serial, batch, expiry,"
                " production_date, sscc, recovered, payload, rereads) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (
                    seq,
                    event_id,
                    at,
                    scan.source,
                    scan.raw,
                    int(verdict.ok),
                    d["reason"],
                    d["message"],
                    d["gtin"],
                    d["serial"],
                    d["batch"],
                    d["expiry"],
                    d["production_date"],
                    d["sscc"],
                    int(d["recovered"]),
                    payload,
                ),
            )
            if verdict.ok and d["gtin"] and d["serial"]:
                conn.execute(
                    "INSERT OR REPLACE INTO accepted_units (gtin, serial, seq, at) VALUES (?, ?, ?, ?)",
                    (d["gtin"], d["serial"], seq, scan.at or time.time()),
                )
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as e:
            raise self._fail(e) from e
        self._seq = seq
        return Event(event_id, seq, at, payload, verdict)

    def add_reread(self, seq: int) -> None:
        """Count a conveyor re-read against the event it repeats (no fsync needed: a count, not a scan)."""
        try:
            conn = self.open()
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("UPDATE events SET rereads = rereads + 1 WHERE seq = ?", (seq,))
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def unit_facts(
        self, gtin: str, serial: str | None, batch: str | None, since: float
    ) -> tuple[int | None, str | None, bool]:
        """Everything the station rules ask about a unit, in one query on the scan path:
        (seq that accepted it since ``since``, recall note, False when an expected list excludes it)."""
        row = self._query(
            "SELECT (SELECT seq FROM accepted_units WHERE gtin = ? AND serial = ? AND at >= ?),"
            " (SELECT coalesce(note, '') FROM recalls WHERE gtin = ? AND batch IN (?, '*') LIMIT 1),"
            " NOT EXISTS (SELECT 1 FROM expected LIMIT 1)"
            " OR EXISTS (SELECT 1 FROM expected WHERE gtin = ? AND serial IN (?, '*'))",
            (gtin, serial or "", since, gtin, batch or "", gtin, serial or ""),
        )[0]
        return row[0], row[1], bool(row[2])

    # -- lists filled by the central side --

    def replace_recalls(self, rows: Iterable[tuple[str, str, str]]) -> int:
        """Replace the recall list: (gtin, batch or ``*``, note)."""
        return self._replace("recalls", "INSERT OR REPLACE INTO recalls (gtin, batch, note) VALUES (?, ?, ?)", rows)

    def replace_expected(self, rows: Iterable[tuple[str, str, str]]) -> int:
        """Replace the expected-units list: (gtin, serial or ``*``, delivery). Empty: no check."""
        return self._replace(
            "expected", "INSERT OR REPLACE INTO expected (gtin, serial, delivery) VALUES (?, ?, ?)", rows
        )

    def _replace(self, table: str, insert: str, rows: Iterable[tuple[str, str, str]]) -> int:
        conn = self.open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"DELETE FROM {table}")
            n = conn.executemany(insert, list(rows)).rowcount
            conn.execute("COMMIT")
            return n
        except sqlite3.Error as e:
            raise self._fail(e) from e

    # -- the outbox (uplink thread) --

    def pending(self, after_seq: int, limit: int) -> list[tuple[int, str, bytes]]:
        """Undelivered events after ``after_seq``, oldest first: (seq, id, payload)."""
        return self._query(
            "SELECT seq, id, payload FROM events WHERE delivered_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )

    def oldest_undelivered_seq(self) -> int | None:
        rows = self._query("SELECT min(seq) FROM events WHERE delivered_at IS NULL")
        return int(rows[0][0]) if rows[0][0] is not None else None

    def mark_delivered(self, ids: Iterable[str]) -> int:
        """Mark events the central ledger has stored; unknown ids are ignored. One commit per batch."""
        ids = list(ids)
        if not ids:
            return 0
        conn = self.open()
        now = utc_iso(time.time())
        try:
            conn.execute("BEGIN IMMEDIATE")
            n = 0
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                n += conn.execute(
                    f"UPDATE events SET delivered_at = ? WHERE delivered_at IS NULL AND id IN ({marks})", (now, *part)
                ).rowcount
            conn.execute("COMMIT")
            return n
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def record_result(self, event_id: str, service: str, ok: bool, code: str, message: str) -> int | None:
        """Store the national service's answer for an event; returns its seq (None: not ours)."""
        found = self.record_result_once(event_id, service, ok, code, message)
        return found[0] if found else None

    def record_result_once(
        self, event_id: str, service: str, ok: bool, code: str, message: str
    ) -> tuple[int, bool] | None:
        """Store an answer; returns (seq, new): ``new`` is false when the same answer was already
        stored (a result sent again), so it is signalled once. None: not one of our events."""
        conn = self.open()
        try:
            row = conn.execute(
                "SELECT e.seq, r.ok, r.code FROM events e LEFT JOIN results r ON r.event_id = e.id WHERE e.id = ?",
                (event_id,),
            ).fetchone()
            if row is None:
                return None
            if row[1] is not None and (bool(row[1]), row[2]) == (ok, code):
                return int(row[0]), False
            conn.execute(
                "INSERT OR REPLACE INTO results (event_id, seq, service, ok, code, message, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_id, row[0], service, int(ok), code, message, utc_iso(time.time())),
            )
            return int(row[0]), True
        except sqlite3.Error as e:
            raise self._fail(e) from e

    # -- housekeeping and reports --

    def purge(self, duplicate_retention_days: int, keep_delivered_days: int) -> tuple[int, int]:
        """Forget accepted units past retention and delivered events past keeping. Seq never goes back."""
        now = time.time()
        conn = self.open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            units = conn.execute(
                "DELETE FROM accepted_units WHERE at < ?", (now - duplicate_retention_days * 86400,)
            ).rowcount
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_seq', ?)", (str(self._seq),))
            events = conn.execute(
                "DELETE FROM events WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                (utc_iso(now - keep_delivered_days * 86400),),
            ).rowcount
            conn.execute("COMMIT")
            return units, events
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def stats(self) -> Stats:
        row = self._query(
            "SELECT (SELECT count(*) FROM events), (SELECT max(seq) FROM events),"
            " (SELECT count(*) FROM events WHERE delivered_at IS NULL),"
            " (SELECT at FROM events WHERE delivered_at IS NULL ORDER BY seq LIMIT 1),"
            " (SELECT at FROM events ORDER BY seq DESC LIMIT 1),"
            " (SELECT count(*) FROM results WHERE ok = 0)"
        )[0]
        return Stats(row[0], row[1] or self._seq, row[2], row[3], row[4], row[5])

    def events(self, last: int = 20, reason: str | None = None) -> list[dict[str, Any]]:
        """The newest events (with the service's result, if any), oldest of them first."""
        where, params = "", []
        if reason == "refused_later":
            where = "WHERE r.ok = 0"
        elif reason:
            where, params = "WHERE e.reason = ?", [reason]
        rows = self._query(
            "SELECT e.seq, e.id, e.at, e.ok, e.reason, e.message, e.gtin, e.serial, e.batch, e.expiry,"
            " e.rereads, e.delivered_at, r.service, r.ok, r.code, r.message, e.raw"
            f" FROM events e LEFT JOIN results r ON r.event_id = e.id {where} ORDER BY e.seq DESC LIMIT ?",
            (*params, last),
        )
        keys = (
            "seq",
            "id",
            "at",
            "ok",
            "reason",
            "message",
            "gtin",
            "serial",
            "batch",
            "expiry",
            "rereads",
            "delivered_at",
            "service",
            "service_ok",
            "service_code",
            "service_message",
            "raw",
        )
        out = []
        for row in reversed(rows):
            item = dict(zip(keys, row, strict=True))
            item["ok"] = bool(item["ok"])
            item["raw"] = bytes(item["raw"]).decode("utf-8", "backslashreplace")
            if item["service_ok"] is not None:
                item["service_ok"] = bool(item["service_ok"])
            out.append(item)
        return out
