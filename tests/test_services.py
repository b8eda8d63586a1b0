"""The ÜTS and İTS clients against the sandbox: envelopes, codes, tokens, paging."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from central import DEPOT, HOSPITAL, PHARMACY, SUPPLIER, SandboxServer, seed
from scans import gtin

from station.central.services import its, uts
from station.central.services.http import AuthFailed, Call, InDoubt, Unreachable
from station.central.services.its import ItsClient, Unit
from station.central.services.uts import UtsClient
from station.wire import Operation


def dispatch(togln: str, units: list[Unit]) -> Call:
    return its.notification(Operation.DISPATCH, units, institution=DEPOT, counterpart=togln)


def accept(units: list[Unit]) -> Call:
    return its.notification(Operation.RECEIPT, units, institution=HOSPITAL)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    s = SandboxServer()
    seed(s.sandbox, depot_units=5, hospital_vermes=3)
    yield s
    s.close()


def test_its_dispatch_then_accept_and_refusals(sandbox: SandboxServer) -> None:
    depot = ItsClient(sandbox.url, DEPOT, "depot-pass")
    units = [Unit(gtin(i), f"U{i:06d}", f"B{i}", "2030-12-31") for i in range(3)]
    answer = depot.notify(dispatch(PHARMACY, units))
    assert [u["uc"] for u in answer.units] == ["00000"] * 3 and answer.notification_id
    again = depot.notify(dispatch(PHARMACY, units[:1]))
    assert again.units[0]["uc"] == "40004"  # you have already sold it
    assert depot.message("40004") == "Ürün tarafınızdan satılmıştır."
    status = depot.check_status(units[:1])[0]
    assert status["gln1"] == PHARMACY and status["gln2"] == DEPOT
    cancel = depot.notify(its.dispatch_cancel(units[2:3]))
    assert cancel.units[0]["uc"] == "00000" and depot.check_status(units[2:3])[0]["gln1"] == DEPOT
    sandbox.sandbox.its_units[(gtin(3), "U000003")]["state"] = "recalled"
    sandbox.sandbox.its_units[(gtin(4), "U000004")]["state"] = "sold"
    rest = depot.notify(dispatch(PHARMACY, [Unit(gtin(3), "U000003"), Unit(gtin(4), "U000004"), Unit(gtin(9), "NOPE")]))
    assert [u["uc"] for u in rest.units] == ["60007", "10204", "10001"]


def test_its_accept_only_what_was_dispatched_to_you(sandbox: SandboxServer) -> None:
    depot = ItsClient(sandbox.url, DEPOT, "depot-pass")
    hospital = ItsClient(sandbox.url, HOSPITAL, "hospital-pass")
    unit = [Unit(gtin(0), "U000000")]
    assert hospital.notify(accept(unit)).units[0]["uc"] == "60002"  # still at the depot
    assert depot.notify(dispatch(HOSPITAL, unit)).units[0]["uc"] == "00000"
    assert hospital.notify(accept(unit)).units[0]["uc"] == "00000"
    assert hospital.notify(accept(unit)).units[0]["uc"] == "60014"  # already yours
    deactivate = its.notification(
        Operation.DEACTIVATION, unit, institution=HOSPITAL, deactivation_reason="40", document_date="2026-11-22"
    )
    assert hospital.notify(deactivate).units[0]["uc"] == "00000"
    assert hospital.check_status(unit)[0]["uc"] == "60000"


def test_its_token_relogin_and_bad_password(sandbox: SandboxServer) -> None:
    depot = ItsClient(sandbox.url, DEPOT, "depot-pass")
    depot.check_status([Unit(gtin(0), "U000000")])
    first = depot._token
    sandbox.sandbox.its_tokens.clear()  # every token expired
    depot.check_status([Unit(gtin(0), "U000000")])
    assert depot._token and depot._token != first
    with pytest.raises(AuthFailed):
        ItsClient(sandbox.url, DEPOT, "wrong").check_status([])


def test_uts_pending_alma_and_codes(sandbox: SandboxServer) -> None:
    hospital = UtsClient(sandbox.url, "uts-token-hospital")
    rows = hospital.pending(page=2)  # three rows in pages of two, by the OFF cursor
    assert len(rows) == 3 and all(r["GKK"] == int(SUPPLIER) for r in rows)
    answer = hospital.send(uts.alma(rows[0]["BID"]))
    assert answer.ok and isinstance(answer.snc, str)
    again = hospital.send(uts.alma(rows[0]["BID"]))
    assert not again.ok and again.code == "UTS-H031"
    assert hospital.tekil_urun(rows[0]["UNO"], sno=rows[0]["SNO"])
    assert len(hospital.pending()) == 2
    verme = hospital.send(uts.verme(rows[0]["UNO"], SUPPLIER, "IADE-1", sno=rows[0]["SNO"]))
    assert verme.ok and not hospital.tekil_urun(rows[0]["UNO"], sno=rows[0]["SNO"])
    assert hospital.send(uts.cancel(Operation.DISPATCH, str(verme.snc))).ok and hospital.tekil_urun(
        rows[0]["UNO"], sno=rows[0]["SNO"]
    )
    used = hospital.send(uts.kullanim(rows[0]["UNO"], "2026-11-22", "KIMLIGI_BELIRSIZ", sno=rows[0]["SNO"]))
    assert used.ok
    assert hospital.send(uts.cancel(Operation.USE, str(used.snc))).ok
    missing = hospital.send(uts.kullanim(gtin(39), "2026-11-22", "DIGER", sno="NOPE"))
    assert not missing.ok and missing.code == "UTS-H002" and "Tekil ürün bulunamadı" in missing.text


def test_uts_bad_token_and_transport_errors(sandbox: SandboxServer) -> None:
    with pytest.raises(AuthFailed):
        UtsClient(sandbox.url, "nope").pending()
    with pytest.raises(Unreachable):
        UtsClient("http://127.0.0.1:9", "x", timeout=2).pending()
    sandbox.sandbox.error_rate = 1.0
    with pytest.raises(InDoubt):
        UtsClient(sandbox.url, "uts-token-hospital").pending()
