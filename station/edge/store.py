"""The station's SQLite file: events, the outbox, accepted units, results, recall and expected lists.

WAL with ``synchronous=FULL`` on the scan path: a commit is on disk (fsync'd) when
:meth:`Store.record` returns, which is before any light says accept. Other connections (the
uplink thread, the field CLI) read alongside the daemon; the CLI opens the file read-only.

Schema changes are numbered migrations in plain SQL, kept in ``PRAGMA user_version``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from station.edge.events import (
    STORED,
    Dispatch,
    Event,
    Scan,
    event_json,
    event_message,
    event_row,
    fields_of,
    utc_iso,
)
from station.gs1.reasons import Reason
from station.gs1.verdict import Verdict
from station.wire import (
    ClosedBy,
    DeliveryMessage,
    DeliveryState,
    EventMessage,
    Operation,
    OrderMessage,
    SummaryKind,
    SummaryMessage,
    SummaryUnit,
)


class StorageError(Exception):
    """The file could not be written or read: disk full, read-only, corrupt, missing."""


_SESSIONS = {
    SummaryKind.DELIVERY: ("session", "delivery", "deliveries"),
    SummaryKind.ORDER: ("order_session", "order_id", "orders"),
}
"""Each kind's open-session table, its id column, and its list table."""


def _cancelled(message: EventMessage) -> Verdict:
    return Verdict(False, Reason.CANCELLED, message.message, None)


def _newer(conn: sqlite3.Connection, table: str, ident: str, version: int) -> bool:
    """Whether ``version`` of a delivery or order is news here (not older, not for a closed one)."""
    row = conn.execute(f"SELECT version, state FROM {table} WHERE id = ?", (ident,)).fetchone()
    return row is None or (row[0] < version and row[1] != DeliveryState.CLOSED)


LOT = "lot:"
"""``delivery_units.key`` of a lot line without serials: ``lot:`` and the batch."""

PAGE_SIZE = 1024
"""Bytes per page of a new station file. A scan's commit writes a WAL frame for each page it
changes (the event's row, the accepted unit's key, its age index): at 1 KiB a page instead of
SQLite's 4 KiB, about half the bytes reach the SD card per scan (``bench/bench_station.py``)."""

WAL_SHARE = 4 * 1024 * 1024
"""What ``[storage] max_size_mb`` keeps for the WAL (a quarter of a small cap)."""
NEAR_CAP = 0.9
"""``storage`` in the status warns from this share of the cap on."""


def wal_share(cap: int) -> int:
    return min(WAL_SHARE, cap // 4)


def _corrupt(e: sqlite3.DatabaseError) -> bool:
    text = str(e).lower()
    return "not a database" in text or "malformed" in text


def move_aside(path: str, why: str) -> str | None:
    """Rename a station file (and its WAL and shared-memory files) aside, never delete it."""
    if not os.path.exists(path):
        return None
    aside = f"{path}.{why}-{time.strftime('%Y%m%dT%H%M%S')}"
    for suffix in ("-wal", "-shm", ""):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, aside + suffix)
    return aside


def reset(path: str) -> list[str]:
    """A technician's explicit reset: the station file (if any) moved aside, the history marker
    removed, so the next start begins a new history (seq from 1, which the central side accepts
    because the history id is new). Returns what was done, for the technician to read."""
    done = []
    aside = move_aside(path, "reset")
    if aside:
        done.append(f"moved {path} aside to {aside}")
    if os.path.exists(path + ".history"):
        with open(path + ".history") as f:
            old = f.read().strip()
        with open(path + ".reset", "w") as f:  # the new history names the old one: the central side's proof
            f.write(old + "\n")
        os.remove(path + ".history")
        done.append(f"ended history {old} (the next one names it, so the central side accepts seq 1 again)")
    return done


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


MIGRATION_2 = """
ALTER TABLE events ADD COLUMN delivery TEXT;
CREATE TABLE deliveries (id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL, service TEXT NOT NULL,
    document TEXT NOT NULL, sender TEXT NOT NULL, body BLOB NOT NULL, stored_at REAL NOT NULL);
CREATE INDEX deliveries_document ON deliveries (document);
CREATE TABLE delivery_units (delivery TEXT NOT NULL, di TEXT NOT NULL, key TEXT NOT NULL, batch TEXT, expiry TEXT,
    carrier TEXT, quantity INTEGER NOT NULL, received INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (delivery, di, key))
    WITHOUT ROWID;
CREATE INDEX delivery_units_carrier ON delivery_units (delivery, carrier);
CREATE TABLE carriers (sscc TEXT NOT NULL, delivery TEXT NOT NULL, parent TEXT, kind TEXT,
    PRIMARY KEY (sscc, delivery)) WITHOUT ROWID;
CREATE TABLE session (id INTEGER PRIMARY KEY CHECK (id = 1), delivery TEXT NOT NULL, opened_at TEXT NOT NULL,
    last_at REAL NOT NULL);
CREATE TABLE summaries (id TEXT PRIMARY KEY, delivery TEXT NOT NULL, last_seq INTEGER NOT NULL, payload BLOB NOT NULL,
    delivered_at TEXT);
CREATE INDEX events_delivery ON events (delivery) WHERE delivery IS NOT NULL;
ALTER TABLE events ADD COLUMN order_id TEXT;
ALTER TABLE events ADD COLUMN cancels TEXT;
CREATE INDEX events_order ON events (order_id) WHERE order_id IS NOT NULL;
CREATE TABLE orders (id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL, buyer TEXT NOT NULL,
    document TEXT NOT NULL, stored_at REAL NOT NULL);
CREATE INDEX orders_document ON orders (document);
CREATE TABLE order_lines (order_id TEXT NOT NULL, gtin TEXT NOT NULL, quantity INTEGER NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (order_id, gtin)) WITHOUT ROWID;
CREATE TABLE order_session (id INTEGER PRIMARY KEY CHECK (id = 1), order_id TEXT NOT NULL, opened_at TEXT NOT NULL,
    last_at REAL NOT NULL);
CREATE TABLE recall_list (gtin TEXT NOT NULL, batch TEXT NOT NULL, serial TEXT NOT NULL, note TEXT,
    PRIMARY KEY (gtin, batch, serial)) WITHOUT ROWID;
INSERT INTO recall_list (gtin, batch, serial, note) SELECT gtin, batch, '*', note FROM recalls;
DROP TABLE recalls;
"""
"""Deliveries (station.edge.dock): what is expected, what came, the open session, the summaries.
Orders (station.edge.orders) and the recall list by batch, unit or whole product."""


