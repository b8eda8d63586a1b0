"""The central ledger: every station event, every unit to notify, every request sent and its answer.

SQLite by default; PostgreSQL by URL, so several submitters can share one ledger (jobs are claimed
with ``FOR UPDATE SKIP LOCKED`` there). The same SQL serves both: ``?`` placeholders are turned
into ``%s`` for PostgreSQL, and nothing else differs.

A unit's job moves ``queued -> in_flight -> done | refused``; a call whose answer was lost leaves
it ``in_doubt`` until the service is asked whether the call took effect; ``failed`` means the
submitter gave up and an operator must look (``station-submitter failures``, ``retry``).
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from functools import wraps
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from station.central.config import Site
from station.gs1.udi import Issuer
from station.wire import EventMessage, Operation, PatientMessage, Service, StationStatus

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS events (
        id TEXT PRIMARY KEY, station TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT, received_at REAL NOT NULL,
        ok INTEGER NOT NULL, reason TEXT, operation TEXT, gtin TEXT, serial TEXT, batch TEXT, expiry TEXT,
        payload TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS events_station_seq ON events (station, seq)",
    """CREATE TABLE IF NOT EXISTS jobs (
        event_id TEXT PRIMARY KEY, station TEXT NOT NULL, site TEXT, service TEXT, operation TEXT,
        gtin TEXT, serial TEXT, batch TEXT, expiry TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL DEFAULT 0, request_id TEXT, ok INTEGER, code TEXT, message TEXT, reference TEXT,
        created_at REAL NOT NULL, updated_at REAL NOT NULL, published INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, service, next_at)",
    "CREATE INDEX IF NOT EXISTS jobs_unpublished ON jobs (published, state)",
    """CREATE TABLE IF NOT EXISTS requests (
        id TEXT PRIMARY KEY, service TEXT NOT NULL, site TEXT, endpoint TEXT NOT NULL, body TEXT NOT NULL,
        state TEXT NOT NULL, submitter TEXT, created_at REAL NOT NULL, answered_at REAL, http_status INTEGER,
        response TEXT)""",
    "CREATE INDEX IF NOT EXISTS requests_state ON requests (state)",
    """CREATE TABLE IF NOT EXISTS stations (
        station TEXT PRIMARY KEY, state TEXT, at REAL, status TEXT)""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    # deliveries (station.central.deliveries): what each dock expects, and which station has it
    """CREATE TABLE IF NOT EXISTS deliveries (
        id TEXT PRIMARY KEY, site TEXT NOT NULL, service TEXT NOT NULL, document TEXT NOT NULL,
        sender TEXT NOT NULL, state TEXT NOT NULL, version INTEGER NOT NULL, units INTEGER NOT NULL,
        body TEXT NOT NULL, fetched_at REAL NOT NULL, closed_at REAL, summary TEXT)""",
    "CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries (state, site)",
    """CREATE TABLE IF NOT EXISTS orders (
        id TEXT PRIMARY KEY, site TEXT, station TEXT NOT NULL, buyer TEXT NOT NULL, document TEXT NOT NULL,
        state TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL, summary TEXT,
        package_request TEXT)""",
    """CREATE TABLE IF NOT EXISTS patients (
        station TEXT NOT NULL, id TEXT NOT NULL, from_at TEXT NOT NULL, until_at TEXT, body TEXT NOT NULL,
        PRIMARY KEY (station, id))""",
    """CREATE TABLE IF NOT EXISTS recalls (
        gtin TEXT NOT NULL, batch TEXT NOT NULL, serial TEXT NOT NULL, note TEXT, source TEXT, added_at REAL NOT NULL,
        PRIMARY KEY (gtin, batch, serial))""",
    """CREATE TABLE IF NOT EXISTS delivery_sends (
        delivery TEXT NOT NULL, station TEXT NOT NULL, version INTEGER NOT NULL, sent_at REAL NOT NULL,
        acked INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (delivery, station))""",
    # the console (station.central.console, station.central.web): who may act, and what they did
    """CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
        target TEXT NOT NULL, detail TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS operators (
        name TEXT PRIMARY KEY, hash TEXT NOT NULL, created_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS api_tokens (
        name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL)""",
    # what the HBYS hears (station.central.announce): refusals, failures and closed deliveries, in order
    """CREATE TABLE IF NOT EXISTS announcements (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL)""",
]

LATER_INDEXES = [
    "CREATE INDEX IF NOT EXISTS jobs_delivery ON jobs (delivery, state)",
    # a call's units (answers, doubts) and one unit's history (the console's lookup)
    "CREATE INDEX IF NOT EXISTS jobs_request ON jobs (request_id)",
    "CREATE INDEX IF NOT EXISTS jobs_order ON jobs (order_id)",
    "CREATE INDEX IF NOT EXISTS jobs_unit ON jobs (gtin, serial)",
    "CREATE INDEX IF NOT EXISTS jobs_di ON jobs (di, serial)",
    "CREATE INDEX IF NOT EXISTS events_unit ON events (gtin, serial)",
    # the newest changes first (the console, the API's results) and date ranges (export)
    "CREATE INDEX IF NOT EXISTS jobs_updated ON jobs (updated_at)",
    "CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at)",
    "CREATE INDEX IF NOT EXISTS requests_answered ON requests (answered_at)",
    "CREATE INDEX IF NOT EXISTS requests_created ON requests (created_at)",
]
"""Indexes on columns a later version added (made after those columns)."""

#: The columns that hold Unix times (seconds, 8-byte floats on both databases).
SECONDS_COLUMNS = (
    ("events", "received_at"),
    ("jobs", "next_at"),
    ("jobs", "created_at"),
    ("jobs", "updated_at"),
    ("jobs", "result_sent_at"),
    ("requests", "created_at"),
    ("requests", "answered_at"),
    ("stations", "at"),
    ("deliveries", "fetched_at"),
    ("deliveries", "closed_at"),
    ("delivery_sends", "sent_at"),
    ("orders", "created_at"),
    ("recalls", "added_at"),
    ("audit", "at"),
    ("operators", "created_at"),
    ("api_tokens", "created_at"),
    ("announcements", "at"),
)

JOB_COLUMNS = (
    "event_id",
    "station",
    "site",
    "service",
    "operation",
    "gtin",
    "serial",
    "batch",
    "expiry",
    "state",
    "attempts",
    "next_at",
    "request_id",
    "ok",
    "code",
    "message",
    "reference",
    "created_at",
    "updated_at",
    "published",
    "issuer",
    "di",
    "udi",
    "delivery",
    "line",
    "document",
    "counterpart",
    "order_id",
    "patient",
)


class JobState(StrEnum):
    """Where one unit's notification stands (the module's docstring draws the moves)."""

    HELD = "held"
    """Received in a delivery that is still open at its station: notified once its summary is in."""
    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    IN_DOUBT = "in_doubt"
    DONE = "done"
    REFUSED = "refused"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Published(IntEnum):
    """Where a unit's result stands on its way back to the station (``jobs.published``)."""

    NO = 0
    ACKED = 1
    """The station stored it (it acked on ``stations/{id}/result_acks``)."""
    SENT = 2
    """The broker took it; kept, and sent again, until the station acks it."""


