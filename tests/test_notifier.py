"""The notifier against the sandbox, no MQTT: exactly once through lost answers, errors and crashes."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from central import DEPOT, KURUM, PHARMACY, SandboxServer, event_body, run_until_final, seed, submitter_config
from harness import PG_URL, wait_for
from scans import gtin

from station.central.config import load
from station.central.ledger import JobState, Ledger, Outcome
from station.central.notifier import Notifier
from station.central.services.http import Call
from station.wire import EventMessage


def event(station: str, seq: int, g: str, sn: str, ok: bool = True, **kw: Any) -> tuple[str, EventMessage]:
    """An event as a station would send it: (its JSON text, the checked message)."""
    text = json.dumps(event_body(station, seq, ok=ok, gtin=g, serial=sn, **kw))
    return text, EventMessage.from_json(text)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    s = SandboxServer(seed=1)
    yield s
    s.close()


def make(tmp_path: Path, sandbox: SandboxServer, ledger_url: str | None = None) -> tuple[Notifier, Ledger]:
    config = load(submitter_config(tmp_path, 1, sandbox.url, ledger_url))
    ledger = Ledger(config.ledger, config.id)
    return Notifier(config, ledger), ledger


def test_its_dispatch_batches_exactly_once_through_lost_answers(tmp_path: Path, sandbox: SandboxServer) -> None:
    seed(sandbox.sandbox, depot_units=300)
    sandbox.sandbox.lost_answer_rate = 0.3  # a third of the calls happen, and the answer is lost
    sandbox.sandbox.error_rate = 0.1
    notifier, ledger = make(tmp_path, sandbox)
    ledger.ingest([event("line-1", i + 1, gtin(i % 40), f"U{i:06d}") for i in range(300)], notifier.config.site_of)
    run_until_final(notifier, ledger, 300)
    counts = sandbox.effect_counts("dispatch")
    assert len(counts) == 300 and set(counts.values()) == {1}  # each unit exactly once
    states = dict(ledger.query("SELECT state, count(*) FROM jobs GROUP BY state"))
    assert states == {"done": 300}
    resolved = ledger.query("SELECT count(*) FROM jobs WHERE code = 'RESOLVED'")[0][0]
    assert resolved > 0  # some were settled by asking check_status, not by sending again
    assert all(u["owner"] == PHARMACY for u in sandbox.sandbox.its_units.values())


def test_uts_receipt_one_call_per_unit_and_refusals(tmp_path: Path, sandbox: SandboxServer) -> None:
    seed(sandbox.sandbox, hospital_vermes=60)
    sandbox.sandbox.lost_answer_rate = 0.2
    notifier, ledger = make(tmp_path, sandbox)
    events = [event("dock-1", i + 1, gtin(i % 40), f"D{i:06d}") for i in range(60)]
    events.append(event("dock-1", 61, gtin(1), "NOT-SENT-TO-US"))
    ledger.ingest(events, notifier.config.site_of)
    run_until_final(notifier, ledger, 61)
    counts = sandbox.effect_counts("alma")
    assert len(counts) == 60 and set(counts.values()) == {1}
    refused = ledger.jobs("state = 'refused'")
    assert [(j.serial, j.code) for j in refused] == [("NOT-SENT-TO-US", "NO_PENDING_VERME")]
    assert all(v["state"] == "accepted" for v in sandbox.sandbox.uts_vermes.values())
    assert KURUM in {u["owner"] for u in sandbox.sandbox.uts_units.values()}


def test_business_refusals_are_not_retried(tmp_path: Path, sandbox: SandboxServer) -> None:
    seed(sandbox.sandbox, depot_units=4)
    units = sandbox.sandbox.its_units
    units[(gtin(1), "U000001")]["state"] = "recalled"
    units[(gtin(2), "U000002")]["state"] = "sold"
    notifier, ledger = make(tmp_path, sandbox)
    ledger.ingest(
        [event("line-1", i + 1, gtin(i), f"U{i:06d}") for i in range(4)] + [event("line-1", 5, gtin(7), "UNKNOWN")],
        notifier.config.site_of,
    )
    run_until_final(notifier, ledger, 5)
    codes = {j.serial: (j.state, j.code) for j in ledger.jobs("1 = 1")}
    assert codes == {
        "U000000": ("done", "00000"),
        "U000001": ("refused", "60007"),
        "U000002": ("refused", "10204"),
        "U000003": ("done", "00000"),
        "UNKNOWN": ("refused", "10001"),
    }
    assert sandbox.sandbox.calls["/wholesale/app/dispatch/"] == 1  # one batch, never sent again


def test_its_texts_name_who_holds_a_refused_unit(tmp_path: Path, sandbox: SandboxServer) -> None:
    """``60002 Ürün GLN1 üzerinde kayıtlı.``: the holder's GLN, from check_status, in its place."""
    seed(sandbox.sandbox, depot_units=3)
    elsewhere = "8680000000777"
    sandbox.sandbox.its_units[(gtin(1), "U000001")]["owner"] = elsewhere
    notifier, ledger = make(tmp_path, sandbox)
    ledger.ingest([event("line-1", i + 1, gtin(i), f"U{i:06d}") for i in range(3)], notifier.config.site_of)
    run_until_final(notifier, ledger, 3)
    (refused,) = ledger.jobs("state = 'refused'")
    assert (refused.serial, refused.code, refused.message) == (
        "U000001",
        "60002",
        f"Ürün {elsewhere} üzerinde kayıtlı.",
    )
    assert sandbox.sandbox.calls["/reference/app/check_status/"] == 1  # asked once, for the refused unit only
    sandbox.sandbox.error_rate = 1.0  # check_status cannot answer: the service's own text stays
    text = "Ürün GLN1 üzerinde kayıtlı."
    kept = notifier._fill_holders([refused], [Outcome(refused.event_id, False, "60002", text)])
    assert kept[0].message == text