MIGRATION_3 = """
CREATE INDEX accepted_units_at ON accepted_units (at);
CREATE INDEX events_delivered ON events (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX results_refused ON results (ok) WHERE ok = 0;
"""
"""What housekeeping needs so that it never scans a whole table: purge by age, refusals by count."""


MIGRATION_4 = """
DROP INDEX idx_events_id;
CREATE UNIQUE INDEX idx_events_id ON events (id) WHERE instr(id, '.') = 0;
CREATE INDEX events_cancels ON events (cancels) WHERE cancels IS NOT NULL;
"""
"""Event ids are ``{history}.{seq}`` from now on: found by their seq, so a commit no longer writes
a page of a random-uuid index; the ids of events written before stay indexed."""


MIGRATION_5 = """
INSERT OR REPLACE INTO meta (key, value) SELECT 'delivered_through', CAST(coalesce(
    (SELECT min(seq) FROM events WHERE delivered_at IS NULL) - 1, (SELECT max(seq) FROM events), 0) AS TEXT);
DROP INDEX events_undelivered;
"""
"""A delivered watermark instead of the undelivered index: every event up to ``delivered_through``
is delivered, and those after it are found by the key from there. A scan's commit no longer
writes an index page for being undelivered (nor an ack one for ceasing to be)."""


MIGRATION_6 = """
ALTER TABLE events ADD COLUMN station TEXT;
ALTER TABLE events ADD COLUMN site TEXT;
ALTER TABLE events ADD COLUMN operation TEXT;
ALTER TABLE events ADD COLUMN terminated_by TEXT;
ALTER TABLE events ADD COLUMN issuer TEXT;
ALTER TABLE events ADD COLUMN di TEXT;
ALTER TABLE events ADD COLUMN udi TEXT;
ALTER TABLE events ADD COLUMN carrier TEXT;
ALTER TABLE events ADD COLUMN buyer TEXT;
ALTER TABLE events ADD COLUMN document TEXT;
"""
"""Every field of an event in its own column (``station.edge.events.STORED``): its payload is
built when it is sent, not on the scan path, and stored rows are less than half the size. Rows
written before keep their payload (an empty one means: build it from the columns)."""


#: Migration n+1 takes the schema from version n to n+1. Append; never edit a released one.
MIGRATIONS: list[str] = [MIGRATION_1, MIGRATION_2, MIGRATION_3, MIGRATION_4, MIGRATION_5, MIGRATION_6]

EVENT_COLUMNS = tuple("order_id" if name == "order" else name for name in STORED)
"""The columns of ``station.edge.events.STORED``, in its order: one list writes and reads an event."""

INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}, payload) VALUES ({', '.join('?' * len(EVENT_COLUMNS))}, x'')"
)
SELECT_EVENT = f"SELECT payload, {', '.join(EVENT_COLUMNS)} FROM events"
"""An event's row as :meth:`Store._payload` reads it."""
_ID, _SEQ = (1 + STORED.index(name) for name in ("id", "seq"))


