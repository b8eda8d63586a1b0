"""The ledger, function by function, against the literal rows it leaves in SQLite.

Each state, code and column is asserted as the database holds it (strings, not the enums under
test), so a changed state name or a lost column cannot pass.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from central import event_body
from harness import PG_URL
from scans import gtin

from station.central.config import Site
from station.central.ledger import JobState, Ledger, Outcome
from station.central.services.http import Call
from station.wire import EventMessage, Operation, PatientMessage, Service, StationStatus

UTS_SITE = Site("dock", Service.UTS, "1000001", Operation.RECEIPT, ("dock-1",))
ITS_SITE = Site("line", Service.ITS, "8680000000001", Operation.DISPATCH, ("line-1",), counterpart="8680000000009")
SITES = {"dock-1": UTS_SITE, "line-1": ITS_SITE}


def event(station: str, seq: int, **fields: Any) -> tuple[str, EventMessage]:
    text = json.dumps(event_body(station, seq, **fields))
    return text, EventMessage.from_json(text)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    ledger = Ledger(ledger_url, "sub-a")
    yield ledger
    ledger.close()


def rows(ledger: Ledger, sql: str) -> list[tuple[Any, ...]]:
    return ledger.query(sql)


def job(ledger: Ledger, event_id: str) -> dict[str, Any]:
    cols = "state, attempts, next_at, request_id, ok, code, message, reference, published, issuer, di, udi"
    values = ledger.query(f"SELECT {cols} FROM jobs WHERE event_id = ?", (event_id,))[0]
    return dict(zip(cols.split(", "), values, strict=True))


def test_ingest_stores_events_and_makes_jobs(ledger: Ledger) -> None:
    ok = event("dock-1", 1, gtin=gtin(1), serial="S1")
    refused = event("dock-1", 2, ok=False, reason="not_gs1", gtin=None, serial=None, batch=None, expiry=None)
    orphan = event("nowhere", 1)
    hibc = event("line-1", 1, issuer="hibcc", di="A99912345", udi="+A99912345/$$7L1X", gtin=None)
    stored = ledger.ingest([ok, refused, orphan, hibc], SITES.get)
    assert stored == [ok[1].id, refused[1].id, orphan[1].id, hibc[1].id]
    assert ledger.ingest([ok], SITES.get) == [ok[1].id]  # again: no second row
    assert rows(ledger, "SELECT count(*) FROM events")[0][0] == 4
    assert rows(ledger, "SELECT station, seq, ok, gtin, serial FROM events ORDER BY station, seq") == [
        ("dock-1", 1, 1, gtin(1), "S1"),
        ("dock-1", 2, 0, None, None),
        ("line-1", 1, 1, None, "S1"),
        ("nowhere", 1, 1, gtin(1), "S1"),
    ]
    jobs = dict(
        rows(ledger, "SELECT event_id, state || ',' || coalesce(code, '') || ',' || coalesce(service, '') FROM jobs")
    )
    assert jobs == {
        ok[1].id: "queued,,uts",
        orphan[1].id: "failed,NO_SITE,",
        hibc[1].id: "failed,NOT_GS1,its",  # a device identifier cannot go to İTS
    }
    assert job(ledger, ok[1].id)["issuer"] is None and job(ledger, hibc[1].id)["di"] == "A99912345"
    assert job(ledger, hibc[1].id)["udi"] == "+A99912345/$$7L1X"


def test_events_are_counted_per_station_as_they_come_and_once_for_an_older_ledger(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    dock = event("dock-1", 1)
    ledger.ingest([event("line-1", i) for i in range(1, 4)] + [dock], lambda _: None)
    again = [event("line-1", 4)]
    ledger.ingest(again + again, lambda _: None)  # the same event twice: counted once
    counted = "SELECT station, events FROM stations ORDER BY station"
    assert rows(ledger, counted) == [("dock-1", 1), ("line-1", 4)]
    ledger.ingest([event("line-1", 5), dock, event("dock-1", 2)], lambda _: None)  # one sent again, among new ones
    assert rows(ledger, counted) == [("dock-1", 2), ("line-1", 5)]
    ledger.ingest([event("line-1", 6), event("dock-1", 3)], lambda _: None)  # every one new: counted by the batch
    assert rows(ledger, counted) == [("dock-1", 3), ("line-1", 6)]
    with ledger.tx() as c:  # a ledger from before the counter
        c.execute("ALTER TABLE stations DROP COLUMN events")
    ledger.close()
    assert rows(Ledger(ledger_url), counted) == [("dock-1", 3), ("line-1", 6)]


def test_note_station_returns_the_state_before(ledger: Ledger) -> None:
    status = StationStatus(station="dock-1", state="online")
    assert ledger.note_station(status) is None
    assert ledger.note_station(StationStatus(station="dock-1", state="offline")) == "online"
    assert rows(ledger, "SELECT station, state FROM stations") == [("dock-1", "offline")]


def queued(ledger: Ledger, n: int, station: str = "dock-1") -> list[str]:
    events = [event(station, i + 1, gtin=gtin(i), serial=f"S{i}") for i in range(n)]
    ledger.ingest(events, SITES.get)
    return [e.id for _, e in events]


def test_claim_takes_ready_jobs_in_order_and_records_the_request_first(ledger: Ledger) -> None:
    ids = queued(ledger, 3)
    with ledger.tx() as c:
        c.execute("UPDATE jobs SET next_at = ? WHERE event_id = ?", (time.time() + 60, ids[0]))  # not yet
    assert ledger.claim("its", None, 10, lambda jobs: Call("x", {})) is None  # other service
    assert ledger.claim("uts", "line", 10, lambda jobs: Call("x", {})) is None  # other site
    claimed = ledger.claim("uts", "dock", 1, lambda jobs: Call("path/ekle", {"n": len(jobs), "ş": "ü"}))
    assert claimed is not None
    request_id, jobs = claimed
    (taken,) = jobs  # the oldest due one; same age: by event id
    other = ids[2] if taken.event_id == ids[1] else ids[1]
    assert taken.event_id == min(ids[1:]) and taken.state == "in_flight" and taken.attempts == 1
    assert (
        job(ledger, taken.event_id)["state"] == "in_flight" and job(ledger, taken.event_id)["request_id"] == request_id
    )
    assert job(ledger, taken.event_id)["attempts"] == 1 and job(ledger, other)["state"] == "queued"
    req = rows(ledger, "SELECT service, site, endpoint, body, state, submitter FROM requests")
    assert req == [("uts", "dock", "path/ekle", '{"n": 1, "ş": "ü"}', "prepared", "sub-a")]
    assert ledger.request(request_id) == ("uts", "dock", "path/ekle", '{"n": 1, "ş": "ü"}')
    assert ledger.request("nope") is None
    oldest = ledger.oldest_queued("uts")
    assert [(site, n) for site, n, _ in oldest] == [("dock", 1)]  # the one not yet due is not ready


def claim_all(ledger: Ledger, n: int) -> tuple[str, list[str]]:
    ids = queued(ledger, n)
    claimed = ledger.claim("uts", "dock", n, lambda jobs: Call("p", {}))
    assert claimed is not None
    return claimed[0], ids


def test_answer_settles_every_unit_in_one_commit(ledger: Ledger) -> None:
    request_id, ids = claim_all(ledger, 2)
    ledger.answer(
        request_id,
        200,
        '{"ok":1}',
        [Outcome(ids[0], True, "00000", "ok", "BID-1"), Outcome(ids[1], False, "60002", "no")],
    )
    assert {
        k: v
        for k, v in job(ledger, ids[0]).items()
        if k in ("state", "ok", "code", "message", "reference", "published")
    } == {
        "state": "done",
        "ok": 1,
        "code": "00000",
        "message": "ok",
        "reference": "BID-1",
        "published": 0,
    }
    assert (job(ledger, ids[1])["state"], job(ledger, ids[1])["ok"], job(ledger, ids[1])["code"]) == (
        "refused",
        0,
        "60002",
    )
    assert rows(ledger, "SELECT state, http_status, response FROM requests") == [("answered", 200, '{"ok":1}')]


def test_in_doubt_touches_only_units_still_in_flight(ledger: Ledger) -> None:
    request_id, ids = claim_all(ledger, 2)
    with ledger.tx() as c:
        c.execute("UPDATE jobs SET state = 'done' WHERE event_id = ?", (ids[1],))
    ledger.in_doubt(request_id, "timeout")
    assert (job(ledger, ids[0])["state"], job(ledger, ids[0])["message"]) == ("in_doubt", "timeout")
    assert job(ledger, ids[1])["state"] == "done"
    assert rows(ledger, "SELECT state, response FROM requests") == [("in_doubt", "timeout")]


def test_not_sent_queues_again_later_until_the_attempts_run_out(ledger: Ledger) -> None:
    request_id, ids = claim_all(ledger, 2)
    with ledger.tx() as c:
        c.execute("UPDATE jobs SET attempts = 3 WHERE event_id = ?", (ids[1],))
    before = time.time()
    ledger.not_sent(request_id, "refused connection", backoff=30.0, max_attempts=3)
    first, second = job(ledger, ids[0]), job(ledger, ids[1])
    assert (first["state"], first["code"], first["message"]) == ("queued", None, "refused connection")
    assert before + 29 < first["next_at"] < time.time() + 31
    assert (second["state"], second["code"]) == ("failed", "TRANSPORT")
    assert rows(ledger, "SELECT state, response FROM requests") == [("not_sent", "refused connection")]


def test_resolved_done_or_again(ledger: Ledger) -> None:
    request_id, ids = claim_all(ledger, 3)
    ledger.in_doubt(request_id, "lost answer")
    ledger.resolved(ids[0], True, "found it", 10.0, 5, reference="BID-9")
    ledger.resolved(ids[1], False, "not there", 10.0, 5)
    ledger.resolved(ids[2], False, "not there", 10.0, 1)  # attempts (1) >= max (1): failed
    done = job(ledger, ids[0])
    assert (done["state"], done["ok"], done["code"], done["message"], done["reference"], done["published"]) == (
        "done",
        1,
        "RESOLVED",
        "found it",
        "BID-9",
        0,
    )
    assert (job(ledger, ids[1])["state"], job(ledger, ids[1])["message"]) == ("queued", "not there")
    assert job(ledger, ids[1])["next_at"] > time.time() + 8
    assert job(ledger, ids[2])["state"] == "failed"


def test_a_cancel_is_recorded_before_and_after(ledger: Ledger) -> None:
    request_id, ids = claim_all(ledger, 2)
    ledger.answer(request_id, 200, "", [Outcome(i, True, "00000", "ok") for i in ids])
    cancel = ledger.prepare("uts", "dock", "bildirim/verme/iptal", {"BID": "B1"})
    assert ledger.request(cancel) == ("uts", "dock", "bildirim/verme/iptal", '{"BID": "B1"}')
    ledger.cancelled(ids[0], cancel, "ok", True, "cancelled by operator")
    ledger.cancelled(ids[1], cancel, "no", False, "service said no")
    assert (job(ledger, ids[0])["state"], job(ledger, ids[0])["code"], job(ledger, ids[0])["message"]) == (
        "cancelled",
        "CANCELLED",
        "cancelled by operator",
    )
    assert job(ledger, ids[1])["state"] == "done"
    ledger.give_up(ids[1], "GAVE_UP", "operator")
    assert (job(ledger, ids[1])["state"], job(ledger, ids[1])["code"], job(ledger, ids[1])["message"]) == (
        "failed",
        "GAVE_UP",
        "operator",
    )


def test_recover_puts_this_submitters_and_stale_requests_in_doubt(ledger_url: str) -> None:
    a, b = Ledger(ledger_url, "sub-a"), Ledger(ledger_url, "sub-b")
    mine, ids = claim_all(a, 1)
    other = b.prepare("uts", "dock", "p", {})  # another submitter's request, just made
    assert a.recover(stale_after=3600) == 1  # its own prepared request; b's is young
    assert job(a, ids[0])["state"] == "in_doubt"
    assert dict(a.query("SELECT id, state FROM requests")) == {mine: "in_doubt", other: "prepared"}
    assert a.recover(stale_after=-1) == 1  # now b's counts as stale
    assert dict(a.query("SELECT id, state FROM requests"))[other] == "in_doubt"


def test_results_are_kept_until_their_station_acks_them(ledger: Ledger) -> None:
    request_id, ids = claim_all(ledger, 3)
    ledger.answer(request_id, 200, "", [Outcome(i, True, "00000", "ok") for i in ids])

    def take(resend_after: float, limit: int = 500) -> list[str]:
        return [j.event_id for j in ledger.take_results(resend_after, limit)]

    assert take(60, limit=2) == ids[:2]  # taken: marked sent before they go
    assert [job(ledger, i)["published"] for i in ids] == [2, 2, 0]
    assert take(60) == ids[2:]  # sent ones wait for their ack
    assert take(60) == []
    assert ledger.results_acked("line-1", ids[:2]) == 0  # another station cannot ack them
    assert ledger.results_acked("dock-1", [ids[0]]) == 1 and ledger.results_acked("dock-1", []) == 0
    assert ledger.results_acked("dock-1", [ids[0]]) == 0  # once
    assert [job(ledger, i)["published"] for i in ids] == [1, 2, 2]
    assert take(-1) == ids[1:]  # sent long enough ago: again; an acked one never
    assert ledger.resend_results("dock-1") == 2 and ledger.resend_results("line-1") == 0
    assert rows(ledger, "SELECT result_sent_at FROM jobs WHERE event_id = ?".replace("?", f"'{ids[1]}'")) == [(0,)]
    assert take(60) == ids[1:]
    ledger.results_unsent([ids[2], ids[0]], again_at=0.0)  # the broker did not take one; an acked one stays
    ledger.results_unsent([], again_at=0.0)
    assert take(60) == [ids[2]] and job(ledger, ids[0])["published"] == 1


def test_meta(ledger: Ledger) -> None:
    assert ledger.meta("k") is None
    ledger.set_meta("k", "1")
    ledger.set_meta("k", "2")
    assert ledger.meta("k") == "2"


def test_retry_requeues_failed_and_refused_and_rechecks_in_doubt(ledger: Ledger) -> None:
    states = ["failed", "refused", "in_doubt", "done", "queued", "in_flight", "cancelled"]
    ids = queued(ledger, len(states))
    with ledger.tx() as c:
        for event_id, state in zip(ids, states, strict=True):
            c.execute("UPDATE jobs SET state = ?, attempts = 3, next_at = 99 WHERE event_id = ?", (state, event_id))
    assert [ledger.retry(i) for i in ids] == [True, True, True, False, False, False, False]
    after = [(job(ledger, i)["state"], job(ledger, i)["attempts"], job(ledger, i)["next_at"]) for i in ids]
    assert after == [
        ("queued", 0, 0),
        ("queued", 0, 0),
        ("in_doubt", 0, 0),  # its status is asked again before anything is sent
        ("done", 3, 99),
        ("queued", 3, 99),
        ("in_flight", 3, 99),
        ("cancelled", 3, 99),
    ]
    assert ledger.retry("no-such-event") is False


def test_history_faults(ledger: Ledger) -> None:
    """A station that lost its file and began again is caught: a seq reused in the same history, or
    a new history that does not name the last one; a reset that names it is taken."""
    first = [event("dock-1", i + 1, history="h-1") for i in range(3)]
    ledger.ingest(first, SITES.get)
    messages = [e for _, e in first]
    assert ledger.history_faults(messages) == {}  # the same events again: no fault
    again = event("dock-1", 2, history="h-1")[1]  # seq 2 under another id, same history
    fresh = event("dock-1", 4, history="h-2")[1]  # a new history out of nowhere
    reset = event("dock-1", 1, history="h-3", reset_of="h-1")[1]  # a technician's reset
    faults = ledger.history_faults([again, fresh, reset])
    assert faults == {
        again.id: f"seq 2 was already event {messages[1].id} in the same history",
        fresh.id: "a new history h-2 that does not name the last one (h-1)",
    }
    other = event("line-1", 1, history="h-9")[1]  # another station's first history: fine
    assert ledger.history_faults([other]) == {}
    many = [event("dock-1", i + 1, history="h-1")[1] for i in range(1200)]  # in parts of 500
    found = ledger.history_faults(many)
    assert sorted(found) == sorted(e.id for e in many[:3])
    line = [event("line-1", i + 1, history="h-9") for i in range(2)]
    ledger.ingest(line, SITES.get)
    line_again = event("line-1", 2, history="h-9")[1]
    batch = [again, line_again, line[0][1], other, messages[0]]  # several stations in one batch: one query
    assert ledger.history_faults(batch) == {
        again.id: f"seq 2 was already event {messages[1].id} in the same history",
        line_again.id: f"seq 2 was already event {line[1][1].id} in the same history",
        other.id: f"seq 1 was already event {line[0][1].id} in the same history",  # stored since
    }


def test_a_batch_reads_the_ledger_by_its_indexes_never_a_whole_table(tmp_path: Path) -> None:
    """Every statement a batch of events costs on SQLite (the history check, the events, their
    jobs, the counters) finds its rows by an index: a batch costs the same with a million events
    stored as with none. (The history check had read every stored event once a batch: 21 us an
    event with 20,000 stored, growing with the ledger.)"""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", "sub-a")
    ledger.ingest([event("dock-1", i + 1, history="h-1") for i in range(50)], SITES.get)
    statements: list[str] = []
    ledger.conn.set_trace_callback(statements.append)
    batch = [event("dock-1", 51 + i, history="h-1") for i in range(5)] + [event("line-1", 1, history="h-9")]
    assert ledger.history_faults([e for _, e in batch]) == {}
    ledger.ingest(batch, SITES.get)
    ledger.results_acked_many({"dock-1": [e.id for _, e in batch[:3]]})
    ledger.conn.set_trace_callback(None)
    tables = {name for (name,) in ledger.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    checked = 0
    for sql in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            continue
        plan = [row[3] for row in ledger.conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()]
        assert not [step for step in plan if step.startswith("SCAN") and step.split()[1] in tables], (sql, plan)
        checked += 1
    assert checked >= 4, statements
    ledger.close()


def test_sqlite_paths() -> None:
    from station.central.ledger import sqlite_path

    assert sqlite_path("sqlite:////abs/l.db") == "//abs/l.db"
    assert sqlite_path("sqlite:///abs/l.db") == "/abs/l.db"
    assert sqlite_path("sqlite:rel.db") == "rel.db"
    assert sqlite_path("plain.db") == "plain.db"


def test_a_postgres_ledger_made_with_real_columns_is_widened_at_start() -> None:
    """Ledgers made before the fix hold Unix times in 4-byte REAL; opening one widens them once."""
    import psycopg

    from station.central.ledger import SCHEMA, SECONDS_COLUMNS

    schema = f"t{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in SCHEMA:  # the old way: REAL as written (keys as PostgreSQL spells them)
                conn.execute(statement.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY"))
            conn.execute("ALTER TABLE jobs ADD COLUMN result_sent_at REAL")
        Ledger(url, "sub-a").close()
        with psycopg.connect(url, autocommit=True) as conn:
            types = dict(
                ((t, c), d)
                for t, c, d in conn.execute(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = current_schema()"
                ).fetchall()
            )
        assert {types[column] for column in SECONDS_COLUMNS} == {"double precision"}
        assert "real" not in types.values()
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _open_ledger(url: str, start: Any) -> None:
    start.wait(30)  # all at once
    Ledger(url, "racer")


def _race(url: str, racers: int = 4) -> list[int | None]:
    """Open the ledger at ``url`` from ``racers`` processes at once; their exit codes."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    start = context.Barrier(racers)
    procs = [context.Process(target=_open_ledger, args=(url, start)) for _ in range(racers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    return [p.exitcode for p in procs]


def test_several_submitters_may_start_at_once_on_a_new_sqlite_ledger(tmp_path: Path) -> None:
    """Submitters started together on one file: none may fail on the WAL switch or on a column
    another just added (one did, in a fresh-clone run, and left all the work to the other)."""
    for n in range(8):
        assert _race(f"sqlite:///{tmp_path / f'ledger-{n}.db'}") == [0, 0, 0, 0]


def test_several_submitters_may_start_at_once_on_a_new_postgres_ledger() -> None:
    """Two submitters started together on an empty PostgreSQL schema (the fleet benchmark's start):
    concurrent ``CREATE TABLE IF NOT EXISTS`` collide in PostgreSQL's catalog (a UniqueViolation on
    ``pg_type``), and one submitter died with a traceback, leaving the fleet to the other."""
    import psycopg

    for _ in range(6):
        schema = f"t{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        try:
            assert _race(f"{PG_URL}?options=-csearch_path%3D{schema}") == [0, 0, 0, 0]
        finally:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


WARD = Site("ward", Service.UTS, "1000001", Operation.USE, ("ward-1",))


def test_a_unit_used_goes_to_the_patient_the_hbys_named_for_that_moment(ledger: Ledger) -> None:
    from station.central.ledger import _utc
    from station.wire import PatientMessage

    assert _utc("2026-11-23T12:00:00+03:00") == "2026-11-23T09:00:00.000+00:00"  # an HBYS's local time
    assert _utc("2026-11-23T09:00:00.5Z") == "2026-11-23T09:00:00.500+00:00"
    first = {"id": "v1", "at": "2026-11-23T12:00:00+03:00", "tur": "TC_KIMLIK_NUMARASI_VAR", "tkn": "10000000146"}
    ledger.note_patient("ward-1", PatientMessage.from_dict(first))
    second = {"id": "v2", "at": "2026-11-23T10:00:00Z", "until": "2026-11-23T11:00:00Z", "tur": "YENI_DOGAN"}
    ledger.note_patient("ward-1", PatientMessage.from_dict(second))
    ledger.note_patient("ward-2", PatientMessage.from_dict({**first, "tkn": "12345678950"}))  # another ward's
    times = [
        "2026-11-23T08:59:59.000Z",
        "2026-11-23T09:00:00.000Z",
        "2026-11-23T10:30:00.000Z",
        "2026-11-23T11:00:00.000Z",
    ]
    ledger.ingest(
        [event("ward-1", i + 1, operation="use", at=at, serial=f"U{i}") for i, at in enumerate(times)],
        {"ward-1": WARD}.get,
    )
    patients = dict(rows(ledger, "SELECT serial, patient FROM jobs ORDER BY serial"))
    assert patients["U0"] is None  # before anyone was named
    assert json.loads(patients["U1"]) == {"TUR": "TC_KIMLIK_NUMARASI_VAR", "TKN": "10000000146"}
    assert json.loads(patients["U2"]) == {"TUR": "YENI_DOGAN"}  # the latest named before the scan
    assert json.loads(patients["U3"])["TKN"] == "10000000146"  # the newborn's ended at 11:00
    ledger.note_patient("ward-1", PatientMessage.from_dict({**second, "until": None, "tur": "KIMLIGI_BELIRSIZ"}))
    assert rows(ledger, "SELECT until_at, body FROM patients WHERE id = 'v2'") == [
        (None, '{"TUR": "KIMLIGI_BELIRSIZ"}')
    ]


def test_a_scan_taken_back_at_the_station(ledger: Ledger) -> None:
    ids = queued(ledger, 3)
    assert ledger.cancel_requested(ids[0], "h.9") == "cancelled"
    assert job(ledger, ids[0])["state"] == "cancelled" and job(ledger, ids[0])["code"] == "CANCELLED_AT_STATION"
    assert job(ledger, ids[0])["message"] == "Taken back at the station (event h.9) before it was notified."
    with ledger.tx() as c:
        c.execute("UPDATE jobs SET state = 'held' WHERE event_id = ?", (ids[1],))
        c.execute("UPDATE jobs SET state = 'done' WHERE event_id = ?", (ids[2],))
    assert ledger.cancel_requested(ids[1], "h.10") == "cancelled"
    assert ledger.cancel_requested(ids[2], "h.11") == "done" and job(ledger, ids[2])["state"] == "done"
    assert ledger.cancel_requested("no-such", "h.12") == "unknown"


def test_rows_streamed_a_batch_at_a_time(ledger: Ledger) -> None:
    queued(ledger, 5)
    streamed = ledger.stream("SELECT serial FROM jobs ORDER BY serial", batch=2)
    assert next(streamed) == ("S0",)
    assert [r[0] for r in streamed] == ["S1", "S2", "S3", "S4"]
    assert list(ledger.stream("SELECT serial FROM jobs WHERE serial = ?", ("S3",))) == [("S3",)]


def test_a_will_keeps_the_last_word_and_an_online_status_replaces_it(ledger: Ledger) -> None:
    said = StationStatus(station="dock-1", state="online", backlog=4, version="1.2", scanner_connected=True)
    assert ledger.note_station(said) is None
    assert ledger.note_station(StationStatus(station="dock-1", state="offline")) == "online"
    body = json.loads(rows(ledger, "SELECT status FROM stations")[0][0])
    assert (body["state"], body["backlog"], body["version"], body["scanner_connected"]) == ("offline", 4, "1.2", True)
    assert ledger.note_station(StationStatus(station="dock-1", state="online", backlog=0)) == "offline"
    body = json.loads(rows(ledger, "SELECT status FROM stations")[0][0])
    assert (body["state"], body["backlog"], body["version"]) == ("online", 0, None)


def test_every_unit_given_up_is_announced_once(ledger: Ledger) -> None:
    request_id, ids = claim_all(ledger, 4)
    ledger.answer(request_id, 200, "{}", [Outcome(ids[0], False, "UTS-H008", "fazla")])
    ledger.give_up(ids[1], "GAVE_UP", "no answer")
    with ledger.tx() as c:
        c.execute("UPDATE jobs SET attempts = 9, state = 'in_doubt' WHERE event_id = ?", (ids[2],))
    ledger.resolved(ids[2], False, "not taken", 0.0, 8)
    ledger.not_sent(request_id, "refused connection", 0.0, 1)  # ids[3] was in flight in that call
    kinds = rows(ledger, "SELECT kind, body FROM announcements ORDER BY seq")
    assert [(k, json.loads(b)["event_id"]) for k, b in kinds] == [
        ("unit.refused", ids[0]),
        ("unit.failed", ids[1]),
        ("unit.failed", ids[2]),
        ("unit.failed", ids[3]),
    ]
    assert json.loads(kinds[0][1])["code"] == "UTS-H008" and "patient" not in json.loads(kinds[0][1])
    ledger.resolved(ids[2], True, "took effect", 0.0, 8)  # done now: nothing more to announce
    assert len(rows(ledger, "SELECT seq FROM announcements")) == 4


def test_meta_and_a_cancel_answered(ledger: Ledger) -> None:
    assert ledger.meta("k") is None
    ledger.set_meta("k", "1")
    ledger.set_meta("k", "2")
    assert ledger.meta("k") == "2" and ledger.meta("K") is None
    request_id, ids = claim_all(ledger, 2)
    ledger.answer(request_id, 200, "{}", [Outcome(i, True, "00000", "ok", f"BID-{i}") for i in ids])
    cancel = ledger.prepare("uts", "dock", "verme/iptal", {"BID": "x"})
    ledger.cancelled(ids[0], cancel, '{"ok": 1}', True, "iptal edildi")
    other = ledger.prepare("uts", "dock", "verme/iptal", {"BID": "y"})
    ledger.cancelled(ids[1], other, '{"ok": 0}', False, "iptal edilemedi")
    assert (job(ledger, ids[0])["state"], job(ledger, ids[0])["code"]) == ("cancelled", "CANCELLED")
    assert job(ledger, ids[0])["message"] == "iptal edildi" and job(ledger, ids[1])["state"] == "done"
    assert ledger.query("SELECT state, response FROM requests WHERE id = ?", (other,)) == [("answered", '{"ok": 0}')]


def test_a_ledger_opens_where_it_is_told_and_each_write_is_seen_at_once(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dirs" / "ledger.db"
    ledger = Ledger(f"sqlite:///{path}")
    ledger.set_meta("k", "v")  # autocommit: another connection sees it without a commit of ours
    import sqlite3

    with sqlite3.connect(path) as other:
        assert other.execute("SELECT value FROM meta WHERE key = 'k'").fetchone() == ("v",)
    first = ledger.conn
    ledger.close()
    with pytest.raises(Exception, match="closed"):
        first.execute("SELECT 1")
    assert ledger.conn is not first and ledger.meta("k") == "v"  # opened again on use
    ledger.close()
    ledger.close()  # twice, and on a thread that never opened one: nothing to do
    import threading

    errors: list[BaseException] = []
    worker = threading.Thread(target=lambda: _close_quietly(ledger, errors))
    worker.start()
    worker.join()
    assert errors == []


def _close_quietly(ledger: Ledger, errors: list[BaseException]) -> None:
    try:
        ledger.close()
    except BaseException as e:
        errors.append(e)


def test_a_sqlite_ledger_on_a_file_that_is_no_database_fails_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 100)
    started = time.monotonic()
    with pytest.raises(Exception, match="not a database"):
        Ledger(f"sqlite:///{bad}")
    assert time.monotonic() - started < 3  # not waited on: only a lock is worth waiting for


def test_a_postgres_url_by_either_scheme_and_the_default_submitter_name() -> None:
    pg = Ledger(PG_URL.replace("postgresql://", "postgres://", 1))
    assert pg.postgres and pg.submitter == "submitter"
    pg.close()


def test_the_requests_of_a_claim_and_the_jobs_it_returns(ledger: Ledger) -> None:
    ids = queued(ledger, 2)
    first = ledger.claim("uts", "dock", 1, lambda jobs: Call("p", {"ad": "Işık"}))
    second = ledger.claim("uts", "dock", 1, lambda jobs: Call("p", {}))
    assert first is not None and second is not None and first[0] != second[0]
    assert first[1][0].request_id == first[0] and second[1][0].request_id == second[0]
    assert {first[1][0].event_id, second[1][0].event_id} == set(ids)
    assert ledger.jobs("event_id = ?", (ids[0],))[0].state is JobState.IN_FLIGHT  # a JobState, not text
    body = ledger.prepare("uts", "dock", "p", {"ad": "Şule"})
    assert rows(ledger, f"SELECT body FROM requests WHERE id = '{body}'") == [('{"ad": "Şule"}',)]


def test_whole_lot_takes_every_queued_unit_of_the_oldest_jobs_verme(ledger: Ledger) -> None:
    events = [event("dock-1", i + 1, gtin=gtin(1), serial=..., batch="LOT1") for i in range(3)]
    events += [event("dock-1", 4, gtin=gtin(1), serial="S4", batch="LOT1")]
    events += [event("dock-1", 5, gtin=gtin(2), serial=..., batch="LOT2")]
    ledger.ingest(events, SITES.get)
    ids = [e.id for _, e in events]
    with ledger.tx() as c:
        for i, line in zip(ids, ("V1", "V1", "V1", "V1", "V2"), strict=True):
            c.execute("UPDATE jobs SET line = ?, created_at = ? WHERE event_id = ?", (line, ids.index(i), i))
    one = ledger.claim("uts", "dock", 1, lambda jobs: Call("p", {}))
    assert one is not None and [j.event_id for j in one[1]] == [ids[0]]  # not asked for the lot: one
    lot = ledger.claim("uts", "dock", 1, lambda jobs: Call("p", {"ADT": len(jobs)}), whole_lot=True)
    assert lot is not None and [j.event_id for j in lot[1]] == ids[1:3]  # the lot units of V1, not S4 nor V2
    assert all(j.request_id == lot[0] and j.state is JobState.IN_FLIGHT for j in lot[1])
    serial = ledger.claim("uts", "dock", 1, lambda jobs: Call("p", {}), whole_lot=True)
    assert serial is not None and [j.event_id for j in serial[1]] == [ids[3]]  # a serial unit goes alone


def test_ingest_holds_refuses_and_announces_by_the_site(ledger: Ledger) -> None:
    held = event("dock-1", 1, delivery="d-1")
    wrong = event("dock-1", 2, operation="dispatch", serial="S2")
    hibc = event("line-1", 1, issuer="hibcc", di="A99912345", udi="+A99912345/$$7L1X", gtin=None)
    gs1 = event("line-1", 2, serial="S9")
    ledger.ingest([held, wrong, hibc, gs1], SITES.get)
    assert job(ledger, held[1].id)["state"] == "held"
    assert (job(ledger, wrong[1].id)["state"], job(ledger, wrong[1].id)["code"]) == ("failed", "OPERATION_MISMATCH")
    assert (job(ledger, hibc[1].id)["state"], job(ledger, hibc[1].id)["code"]) == ("failed", "NOT_GS1")
    assert job(ledger, gs1[1].id)["state"] == "queued"
    announced = [(k, json.loads(b)["event_id"]) for k, b in rows(ledger, "SELECT kind, body FROM announcements")]
    assert sorted(announced) == sorted([("unit.failed", wrong[1].id), ("unit.failed", hibc[1].id)])
    ledger.note_patient(
        "dock-1", PatientMessage.from_dict({"id": "p1", "at": "2026-01-01T00:00:00Z", "tur": "YENI_DOGAN"})
    )
    receipt = event("dock-1", 3, serial="S3", at="2026-01-01T10:00:00.000Z")
    ledger.ingest([receipt], SITES.get)
    assert rows(ledger, f"SELECT patient FROM jobs WHERE event_id = '{receipt[1].id}'") == [(None,)]  # not a use


def test_words_are_stored_as_words(ledger: Ledger) -> None:
    ledger.note_station(StationStatus(station="dock-1", state="online", version="1.2-ş"))
    assert "ş" in rows(ledger, "SELECT status FROM stations")[0][0]
    other = {"id": "v1", "at": "2026-01-01T00:00:00Z", "tur": "DIGER", "dta": "Kimliği bilinmeyen hasta"}
    ledger.note_patient("ward-1", PatientMessage.from_dict(other))
    assert rows(ledger, "SELECT body FROM patients") == [('{"TUR": "DIGER", "DTA": "Kimliği bilinmeyen hasta"}',)]
    request_id, ids = claim_all(ledger, 1)
    ledger.answer(request_id, 200, "{}", [Outcome(ids[0], False, "UTS-H008", "Ürün fazla")])
    body = rows(ledger, "SELECT body FROM announcements")[0][0]
    assert "Ürün fazla" in body and json.loads(body)["message"] == "Ürün fazla"


def test_a_count_kept_as_events_come_is_not_counted_again_at_start(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    ledger.ingest([event("dock-1", 1)], SITES.get)
    with ledger.tx() as c:
        c.execute("UPDATE stations SET events = 999 WHERE station = 'dock-1'")
    ledger.close()
    again = Ledger(ledger_url)  # the column is there: no backfill, no lock
    assert rows(again, "SELECT events FROM stations") == [(999,)]
    again.close()


def test_recover_says_why_and_results_go_in_batches(ledger: Ledger) -> None:
    request_id, ids = claim_all(ledger, 3)
    assert ledger.recover(stale_after=3600) == 1
    assert rows(ledger, f"SELECT response FROM requests WHERE id = '{request_id}'") == [
        ("submitter stopped during the call",)
    ]
    ledger.resolved(ids[0], True, "took effect", 0.0, 8)
    assert job(ledger, ids[0])["reference"] in (None, "")
    with ledger.tx() as c:
        c.execute("UPDATE jobs SET state = 'done', ok = 1")
    assert len(ledger.take_results(60, limit=2)) == 2
    assert ledger.results_acked("dock-1", ids) == 2


def test_the_stale_sweep_takes_anyones_old_requests_and_none_young(ledger_url: str) -> None:
    a, b = Ledger(ledger_url, "sub-a"), Ledger(ledger_url, "sub-b")
    claim_all(a, 1)
    b.prepare("uts", "dock", "p", {})
    assert a.recover(stale_after=3600, mine=False) == 0  # its own young one too: a call may be under way
    assert a.recover(stale_after=-1, mine=False) == 2


def test_a_submitter_starting_beside_a_working_one_takes_no_lock_it_would_wait_for(ledger_url: str) -> None:
    """A start on a ledger of this version makes nothing: PostgreSQL's ``CREATE INDEX IF NOT
    EXISTS`` takes the table's SHARE lock before it finds the index, so a starting submitter waited
    for the other's open write, held its writes back, and deadlocked with its notifier."""
    import threading

    working = Ledger(ledger_url, "sub-a")
    working.ingest([event("line-1", 1)], SITES.get)
    started: list[Ledger] = []
    with working.tx() as c:  # a write under way: the rows and tables it holds stay locked
        c.execute("UPDATE jobs SET updated_at = updated_at + 1")
        c.execute("UPDATE requests SET answered_at = 0")
        c.execute("UPDATE events SET received_at = received_at")
        starting = threading.Thread(target=lambda: started.append(Ledger(ledger_url, "sub-b")), daemon=True)
        starting.start()
        starting.join(10)
        assert started, "a second submitter's start waited for the first one's write"
    started[0].close()


def test_two_submitters_taking_results_at_once_never_take_the_same_one(ledger_url: str) -> None:
    """Each result goes to its station from one submitter: both used to read the same unacked
    results and send each twice (and wait on each other's marks)."""
    import threading

    a, b = Ledger(ledger_url, "sub-a"), Ledger(ledger_url, "sub-b")
    request_id, ids = claim_all(a, 120)
    a.answer(request_id, 200, "", [Outcome(i, True, "00000", "ok") for i in ids])
    taken: dict[str, list[str]] = {"sub-a": [], "sub-b": []}
    go = threading.Barrier(2)

    def take(ledger: Ledger) -> None:
        go.wait()
        while jobs := ledger.take_results(60, limit=7):
            taken[ledger.submitter] += [j.event_id for j in jobs]

    threads = [threading.Thread(target=take, args=(x,)) for x in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = taken["sub-a"] + taken["sub-b"]
    assert sorted(every) == sorted(ids)  # each once
    a.close()
    b.close()


def test_rows_inserted_together_are_those_executemany_inserts_a_row_at_a_time() -> None:
    import sqlite3

    from station.central.ledger import _many_rows, insert_rows

    made = []
    for together in (False, True):
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)  # three rows a statement: several statements
        conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, n INTEGER, flag INTEGER)")
        conn.execute("CREATE TABLE c (k TEXT PRIMARY KEY, n INTEGER)")
        insert = "INSERT INTO t (id, n, flag) VALUES (?, ?, 1) ON CONFLICT DO NOTHING"
        upsert = "INSERT INTO c (k, n) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET n = c.n + excluded.n"
        rows = [(f"e{i % 8}", i) for i in range(11)]  # e0-e2 come twice: once each is kept
        sums = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("a", 5)]
        if together:
            plan = _many_rows(insert)
            assert plan is not None and plan[1] == "(?, ?, 1)"
            counts = insert_rows(conn, plan, rows), insert_rows(conn, _many_rows(upsert) or ("", "", ""), sums)
        else:
            counts = conn.executemany(insert, rows).rowcount, conn.executemany(upsert, sums).rowcount
        made.append((counts, conn.execute("SELECT * FROM t").fetchall(), conn.execute("SELECT * FROM c").fetchall()))
    assert made[0] == made[1]
    assert made[1][0] == (8, 5) and made[1][2] == [("a", 9), ("b", 2), ("c", 4)]
    assert _many_rows("INSERT INTO t (n) VALUES (coalesce(?, 1))") is None  # a call in the row: a row at a time
    assert _many_rows("UPDATE t SET n = ? WHERE id = ?") is None