def test_a_uts_receipt_cut_off_before_its_verme_was_chosen_is_sent_later(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """A claim records alma with no VBI yet; a stop right then must not read as a sent call."""
    seed(sandbox.sandbox, hospital_vermes=1)
    notifier, ledger = make(tmp_path, sandbox)
    ledger.ingest([event("dock-1", 1, gtin(0), "D000000")], notifier.config.site_of)
    site = notifier.config.sites["hospital-dock"]
    claimed = ledger.claim("uts", site.name, 1, lambda jobs: notifier.uts_first(site, jobs))
    assert claimed is not None and json.loads(ledger.request(claimed[0])[3]) == {"VBI": None}  # type: ignore[index]
    ledger.close()
    notifier2, ledger2 = make(tmp_path, sandbox)  # the submitter restarts: the request is in doubt
    run_until_final(notifier2, ledger2, 1)
    assert [(j.state, j.code) for j in ledger2.jobs("1 = 1")] == [(JobState.DONE, "OK")]
    assert sandbox.effect_counts("alma") == {("alma", gtin(0), "D000000"): 1}


def test_crash_between_record_and_answer_is_checked_not_resent(tmp_path: Path, sandbox: SandboxServer) -> None:
    seed(sandbox.sandbox, depot_units=3)
    notifier, ledger = make(tmp_path, sandbox)
    ledger.ingest([event("line-1", i + 1, gtin(i), f"U{i:06d}") for i in range(3)], notifier.config.site_of)
    site = notifier.config.sites["depot-line"]
    claimed = ledger.claim("its", site.name, 50, lambda jobs: notifier.its_call(site, jobs))
    assert claimed is not None
    # the call goes out and takes effect... and the submitter dies before writing the answer
    assert notifier.its is not None
    sent = ledger.request(claimed[0])
    assert sent is not None
    notifier.its.notify(Call(sent[2], json.loads(sent[3])))
    ledger.close()
    notifier2, ledger2 = make(tmp_path, sandbox)
    run_until_final(notifier2, ledger2, 3)
    assert set(sandbox.effect_counts("dispatch").values()) == {1}
    assert {j.code for j in ledger2.jobs("1 = 1")} == {"RESOLVED"}
    assert sandbox.sandbox.calls["/reference/app/check_status/"] == 1


def test_rejected_events_and_unknown_stations(tmp_path: Path, sandbox: SandboxServer) -> None:
    notifier, ledger = make(tmp_path, sandbox)
    stored = ledger.ingest(
        [event("line-1", 1, gtin(0), "X", ok=False, reason="expired"), event("ghost-9", 1, gtin(0), "Y")],
        notifier.config.site_of,
    )
    assert len(stored) == 2
    jobs = ledger.jobs("1 = 1")
    assert [(j.station, j.state, j.code) for j in jobs] == [("ghost-9", "failed", "NO_SITE")]
    again = ledger.ingest([event("line-1", 1, gtin(0), "X")], notifier.config.site_of)  # a new id: new event
    assert len(again) == 1
    first = ledger.query("SELECT payload FROM events WHERE station = 'ghost-9'")[0][0]
    ledger.ingest(
        [(first, EventMessage.from_json(first))], notifier.config.site_of
    )  # the same event again: no duplicate
    assert ledger.query("SELECT count(*) FROM events")[0][0] == 3


def _postgres_ok() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=2):
            return True
    except Exception:
        return False