class RequestState(StrEnum):
    """Where one call to a national service stands."""

    PREPARED = "prepared"
    ANSWERED = "answered"
    IN_DOUBT = "in_doubt"
    NOT_SENT = "not_sent"


class Announced(StrEnum):
    """What the HBYS hears (``announcements``, its webhooks and ``GET /api/v1/announcements``)."""

    UNIT_REFUSED = "unit.refused"
    """The national service refused a unit (its code and Turkish message)."""
    UNIT_FAILED = "unit.failed"
    """The submitter gave up on a unit: a person must look (``station-submitter failures``)."""
    DELIVERY_CLOSED = "delivery.closed"
    """A station closed a delivery: its summary (received, missing, unexpected)."""


#: What an announcement of a unit says: the job's columns a receiving system needs (not the
#: submitter's own bookkeeping: attempts, times, publication, the patient's identity).
ANNOUNCED_COLUMNS = tuple(
    c
    for c in JOB_COLUMNS
    if c not in ("attempts", "next_at", "request_id", "ok", "created_at", "updated_at", "published", "patient", "line")
)


def announce_units(c: Any, where: str, params: Sequence[Any], at: float) -> int:
    """Inside a write: announce the units matching ``where`` that are now refused or failed."""
    rows = c.execute(
        f"SELECT state, {', '.join(ANNOUNCED_COLUMNS)} FROM jobs WHERE ({where})"
        f" AND state IN ('{JobState.REFUSED}', '{JobState.FAILED}')",
        params,
    ).fetchall()
    c.executemany(
        "INSERT INTO announcements (at, kind, body) VALUES (?, ?, ?)",
        [
            (
                at,
                Announced.UNIT_REFUSED if r[0] == JobState.REFUSED else Announced.UNIT_FAILED,
                json.dumps(dict(zip(ANNOUNCED_COLUMNS, r[1:], strict=True)), ensure_ascii=False),
            )
            for r in rows
        ],
    )
    return len(rows)


def _in(ids: Sequence[str]) -> str:
    return f"event_id IN ({_marks(ids)})"


def _marks(values: Sequence[Any]) -> str:
    """As many ``?`` as ``values``, for an ``IN (...)``."""
    return ", ".join("?" * len(values))


@dataclass(frozen=True)
class Job:
    event_id: str
    station: str
    site: str | None
    service: str | None
    operation: str | None
    gtin: str | None
    serial: str | None
    batch: str | None
    expiry: str | None
    state: JobState
    attempts: int
    next_at: float
    request_id: str | None
    ok: int | None
    code: str | None
    message: str | None
    reference: str | None
    created_at: float
    updated_at: float
    published: int
    issuer: str | None = None
    """Who issued the unit's identifier: ``gs1`` (or None, from before UDIs), ``hibcc``, ``iccbba``, ``ifa``."""
    di: str | None = None
    """The device identifier (ÜTS ``UNO``): the GTIN, or another agency's DI."""
    udi: str | None = None
    """A non-GS1 identifier as printed, for ÜTS's ``/essizKimlik`` calls."""
    delivery: str | None = None
    """The delivery the unit was received in (station.central.deliveries)."""
    line: str | None = None
    """ÜTS: the verme (``VBI``) the unit came on, from its delivery."""
    document: str | None = None
    """The delivery's waybill number (ÜTS ``BNO``, PTS ``documentNumber``)."""
    counterpart: str | None = None
    """The delivery's sender (ÜTS ``GKK``, PTS ``sourceGLN``), or the order's buyer (``togln``, ``KUN``)."""
    order_id: str | None = None
    """The order the unit was dispatched in (station.edge.orders)."""
    patient: str | None = None
    """ÜTS kullanım: the identity fields (JSON) the HBYS gave for the station at the scan's time."""

    @property
    def gs1(self) -> bool:
        return self.issuer in (None, "gs1")

    @classmethod
    def of(cls, row: Sequence[Any]) -> Job:
        """A job from a row of ``JOB_COLUMNS``."""
        job = cls(*row)
        return replace(job, state=JobState(job.state))


