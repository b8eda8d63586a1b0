"""Deliveries on the central side, no MQTT: pending vermes become deliveries, units wait for their
summary, and a lot's alma whose answer was lost is settled without a second alma."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from central import KURUM, SUPPLIER, SandboxServer, event_body, submitter_config
from harness import wait_for
from scans import gtin

from station.central import deliveries
from station.central.config import load
from station.central.ledger import Ledger
from station.central.notifier import Notifier
from station.wire import ClosedBy, DeliveryState, EventMessage, SummaryMessage, SummaryUnit


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    s = SandboxServer(seed=7)
    vermes: list[dict[str, Any]] = [
        {"bid": f"v-{i}", "from": SUPPLIER, "to": KURUM, "uno": gtin(20 + i), "sno": f"D{i}", "bno": "IRS-9"}
        for i in range(3)
    ]
    vermes.append(
        {"bid": "v-lot", "from": SUPPLIER, "to": KURUM, "uno": gtin(30), "lno": "L7", "adt": 10, "bno": "IRS-9"}
    )
    vermes.append({"bid": "v-far", "from": "3000003", "to": KURUM, "uno": gtin(31), "sno": "F1", "bno": "IRS-9"})
    s.sandbox.seed({"uts": {"institutions": [{"kurum": KURUM, "token": "uts-token-hospital"}], "vermes": vermes}})
    yield s
    s.close()


def make(tmp_path: Path, sandbox: SandboxServer) -> tuple[Notifier, Ledger]:
    config = load(submitter_config(tmp_path, 1, sandbox.url))
    ledger = Ledger(config.ledger, config.id)
    return Notifier(config, ledger), ledger


def event(seq: int, delivery: str, g: str, serial: str | None = None, batch: str = "L7") -> tuple[str, EventMessage]:
    text = json.dumps(
        event_body("dock-1", seq, id=str(uuid.uuid4()), gtin=g, di=g, serial=serial, batch=batch, delivery=delivery)
    )
    return text, EventMessage.from_json(text)


def in_doubt(ledger: Ledger) -> int:
    return int(ledger.query("SELECT count(*) FROM jobs WHERE state = 'in_doubt'")[0][0])


def summary(delivery: str, received: int) -> SummaryMessage:
    return SummaryMessage(
        id=f"{delivery}.dock-1",
        delivery=delivery,
        station="dock-1",
        opened_at="2026-11-23T08:00:00Z",
        closed_at="2026-11-23T08:30:00Z",
        closed_by=ClosedBy.COMMAND,
        expected=13,
        received=received,
        missing=13 - received,
        unexpected=0,
        last_seq=received,
        missing_units=(SummaryUnit(di=gtin(30), batch="L7", quantity=3),),
    )


def test_vermes_group_by_sender_and_waybill_and_a_lot_is_one_alma_even_when_its_answer_is_lost(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    notifier, ledger = make(tmp_path, sandbox)
    (report,) = notifier.fetch_deliveries("hospital-dock")
    assert (report.new, report.problems) == (2, ())  # one waybill number, two senders: two deliveries
    ours = next(d for d in deliveries.listing(ledger) if d["sender"] == SUPPLIER)
    assert (ours["document"], ours["expected"], ours["state"]) == ("IRS-9", 13, DeliveryState.OPEN)
    ident = ours["id"]
    units = [event(i + 1, ident, gtin(20 + i), f"D{i}") for i in range(3)]
    units += [event(4 + i, ident, gtin(30)) for i in range(7)]
    ledger.ingest(units, notifier.config.site_of)
    assert ledger.query("SELECT state, count(*) FROM jobs GROUP BY state") == [("held", 10)]
    sandbox.sandbox.lost_answer_rate = 1.0  # every answer lost: each alma in doubt, then checked
    assert deliveries.close(ledger, summary(ident, 10)) == 10
    assert ledger.query("SELECT DISTINCT document, counterpart, state FROM jobs") == [("IRS-9", SUPPLIER, "queued")]
    stop = threading.Event()
    runner = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    runner.start()
    try:
        wait_for(lambda: in_doubt(ledger) == 10, 30, what="every alma in doubt")
        sandbox.sandbox.lost_answer_rate = 0.0  # the service answers again: the notifier asks, never re-sends
        wait_for(lambda: ledger.query("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0] == 10, 60, what="done")
    finally:
        stop.set()
        runner.join(30)
    almas = [e for e in sandbox.effects() if e["op"] == "alma"]
    assert sorted((e["vbi"], e["adt"]) for e in almas) == [("v-0", 1), ("v-1", 1), ("v-2", 1), ("v-lot", 7)]
    assert ledger.query("SELECT state, code, count(*) FROM jobs GROUP BY 1, 2") == [("done", "RESOLVED", 10)]
    lot = sandbox.sandbox.uts_vermes["v-lot"]
    assert (lot["state"], lot["adt"] - lot["taken"]) == ("pending", 3)
    assert sandbox.sandbox.uts_vermes["v-far"]["state"] == "pending"
    # once closed, a late unit of the delivery is released at once; a summary again changes nothing
    ledger.ingest([event(11, ident, gtin(30))], notifier.config.site_of)
    assert deliveries.close_again(ledger, ident) == 1
    assert deliveries.close(ledger, summary(ident, 10)) == 0
    # the operator's view, and refusing what did not come
    cli = [sys.executable, "-m", "station.central.cli"]
    config = str(tmp_path / "submitter.toml")
    out = subprocess.run([*cli, "deliveries", "--closed", "--json", "-c", config], capture_output=True, text=True)
    (listed,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert (listed["id"], listed["received"], listed["missing"], listed["notified"]) == (ident, 10, 3, 10)
    out = subprocess.run([*cli, "delivery", ident, "--json", "-c", config], capture_output=True, text=True)
    body = json.loads(out.stdout)
    assert body["document"] == "IRS-9" and len(body["units"]) == 11
    assert {u["state"] for u in body["units"]} <= {"done", "queued"}
    out = subprocess.run([*cli, "delivery", ident, "--refuse-missing", "-c", config], capture_output=True, text=True)
    assert out.returncode == 0 and "v-lot: refused (almak istemiyorum)" in out.stdout, out.stderr
    assert sandbox.sandbox.uts_vermes["v-lot"]["state"] == "refused"
    out = subprocess.run([*cli, "delivery", "no-such", "-c", config], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip() == "station-submitter: no delivery no-such"


def test_a_station_whose_operation_differs_from_its_sites_is_refused_with_the_fix(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    notifier, ledger = make(tmp_path, sandbox)
    text = json.dumps(event_body("line-1", 1, operation="receipt", gtin=gtin(1), serial="M1"))
    ledger.ingest([(text, EventMessage.from_json(text))], notifier.config.site_of)
    (job,) = ledger.jobs("1 = 1")
    assert (job.state, job.code) == ("failed", "OPERATION_MISMATCH")
    assert job.message is not None and "says receipt, its site depot-line is dispatch" in job.message
    assert not sandbox.effects()  # the site does not silently win


def test_a_use_station_notifies_kullanim_with_the_patient_the_hbys_named(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    from central import run_until_final

    from station.wire import BadMessage, PatientMessage

    extra = f"""
