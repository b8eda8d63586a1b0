"""The scan path in-process: rules, storage failures, feedback on MockFactory pins, the field CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from station.edge.config import Config, FeedbackConfig, ReaderConfig, StationConfig, StorageConfig, parse
from station.edge.events import Scan, event_fields, event_message
from station.edge.outputs.feedback import GpioFeedback, Signal
from station.edge.pipeline import Station
from station.edge.rules import Debounce
from station.edge.store import MIGRATIONS, StorageError, Store
from station.gs1.reader import Profile
from station.gs1.reasons import Reason
from station.gs1.verdict import Policy, judge
from station.wire import EventMessage, Operation, ResultMessage, Service

GS = "\x1d"
TODAY = date(2026, 1, 1)


def karekod(serial: str, gtin: str = "08699536090122", expiry: str = "300131", batch: str = "LOT1") -> bytes:
    return f"]d201{gtin}21{serial}{GS}17{expiry}10{batch}".encode()


class Clock:
    def __init__(self) -> None:
        self.mono = 1000.0

    def scan(self, raw: bytes, advance: float = 5.0) -> Scan:
        self.mono += advance
        return Scan(raw, "test", time.time(), self.mono)


_open: list[Any] = []


@pytest.fixture(autouse=True)
def close_devices() -> Any:
    """Close every feedback a test made, so gpiozero's blink threads end inside the test."""
    yield
    while _open:
        _open.pop().close()


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory(pin_class=MockPWMPin)


def feedback(config: FeedbackConfig, factory: MockFactory) -> GpioFeedback:
    fb = GpioFeedback(config, factory)
    _open.append(fb)
    return fb


def make_station(tmp_path: Path, factory: MockFactory, **reader: Any) -> Station:
    config = Config(
        station=StationConfig("t1", "site", "receipt"),
        reader=ReaderConfig(**reader),
        storage=StorageConfig(str(tmp_path / "s.db")),
    )
    store = Store(config.storage.path)
    return Station(config.station, config.reader, store, feedback(config.feedback, factory))


def shows(station: Station, colour: str, timeout: float = 1.0) -> bool:
    """The player thread lights the LED microseconds after show(): wait for exactly that LED."""
    assert isinstance(station.feedback, GpioFeedback)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if [name for name, led in station.feedback.leds.items() if led.is_lit] == [colour]:
            return True
        time.sleep(0.002)
    return False


def test_accept_reject_duplicate_and_lights(tmp_path: Path, factory: MockFactory) -> None:
    st, clock = make_station(tmp_path, factory), Clock()
    out = st.handle(clock.scan(karekod("A1")), TODAY)
    assert out.verdict.ok and out.event is not None and out.event.seq == 1 and shows(st, "green")
    out = st.handle(clock.scan(b"rubbish"), TODAY)
    assert out.verdict.reason is Reason.NOT_GS1 and out.event is not None and shows(st, "red")
    # the same unit in another raw form, later: a duplicate, shown amber
    out = st.handle(clock.scan(karekod("A1")[3:]), TODAY)
    assert out.verdict.reason is Reason.DUPLICATE and "event 1" in out.verdict.message and shows(st, "amber")
    rows = st.store.events(10)
    assert [(r["seq"], r["ok"], r["reason"]) for r in rows] == [
        (1, True, None),
        (2, False, "not_gs1"),
        (3, False, "duplicate"),
    ]


def test_duplicate_survives_restart_and_retention(tmp_path: Path, factory: MockFactory) -> None:
    st, clock = make_station(tmp_path, factory), Clock()
    st.handle(clock.scan(karekod("R1")), TODAY)
    st.store.close()
    st2 = make_station(tmp_path, MockFactory(pin_class=MockPWMPin))
    assert st2.handle(clock.scan(karekod("R1")), TODAY).verdict.reason is Reason.DUPLICATE
    # with a retention of one day, a unit accepted two days ago is not a duplicate any more
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE accepted_units SET at = at - 2 * 86400")
    st3 = make_station(tmp_path, MockFactory(pin_class=MockPWMPin), duplicate_retention_days=1)
    assert st3.handle(clock.scan(karekod("R1")[3:]), TODAY).verdict.ok
    st3.store.purge(1, 90)
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("SELECT count(*) FROM accepted_units").fetchone()[0] == 1