@dataclass(frozen=True)
class Outcome:
    """The end of one unit's notification: success, or the service's code and message."""

    event_id: str
    ok: bool
    code: str
    message: str
    reference: str = ""
    """The service's id for the notification (ÜTS BID, İTS notificationId), for cancels and audits."""


TRIES = 3
"""How many times a write that met a passing error (:func:`passing`) is tried in all."""


def passing(error: Exception) -> bool:
    """A ledger error that trying again cures: PostgreSQL's transaction rollbacks (SQLSTATE class
    40: a deadlock, a serialization failure) and a SQLite file busy past its timeout."""
    state = getattr(error, "sqlstate", None)
    return (isinstance(state, str) and state.startswith("40")) or "database is locked" in str(error)


P = ParamSpec("P")
R = TypeVar("R")


def settled(write: Callable[Concatenate[Ledger, P], R]) -> Callable[Concatenate[Ledger, P], R]:
    """A write of what already happened outside (a service's answer, a station's ack): one
    transaction, tried again whole when the ledger rolled it back for a passing reason (a
    deadlock with another submitter). Lost, it would leave units ``in_flight`` with their answer
    known, until a submitter's start or the stale sweep puts them in doubt and asks again."""

    @wraps(write)
    def tried(self: Ledger, /, *args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, TRIES):
            try:
                return write(self, *args, **kwargs)
            except Exception as e:
                if not passing(e):
                    raise
                time.sleep(0.02 * 2**attempt)
        return write(self, *args, **kwargs)

    return tried


def _utc(timestamp: str) -> str:
    """An ISO 8601 time as UTC text that sorts as time (stations send Z; an HBYS may send an offset)."""
    return datetime.fromisoformat(timestamp).astimezone(UTC).isoformat(timespec="milliseconds")


def sqlite_path(url: str) -> str:
    """``sqlite:///abs/path.db`` -> ``/abs/path.db``; ``sqlite:rel.db`` or a bare path -> as is."""
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :]
    return url.removeprefix("sqlite:")