[sites.theatre]
service = "uts"
institution = "{KURUM}"
operation = "use"
stations = ["use-1"]
"""
    sandbox.sandbox.seed({"uts": {"units": [{"owner": KURUM, "uno": gtin(40 + i), "sno": f"P{i}"} for i in range(3)]}})
    config = load(submitter_config(tmp_path, 1, sandbox.url, extra=extra))
    ledger = Ledger(config.ledger, config.id)
    with pytest.raises(BadMessage, match=r"not a valid T\.C\. kimlik"):
        PatientMessage.from_json(
            json.dumps(
                {"id": "v0", "at": "2026-11-23T09:00:00Z", "tur": "TC_KIMLIK_NUMARASI_VAR", "tkn": "12345678901"}
            )
        )
    patient = PatientMessage.from_json(
        json.dumps(
            {
                "id": "v1",
                "at": "2026-11-23T12:00:00+03:00",
                "until": "2026-11-23T10:00:00Z",
                "tur": "TC_KIMLIK_NUMARASI_VAR",
                "tkn": "10000000146",
            }
        )
    )
    ledger.note_patient("use-1", patient)
    events = []
    for i, at in enumerate(("2026-11-23T08:59:00.000Z", "2026-11-23T09:30:00.000Z", "2026-11-23T10:30:00.000Z")):
        text = json.dumps(
            event_body("use-1", i + 1, operation="use", at=at, gtin=gtin(40 + i), di=gtin(40 + i), serial=f"P{i}")
        )
        events.append((text, EventMessage.from_json(text)))
    ledger.ingest(events, config.site_of)
    run_until_final(Notifier(config, ledger), ledger, 3)
    bodies = {json.loads(b)["SNO"]: json.loads(b) for (b,) in ledger.query("SELECT body FROM requests")}
    assert bodies["P0"]["TUR"] == "KIMLIGI_BELIRSIZ" and "TKN" not in bodies["P0"]  # before the visit
    assert (bodies["P1"]["TUR"], bodies["P1"]["TKN"]) == ("TC_KIMLIK_NUMARASI_VAR", "10000000146")
    assert bodies["P2"]["TUR"] == "KIMLIGI_BELIRSIZ"  # after it ended
    assert len([e for e in sandbox.effects() if e["op"] == "kullanim"]) == 3


def test_a_scan_taken_back_at_the_station_is_never_notified(tmp_path: Path, sandbox: SandboxServer) -> None:
    notifier, ledger = make(tmp_path, sandbox)
    body = event_body("dock-1", 1, id=str(uuid.uuid4()), gtin=gtin(20), di=gtin(20), serial="D0")
    first = json.dumps(body)
    cancel = json.dumps(
        {**body, "id": str(uuid.uuid4()), "seq": 2, "ok": False, "reason": "cancelled", "cancels": body["id"]}
    )
    ledger.ingest([(first, EventMessage.from_json(first))], notifier.config.site_of)
    assert ledger.cancel_requested(body["id"], "c1") == "cancelled"
    ledger.ingest([(cancel, EventMessage.from_json(cancel))], notifier.config.site_of)
    (job,) = ledger.jobs("1 = 1")
    assert (job.state, job.code) == ("cancelled", "CANCELLED_AT_STATION")
    assert ledger.cancel_requested(body["id"], "c2") == "cancelled"  # already: said so, nothing changes


def test_a_switched_station_is_notified_under_the_operation_it_did(tmp_path: Path, sandbox: SandboxServer) -> None:
    from functools import partial

    extra = """