def _runs(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Numbers as runs of consecutive ones, (first, last) each, in order; repeats count once.

    >>> _runs([7, 3, 4, 5, 9, 8, 4])
    [(3, 5), (7, 9)]
    """
    runs: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _stored(row: Sequence[Any]) -> dict[str, Any]:
    """The :data:`~station.edge.events.STORED` fields of a row as :data:`SELECT_EVENT` reads it."""
    return dict(zip(STORED, row[1:], strict=True))


UNIT_FACTS = (
    "SELECT (SELECT seq FROM accepted_units WHERE gtin = ?1 AND serial = ?2 AND at >= ?3),"
    " CASE WHEN EXISTS (SELECT 1 FROM recall_list) THEN (SELECT coalesce(note, '') FROM recall_list"
    " WHERE gtin = ?1 AND batch IN (?4, '*') AND serial IN (?2, '*') LIMIT 1) END,"
    " CASE WHEN EXISTS (SELECT 1 FROM expected) THEN EXISTS (SELECT 1 FROM expected"
    " WHERE gtin = ?1 AND serial IN (?2, '*')) ELSE 1 END,"
    " (SELECT delivery FROM session WHERE id = 1)"
)
"""What :meth:`Store.unit_facts` asks, in one statement: a list that is empty (the usual recall
list, an expected list outside a delivery) costs one step, not its lookups (~8 us of the scan path)."""

THROUGH = "coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'delivered_through'), 0)"
"""The delivered watermark, in SQL: one key lookup, evaluated once per statement."""

UNDELIVERED = f"events WHERE seq > {THROUGH} AND delivered_at IS NULL"
"""The undelivered events, read from the watermark up by the key (the few delivered out of order
past it are skipped as they are met)."""


@dataclass(frozen=True)
class Stats:
    """What ``station queue``/``status`` and the MQTT status report."""

    events: int
    last_seq: int
    backlog: int
    oldest_undelivered_at: str | None
    last_scan_at: str | None
    refused_later: int


@dataclass(frozen=True)
class Receipt:
    """What a scan does to the open delivery: its id, and the expected units it receives
    (di, key, how many), written in the same commit as the events."""

    delivery: str
    units: tuple[tuple[str, str, int], ...] = field(default=())


class Store:
    """One connection to the station file. Not shared between threads: open one per thread."""

    def __init__(self, path: str | Path, *, max_size_mb: int = 0, readonly: bool = False, durable: bool = True):
        self.path = str(path)
        self.max_size_mb = max_size_mb
        self.readonly = readonly
        self.durable = durable
        self._conn: sqlite3.Connection | None = None
        self._seq = 0
        self.history = ""
        self.reset_of = ""
        """The history a technician's ``station reset`` ended, when this one began with it."""
        """This station file's history id: sent with every event, so the central side can tell a
        technician's reset from a file that went missing (seq going backwards)."""

    # -- opening --

    @property
    def marker(self) -> str:
        """The history marker beside the station file: once a station has a history, a missing or
        empty file is an alarm, never a fresh start (seq at 1 again, the duplicate memory gone)."""
        return self.path + ".history"

    def open(self) -> sqlite3.Connection:
        """Open (or reopen after a failure), migrate, and return the connection."""
        if self._conn is not None:
            return self._conn
        if not self.readonly:
            self._check_not_vanished()
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
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # a new file's; a file made before keeps its own
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
                conn.execute("PRAGMA journal_size_limit = 4194304")
                self._migrate(conn)
                self.history = self._history(conn)
                if self.max_size_mb:
                    # The cap holds the file and its WAL: the main file gets what the WAL cannot
                    # take, and checkpoints keep the WAL within its share.
                    page = conn.execute("PRAGMA page_size").fetchone()[0]
                    cap = self.max_size_mb * 1024 * 1024
                    wal = wal_share(cap)
                    conn.execute(f"PRAGMA max_page_count = {(cap - wal) // page}")
                    conn.execute(f"PRAGMA wal_autocheckpoint = {max(16, wal // page // 2)}")
                    conn.execute(f"PRAGMA journal_size_limit = {wal // 2}")
            row = conn.execute(
                "SELECT max(coalesce((SELECT max(seq) FROM events), 0),"
                " coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_seq'), 0))"
            ).fetchone()
            self._seq = row[0]
        except sqlite3.DatabaseError as e:
            if self.readonly or not _corrupt(e):
                raise StorageError(f"{self.path}: {e}") from e
            aside = move_aside(self.path, "corrupt")
            raise StorageError(
                f"{self.path} is corrupt ({e}): moved aside to {aside}; scans are refused until it is restored"
                " or a technician runs `station reset`"
            ) from e
        except OSError as e:
            raise StorageError(f"{self.path}: {e}") from e
        self._conn = conn
        return conn

    def _check_not_vanished(self) -> None:
        if not os.path.exists(self.marker):
            return
        try:
            size = os.path.getsize(self.path)
        except OSError:
            size = -1
        if size <= 0:
            what = "is empty" if size == 0 else "is missing"
            raise StorageError(
                f"{self.path} {what}, but this station has a history ({self.marker}): scans are refused so that"
                " seq does not start again at 1. Restore the file, or run `station reset` to start a new history"
            )

    def _history(self, conn: sqlite3.Connection) -> str:
        """This file's history id, kept in the file and in the marker beside it; they must agree."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'history'").fetchone()
        history = str(row[0]) if row else uuid.uuid4().hex
        if row is None:
            conn.execute("INSERT INTO meta (key, value) VALUES ('history', ?)", (history,))
            try:
                with open(self.path + ".reset") as f:
                    conn.execute("INSERT INTO meta (key, value) VALUES ('reset_of', ?)", (f.read().strip(),))
            except FileNotFoundError:
                pass
        row = conn.execute("SELECT value FROM meta WHERE key = 'reset_of'").fetchone()
        self.reset_of = str(row[0]) if row else ""
        try:
            with open(self.marker) as f:
                marked = f.read().strip()
        except FileNotFoundError:
            marked = ""
        if marked and marked != history:
            raise StorageError(
                f"{self.path} belongs to another history ({history}) than this station's ({marked}, {self.marker}):"
                " scans are refused. Put the right file back, or run `station reset`"
            )
        if not marked:
            tmp = f"{self.marker}.{os.getpid()}.{threading.get_ident()}.tmp"  # two connections may open at once
            with open(tmp, "w") as f:
                f.write(history + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.marker)
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path + ".reset")
        return history

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

    def scan_transaction(self) -> ScanTransaction:
        """One write transaction around a scan's reads (the rules, the open delivery or order) and
        its record: the scan path takes one transaction per scan instead of a read and then a write,
        and what the rules read cannot change before the event is written beside it (a list the
        uplink replaces waits for the commit). Committed, durably, when the block ends; rolled back
        when it raises. Raises :class:`StorageError`."""
        return ScanTransaction(self)

    def _begin_scan(self) -> tuple[sqlite3.Connection, int]:
        conn = self.open()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise self._fail(e) from e
        return conn, self._seq

    def _end_scan(self, conn: sqlite3.Connection, seq: int, failed: bool) -> None:
        if failed:
            self._seq = seq  # what was recorded in the block is gone with it
            if self._conn is conn and conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def record(
        self,
        scan: Scan,
        verdict: Verdict,
        station: str,
        site: str,
        operation: str,
        delivery: Receipt | None = None,
        order: Dispatch | None = None,
    ) -> Event:
        """Write one event, durably, and return it. Raises :class:`StorageError`; never half-writes.
        ``delivery``: the open delivery, and the expected unit this scan receives; ``order``: the
        open order and the line this box fills; each in the same commit."""
        return self.record_many([(scan, verdict)], station, site, operation, delivery, order=order)[0]

    def record_many(
        self,
        scans: Sequence[tuple[Scan, Verdict]],
        station: str,
        site: str,
        operation: str,
        delivery: Receipt | None = None,
        carrier: str | None = None,
        order: Dispatch | None = None,
    ) -> list[Event]:
        """Several events in one durable commit (a whole case received by its SSCC)."""
        conn = self.open()
        seq = self._seq
        rows, units, events = [], [], []
        kind = operation if isinstance(operation, Operation) else Operation(operation)
        for scan, verdict in scans:
            seq += 1
            event_id = f"{self.history}.{seq}"
            scanned_at = scan.at or time.time()
            at = utc_iso(scanned_at)
            rows.append(
                event_row(
                    event_id,
                    seq,
                    at,
                    station,
                    site,
                    kind,
                    scan,
                    verdict,
                    delivery.delivery if delivery else None,
                    carrier,
                    order,
                )
            )
            k = verdict.karekod
            if verdict.ok and k is not None and k.di and k.serial:
                units.append((k.di, k.serial, seq, scanned_at))
            events.append(Event(event_id, seq, at, verdict))
        own = not conn.in_transaction  # inside scan_transaction(), its commit is this one's
        try:
            if own:
                conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT_EVENT, rows)
            if units:
                conn.executemany(
                    "INSERT OR REPLACE INTO accepted_units (gtin, serial, seq, at) VALUES (?, ?, ?, ?)", units
                )
            if delivery is not None:
                if delivery.units:
                    conn.executemany(
                        "UPDATE delivery_units SET received = received + ? WHERE delivery = ? AND di = ? AND key = ?",
                        [(n, delivery.delivery, di, key) for di, key, n in delivery.units],
                    )
                conn.execute("UPDATE session SET last_at = ? WHERE id = 1", (time.time(),))
            if order is not None:
                if order.gtin is not None:
                    conn.execute(
                        "UPDATE order_lines SET sent = sent + 1 WHERE order_id = ? AND gtin = ?",
                        (order.order, order.gtin),
                    )
                conn.execute("UPDATE order_session SET last_at = ? WHERE id = 1", (time.time(),))
            if own:
                conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as e:
            raise self._fail(e) from e
        self._seq = seq
        return events

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
    ) -> tuple[int | None, str | None, bool, str | None]:
        """Everything the station rules and the dock ask about a unit, in one query on the scan path:
        (seq that accepted it since ``since``, recall note, False when an expected list excludes it,
        the open delivery)."""
        try:
            row = self.open().execute(UNIT_FACTS, (gtin, serial or "", since, batch or "")).fetchone()
        except sqlite3.Error as e:
            raise self._fail(e) from e
        return row[0], row[1], bool(row[2]), row[3]

    # -- lists filled by the central side --

    def replace_recalls(self, rows: Iterable[tuple[str, ...]], version: int | None = None) -> int:
        """Replace the recall list: (gtin, batch or ``*``, note) or (gtin, batch, serial, note), a
        ``*`` matching any; ``version``: the central list's, kept to ack and to skip an older one."""
        full = [(r[0], r[1], "*", r[2]) if len(r) == 3 else tuple(r) for r in rows]
        n = self._replace(
            "recall_list", "INSERT OR REPLACE INTO recall_list (gtin, batch, serial, note) VALUES (?, ?, ?, ?)", full
        )
        if version is not None:
            self._query("INSERT OR REPLACE INTO meta (key, value) VALUES ('recalls_version', ?)", (str(version),))
        return n

    def recalls_version(self) -> int:
        rows = self._query("SELECT value FROM meta WHERE key = 'recalls_version'")
        return int(rows[0][0]) if rows else 0

    def replace_expected(self, rows: Iterable[tuple[str, str, str]]) -> int:
        """Replace the expected-units list: (gtin, serial or ``*``, delivery). Empty: no check."""
        return self._replace(
            "expected", "INSERT OR REPLACE INTO expected (gtin, serial, delivery) VALUES (?, ?, ?)", rows
        )

    def _replace(self, table: str, insert: str, rows: Iterable[tuple[str, ...]]) -> int:
        conn = self.open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"DELETE FROM {table}")
            n = conn.executemany(insert, list(rows)).rowcount
            conn.execute("COMMIT")
            return n
        except sqlite3.Error as e:
            raise self._fail(e) from e

    # -- deliveries (station.edge.dock) --

    def store_delivery(self, d: DeliveryMessage) -> bool:
        """Keep a delivery the central side sent; False when this version (or a newer one) is
        already here. Units already received keep their counts when a new version comes."""
        conn = self.open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            if not _newer(conn, "deliveries", d.id, d.version):
                conn.execute("COMMIT")
                return False
            conn.execute(
                "INSERT OR REPLACE INTO deliveries (id, version, state, service, document, sender, body, stored_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (d.id, d.version, d.state, d.service, d.document, d.sender, d.to_json(), time.time()),
            )
            conn.execute("DELETE FROM carriers WHERE delivery = ?", (d.id,))
            conn.executemany(
                "INSERT OR REPLACE INTO carriers (sscc, delivery, parent, kind) VALUES (?, ?, ?, ?)",
                [(c.sscc, d.id, c.parent, c.kind) for c in d.carriers],
            )
            units: dict[tuple[str, str], list[Any]] = {}
            for line in d.lines:
                for serial in line.serials:
                    units[(line.di, serial)] = [line.batch, line.expiry, line.carrier, 1]
                if not line.serials:
                    key = (line.di, LOT + (line.batch or ""))
                    if key in units:
                        units[key][3] += line.quantity
                    else:
                        units[key] = [line.batch, line.expiry, line.carrier, line.quantity]
            conn.execute("UPDATE delivery_units SET quantity = 0 WHERE delivery = ?", (d.id,))
            conn.executemany(
                "INSERT INTO delivery_units (delivery, di, key, batch, expiry, carrier, quantity) VALUES"
                " (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery, di, key) DO UPDATE SET batch = excluded.batch,"
                " expiry = excluded.expiry, carrier = excluded.carrier, quantity = excluded.quantity",
                [(d.id, di, key, *rest) for (di, key), rest in units.items()],
            )
            conn.execute("DELETE FROM delivery_units WHERE delivery = ? AND quantity = 0 AND received = 0", (d.id,))
            conn.execute("COMMIT")
            return True
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def delivery_index(self) -> tuple[dict[str, str], dict[str, str]]:
        """Open deliveries by waybill number, and their carriers' SSCCs: what opens a session."""
        documents = {
            str(doc): str(ident)
            for ident, doc in self._query("SELECT id, document FROM deliveries WHERE state = ?", (DeliveryState.OPEN,))
        }
        carriers = {
            str(sscc): str(ident)
            for sscc, ident in self._query(
                "SELECT c.sscc, c.delivery FROM carriers c JOIN deliveries d ON d.id = c.delivery WHERE d.state = ?",
                (DeliveryState.OPEN,),
            )
        }
        return documents, carriers

    def meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def delivery_state(self, delivery: str) -> str | None:
        rows = self._query("SELECT state FROM deliveries WHERE id = ?", (delivery,))
        return str(rows[0][0]) if rows else None

    def session(self) -> tuple[str, str, float] | None:
        """The open delivery session: (delivery, opened at, last scan as Unix time)."""
        rows = self._query("SELECT delivery, opened_at, last_at FROM session WHERE id = 1")
        return (str(rows[0][0]), str(rows[0][1]), float(rows[0][2])) if rows else None

    def open_session(self, delivery: str, now: float) -> None:
        conn = self.open()
        try:
            conn.execute(
                "INSERT OR REPLACE INTO session (id, delivery, opened_at, last_at) VALUES (1, ?, ?, ?)",
                (delivery, utc_iso(now), now),
            )
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def expected_unit(
        self, delivery: str, di: str, serial: str | None, batch: str | None
    ) -> tuple[str, int, int] | None:
        """The unit's line in a delivery: (key, quantity, received), or None when it is not expected."""
        key = serial if serial else LOT + (batch or "")
        rows = self._query(
            "SELECT key, quantity, received FROM delivery_units WHERE delivery = ? AND di = ? AND key = ?",
            (delivery, di, key),
        )
        return (str(rows[0][0]), int(rows[0][1]), int(rows[0][2])) if rows else None

    def case_units(self, delivery: str, sscc: str) -> list[tuple[str, str, str | None, str | None, int]]:
        """Units not yet received in a carrier and the carriers inside it: (di, key, batch, expiry, how many)."""
        rows = self._query(
            "WITH RECURSIVE inside(sscc) AS (SELECT ? UNION SELECT c.sscc FROM carriers c JOIN inside i"
            " ON c.parent = i.sscc WHERE c.delivery = ?)"
            " SELECT u.di, u.key, u.batch, u.expiry, u.quantity - u.received FROM delivery_units u"
            " WHERE u.delivery = ? AND u.carrier IN (SELECT sscc FROM inside) AND u.received < u.quantity"
            " ORDER BY u.carrier, u.di, u.key",
            (sscc, delivery, delivery),
        )
        return [(str(r[0]), str(r[1]), r[2], r[3], int(r[4])) for r in rows]

    def close_session(self, station: str, closed_by: ClosedBy, now: float) -> SummaryMessage | None:
        """Close the open delivery: its summary is written (to be published once its events are
        delivered) in the same commit that ends the session. None: no session was open."""

        def summarise(conn: sqlite3.Connection, delivery: str) -> tuple[int, int, list[SummaryUnit], list[SummaryUnit]]:
            expected, received = conn.execute(
                "SELECT coalesce(sum(quantity), 0), coalesce(sum(min(received, quantity)), 0) FROM delivery_units"
                " WHERE delivery = ?",
                (delivery,),
            ).fetchone()
            missing = [
                SummaryUnit(
                    di=str(di),
                    serial=None if str(key).startswith(LOT) else str(key),
                    batch=batch,
                    quantity=int(n),
                    carrier=carrier,
                )
                for di, key, batch, carrier, n in conn.execute(
                    "SELECT di, key, batch, carrier, quantity - received FROM delivery_units"
                    " WHERE delivery = ? AND received < quantity ORDER BY carrier, di, key",
                    (delivery,),
                )
            ]
            return int(expected), int(received), missing, self._refused_in(conn, "delivery", delivery, "not_expected")

        return self._end(SummaryKind.DELIVERY, station, closed_by, now, summarise)

    def _refused_in(self, conn: sqlite3.Connection, column: str, ident: str, reason: str) -> list[SummaryUnit]:
        """The units refused with ``reason`` in a delivery or order: a summary's unexpected ones."""
        return [
            SummaryUnit(di=str(di), serial=serial, batch=batch, seq=int(seq))
            for seq, di, serial, batch in conn.execute(
                "SELECT seq, coalesce(di, CASE WHEN length(payload) THEN json_extract(payload, '$.di') END, gtin),"
                f" serial, batch FROM events WHERE {column} = ? AND reason = ? ORDER BY seq",
                (ident, reason),
            )
            if di
        ]

    def _end(
        self,
        kind: SummaryKind,
        station: str,
        closed_by: ClosedBy,
        now: float,
        summarise: Callable[[sqlite3.Connection, str], tuple[int, int, list[SummaryUnit], list[SummaryUnit]]],
    ) -> SummaryMessage | None:
        """End the open delivery or order in one commit: its summary written, its list closed,
        its session gone. ``summarise(conn, id)`` gives (expected, received, missing, unexpected)."""
        session, column, lists = _SESSIONS[kind]
        conn = self.open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(f"SELECT {column}, opened_at FROM {session} WHERE id = 1").fetchone()
            if row is None:
                conn.execute("COMMIT")
                return None
            ident, opened_at = str(row[0]), str(row[1])
            expected, received, missing, unexpected = summarise(conn, ident)
            summary = SummaryMessage(
                id=f"{ident}.{station}"[:64],
                delivery=ident,
                station=station,
                opened_at=opened_at,
                closed_at=utc_iso(now),
                closed_by=closed_by,
                expected=expected,
                received=received,
                missing=sum(u.quantity for u in missing),
                unexpected=len(unexpected),
                last_seq=self._seq,
                missing_units=tuple(missing),
                unexpected_units=tuple(unexpected),
                kind=kind,
            )
            conn.execute(
                "INSERT OR REPLACE INTO summaries (id, delivery, last_seq, payload) VALUES (?, ?, ?, ?)",
                (summary.id, ident, self._seq, summary.to_json()),
            )
            conn.execute(f"UPDATE {lists} SET state = ? WHERE id = ?", (DeliveryState.CLOSED, ident))
            conn.execute(f"DELETE FROM {session} WHERE id = 1")
            conn.execute("COMMIT")
            return summary
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def summaries_to_send(self) -> list[tuple[str, bytes]]:
        """Summaries whose delivery's events have all been delivered: (id, payload)."""
        return [
            (str(i), bytes(p))
            for i, p in self._query(
                "SELECT id, payload FROM summaries WHERE delivered_at IS NULL AND last_seq <"
                f" coalesce((SELECT min(seq) FROM {UNDELIVERED}), 9223372036854775807)"
            )
        ]

    def progress(self, delivery: str) -> dict[str, Any]:
        """A delivery's progress: expected, received, missing by carrier, unexpected, last scans."""
        head = self._query("SELECT document, sender, service, state FROM deliveries WHERE id = ?", (delivery,))
        by_carrier = self._query(
            "SELECT coalesce(carrier, ''), sum(quantity), sum(min(received, quantity)) FROM delivery_units"
            " WHERE delivery = ? GROUP BY 1 ORDER BY 1",
            (delivery,),
        )
        unexpected = self._query(
            "SELECT count(*) FROM events WHERE delivery = ? AND reason = 'not_expected'", (delivery,)
        )[0][0]
        last = self._query(
            "SELECT seq, at, ok, reason, gtin, serial, batch FROM events WHERE delivery = ? ORDER BY seq DESC LIMIT 5",
            (delivery,),
        )
        expected = sum(int(r[1]) for r in by_carrier)
        received = sum(int(r[2]) for r in by_carrier)
        return {
            "delivery": delivery,
            "document": head[0][0] if head else None,
            "sender": head[0][1] if head else None,
            "service": head[0][2] if head else None,
            "state": head[0][3] if head else None,
            "expected": expected,
            "received": received,
            "missing": expected - received,
            "unexpected": int(unexpected),
            "carriers": [
                {"sscc": c or None, "expected": int(e), "received": int(r), "missing": int(e) - int(r)}
                for c, e, r in by_carrier
            ],
            "last_scans": [
                {"seq": r[0], "at": r[1], "ok": bool(r[2]), "reason": r[3], "gtin": r[4], "serial": r[5], "batch": r[6]}
                for r in last
            ],
        }

    def cancel_last(self, within: float, now: float) -> tuple[Event, int] | None:
        """Take back the last accepted scan (at most ``within`` seconds old, not taken back yet): a
        ``cancelled`` event naming it, and in the same commit its unit forgotten as accepted and
        its delivery or order count given back. Returns (the new event, the seq taken back)."""
        conn = self.open()
        row = conn.execute(
            f"{SELECT_EVENT} e WHERE ok = 1 AND NOT EXISTS (SELECT 1 FROM events c WHERE c.cancels = e.id)"
            " ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        taken = self._message(row)
        if now - datetime.fromisoformat(taken.at).timestamp() > within:
            return None
        message = replace(
            taken,
            id=f"{self.history}.{self._seq + 1}",
            seq=self._seq + 1,
            at=utc_iso(now),
            ok=False,
            reason=Reason.CANCELLED,
            message=f"Event {taken.seq} taken back by the operator.",
            cancels=taken.id,
            history=self.history or None,
            reset_of=self.reset_of or None,
        )
        fields = fields_of(message)
        di, serial, batch = taken.di or taken.gtin, taken.serial, taken.batch
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT_EVENT, tuple(fields[name] for name in STORED))
            conn.execute("DELETE FROM accepted_units WHERE seq = ?", (taken.seq,))
            if taken.delivery:
                conn.execute(
                    "UPDATE delivery_units SET received = received - 1 WHERE delivery = ? AND di = ? AND key = ?"
                    " AND received > 0",
                    (taken.delivery, di, serial or LOT + (batch or "")),
                )
            if taken.order:
                conn.execute(
                    "UPDATE order_lines SET sent = sent - 1 WHERE order_id = ? AND gtin = ? AND sent > 0",
                    (taken.order, di),
                )
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._fail(e) from e
        self._seq = message.seq
        return Event(message.id, message.seq, message.at, _cancelled(message)), taken.seq

    def _message(self, row: Sequence[Any]) -> EventMessage:
        """An event's message from its row as :data:`SELECT_EVENT` reads it: the payload kept by
        files written before, or built from the columns."""
        if row[0]:
            return EventMessage.from_json(row[0])
        return event_message(_stored(row), self.history, self.reset_of)

    def _payload(self, row: Sequence[Any]) -> bytes:
        """An event's payload from its row as :data:`SELECT_EVENT` reads it (kept bytes sent as kept)."""
        if row[0]:
            return bytes(row[0])
        return event_json(_stored(row), self.history, self.reset_of)

    def payload(self, seq: int) -> bytes:
        """The payload event ``seq`` is published with. Raises KeyError when there is none."""
        rows = self._query(f"{SELECT_EVENT} WHERE seq = ?", (seq,))
        if not rows:
            raise KeyError(seq)
        return self._payload(rows[0])

    # -- orders (station.edge.orders) --

    def store_order(self, o: OrderMessage) -> bool:
        """Keep an order; False when this version (or a newer one) is here. Boxes already sent keep
        their counts."""
        conn = self.open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            if not _newer(conn, "orders", o.id, o.version):
                conn.execute("COMMIT")
                return False
            conn.execute(
                "INSERT OR REPLACE INTO orders (id, version, state, buyer, document, stored_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (o.id, o.version, o.state, o.buyer, o.document, time.time()),
            )
            conn.execute("UPDATE order_lines SET quantity = 0 WHERE order_id = ?", (o.id,))
            conn.executemany(
                "INSERT INTO order_lines (order_id, gtin, quantity) VALUES (?, ?, ?) ON CONFLICT (order_id, gtin)"
                " DO UPDATE SET quantity = excluded.quantity",
                [(o.id, line.gtin, line.quantity) for line in o.lines],
            )
            conn.execute("DELETE FROM order_lines WHERE order_id = ? AND quantity = 0 AND sent = 0", (o.id,))
            conn.execute("COMMIT")
            return True
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def order_documents(self) -> dict[str, str]:
        """Open orders by document number: what a tote label names."""
        return {
            str(doc): str(ident)
            for ident, doc in self._query("SELECT id, document FROM orders WHERE state = ?", (DeliveryState.OPEN,))
        }

    def order(self, ident: str) -> tuple[str, str, str] | None:
        """(state, buyer, document) of an order."""
        rows = self._query("SELECT state, buyer, document FROM orders WHERE id = ?", (ident,))
        return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    def order_session(self) -> tuple[str, str, str, str] | None:
        """The open order: (id, buyer, document, opened at)."""
        rows = self._query(
            "SELECT s.order_id, o.buyer, o.document, s.opened_at FROM order_session s"
            " JOIN orders o ON o.id = s.order_id"
        )
        return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2]), str(rows[0][3])) if rows else None

    def open_order(self, ident: str, buyer: str, document: str, now: float) -> None:
        """Open an order (made here from its label when the central side never sent it)."""
        conn = self.open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT OR IGNORE INTO orders (id, version, state, buyer, document, stored_at)"
                " VALUES (?, 0, ?, ?, ?, ?)",
                (ident, DeliveryState.OPEN, buyer, document, now),
            )
            conn.execute(
                "INSERT OR REPLACE INTO order_session (id, order_id, opened_at, last_at) VALUES (1, ?, ?, ?)",
                (ident, utc_iso(now), now),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def order_line(self, ident: str, gtin: str) -> tuple[int, int] | None:
        """(quantity, sent) of an order's line; None when the order has lines and not this one;
        (0, 0) when the order has no lines (any box goes)."""
        rows = self._query(
            "SELECT (SELECT count(*) FROM order_lines WHERE order_id = ?),"
            " (SELECT quantity FROM order_lines WHERE order_id = ? AND gtin = ?),"
            " (SELECT sent FROM order_lines WHERE order_id = ? AND gtin = ?)",
            (ident, ident, gtin, ident, gtin),
        )[0]
        if not rows[0]:
            return 0, 0
        return None if rows[1] is None else (int(rows[1]), int(rows[2]))

    def order_progress(self, ident: str) -> dict[str, Any]:
        """An order's progress: buyer, document, each line (wanted, sent), refused boxes, last scans."""
        head = self._query("SELECT buyer, document, state FROM orders WHERE id = ?", (ident,))
        lines = self._query("SELECT gtin, quantity, sent FROM order_lines WHERE order_id = ? ORDER BY gtin", (ident,))
        counts = self._query(
            "SELECT coalesce(sum(ok), 0), coalesce(sum(reason = 'not_in_order'), 0) FROM events WHERE order_id = ?",
            (ident,),
        )[0]
        last = self._query(
            "SELECT seq, at, ok, reason, gtin, serial FROM events WHERE order_id = ? ORDER BY seq DESC LIMIT 5",
            (ident,),
        )
        return {
            "order": ident,
            "buyer": head[0][0] if head else None,
            "document": head[0][1] if head else None,
            "state": head[0][2] if head else None,
            "sent": int(counts[0]),
            "not_in_order": int(counts[1]),
            "lines": [{"gtin": g, "wanted": int(q), "sent": int(n)} for g, q, n in lines],
            "last_scans": [
                {"seq": r[0], "at": r[1], "ok": bool(r[2]), "reason": r[3], "gtin": r[4], "serial": r[5]} for r in last
            ],
        }

    def close_order(self, station: str, closed_by: ClosedBy, now: float) -> SummaryMessage | None:
        """End the open order; its summary (what was sent, what the lines still want, the boxes
        refused as not in it) is written in the same commit."""

        def summarise(conn: sqlite3.Connection, ident: str) -> tuple[int, int, list[SummaryUnit], list[SummaryUnit]]:
            sent = conn.execute("SELECT count(*) FROM events WHERE order_id = ? AND ok = 1", (ident,)).fetchone()[0]
            wanted = conn.execute(
                "SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE order_id = ?", (ident,)
            ).fetchone()[0]
            missing = [
                SummaryUnit(di=str(g), quantity=int(n))
                for g, n in conn.execute(
                    "SELECT gtin, quantity - sent FROM order_lines WHERE order_id = ? AND sent < quantity"
                    " ORDER BY gtin",
                    (ident,),
                )
            ]
            return (
                int(wanted) or int(sent),
                int(sent),
                missing,
                self._refused_in(conn, "order_id", ident, "not_in_order"),
            )

        return self._end(SummaryKind.ORDER, station, closed_by, now, summarise)

    # -- the outbox (uplink thread) --

    def pending(self, after_seq: int, limit: int) -> list[tuple[int, str, bytes]]:
        """Undelivered events after ``after_seq``, oldest first: (seq, id, payload). Payloads are
        built here, on the uplink's thread, from the columns."""
        rows = self._query(
            f"{SELECT_EVENT} WHERE seq > max(?, {THROUGH}) AND delivered_at IS NULL ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [(int(row[_SEQ]), str(row[_ID]), self._payload(row)) for row in rows]

    def oldest_undelivered_seq(self) -> int | None:
        rows = self._query(f"SELECT min(seq) FROM {UNDELIVERED}")
        return int(rows[0][0]) if rows[0][0] is not None else None

    def _locate(self, ids: Sequence[str]) -> tuple[list[int], list[str]]:
        """Event ids as seqs (``{history}.{seq}``: by the key), and those written before (by the index)."""
        prefix = self.history + "."
        seqs, others = [], []
        for i in ids:
            tail = i[len(prefix) :] if i.startswith(prefix) else ""
            if tail.isdigit():
                seqs.append(int(tail))
            else:
                others.append(i)
        return seqs, others

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
            seqs, others = self._locate(ids)
            for first, last in _runs(seqs):  # an ack names runs of seqs: one statement a run, not a row
                n += conn.execute(
                    "UPDATE events SET delivered_at = ? WHERE seq BETWEEN ? AND ? AND delivered_at IS NULL",
                    (now, first, last),
                ).rowcount
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                if others:
                    n += conn.execute(
                        "UPDATE events SET delivered_at = ? WHERE delivered_at IS NULL AND instr(id, '.') = 0"
                        f" AND id IN ({marks})",
                        (now, *part),
                    ).rowcount
                conn.execute(
                    f"UPDATE summaries SET delivered_at = ? WHERE delivered_at IS NULL AND id IN ({marks})",
                    (now, *part),
                )
            if n:  # the watermark moves up to the first event still undelivered
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) SELECT 'delivered_through', CAST(max("
                    f"{THROUGH}, coalesce((SELECT min(seq) FROM {UNDELIVERED}) - 1, (SELECT max(seq) FROM events),"
                    " 0)) AS TEXT)"
                )
            conn.execute("COMMIT")
            return n
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def record_result(self, event_id: str, service: str, ok: bool, code: str, message: str) -> tuple[int, bool] | None:
        """Store an answer; returns (seq, new): ``new`` is false when the same answer was already
        stored (a result sent again), so it is signalled once. None: not one of our events."""
        conn = self.open()
        try:
            seqs, _ = self._locate([event_id])
            where, key = ("e.seq = ?", seqs[0]) if seqs else ("instr(e.id, '.') = 0 AND e.id = ?", event_id)
            row = conn.execute(
                f"SELECT e.seq, r.ok, r.code FROM events e LEFT JOIN results r ON r.event_id = e.id WHERE {where}",
                (key,),
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

    def purge(
        self, duplicate_retention_days: int, keep_delivered_days: int, batch: int = 0, pause: float = 0.0
    ) -> tuple[int, int]:
        """Forget accepted units past retention and delivered events past keeping. Seq never goes back.

        ``batch``: at most that many rows per commit, ``pause`` seconds between commits, so a purge
        of two years never holds the write lock for long (the scan path waits at most one batch);
        0 deletes all in one commit. Both use the ``at`` and ``delivered_at`` indexes."""
        now = time.time()
        units_before = now - duplicate_retention_days * 86400
        events_before = utc_iso(now - keep_delivered_days * 86400)
        limit = f" LIMIT {int(batch)}" if batch else ""
        units = events = 0
        conn = self.open()
        try:
            conn.execute(  # seq never goes back, even when every event is gone
                "INSERT OR REPLACE INTO meta (key, value) SELECT 'last_seq', CAST(max(?,"
                " coalesce((SELECT max(seq) FROM events), 0),"
                " coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_seq'), 0)) AS TEXT)",
                (self._seq,),
            )
            while True:
                n = conn.execute(
                    "DELETE FROM accepted_units WHERE (gtin, serial) IN"
                    f" (SELECT gtin, serial FROM accepted_units WHERE at < ?{limit})",
                    (units_before,),
                ).rowcount
                units += n
                if not batch or n < batch:
                    break
                time.sleep(pause)
            while True:
                n = conn.execute(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE delivered_at IS NOT NULL"
                    f" AND delivered_at < ?{limit})",
                    (events_before,),
                ).rowcount
                events += n
                if not batch or n < batch:
                    break
                time.sleep(pause)
            self._purge_lists(conn, now - keep_delivered_days * 86400)
            return units, events
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def _purge_lists(self, conn: sqlite3.Connection, before: float) -> None:
        """Deliveries closed (summary delivered) or withdrawn, and past keeping: their lists go too."""
        conn.execute("BEGIN IMMEDIATE")
        gone = [
            str(r[0])
            for r in conn.execute(
                "SELECT d.id FROM deliveries d WHERE d.state <> ? AND d.stored_at < ? AND NOT EXISTS"
                " (SELECT 1 FROM summaries s WHERE s.delivery = d.id AND s.delivered_at IS NULL)"
                " AND NOT EXISTS (SELECT 1 FROM session WHERE delivery = d.id)",
                (DeliveryState.OPEN, before),
            )
        ]
        for table, column in (
            ("delivery_units", "delivery"),
            ("carriers", "delivery"),
            ("summaries", "delivery"),
            ("deliveries", "id"),
        ):
            conn.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(g,) for g in gone])
        conn.execute("COMMIT")

    def usage(self) -> tuple[int, int]:
        """(bytes the file and its WAL take, the cap in bytes or 0): what ``max_size_mb`` counts."""
        used = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                used += os.path.getsize(self.path + suffix)
        return used, self.max_size_mb * 1024 * 1024

    def fullness(self) -> float:
        """How full the main file is of its share of the cap (the rest is the WAL's), 0 without a cap."""
        cap = self.max_size_mb * 1024 * 1024
        if not cap:
            return 0.0
        try:
            return os.path.getsize(self.path) / (cap - wal_share(cap))
        except OSError:
            return 0.0

    def backlog(self) -> tuple[int, int, str | None]:
        """(undelivered events, last seq, the oldest undelivered one's time): what the daemon's health
        reports every few seconds. Reads the undelivered index and the key, never a whole table."""
        row = self._query(
            f"SELECT (SELECT count(*) FROM {UNDELIVERED}), (SELECT max(seq) FROM events),"
            f" (SELECT at FROM {UNDELIVERED} ORDER BY seq LIMIT 1)"
        )[0]
        return int(row[0]), int(row[1] or self._seq), row[2]

    def stats(self) -> Stats:
        """Everything ``station status`` and ``queue`` show (counts the events: for the CLI, not the scan path)."""
        row = self._query(
            "SELECT (SELECT count(*) FROM events), (SELECT max(seq) FROM events),"
            f" (SELECT count(*) FROM {UNDELIVERED}),"
            f" (SELECT at FROM {UNDELIVERED} ORDER BY seq LIMIT 1),"
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


class ScanTransaction:
    """:meth:`Store.scan_transaction`'s block: a class rather than a generator, as every call on
    the scan path counts."""

    __slots__ = ("_conn", "_seq", "_store")

    def __init__(self, store: Store) -> None:
        self._store = store

    def __enter__(self) -> None:
        self._conn, self._seq = self._store._begin_scan()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: object) -> None:
        self._store._end_scan(self._conn, self._seq, kind is not None)