def test_reread_debounce_is_one_scan(tmp_path: Path, factory: MockFactory) -> None:
    st, clock = make_station(tmp_path, factory, debounce_seconds=1.0), Clock()
    first = st.handle(clock.scan(karekod("D1")), TODAY)
    assert shows(st, "green")
    green = factory.pin(17)
    changes = len(green.states)
    for _ in range(5):  # a box sitting under the scanner, read every 0.6 s: still one scan
        out = st.handle(clock.scan(karekod("D1"), advance=0.6), TODAY)
        assert out.event is None and out.reread_of == first.event.seq  # type: ignore[union-attr]
    assert len(green.states) == changes  # no second signal
    out = st.handle(clock.scan(karekod("D1"), advance=1.5), TODAY)  # gone and back: a new scan
    assert out.event is not None and out.verdict.reason is Reason.DUPLICATE
    assert st.store.events(10)[0]["rereads"] == 5 and st.counters.rereads == 5


def test_debounce_window_slides_and_forgets() -> None:
    d = Debounce(1.0, size=2)
    d.remember(b"a", 0.0, 1)
    assert d.reread_of(b"a", 0.9) == 1 and d.reread_of(b"a", 1.8) == 1 and d.reread_of(b"a", 2.9) is None


def test_debounce_window_boundary_is_inclusive() -> None:
    d = Debounce(1.0)
    d.remember(b"a", 10.0, 7)
    assert d.reread_of(b"a", 11.0) == 7  # exactly the window: still the same box
    e = Debounce(1.0)
    e.remember(b"a", 10.0, 7)
    assert e.reread_of(b"a", 11.001) is None


def test_debounce_evicts_the_oldest_when_full() -> None:
    d = Debounce(10.0, size=2)
    d.remember(b"a", 0.0, 1)
    d.remember(b"b", 0.1, 2)
    d.remember(b"c", 0.2, 3)  # a, the oldest, goes; all three are still inside the window
    assert (d.reread_of(b"a", 0.3), d.reread_of(b"b", 0.3), d.reread_of(b"c", 0.3)) == (None, 2, 3)
    d.reread_of(b"b", 0.4)  # b read again: now c is the oldest
    d.remember(b"e", 0.5, 4)
    assert (d.reread_of(b"c", 0.6), d.reread_of(b"b", 0.6), d.reread_of(b"e", 0.6)) == (None, 2, 4)


def test_recall_and_expected_lists(tmp_path: Path, factory: MockFactory) -> None:
    st, clock = make_station(tmp_path, factory), Clock()
    st.store.open()
    st.store.replace_recalls([("08699536090122", "BAD1", "Bakanlık geri çağırma 2026/12")])
    out = st.handle(clock.scan(karekod("X1", batch="BAD1")), TODAY)
    assert out.verdict.reason is Reason.RECALLED and "2026/12" in out.verdict.message
    assert st.handle(clock.scan(karekod("X2", batch="GOOD")), TODAY).verdict.ok
    st.store.replace_expected([("08699536090122", "X3", "irsaliye 42")])
    assert st.handle(clock.scan(karekod("X4")), TODAY).verdict.reason is Reason.NOT_EXPECTED
    assert st.handle(clock.scan(karekod("X3")), TODAY).verdict.ok
    st.store.replace_expected([])
    assert st.handle(clock.scan(karekod("X5")), TODAY).verdict.ok


def test_expired_and_short_dated_are_refused(tmp_path: Path, factory: MockFactory) -> None:
    st, clock = make_station(tmp_path, factory, min_shelf_life_days=90), Clock()
    assert st.handle(clock.scan(karekod("E1", expiry="251231")), TODAY).verdict.reason is Reason.EXPIRED
    assert st.handle(clock.scan(karekod("E2", expiry="260200")), TODAY).verdict.reason is Reason.SHORT_DATED
    assert st.handle(clock.scan(karekod("E3", expiry="260500")), TODAY).verdict.ok