[sites.depot-returns]
service = "its"
institution = "8680000000001"
operation = "dispatch"
counterpart = "8680000000009"
operations = ["return"]
stations = ["line-5"]
"""
    config = load(submitter_config(tmp_path, 1, sandbox.url, extra=extra))
    ledger = Ledger(config.ledger, config.id)
    notifier = Notifier(config, ledger)
    events = []
    for seq, op in ((1, "dispatch"), (2, "return"), (3, "use")):
        text = json.dumps(event_body("line-5", seq, operation=op, gtin=gtin(seq), serial=f"R{seq}"))
        events.append((text, EventMessage.from_json(text)))
    ledger.ingest(events, config.site_of)
    states = {j.serial: (j.operation, j.state, j.code) for j in ledger.jobs("1 = 1")}
    assert states["R3"] == ("use", "failed", "OPERATION_MISMATCH")
    site = config.sites["depot-returns"]
    paths = set()
    for _ in range(2):  # one request per operation: never mixed
        claimed = ledger.claim("its", site.name, 50, partial(notifier.its_call, site))
        assert claimed is not None and len(claimed[1]) == 1
        paths.add(ledger.request(claimed[0])[2])  # type: ignore[index]
    assert paths == {"/wholesale/app/dispatch/", "/common/app/return/"}
    notifier.pool.shutdown()