@pytest.mark.skipif(not _postgres_ok(), reason=f"no PostgreSQL at {PG_URL}")
def test_two_submitters_share_a_postgres_ledger(tmp_path: Path, sandbox: SandboxServer) -> None:
    import psycopg

    schema = f"t{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        seed(sandbox.sandbox, depot_units=200)
        sandbox.sandbox.latency_ms = 20
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a, la = make(tmp_path / "a", sandbox, url)
        b, lb = make(tmp_path / "b", sandbox, url)
        la.ingest([event("line-1", i + 1, gtin(i % 40), f"U{i:06d}") for i in range(200)], a.config.site_of)
        stop = threading.Event()
        threads = [threading.Thread(target=n.run, args=(stop,), daemon=True) for n in (a, b)]
        for t in threads:
            t.start()
        wait_for(
            lambda: la.query("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0] == 200,
            60,
            what="200 units through two submitters",
        )
        stop.set()
        for t in threads:
            t.join(30)
        assert set(sandbox.effect_counts("dispatch").values()) == {1}
        by = la.query("SELECT count(DISTINCT request_id) FROM jobs")[0][0]
        assert by >= 4
        lb.close()
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_operator_retry_after_the_cause_is_fixed(tmp_path: Path, sandbox: SandboxServer) -> None:
    seed(sandbox.sandbox)
    notifier, ledger = make(tmp_path, sandbox)
    ledger.ingest([event("dock-1", 1, gtin(3), "LATE-1")], notifier.config.site_of)
    run_until_final(notifier, ledger, 1)
    (job,) = ledger.jobs("1 = 1")
    assert (job.state, job.code) == ("refused", "NO_PENDING_VERME")
    # the supplier makes its verme later; the operator sends the unit again
    sandbox.sandbox.seed({"uts": {"vermes": [{"from": "2000002", "to": KURUM, "uno": gtin(3), "sno": "LATE-1"}]}})
    assert ledger.retry(job.event_id) and not ledger.retry("no-such-event")
    notifier2, ledger2 = make(tmp_path, sandbox)
    run_until_final(notifier2, ledger2, 1)
    (job,) = ledger.jobs("1 = 1")
    assert (job.state, job.ok) == ("done", 1) and job.reference


def test_events_whose_station_does_not_match_the_topic_are_refused(tmp_path: Path, sandbox: SandboxServer) -> None:
    import paho.mqtt.client as mqtt

    from station.central.ingest import Central

    notifier, ledger = make(tmp_path, sandbox)
    central = Central(notifier.config, ledger)

    def msg(topic: str, body: dict[str, Any]) -> mqtt.MQTTMessage:
        m = mqtt.MQTTMessage(topic=topic.encode())
        m.payload = json.dumps(body).encode()
        return m

    good = json.loads(event("line-1", 1, gtin(0), "A")[0])
    forged = json.loads(event("line-1", 2, gtin(0), "B")[0])
    central._ingest(
        [
            msg("karekod/v1/stations/line-1/events", good),
            msg("karekod/v1/stations/dock-1/events", forged),  # claims line-1 on dock-1's topic
            msg("karekod/v1/stations/line-1/events", {"not": "an event"}),
        ]
    )
    assert ledger.query("SELECT id FROM events") == [(good["id"],)]
    assert central.refused == 2 and central.ingested == 1


def test_a_message_that_met_a_passing_ledger_error_is_tried_again_not_refused(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two submitters on one PostgreSQL ledger can deadlock: the message that lost is stored on
    its next try, not refused; one that keeps failing is refused after TRIES, the rest going in."""
    import paho.mqtt.client as mqtt

    from station.central.ingest import TRIES, Central

    class Deadlock(Exception):
        sqlstate = "40P01"  # what psycopg's DeadlockDetected carries

    notifier, ledger = make(tmp_path, sandbox)
    central = Central(notifier.config, ledger)
    texts = [event("line-1", i + 1, gtin(0), f"P{i}")[0] for i in range(3)]
    ids = [json.loads(t)["id"] for t in texts]
    failing = {ids[1]: 2, ids[2]: 99}  # times each still fails (the batch, then alone)
    real = ledger.ingest

    def ingest(events: Any, site_of: Any) -> list[str]:
        for _, e in events:
            if failing.get(e.id):
                failing[e.id] -= 1
                raise Deadlock("deadlock detected")
        return real(events, site_of)

    monkeypatch.setattr(ledger, "ingest", ingest)

    def feed(msgs: list[mqtt.MQTTMessage]) -> None:  # what Central.run does with a batch
        try:
            central._ingest(msgs)
        except Exception as e:
            central._isolate(msgs, e)

    def message(text: str) -> mqtt.MQTTMessage:
        m = mqtt.MQTTMessage(topic=b"karekod/v1/stations/line-1/events")
        m.payload = text.encode()
        return m

    feed([message(t) for t in texts])
    assert ledger.query("SELECT id FROM events") == [(ids[0],)] and central.refused == 0
    for i in range(TRIES):  # each round: what was put back, beside a new event
        more = event("line-1", 10 + i, gtin(0), f"Q{i}")[0]
        ids.append(json.loads(more)["id"])
        feed([central.inbox.get_nowait() for _ in range(central.inbox.qsize())] + [message(more)])
    assert sorted(ledger.query("SELECT id FROM events")) == sorted((i,) for i in ids if i != ids[2])
    assert central.refused == 1 and central.inbox.empty() and not central._tries  # the one that kept failing


def test_its_error_codes_are_fetched_once_and_kept(tmp_path: Path, sandbox: SandboxServer) -> None:
    seed(sandbox.sandbox, depot_units=2)
    sandbox.sandbox.its_units[(gtin(1), "U000001")]["state"] = "recalled"
    notifier, ledger = make(tmp_path, sandbox)
    ledger.ingest([event("line-1", i + 1, gtin(i), f"U{i:06d}") for i in range(2)], notifier.config.site_of)
    run_until_final(notifier, ledger, 2)
    assert [j.message for j in ledger.jobs("state = 'refused'")] == ["Ürün geri çekilmiş."]
    assert json.loads(ledger.meta("its_error_codes") or "{}")["60007"] == "Ürün geri çekilmiş."
    notifier2, _ = make(tmp_path, sandbox)  # a restart reads them from the ledger, not from İTS
    assert notifier2.its is not None and notifier2.its.message("60007") == "Ürün geri çekilmiş."
    assert sandbox.sandbox.calls["/reference/app/errorcode/"] == 1


def test_operator_cancel(tmp_path: Path, sandbox: SandboxServer) -> None:
    seed(sandbox.sandbox, depot_units=2, hospital_vermes=1)
    sandbox.sandbox.seed({"uts": {"units": [{"owner": KURUM, "uno": gtin(9), "sno": "RET-1"}]}})
    extra = f"""
[sites.hospital-return]
service = "uts"
institution = "{KURUM}"
operation = "dispatch"
counterpart = "2000002"
document_number = "IADE-7"
stations = ["ret-1"]
"""
    config = load(submitter_config(tmp_path, 1, sandbox.url, extra=extra))
    ledger = Ledger(config.ledger, config.id)
    notifier = Notifier(config, ledger)
    ledger.ingest(
        [
            event("line-1", 1, gtin(0), "U000000"),
            event("dock-1", 1, gtin(0), "D000000"),
            event("ret-1", 1, gtin(9), "RET-1", operation="dispatch"),
        ],
        config.site_of,
    )
    run_until_final(notifier, ledger, 3)
    jobs = {j.station: j for j in ledger.jobs("1 = 1")}
    assert {s: j.state for s, j in jobs.items()} == {"line-1": "done", "dock-1": "done", "ret-1": "done"}
    notifier = Notifier(config, ledger)
    ok, message = notifier.cancel(jobs["line-1"])  # İTS satış iptal
    assert ok and message.startswith("00000")
    assert sandbox.sandbox.its_units[(gtin(0), "U000000")]["owner"] == DEPOT
    ok, message = notifier.cancel(jobs["ret-1"])  # ÜTS verme iptal by the BID kept from the answer
    assert ok and sandbox.sandbox.uts_units[(gtin(9), "RET-1", "")]["state"] == "stock"
    ok, message = notifier.cancel(jobs["dock-1"])
    assert not ok and "no alma cancel" in message
    states = {j.station: j.state for j in ledger.jobs("1 = 1")}
    assert states == {"line-1": "cancelled", "dock-1": "done", "ret-1": "cancelled"}
    assert not notifier.cancel(ledger.jobs("station = 'line-1'")[0])[0]  # once is enough
    notifier.pool.shutdown()


def test_a_station_that_lost_its_file_cannot_reuse_its_seqs(tmp_path: Path, sandbox: SandboxServer) -> None:
    """The ledger takes seq 1 again only from a history that names the one it ended (`station reset`)."""
    notifier, ledger = make(tmp_path, sandbox)
    old = [event("line-1", i + 1, gtin(i), f"H{i}", history="a" * 32) for i in range(2)]
    ledger.ingest(old, notifier.config.site_of)
    events = [m for _, m in old]
    assert ledger.history_faults(events) == {}  # the same events again: a re-send, not a fault
    wiped = [m for _, m in (event("line-1", 1, gtin(5), "NEW", history="b" * 32),)]
    assert list(ledger.history_faults(wiped).values()) == [
        f"a new history {'b' * 32} that does not name the last one ({'a' * 32})"
    ]
    reused = [m for _, m in (event("line-1", 2, gtin(5), "OTHER", history="a" * 32),)]
    assert list(ledger.history_faults(reused).values()) == [
        f"seq 2 was already event {events[1].id} in the same history"
    ]
    after_reset = [m for _, m in (event("line-1", 1, gtin(5), "NEW", history="b" * 32, reset_of="a" * 32),)]
    assert ledger.history_faults(after_reset) == {}


class Deadlock(Exception):
    sqlstate = "40P01"  # what psycopg's DeadlockDetected carries


def _failing_after_calls(notifier: Notifier, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, times: int) -> None:
    """Every İTS call goes out and takes effect; then the ledger's next ``times`` transactions in
    the thread that made it are rolled back by a deadlock (another submitter's, on PostgreSQL)."""
    from contextlib import contextmanager

    armed = {"n": 0, "thread": 0}  # the thread that made the call: the one writing its answer
    real_tx, its = ledger.tx, notifier.its
    assert its is not None
    real_notify = its.notify
    its.error_codes()  # fetched and kept now: only the answer's writes meet the deadlocks

    @contextmanager
    def tx() -> Iterator[Any]:
        if armed["n"] and armed["thread"] == threading.get_ident():
            armed["n"] -= 1
            raise Deadlock("deadlock detected")
        with real_tx() as c:
            yield c

    def notify(call: Call) -> Any:
        answer = real_notify(call)
        armed["n"], armed["thread"] = times, threading.get_ident()
        return answer

    monkeypatch.setattr(ledger, "tx", tx)
    monkeypatch.setattr(its, "notify", notify)


def test_an_answer_that_met_a_deadlock_is_written_on_its_next_try(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fleet benchmark's stall: the answer to a call that had taken effect met a deadlock,
    was dropped with a traceback, and left its 50 units in flight until a submitter restarted."""
    from station.central.ledger import TRIES

    seed(sandbox.sandbox, depot_units=4)
    notifier, ledger = make(tmp_path, sandbox)
    ledger.ingest([event("line-1", i + 1, gtin(i), f"U{i:06d}") for i in range(4)], notifier.config.site_of)
    _failing_after_calls(notifier, ledger, monkeypatch, TRIES - 1)
    run_until_final(notifier, ledger, 4)
    assert dict(ledger.query("SELECT state, count(*) FROM jobs GROUP BY state")) == {"done": 4}
    assert set(sandbox.effect_counts("dispatch").values()) == {1}
    assert sandbox.sandbox.calls.get("/reference/app/check_status/", 0) == 0  # written, not asked again


def test_an_answer_the_ledger_could_not_write_is_checked_by_the_sweep_not_sent_again(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its tries the answer is lost; the running notifier's sweep finds the request left
    ``prepared`` past its stale time, puts its units in doubt, and the service is asked."""
    import station.central.notifier as notifier_module
    from station.central.ledger import TRIES

    seed(sandbox.sandbox, depot_units=3)
    notifier, ledger = make(tmp_path, sandbox)
    ledger.ingest([event("line-1", i + 1, gtin(i), f"U{i:06d}") for i in range(3)], notifier.config.site_of)
    _failing_after_calls(notifier, ledger, monkeypatch, TRIES)
    monkeypatch.setattr(notifier_module, "SWEEP_SECONDS", 0.2)
    notifier.stale_after = 0.5
    run_until_final(notifier, ledger, 3)
    assert {j.code for j in ledger.jobs("1 = 1")} == {"RESOLVED"}
    assert set(sandbox.effect_counts("dispatch").values()) == {1}
    assert sandbox.sandbox.calls["/reference/app/check_status/"] == 1