def test_disk_full_gives_storage_error_and_red(tmp_path: Path, factory: MockFactory) -> None:
    config = Config(station=StationConfig("t1"), storage=StorageConfig(str(tmp_path / "s.db"), max_size_mb=1))
    st = Station(
        config.station, config.reader, Store(config.storage.path, max_size_mb=1), feedback(config.feedback, factory)
    )
    clock = Clock()
    big = b"01" + b"08699536090122" + b"21" + b"x" * 20 + GS.encode() + b"17300131" + b"10" + b"L" * 20
    reasons = set()
    for i in range(3000):
        out = st.handle(clock.scan(big + str(i).encode()), TODAY)
        reasons.add(out.verdict.reason)
        if out.verdict.reason is Reason.STORAGE_ERROR:
            break
    assert out.verdict.reason is Reason.STORAGE_ERROR and not out.verdict.ok
    assert out.event is None and shows(st, "red") and st.counters.storage_errors == 1
    used, cap = st.store.usage()
    assert cap == 1024 * 1024 and used <= cap  # the WAL counts inside the cap
    assert st.status()["storage"].startswith("near the cap: ")
    # an accepted scan (as large as those that filled the file) is never shown green when it cannot be stored
    out = st.handle(clock.scan(karekod("F" * 20, batch="L" * 20) + b"\x1d" + b"91" + b"Z" * 60), TODAY)
    assert out.verdict.reason is Reason.STORAGE_ERROR and shows(st, "red")


def test_read_only_and_corrupt_storage(tmp_path: Path, factory: MockFactory) -> None:
    st, clock = make_station(tmp_path, factory), Clock()
    assert st.handle(clock.scan(karekod("O1")), TODAY).verdict.ok
    conn = st.store.open()
    conn.execute("PRAGMA query_only = 1")  # the file turned read-only under the daemon
    out = st.handle(clock.scan(karekod("O2")), TODAY)
    assert out.verdict.reason is Reason.STORAGE_ERROR and shows(st, "red")
    # the next scan reopens the file and works again: the failure is not sticky
    assert st.handle(clock.scan(karekod("O3")), TODAY).verdict.ok
    st.store.close()
    # a corrupt file: every scan refused, nothing raised
    db = tmp_path / "s.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    st2 = make_station(tmp_path, MockFactory(pin_class=MockPWMPin))
    out = st2.handle(clock.scan(karekod("O4")), TODAY)
    assert out.verdict.reason is Reason.STORAGE_ERROR and shows(st2, "red")
    # a path that cannot exist (read-only file system)
    st3 = Station(
        StationConfig("t1"),
        ReaderConfig(),
        Store("/proc/karekod/s.db"),
        feedback(FeedbackConfig(), MockFactory(pin_class=MockPWMPin)),
    )
    assert st3.handle(clock.scan(karekod("O5")), TODAY).verdict.reason is Reason.STORAGE_ERROR
    assert st3.status()["storage"].startswith("error")