class Ledger:
    """One ledger, one connection per thread."""

    def __init__(self, url: str, submitter: str = "submitter") -> None:
        self.url = url
        self.submitter = submitter
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self._local = threading.local()
        with self._starting():
            self._migrate()

    @contextmanager
    def _starting(self) -> Iterator[None]:
        """One submitter at a time makes or updates the tables. On PostgreSQL, concurrent ``CREATE
        TABLE IF NOT EXISTS`` collide in the catalog (a unique violation on ``pg_type``): a session
        advisory lock, one per schema, orders submitters starting together on one ledger. (SQLite's
        write lock orders them already.)"""
        if not self.postgres:
            yield
            return
        key = "SELECT hashtext('karekod-ledger:' || current_schema())"
        self.conn.execute(f"SELECT pg_advisory_lock(({key}))")
        try:
            yield
        finally:
            self.conn.execute(f"SELECT pg_advisory_unlock(({key}))")

    def _migrate(self) -> None:
        """The tables, columns and indexes of this version, on a new ledger or an older one.

        Only what is missing is made: PostgreSQL takes a table's SHARE lock for ``CREATE INDEX IF
        NOT EXISTS`` before it finds the index there, so a submitter starting beside a working one
        would stop that one's writes until its start's commit, and could deadlock with them."""
        self._create(SCHEMA)
        self._add_column("jobs", "result_sent_at", "REAL")
        self._add_column("events", "history", "TEXT")
        self._add_column("stations", "history", "TEXT")
        if self._add_column("stations", "events", "INTEGER"):  # counted once, then as they come
            with self.tx() as c:
                c.execute(
                    "INSERT INTO stations (station, events) SELECT station, count(*) FROM events GROUP BY station"
                    " ON CONFLICT (station) DO UPDATE SET events = excluded.events"
                )
        for column in ("issuer", "di", "udi", "delivery", "line", "document", "counterpart", "order_id", "patient"):
            self._add_column("jobs", column, "TEXT")
        self._create(LATER_INDEXES)
        if self.postgres:  # PostgreSQL's REAL is 4 bytes: a Unix time in it is off by a minute
            narrow = self.query(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND data_type = 'real'"
            )
            with self.tx() as c:  # only a ledger made before the fix: no lock taken at every start
                for table, column in narrow:
                    if (table, column) in SECONDS_COLUMNS:
                        c.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE DOUBLE PRECISION")

    def _create(self, statements: Sequence[str]) -> None:
        """The ``CREATE ... IF NOT EXISTS`` statements whose table or index is not there yet, in one
        commit; none when all are (the usual start: no lock taken)."""
        if self.postgres:
            there = "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            names = {row[0] for row in self.query(f"{there} WHERE n.nspname = current_schema()")}
        else:
            names = {row[0] for row in self.query("SELECT name FROM sqlite_master")}
        missing = [s for s in statements if s.split(" IF NOT EXISTS ", 1)[1].split()[0] not in names]
        if missing:
            with self.tx() as c:
                for statement in missing:
                    c.execute(self._ddl(statement))

    def _add_column(self, table: str, column: str, kind: str) -> bool:
        """A column a later version added, to a ledger made before it (SQLite and PostgreSQL alike).
        True when this call added it."""
        if self.postgres:
            known = "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
            if self.query(f"{known} AND table_name = ? AND column_name = ?", (table, column)):
                return False  # the usual start: no lock taken
            with self.tx() as c:
                c.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")  # two submitters may start at once
                there = c.execute(f"{known} AND table_name = ? AND column_name = ?", (table, column)).fetchone()
                if not there:
                    c.execute(self._ddl(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                return not there
        if column in {row[1] for row in self.query(f"PRAGMA table_info({table})")}:
            return False
        with self.tx() as c:  # asked again under the write lock: two submitters may start at once
            if column in {row[1] for row in c.execute(f"PRAGMA table_info({table})").fetchall()}:
                return False
            c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            return True

    # -- connections --

    def _connect(self) -> Any:
        if self.postgres:
            import psycopg

            return psycopg.connect(self.url, autocommit=True)
        path = sqlite_path(self.url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        for attempt in range(100):  # switching a new file to WAL does not wait for a busy handler
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or attempt == 99:
                    raise
                time.sleep(0.05)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    @property
    def conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _sql(self, sql: str) -> str:
        """``?`` placeholders as PostgreSQL spells them."""
        return sql.replace("?", "%s") if self.postgres else sql

    def _ddl(self, sql: str) -> str:
        """A table definition: REAL columns are 8 bytes in SQLite, 4 in PostgreSQL, so there they
        become DOUBLE PRECISION; an increasing key is BIGSERIAL there."""
        if not self.postgres:
            return sql
        return sql.replace(" REAL", " DOUBLE PRECISION").replace(
            "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY"
        )

    @contextmanager
    def tx(self) -> Iterator[Any]:
        """A write transaction; commits on success. On SQLite it takes the write lock at once."""
        conn = self.conn
        conn.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")
        try:
            yield _Cursor(conn, self)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(self._sql(sql), tuple(params))
        return [tuple(r) for r in cur.fetchall()]

    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 2000) -> Iterator[tuple[Any, ...]]:
        """Rows a batch at a time, for results too large to hold (an export of a year): on
        PostgreSQL through a server-side cursor, on SQLite by stepping the statement."""
        if self.postgres:
            with self.conn.transaction(), self.conn.cursor(name=f"stream_{uuid.uuid4().hex[:8]}") as cur:
                cur.execute(self._sql(sql), tuple(params))
                while rows := cur.fetchmany(batch):
                    yield from (tuple(r) for r in rows)
            return
        cur = self.conn.execute(sql, tuple(params))
        while rows := cur.fetchmany(batch):
            yield from rows

    # -- ingest --

    def ingest(self, events: Sequence[tuple[str, EventMessage]], site_of: Callable[[str], Site | None]) -> list[str]:
        """Store events idempotently by id, with a job for each accepted unit; one commit.

        ``events`` are (payload text as received, the checked message). Returns the ids stored
        (new or already there).
        """
        now = time.time()
        event_rows, job_rows, stored = [], [], []
        sites: dict[str, Site | None] = {}
        for text, e in events:
            event_rows.append(
                (
                    e.id,
                    e.station,
                    e.seq,
                    e.at,
                    now,
                    int(e.ok),
                    e.reason,
                    e.operation,
                    e.gtin,
                    e.serial,
                    e.batch,
                    e.expiry,
                    text,
                    e.history,
                )
            )
            if e.ok:
                if e.station not in sites:
                    sites[e.station] = site_of(e.station)
                site = sites[e.station]
                state, code, message = (
                    (JobState.QUEUED, None, None)
                    if site
                    else (JobState.FAILED, "NO_SITE", f"Station {e.station} has no site.")
                )
                if site and e.delivery:
                    state = JobState.HELD  # until the delivery's summary (station.central.deliveries)
                if site and e.operation not in site.operations:
                    state, code, message = (
                        JobState.FAILED,
                        "OPERATION_MISMATCH",
                        f"Station {e.station} says {e.operation}, its site {site.name} is {site.operation}"
                        f"{' (or ' + ', '.join(site.switchable) + ')' if site.switchable else ''}: fix"
                        " [station] operation on the station or the site in the submitter's configuration, then retry.",
                    )
                if site and site.service is Service.ITS and e.issuer not in (None, Issuer.GS1):
                    state, code, message = (
                        JobState.FAILED,
                        "NOT_GS1",
                        f"A {e.issuer} device identifier cannot be notified to İTS (medicines: GS1 only).",
                    )
                job_rows.append(
                    (
                        e.id,
                        e.station,
                        site.name if site else None,
                        site.service if site else None,
                        e.operation,
                        e.gtin,
                        e.serial,
                        e.batch,
                        e.expiry,
                        state,
                        code,
                        message,
                        now,
                        now,
                        e.issuer,
                        e.di,
                        e.udi,
                        e.delivery,
                        e.document,
                        e.buyer,
                        e.order,
                        self._patient(e) if site and e.operation is Operation.USE else None,
                    )
                )
            stored.append(e.id)
        histories = {e.station: e.history for _, e in events if e.history}  # each station's latest
        insert = (
            "INSERT INTO events (id, station, seq, at, received_at, ok, reason, operation, gtin, serial,"
            " batch, expiry, payload, history) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING"
        )
        with self.tx() as c:
            if c.executemany(insert, event_rows).rowcount == len(event_rows):
                new = Counter(row[1] for row in event_rows)  # the usual batch: every event new
            else:  # some came before (sent again): those this commit wrote carry its received_at
                new = Counter()
                ids = [row[0] for row in event_rows]
                for i in range(0, len(ids), 500):
                    part = ids[i : i + 500]
                    new.update(
                        station
                        for (station,) in c.execute(
                            f"SELECT station FROM events WHERE received_at = ? AND id IN ({_marks(part)})",
                            (now, *part),
                        ).fetchall()
                    )
            # counted as they come (the console and /metrics never count the table); one statement
            # for the batch, in station order (two submitters never wait on each other in a cycle)
            c.executemany(
                "INSERT INTO stations (station, events, history) VALUES (?, ?, ?) ON CONFLICT (station)"
                " DO UPDATE SET events = coalesce(stations.events, 0) + excluded.events,"
                " history = coalesce(excluded.history, stations.history)",
                [(station, new[station], histories.get(station)) for station in sorted(new.keys() | histories.keys())],
            )
            if job_rows:
                c.executemany(
                    "INSERT INTO jobs (event_id, station, site, service, operation, gtin, serial, batch, expiry,"
                    " state, code, message, created_at, updated_at, issuer, di, udi, delivery, document, counterpart,"
                    " order_id, patient) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    job_rows,
                )
                failed = [r[0] for r in job_rows if r[9] == JobState.FAILED]
                if failed:  # new jobs only: an event delivered again is not announced again
                    announce_units(c, f"{_in(failed)} AND created_at = ?", (*failed, now), now)
        return stored

    def note_patient(self, station: str, patient: PatientMessage) -> None:
        """The HBYS says who the units used at ``station`` go to, from ``patient.at``."""
        with self.tx() as c:
            c.execute(
                "INSERT INTO patients (station, id, from_at, until_at, body) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (station, id) DO UPDATE SET from_at = excluded.from_at, until_at = excluded.until_at,"
                " body = excluded.body",
                (
                    station,
                    patient.id,
                    _utc(patient.at),
                    _utc(patient.until) if patient.until else None,
                    json.dumps(patient.fields(), ensure_ascii=False),
                ),
            )

    def _patient(self, e: EventMessage) -> str | None:
        """The identity fields for a unit used at ``e.at``: the latest the HBYS gave before it, unless it ended."""
        at = _utc(e.at)
        rows = self.query(
            "SELECT body FROM patients WHERE station = ? AND from_at <= ? AND (until_at IS NULL OR until_at > ?)"
            " ORDER BY from_at DESC LIMIT 1",
            (e.station, at, at),
        )
        return str(rows[0][0]) if rows else None

    def cancel_requested(self, event_id: str, by: str) -> str:
        """A station took back an accepted scan (``by``, its ``cancelled`` event): a unit not sent
        yet is never notified; one already sent is left for an operator (``station-submitter cancel``)."""
        now = time.time()
        with self.tx() as c:
            n = c.execute(
                f"UPDATE jobs SET state = '{JobState.CANCELLED}', code = 'CANCELLED_AT_STATION', message = ?,"
                f" updated_at = ? WHERE event_id = ? AND state IN ('{JobState.QUEUED}', '{JobState.HELD}')",
                (f"Taken back at the station (event {by}) before it was notified.", now, event_id),
            ).rowcount
            if n:
                return "cancelled"
            row = c.execute("SELECT state FROM jobs WHERE event_id = ?", (event_id,)).fetchone()
        return str(row[0]) if row else "unknown"

    def history_faults(self, events: Sequence[EventMessage]) -> dict[str, str]:
        """Events to refuse because their station's history broke: {event id: why}.

        A (station, seq) the ledger has under another id in the same history means the station lost
        its file and started again; a new history is taken only when it names the one it ended
        (``reset_of``, written by a technician's ``station reset``)."""
        by_key = {(e.station, e.seq): e for e in events}
        stations = sorted({e.station for e in events})
        known: dict[str, str | None] = {}  # each station's history, as of its last stored event
        for i in range(0, len(stations), 500):  # a query for the batch, not one per station
            part = stations[i : i + 500]
            known.update(self.query(f"SELECT station, history FROM stations WHERE station IN ({_marks(part)})", part))
        faults: dict[str, str] = {}
        for e in by_key.values():
            last = known.get(e.station)
            if last is not None and e.history != last and e.reset_of != last:
                faults[e.id] = f"a new history {e.history} that does not name the last one ({last})"
        keys = list(by_key)
        for i in range(0, len(keys), 500):
            pairs = keys[i : i + 500]
            rows = self.query(  # a join on the index: SQLite scans the whole table for an IN of row values
                f"SELECT e.station, e.seq, e.id, e.history FROM (VALUES {', '.join(['(?, ?)'] * len(pairs))}) AS v"
                " JOIN events e ON e.station = v.column1 AND e.seq = v.column2",
                [value for key in pairs for value in key],
            )
            for station, seq, old_id, old_history in rows:
                new = by_key[(station, int(seq))]
                if new.id != old_id and new.history == old_history:
                    faults[new.id] = f"seq {seq} was already event {old_id} in the same history"
        return faults

    def note_station(self, status: StationStatus) -> str | None:
        """Keep a station's latest status; returns the state it had before (None: never seen).

        A will (``{state: offline, station}``, sent by the broker for a station that vanished)
        keeps what the station last said of itself (backlog, scanner, version, disk): what it was
        like when it went is what a person wants to see."""
        with self.tx() as c:
            before = c.execute("SELECT state, status FROM stations WHERE station = ?", (status.station,)).fetchone()
            body = status.as_dict()
            if status.state != "online" and before and before[1]:  # an online status says it all
                last = json.loads(before[1])
                body = {**last, **{k: v for k, v in body.items() if v is not None}}
            c.execute(
                "INSERT INTO stations (station, state, at, status) VALUES (?, ?, ?, ?) ON CONFLICT (station)"
                " DO UPDATE SET state = excluded.state, at = excluded.at, status = excluded.status",
                (status.station, status.state, time.time(), json.dumps(body, ensure_ascii=False)),
            )
        return str(before[0]) if before and before[0] else None  # a row made by its events alone: never seen

    # -- claiming work --

    def claim(
        self,
        service: str,
        site: str | None,
        limit: int,
        call_for: Callable[[list[Job]], Any],
        whole_lot: bool = False,
    ) -> tuple[str, list[Job]] | None:
        """Take up to ``limit`` queued jobs and record the request for them *before* it is sent.

        One request carries one waybill and counterpart: the oldest job's (a delivery's units go
        together, never mixed with another's). ``whole_lot``: when the oldest job is a lot unit of
        an ÜTS verme (``line``, no serial), every queued unit of that verme goes in the same call
        (one alma with ``ADT`` = how many came). ``call_for(jobs)`` builds the request (its
        ``path`` and ``body``). Returns (request id, jobs) or None.
        """
        now = time.time()
        lock = " FOR UPDATE SKIP LOCKED" if self.postgres else ""
        where = f"state = '{JobState.QUEUED}' AND service = ? AND next_at <= ?" + (" AND site = ?" if site else "")
        params: list[Any] = [service, now] + ([site] if site else [])
        with self.tx() as c:
            rows = c.execute(
                f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE {where} ORDER BY created_at, event_id LIMIT ?{lock}",
                (*params, limit),
            ).fetchall()
            if not rows:
                return None
            jobs = [Job.of(r) for r in rows]
            head = jobs[0]
            key = (head.delivery, head.document, head.counterpart, head.operation)
            jobs = [j for j in jobs if (j.delivery, j.document, j.counterpart, j.operation) == key]
            if whole_lot and head.line and not head.serial:
                rest = c.execute(
                    f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE state = '{JobState.QUEUED}' AND service = ?"
                    " AND line = ? AND (serial IS NULL OR serial = '') AND event_id <> ?"
                    f" ORDER BY created_at, event_id{lock}",
                    (service, head.line, head.event_id),
                ).fetchall()
                jobs = [head, *(Job.of(r) for r in rest)]
            request_id = str(uuid.uuid4())
            call = call_for(jobs)
            c.execute(
                "INSERT INTO requests (id, service, site, endpoint, body, state, submitter, created_at)"
                f" VALUES (?, ?, ?, ?, ?, '{RequestState.PREPARED}', ?, ?)",
                (
                    request_id,
                    service,
                    jobs[0].site,
                    call.path,
                    json.dumps(call.body, ensure_ascii=False),
                    self.submitter,
                    now,
                ),
            )
            c.executemany(
                f"UPDATE jobs SET state = '{JobState.IN_FLIGHT}', request_id = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE event_id = ?",
                [(request_id, now, j.event_id) for j in jobs],
            )
        return request_id, [
            replace(j, state=JobState.IN_FLIGHT, attempts=j.attempts + 1, request_id=request_id) for j in jobs
        ]

    def oldest_queued(self, service: str) -> list[tuple[str, int, float]]:
        """Per site: (site, queued count, oldest created_at) of jobs ready to go."""
        return self.query(
            "SELECT site, count(*), min(created_at) FROM jobs"
            f" WHERE state = '{JobState.QUEUED}' AND service = ? AND next_at <= ? GROUP BY site",
            (service, time.time()),
        )

    # -- answers --

    @settled
    def answer(self, request_id: str, http_status: int | None, response: str, outcomes: Sequence[Outcome]) -> None:
        """A definite answer: the request and every unit's outcome, in one commit."""
        now = time.time()
        with self.tx() as c:
            c.execute(
                f"UPDATE requests SET state = '{RequestState.ANSWERED}', answered_at = ?, http_status = ?,"
                " response = ? WHERE id = ?",
                (now, http_status, response, request_id),
            )
            c.executemany(
                "UPDATE jobs SET state = ?, ok = ?, code = ?, message = ?, reference = ?, updated_at = ?,"
                " published = 0 WHERE event_id = ?",
                [
                    (
                        JobState.DONE if o.ok else JobState.REFUSED,
                        int(o.ok),
                        o.code,
                        o.message,
                        o.reference,
                        now,
                        o.event_id,
                    )
                    for o in outcomes
                ],
            )
            refused = [o.event_id for o in outcomes if not o.ok]
            if refused:
                announce_units(c, _in(refused), refused, now)

    @settled
    def in_doubt(self, request_id: str, why: str) -> None:
        """The call may or may not have taken effect: ask the service before anything is sent again."""
        now = time.time()
        with self.tx() as c:
            c.execute(
                f"UPDATE requests SET state = '{RequestState.IN_DOUBT}', answered_at = ?, response = ? WHERE id = ?",
                (now, why, request_id),
            )
            c.execute(
                f"UPDATE jobs SET state = '{JobState.IN_DOUBT}', message = ?, updated_at = ? WHERE request_id = ?"
                f" AND state = '{JobState.IN_FLIGHT}'",
                (why, now, request_id),
            )

    @settled
    def not_sent(self, request_id: str, why: str, backoff: float, max_attempts: int) -> None:
        """The request certainly did not reach the service: queue its units again, later."""
        now = time.time()
        with self.tx() as c:
            c.execute(
                f"UPDATE requests SET state = '{RequestState.NOT_SENT}', answered_at = ?, response = ? WHERE id = ?",
                (now, why, request_id),
            )
            c.execute(
                f"UPDATE jobs SET state = CASE WHEN attempts >= ? THEN '{JobState.FAILED}'"
                f" ELSE '{JobState.QUEUED}' END, next_at = ?,"
                " message = ?, code = CASE WHEN attempts >= ? THEN 'TRANSPORT' ELSE code END, updated_at = ?"
                f" WHERE request_id = ? AND state = '{JobState.IN_FLIGHT}'",
                (max_attempts, now + backoff, why, max_attempts, now, request_id),
            )
            announce_units(c, "request_id = ? AND updated_at = ?", (request_id, now), now)

    @settled
    def resolved(
        self, event_id: str, took_effect: bool, note: str, backoff: float, max_attempts: int, reference: str = ""
    ) -> None:
        """An in-doubt unit after asking the service: done, or back in the queue to send again."""
        now = time.time()
        with self.tx() as c:
            if took_effect:
                c.execute(
                    f"UPDATE jobs SET state = '{JobState.DONE}', ok = 1, code = 'RESOLVED', message = ?, reference = ?,"
                    " updated_at = ?, published = 0 WHERE event_id = ?",
                    (note, reference, now, event_id),
                )
            else:
                c.execute(
                    f"UPDATE jobs SET state = CASE WHEN attempts >= ? THEN '{JobState.FAILED}'"
                    f" ELSE '{JobState.QUEUED}' END, next_at = ?,"
                    " message = ?, updated_at = ? WHERE event_id = ?",
                    (max_attempts, now + backoff, note, now, event_id),
                )
                announce_units(c, "event_id = ?", (event_id,), now)

    def prepare(self, service: str, site: str | None, endpoint: str, body: dict[str, Any]) -> str:
        """Record a request of its own (an operator's cancel) before it is sent."""
        request_id = str(uuid.uuid4())
        with self.tx() as c:
            c.execute(
                "INSERT INTO requests (id, service, site, endpoint, body, state, submitter, created_at)"
                f" VALUES (?, ?, ?, ?, ?, '{RequestState.PREPARED}', ?, ?)",
                (
                    request_id,
                    service,
                    site,
                    endpoint,
                    json.dumps(body, ensure_ascii=False),
                    self.submitter,
                    time.time(),
                ),
            )
        return request_id

    @settled
    def cancelled(self, event_id: str, request_id: str, response: str, ok: bool, message: str) -> None:
        """The answer to a cancel; a unit whose notification was cancelled is ``cancelled``."""
        now = time.time()
        with self.tx() as c:
            c.execute(
                f"UPDATE requests SET state = '{RequestState.ANSWERED}', answered_at = ?, response = ? WHERE id = ?",
                (now, response, request_id),
            )
            if ok:
                c.execute(
                    f"UPDATE jobs SET state = '{JobState.CANCELLED}', code = 'CANCELLED', message = ?, updated_at = ?,"
                    " published = 0 WHERE event_id = ?",
                    (message, now, event_id),
                )

    @settled
    def give_up(self, event_id: str, code: str, message: str) -> None:
        now = time.time()
        with self.tx() as c:
            c.execute(
                f"UPDATE jobs SET state = '{JobState.FAILED}', code = ?, message = ?, updated_at = ?, published = 0"
                " WHERE event_id = ?",
                (code, message, now, event_id),
            )
            announce_units(c, "event_id = ?", (event_id,), now)

    def recover(self, stale_after: float, mine: bool = True) -> int:
        """At start: requests this submitter prepared and never saw answered (``mine``), and
        anyone's that went stale, are in doubt (the call may have happened just before a crash).
        While running (``mine=False``): the stale ones only, whose answer a submitter could not
        write (its ledger gone for longer than :func:`settled` tries) or which died with it."""
        cutoff = time.time() - stale_after
        prepared = f"SELECT id FROM requests WHERE state = '{RequestState.PREPARED}'"
        if mine:
            rows = self.query(f"{prepared} AND (submitter = ? OR created_at < ?)", (self.submitter, cutoff))
        else:
            rows = self.query(f"{prepared} AND created_at < ?", (cutoff,))
        for (request_id,) in rows:
            self.in_doubt(request_id, "submitter stopped during the call")
        return len(rows)

    def jobs(self, where: str, params: Sequence[Any] = (), limit: int = 1000) -> list[Job]:
        rows = self.query(
            f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE {where} ORDER BY created_at LIMIT ?", (*params, limit)
        )
        return [Job.of(r) for r in rows]

    def request(self, request_id: str) -> tuple[str, str, str, str] | None:
        rows = self.query("SELECT service, site, endpoint, body FROM requests WHERE id = ?", (request_id,))
        return rows[0] if rows else None

    # -- results: kept until the station acks them --

    @settled
    def take_results(self, resend_after: float, limit: int = 500) -> list[Job]:
        """Final units whose result no station has acked (never sent, or sent ``resend_after`` s
        ago), taken to be sent: marked sent, now, in the same commit that reads them.

        Marked before they go, not after: a station acks within milliseconds, and an ack that came
        before the mark found nothing to ack (40 % of them in the fleet benchmark, each result then
        sent again a minute later) or waited for the marking commit. Two submitters never take the
        same results together (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
        now = time.time()
        final = f"state IN ('{JobState.DONE}', '{JobState.REFUSED}', '{JobState.FAILED}')"
        due = f"(published = {Published.NO} OR (published = {Published.SENT} AND result_sent_at < ?))"
        lock = " FOR UPDATE SKIP LOCKED" if self.postgres else ""
        with self.tx() as c:
            rows = c.execute(
                f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE {final} AND {due} ORDER BY created_at LIMIT ?{lock}",
                (now - resend_after, limit),
            ).fetchall()
            jobs = [Job.of(r) for r in rows]
            c.executemany(  # in event-id order, as every writer of these rows (no deadlock)
                f"UPDATE jobs SET published = {Published.SENT}, result_sent_at = ? WHERE event_id = ?",
                [(now, i) for i in sorted(j.event_id for j in jobs)],
            )
        return jobs

    @settled
    def results_unsent(self, event_ids: Iterable[str], again_at: float) -> None:
        """Taken results the broker did not take (the submitter was cut off): due again when
        ``resend_after`` has passed since ``again_at`` would have been their sending."""
        ids = sorted(event_ids)
        if not ids:
            return
        with self.tx() as c:
            c.executemany(
                f"UPDATE jobs SET result_sent_at = ? WHERE event_id = ? AND published = {Published.SENT}",
                [(again_at, i) for i in ids],
            )

    def results_acked(self, station: str, event_ids: Iterable[str]) -> int:
        """The station stored these results: done. Only that station's own units are touched."""
        return self.results_acked_many({station: event_ids})

    @settled
    def results_acked_many(self, acks: Mapping[str, Iterable[str]]) -> int:
        """:meth:`results_acked` for several stations in one commit (an ingest batch's acks: a
        commit each would cost the ledger an fsync per result)."""
        pairs = sorted((i, station) for station, ids in acks.items() for i in ids)  # one lock order (take_results)
        if not pairs:
            return 0
        with self.tx() as c:
            n: int = c.executemany(
                f"UPDATE jobs SET published = {Published.ACKED} WHERE event_id = ? AND station = ?"
                f" AND published = {Published.SENT}",
                pairs,
            ).rowcount
        return n

    def resend_results(self, station: str) -> int:
        """A station came (back) online: what it has not acked goes again now, not after the timeout."""
        with self.tx() as c:
            n: int = c.execute(
                f"UPDATE jobs SET result_sent_at = 0 WHERE station = ? AND published = {Published.SENT}", (station,)
            ).rowcount
        return n

    def retry(self, event_id: str) -> bool:
        """An operator's retry: a failed, refused or in-doubt unit goes back to the queue."""
        with self.tx() as c:
            n = c.execute(
                f"UPDATE jobs SET state = CASE WHEN state = '{JobState.IN_DOUBT}' THEN '{JobState.IN_DOUBT}'"
                f" ELSE '{JobState.QUEUED}' END, attempts = 0, next_at = 0, updated_at = ? WHERE event_id = ?"
                f" AND state IN ('{JobState.FAILED}', '{JobState.REFUSED}', '{JobState.IN_DOUBT}')",
                (time.time(), event_id),
            ).rowcount
        return bool(n)

    def meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.tx() as c:
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


_ROW_VALUES = re.compile(r"(INSERT\b.*?\bVALUES\s*)(\([^()]*\))(.*)", re.DOTALL)


@functools.cache
def _many_rows(sql: str) -> tuple[str, str, str] | None:
    """An INSERT of one ``VALUES (...)`` row split around that row (its head, the row, its tail);
    None for any other statement, or a row holding parentheses (a function call: left alone)."""
    match = _ROW_VALUES.fullmatch(sql)
    return (match[1], match[2], match[3]) if match is not None and "?" in match[2] else None


ROWS_TOGETHER = 256
"""Rows one statement of :func:`insert_rows` inserts, at most. Statements take a power of two rows
(256, 128, ... 1), so that a connection's cache of prepared statements holds at most nine of each
INSERT, whatever sizes its batches come in (each distinct text is a statement of its own)."""


def insert_rows(conn: sqlite3.Connection, sql: tuple[str, str, str], rows: Sequence[Sequence[Any]]) -> int:
    """Rows inserted with as few statements as SQLite's limit on parameters allows (``VALUES
    (...), (...), ...``): the same rows, conflicts and count as ``executemany``, which runs the
    statement once a row, in statements of :data:`ROWS_TOGETHER` rows or fewer. Returns the rows
    changed.

    ``executemany`` hands Python's lock on the interpreter back and forth at every row, and the
    ingest thread shares it with paho's network thread: with a busy thread beside it, 1,000-event
    batches went into the ledger at 21,000 events/s that way and at 38,000-41,000 this way (alone,
    46,000 either way; ``bench/bench_submitter.py`` measures the whole ingest)."""
    head, row, tail = sql
    most = max(1, min(ROWS_TOGETHER, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // row.count("?")))
    changed, i = 0, 0
    while i < len(rows):
        n = 1 << (min(most, len(rows) - i).bit_length() - 1)  # the largest power of two that fits
        values = [value for one in rows[i : i + n] for value in one]
        changed += conn.execute(f"{head}{', '.join([row] * n)}{tail}", values).rowcount
        i += n
    return changed


class _Changed:
    """What :meth:`_Cursor.executemany` returns for rows inserted together: their count."""

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount


class _Cursor:
    """Runs ``?``-style SQL on either database inside :meth:`Ledger.tx`."""

    def __init__(self, conn: Any, ledger: Ledger) -> None:
        self.conn = conn
        self.ledger = ledger

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.ledger._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        if self.ledger.postgres:  # left open: its rowcount (the sum over the rows) is still read
            cur = self.conn.cursor()
            cur.executemany(self.ledger._sql(sql), rows)
            return cur
        many = _many_rows(sql)
        if many is None:
            return self.conn.executemany(sql, rows)
        return _Changed(insert_rows(self.conn, many, rows))