def test_sequence_is_gap_free_across_failures_and_purge(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    clock = Clock()
    v = judge(karekod("Q1"), Policy(), TODAY)
    assert store.record(clock.scan(b"a"), v, "t", "", "receipt").seq == 1
    store.open().execute("PRAGMA query_only = 1")
    with pytest.raises(StorageError):
        store.record(clock.scan(b"b"), v, "t", "", "receipt")
    assert store.record(clock.scan(b"c"), v, "t", "", "receipt").seq == 2
    store.mark_delivered([e["id"] for e in store.events(10)])
    store.purge(1, keep_delivered_days=1)
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE events SET delivered_at = '2000-01-01T00:00:00Z'")
    store.purge(1, keep_delivered_days=1)
    assert store.stats().events == 0
    store.close()
    assert Store(tmp_path / "s.db").record(clock.scan(b"d"), v, "t", "", "receipt").seq == 3


def test_migrations_are_versioned(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    conn = store.open()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: on disk before the light
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    store.close()
    with pytest.raises(StorageError, match="newer"):
        Store(tmp_path / "s.db").open()


def test_feedback_patterns_and_timing(factory: MockFactory) -> None:
    fb = feedback(FeedbackConfig(), factory)
    red, buzzer = factory.pin(22), factory.pin(23)
    fb.show(Signal.REJECT)
    time.sleep(1.7)
    red_states = [s.state for s in red.states]
    assert red_states[-2:] == [True, False]
    on_time = red.states[-1].timestamp
    assert 1.4 <= on_time <= 1.65  # red held 1.5 s
    assert 0.9 <= buzzer.states[-1].timestamp <= 1.15  # one long buzz of 1.0 s
    amber = factory.pin(27)
    fb.show(Signal.DUPLICATE)
    time.sleep(1.2)
    assert [s.state for s in amber.states[1:]].count(True) == 3  # three amber blinks
    fb.close()
    assert not any(factory.pin(p).state for p in (17, 22, 23, 27))


def test_new_signal_cuts_the_previous_one_short(factory: MockFactory) -> None:
    fb = feedback(FeedbackConfig(), factory)
    fb.show(Signal.REJECT)
    time.sleep(0.05)
    fb.show(Signal.ACCEPT)
    time.sleep(0.05)
    assert factory.pin(17).state and not factory.pin(22).state
    assert 0.02 <= sum(s.timestamp for s in factory.pin(22).states[-1:]) < 0.2  # red was cut short
    fb.close()


def test_tonal_buzzer(factory: MockFactory) -> None:
    fb = feedback(FeedbackConfig(buzzer_type="tonal"), factory)
    fb.show(Signal.DUPLICATE)
    time.sleep(0.7)
    pin = factory.pin(23)
    assert pin.frequency is None  # stopped after the pattern
    assert sum(1 for s in pin.states if s.state) >= 3
    fb.close()


def test_service_refusal_shows_its_own_signal_and_is_listed(tmp_path: Path, factory: MockFactory) -> None:
    st, clock = make_station(tmp_path, factory), Clock()
    event = st.handle(clock.scan(karekod("S1")), TODAY).event
    assert event is not None
    assert st.store.record_result(event.id, "its", False, "10204", "Ürün daha önce satılmış") == (event.seq, True)
    assert st.store.record_result(event.id, "its", False, "10204", "Ürün daha önce satılmış") == (event.seq, False)
    seq = event.seq
    st.on_result((seq, ResultMessage(event.id, False, Service.ITS, code="10204", message="Ürün daha önce satılmış")))
    time.sleep(0.05)
    assert shows(st, "red") and factory.pin(22).states[-1].state  # refused_later blinks red
    rows = st.store.events(5, "refused_later")
    assert len(rows) == 1 and rows[0]["service_code"] == "10204" and rows[0]["ok"]


def test_field_cli_reads_alongside(tmp_path: Path, factory: MockFactory) -> None:
    st, clock = make_station(tmp_path, factory), Clock()
    for i in range(3):
        st.handle(clock.scan(karekod(f"C{i}")), TODAY)
    st.handle(clock.scan(b"nope"), TODAY)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[station]\nid = "t1"\n[storage]\npath = "{tmp_path / "s.db"}"\n')
    assert parse(cfg.read_text()).storage.path.endswith("s.db")

    def cli(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "station.edge.cli", *args, "-c", str(cfg)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert "undelivered  4" in cli("queue")
    text = cli("events", "--last", "2")
    assert "reject not_gs1" in text and text.count("\n") == 2
    assert "reject not_gs1" in cli("events", "--reason", "not_gs1")
    stopped = subprocess.run(
        [sys.executable, "-m", "station.edge.cli", "status", "-c", str(cfg)], capture_output=True, text=True
    )
    assert stopped.returncode == 1  # unhealthy: for cron and Nagios
    assert "not running" in stopped.stdout and "backlog" in stopped.stdout
    assert "problems" in stopped.stdout and "the daemon is not running" in stopped.stdout


def test_a_vanished_station_file_is_an_alarm_not_a_new_history(tmp_path: Path) -> None:
    """A missing, empty or corrupt station.db used to start again at seq 1 with no duplicate memory."""
    from station.edge.store import reset

    clock = Clock()
    db = tmp_path / "station.db"
    store = Store(db)
    v = judge(karekod("H1"), Policy(), TODAY)
    first = store.record(clock.scan(b"a"), v, "t", "", "receipt")
    history = store.history
    assert first.seq == 1 and len(history) == 32 and (tmp_path / "station.db.history").read_text().strip() == history
    store.close()
    for leftover in tmp_path.glob("station.db*"):
        if not leftover.name.endswith(".history"):
            leftover.unlink()
    with pytest.raises(StorageError, match="is missing, but this station has a history"):
        Store(db).open()
    assert not db.exists()  # not made again
    db.write_bytes(b"")
    with pytest.raises(StorageError, match="is empty, but this station has a history"):
        Store(db).record(clock.scan(b"b"), v, "t", "", "receipt")
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match=r"is corrupt .* moved aside to .*station\.db\.corrupt-"):
        Store(db).open()
    assert [p.name.startswith("station.db.corrupt-") for p in tmp_path.glob("station.db.corrupt-*")] == [True]
    # a technician's reset: a new history that names the old one, seq from 1
    assert any("ended history" in line for line in reset(str(db)))
    fresh = Store(db)
    again = fresh.record(clock.scan(b"c"), v, "t", "", "receipt")
    assert again.seq == 1 and fresh.history != history and fresh.reset_of == history
    payload = json.loads(fresh.payload(again.seq))
    assert (payload["history"], payload["reset_of"]) == (fresh.history, history)
    fresh.close()
    assert Store(db).open() and not (tmp_path / "station.db.reset").exists()


def test_rules_whole_verdicts_and_retention_in_days(tmp_path: Path) -> None:
    """Rules.apply against a real station file, each outcome asserted whole; the retention is days."""
    from station.edge.rules import Rules

    store = Store(str(tmp_path / "r.db"))
    store.open()
    rules = Rules(store, duplicate_retention_days=2)
    assert rules.retention == 2 * 24 * 3600
    policy = Policy()
    first = judge(karekod("R1"), policy, TODAY)
    event = store.record(Scan(karekod("R1"), "t", 1_000_000.0, 1.0), first, "t1", "", "receipt")
    # one day later: a duplicate; three days later: outside the retention, accepted again
    dup = rules.apply(first, 1_000_000.0 + 86400)
    assert (dup.ok, dup.reason, dup.message) == (False, Reason.DUPLICATE, f"Already accepted here (event {event.seq}).")
    assert dup.karekod == first.karekod
    assert rules.apply(first, 1_000_000.0 + 3 * 86400) == first
    # a refusal passes through untouched, and so does a verdict without a reading
    refused = judge(b"NOT-A-CODE", policy, TODAY)
    assert rules.apply(refused, 1_000_000.0) is refused
    # recall of one batch, and of every batch of a product ('*'), with and without a note
    store.replace_recalls([("08699536090122", "BAD1", "Genelge 2026/12"), ("08699536090139", "*", "")])
    bad = judge(karekod("R2", batch="BAD1"), policy, TODAY)
    out = rules.apply(bad, 1_000_000.0)
    assert (out.ok, out.reason, out.message) == (False, Reason.RECALLED, "Batch BAD1 is recalled: Genelge 2026/12.")
    every = judge(karekod("R3", gtin="08699536090139", batch="ANY"), policy, TODAY)
    assert every.ok and (rules.apply(every, 1_000_000.0).reason, rules.apply(every, 1_000_000.0).message) == (
        Reason.RECALLED,
        "Batch ANY is recalled.",
    )
    # an expected list: on it, accepted; off it, not_expected; an empty list checks nothing
    store.replace_recalls([])
    store.replace_expected([("08699536090122", "R4", "IRS-1")])
    on = judge(karekod("R4"), policy, TODAY)
    off = judge(karekod("R5"), policy, TODAY)
    assert rules.apply(on, 1_000_000.0) == on
    refused = (False, Reason.NOT_EXPECTED, "Not in the expected delivery.", off.karekod)
    assert tuple(rules.apply(off, 1_000_000.0)) == refused
    # a refusal with a reading stays what it was, even for a unit already accepted here
    expired = judge(karekod("R1"), policy, date(2031, 1, 1))
    assert expired.reason is Reason.EXPIRED and rules.apply(expired, 1_000_000.0 + 60) is expired
    # an accepted reading with no product identifier (a shipping label under gs1) is not checked
    label = judge("]d200006141411234567890", Policy(Profile.GS1), TODAY)
    assert label.ok and rules.apply(label, 1_000_000.0) is label
    store.replace_expected([])
    assert rules.apply(off, 1_000_000.0) == off


def test_debounce_default_size_is_256() -> None:
    d = Debounce(10.0)
    for i in range(257):
        d.remember(b"%d" % i, 0.0, i)
    assert (d.reread_of(b"0", 0.1), d.reread_of(b"1", 0.1), d.reread_of(b"256", 0.1)) == (None, 1, 256)


def test_rules_default_to_the_clock(tmp_path: Path) -> None:
    from station.edge.rules import Rules

    store = Store(str(tmp_path / "r.db"))
    store.open()
    accepted = judge(karekod("N1"), Policy(), TODAY)
    store.record(Scan(karekod("N1"), "t", time.time(), 1.0), accepted, "t1", "", "receipt")
    assert Rules(store, 1).apply(accepted).reason is Reason.DUPLICATE  # no time given: now


def test_a_hibc_unit_is_recorded_and_a_second_scan_is_a_duplicate(tmp_path: Path, factory: MockFactory) -> None:
    """Duplicates of non-GS1 units are kept by their device identifier (no GTIN to key on)."""
    st, clock = make_station(tmp_path, factory, profile=Profile.UTS), Clock()
    hibc = "+A99912345/$$3270531LOT1/SSER1"
    table = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. $/+%"
    hibc += table[sum(map(table.index, hibc)) % 43]
    first = st.handle(clock.scan(hibc.encode()), TODAY)
    assert first.verdict.ok is True and first.event is not None
    second = st.handle(clock.scan(hibc.encode()), TODAY)
    assert (second.verdict.ok, second.verdict.reason) == (False, Reason.DUPLICATE)
    other = hibc.replace("SER1", "SER2")[:-1]
    other += table[sum(map(table.index, other)) % 43]
    assert st.handle(clock.scan(other.encode()), TODAY).verdict.ok is True


def test_a_scan_is_one_write_transaction_and_what_is_rolled_back_leaves_no_gap(
    tmp_path: Path, factory: MockFactory
) -> None:
    st, clock = make_station(tmp_path, factory), Clock()
    statements: list[str] = []
    st.store.open().set_trace_callback(statements.append)
    assert st.handle(clock.scan(karekod("T1")), TODAY).verdict.ok
    bounds = [s for s in statements if s.split()[0] in ("BEGIN", "COMMIT", "ROLLBACK")]
    assert bounds == ["BEGIN IMMEDIATE", "COMMIT"]  # the rules' read is inside the write: one transaction
    rules = next(i for i, s in enumerate(statements) if s.startswith("SELECT (SELECT seq FROM accepted_units"))
    assert statements.index("BEGIN IMMEDIATE") < rules < statements.index("COMMIT")
    st.store.open().set_trace_callback(None)
    v = judge(karekod("T2"), Policy(), TODAY)
    with pytest.raises(RuntimeError), st.store.scan_transaction():
        assert st.store.record(clock.scan(b"x"), v, "t1", "", "receipt").seq == 2
        raise RuntimeError("after the record, before the commit")
    assert st.store.stats().events == 1
    assert st.store.record(clock.scan(b"y"), v, "t1", "", "receipt").seq == 2  # no gap where it was rolled back


def test_an_ack_of_runs_gaps_repeats_and_strangers_marks_exactly_the_named(tmp_path: Path) -> None:
    store, clock = Store(tmp_path / "s.db", durable=False), Clock()
    v = judge(karekod("R1"), Policy(), TODAY)
    ids = [store.record(clock.scan(f"r{i}".encode()), v, "t1", "", "receipt").id for i in range(12)]
    prefix = ids[0].rsplit(".", 1)[0]
    acked = [ids[9], ids[1], ids[2], ids[3], ids[2], ids[6], ids[10], f"{prefix}.99", "other.4", f"{prefix}.x"]
    assert store.mark_delivered(acked) == 6  # seqs 2-4, 7, 10-11 (seq 99 and the strangers are no events here)
    assert [r[0] for r in store.pending(0, 20)] == [1, 5, 6, 8, 9, 12]
    assert store.mark_delivered([ids[0], ids[4], ids[5]]) == 3 and store.meta("delivered_through") == "7"


def test_the_delivered_watermark_follows_acks_in_any_order(tmp_path: Path) -> None:
    store, clock = Store(tmp_path / "s.db", durable=False), Clock()
    v = judge(karekod("W1"), Policy(), TODAY)
    ids = [store.record(clock.scan(f"w{i}".encode()), v, "t1", "", "receipt").id for i in range(6)]

    def through() -> int:
        return int(store.meta("delivered_through") or -1)

    assert through() == 0 and store.backlog()[0] == 6
    assert store.mark_delivered([ids[1], ids[3]]) == 2  # seq 2 and 4 acked before seq 1
    assert through() == 0 and [r[0] for r in store.pending(0, 10)] == [1, 3, 5, 6]
    assert store.backlog()[0] == 4 and store.oldest_undelivered_seq() == 1
    assert [r[0] for r in store.pending(3, 10)] == [5, 6] and [r[0] for r in store.pending(0, 2)] == [1, 3]
    assert store.mark_delivered([ids[0]]) == 1
    assert through() == 2 and [r[0] for r in store.pending(0, 10)] == [3, 5, 6] and store.oldest_undelivered_seq() == 3
    assert store.mark_delivered(ids) == 3  # all again: only the three left count
    assert through() == 6 and store.pending(0, 10) == [] and store.oldest_undelivered_seq() is None
    assert store.backlog() == (0, 6, None) and store.stats().backlog == 0
    store.record(clock.scan(b"w6"), v, "t1", "", "receipt")
    assert through() == 6 and [r[0] for r in store.pending(0, 10)] == [7] and store.backlog()[0] == 1
    indexes = {r[0] for r in store.open().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "events_undelivered" not in indexes  # a scan's commit writes no page for being undelivered


def older_file(path: Path, version: int, raws: list[bytes]) -> list[bytes]:
    """A station file as version ``version`` of the schema left it (its migrations only), with an
    event per raw scan whose payload is kept in the row, as files before version 6 kept it.
    Returns the payloads."""
    history, payloads = "0123456789abcdef", []
    with sqlite3.connect(path) as conn:
        for migration in MIGRATIONS[:version]:
            for statement in migration.split(";"):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("INSERT INTO meta (key, value) VALUES ('history', ?)", (history,))
        for seq, raw in enumerate(raws, 1):
            v = judge(raw, Policy(), TODAY)
            fields = event_fields(
                f"{history}.{seq}", seq, "2026-01-01T10:00:00.000Z", "t1", "", Operation.RECEIPT, Scan(raw), v
            )
            payloads.append(event_message(fields, history).to_json())
            conn.execute(
                "INSERT INTO events (seq, id, at, source, raw, ok, payload) VALUES (?, ?, ?, 'stdin', ?, ?, ?)",
                (seq, fields["id"], fields["at"], raw, int(v.ok), payloads[-1]),
            )
    return payloads


def test_an_event_is_stored_as_columns_and_its_payload_built_when_sent(tmp_path: Path) -> None:
    """The scan path writes columns, no JSON; the payload the uplink sends is built from them,
    the same bytes every time, and says what the scan was."""
    from station.edge.events import Dispatch
    from station.edge.store import Receipt

    store = Store(tmp_path / "s.db", durable=False)
    hibc = b"+A99912345/$$52001510X3/16D20111212/S77DE1G45-"
    gs1 = b"]d2010869953609012221S\xc3\xbc1\x1d1730013110LOT1\r"  # a serial typed as UTF-8 ü: refused
    store.record(
        Scan(hibc, "serial:/dev/ttyACM0", 1767261600.25, 0, "idle"),
        judge(hibc, Policy(Profile.UTS), date(2019, 1, 1)),
        "dock-1",
        "Şube",
        "receipt",
        Receipt("its-1", ()),
    )
    store.record(
        Scan(gs1, "hid:event3", 1767261601.0, 0, "suffix"),
        judge(gs1, Policy(), TODAY),
        "dock-1",
        "Şube",
        "dispatch",
        order=Dispatch("o-7", "8680001000003", "İRS-1"),
    )
    assert store._query("SELECT length(payload) FROM events") == [(0,), (0,)]
    sent = [p for _, _, p in store.pending(0, 10)]
    assert sent == [store.payload(1), store.payload(2)] == [p for _, _, p in store.pending(0, 10)]
    one, two = (json.loads(p) for p in sent)
    assert one == {
        "schema": "karekod.event/1",
        "id": f"{store.history}.1",
        "seq": 1,
        "station": "dock-1",
        "site": "Şube",
        "operation": "receipt",
        "at": "2026-01-01T10:00:00.250Z",
        "source": "serial:/dev/ttyACM0",
        "raw": hibc.decode(),
        "raw_hex": hibc.hex(),
        "ok": True,
        "terminated_by": "idle",
        "reason": None,
        "message": one["message"],
        "gtin": None,
        "serial": "77DE1G45",
        "batch": "10X3",
        "expiry": "2020-01-15",
        "production_date": "2011-12-12",
        "sscc": None,
        "recovered": False,
        "issuer": "hibcc",
        "di": "A99912345",
        "udi": hibc.decode(),
        "history": store.history,
        "reset_of": None,
        "delivery": "its-1",
        "carrier": None,
        "order": None,
        "buyer": None,
        "document": None,
        "cancels": None,
    }
    assert (two["ok"], two["reason"], two["raw"], two["raw_hex"]) == (
        False,
        "invalid_character",
        gs1.decode(),
        gs1.hex(),
    )
    assert (two["operation"], two["order"], two["buyer"], two["document"]) == (
        "dispatch",
        "o-7",
        "8680001000003",
        "İRS-1",
    )
    for payload in sent:  # what the central side reads back is what was sent
        assert payload == EventMessage.from_json(payload).to_json()
    with pytest.raises(KeyError):
        store.payload(3)


def test_an_older_files_events_are_sent_with_the_payload_they_kept(tmp_path: Path) -> None:
    """Rows written before version 6 keep their JSON: sent as kept, taken back from it; new rows
    beside them are built from columns."""
    kept = older_file(tmp_path / "s.db", 5, [karekod("K1"), karekod("K2")])
    store = Store(tmp_path / "s.db", durable=False)
    new = store.record(Clock().scan(b"junk"), judge(b"junk", Policy(), TODAY), "t1", "", "receipt")
    assert [p for _, _, p in store.pending(0, 10)][:2] == kept and new.seq == 3
    assert json.loads(store.payload(3))["raw"] == "junk"
    taken = store.cancel_last(10**9, time.time())
    assert taken is not None and taken[1] == 2
    body = json.loads(store.payload(taken[0].seq))
    assert (body["reason"], body["cancels"], body["serial"], body["raw"]) == (
        "cancelled",
        json.loads(kept[1])["id"],
        "K2",
        karekod("K2").decode(),
    )


def test_a_new_file_has_small_pages_and_an_older_one_keeps_its_own(tmp_path: Path) -> None:
    """1 KiB pages: a scan's commit writes a WAL frame per page it changes (see PAGE_SIZE)."""
    new = Store(tmp_path / "new.db", durable=False)
    assert new._query("PRAGMA page_size") == [(1024,)]
    older_file(tmp_path / "old.db", 5, [karekod("P1")])
    old = Store(tmp_path / "old.db", durable=False)
    assert old._query("PRAGMA page_size") == [(4096,)] and [r[0] for r in old.pending(0, 5)] == [1]


def test_an_older_file_gets_its_watermark_from_what_was_delivered(tmp_path: Path) -> None:
    older_file(tmp_path / "s.db", 4, [f"o{i}".encode() for i in range(5)])
    with sqlite3.connect(tmp_path / "s.db") as conn:  # as a version-4 file left it
        conn.execute("UPDATE events SET delivered_at = '2026-01-01T00:00:00Z' WHERE seq IN (1, 2, 4)")
    store = Store(tmp_path / "s.db", durable=False)
    ids = [str(i) for (i,) in store._query("SELECT id FROM events ORDER BY seq")]
    assert [r[0] for r in store.pending(0, 10)] == [3, 5] and store.meta("delivered_through") == "2"
    assert store.mark_delivered([ids[2], ids[4]]) == 2 and store.meta("delivered_through") == "5"


@pytest.mark.parametrize(
    "ts",
    [
        0.0,
        1767225600.0,  # 2026-01-01T00:00:00Z
        1767225599.9995,  # rounds up into the next second's first millisecond
        1767225599.9999996,  # rounds up into the next second
        1767225600.0004995,
        1767225600.0015,
        1798761599.999,  # the last millisecond of 2026
        -1.5,
        -0.0000004,
        4102444800.123456,  # 2100-01-01
    ],
)
def test_event_times_are_written_as_datetime_writes_them(ts: float) -> None:
    from datetime import UTC, datetime

    from station.edge.events import utc_iso

    expected = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert utc_iso(ts) == expected
    assert utc_iso(ts) == expected  # the second's text, now from the cache


def test_event_times_match_datetime_over_many_instants() -> None:
    import random
    from datetime import UTC, datetime

    from station.edge.events import utc_iso

    rng = random.Random(12)
    base = 1767225600.0
    instants = [base + rng.uniform(0, 86400 * 400) for _ in range(20000)]
    instants += [base + i + k / 1e6 for i in range(50) for k in (999499.5, 999500.5, 999999.4, 999999.6, 500.5)]
    for ts in instants:
        assert utc_iso(ts) == datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z", ts
