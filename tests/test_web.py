"""The console over real HTTP: pages, login, CSRF, the audit table, the API, /metrics, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from scans import gtin
from web import PASSWORD_FOR_TESTS as PASSWORD
from web import ConsoleServer, console_config, ingest, refuse, status

from station.central import accounts, announce, console, deliveries
from station.central.config import SubmitterConfig
from station.central.ledger import JobState, Ledger
from station.central.web.texts import LANGUAGES, TEXTS
from station.wire import DeliveryLine, DeliveryMessage, DeliveryState, State


@pytest.fixture
def setup(tmp_path: Path, ledger_url: str) -> Iterator[tuple[SubmitterConfig, Ledger, ConsoleServer]]:
    config = console_config(tmp_path, ledger=ledger_url)
    ledger = Ledger(config.ledger, config.id)
    ingest(ledger, config, "line-1", range(1, 7))
    refuse(ledger, "its", "60002", "Ürün 8680000000007 üzerinde kayıtlı.", 4)
    status(ledger, "line-1", backlog=2, scanner_connected=True, disk_free_bytes=5 * 2**30, version="9.9")
    status(ledger, "dock-1", State.OFFLINE)
    accounts.add_operator(ledger, "ayse", PASSWORD)
    server = ConsoleServer(config, ledger)
    yield config, ledger, server
    server.close()


def login(url: str, name: str = "ayse", password: str = PASSWORD) -> requests.Session:
    s = requests.Session()
    r = s.post(f"{url}/login", data={"name": name, "password": password}, allow_redirects=False)
    assert r.status_code == 303
    return s


def csrf_of(session: requests.Session, url: str) -> str:
    page = session.get(f"{url}/problems").text
    found = re.search(r'name="csrf" value="([0-9a-f]*)"', page)
    assert found is not None
    return found.group(1)


def test_every_text_in_both_languages() -> None:
    for key, entry in TEXTS.items():
        assert set(entry) == set(LANGUAGES), key
        assert all(entry.values()), key


def test_pages_render_in_turkish_and_english(setup: Any) -> None:
    _, _, server = setup
    for path in ("/stations", "/stations/line-1", "/deliveries", "/problems", "/units?q=x", "/audit", "/login"):
        tr = requests.get(server.url + path, headers={"Accept-Language": "tr-TR,tr;q=0.9"})
        en = requests.get(server.url + path + ("&" if "?" in path else "?") + "lang=en")
        assert tr.status_code == en.status_code == 200, path
        assert '<html lang="tr">' in tr.text and '<html lang="en">' in en.text
        assert "Content-Security-Policy" in tr.headers and tr.headers["X-Frame-Options"] == "DENY"
    page = requests.get(server.url + "/stations", headers={"Accept-Language": "tr"}).text
    assert "İstasyonlar" in page and "çevrimdışı" in page


def test_stations_show_liveness_and_health(setup: Any) -> None:
    config, ledger, server = setup
    page = requests.get(server.url + "/stations?partial=1").text
    assert re.search(r'id="station-line-1" data-liveness="online"', page)
    assert re.search(r'id="station-dock-1" data-liveness="offline"', page)
    assert "5.0 GiB" in page and "9.9" in page
    status(ledger, "line-1", State.OFFLINE)  # its will: what it last said of itself stays shown
    page = requests.get(server.url + "/stations?partial=1").text
    assert 'id="station-line-1" data-liveness="offline"' in page and "5.0 GiB" in page and "9.9" in page
    status(ledger, "line-1", backlog=0, scanner_connected=True)  # back: its new word replaces it all
    page = requests.get(server.url + "/stations?partial=1").text
    assert 'id="station-line-1" data-liveness="online"' in page and "9.9" not in page
    ledger.query("SELECT 1")
    with ledger.tx() as c:  # its last word was long ago: stale, though it said online
        c.execute("UPDATE stations SET at = at - 3600 WHERE station = 'line-1'")
    assert 'id="station-line-1" data-liveness="stale"' in requests.get(server.url + "/stations?partial=1").text
    views = {v.station: v for v in console.stations(ledger, config)}
    assert views["line-1"].liveness is console.Liveness.STALE and views["line-1"].backlog == 0


def test_retry_needs_an_operator_and_a_csrf_token_and_is_audited(setup: Any) -> None:
    _, ledger, server = setup
    refused = [j.event_id for j in console.needing_person(ledger)]
    assert len(refused) == 4
    target = refused[0]
    anonymous = requests.post(f"{server.url}/problems/retry", data={"ids": target}, allow_redirects=False)
    assert anonymous.status_code == 403 and "operator" in anonymous.text
    wrong = requests.post(f"{server.url}/login", data={"name": "ayse", "password": "nope"}, allow_redirects=False)
    assert wrong.headers["location"] == "/login?failed=1" and "kk_session" not in wrong.cookies
    session = login(server.url)
    forged = session.post(f"{server.url}/problems/retry", data={"ids": target, "csrf": "0" * 32}, allow_redirects=False)
    assert forged.status_code == 403
    assert ledger.jobs("event_id = ?", (target,))[0].state is JobState.REFUSED
    assert [a.action for a in console.audit_log(ledger)] == ["login"]
    done = session.post(
        f"{server.url}/problems/retry", data={"ids": target, "csrf": csrf_of(session, server.url)}, allow_redirects=True
    )
    assert done.status_code == 200 and f"{target}: retried" in done.text
    assert ledger.jobs("event_id = ?", (target,))[0].state is JobState.QUEUED
    audit = console.audit_log(ledger)[0]
    assert (audit.who, audit.action, audit.target) == ("ayse", "retry", target)
    assert "60002" in audit.detail


def test_retry_every_unit_a_filter_shows_and_cancel_withdraws(setup: Any) -> None:
    _, ledger, server = setup
    session = login(server.url)
    token = csrf_of(session, server.url)
    r = session.post(
        f"{server.url}/problems/retry",
        data={"csrf": token, "all_matching": "1", "code": "60002", "station": "line-1"},
    )
    assert r.status_code == 200
    assert ledger.query("SELECT count(*) FROM jobs WHERE state = 'queued'")[0][0] == 6
    refused = refuse(ledger, "its", "60004", "Ürün eczane tarafından satılmış.", 1)
    r = session.post(f"{server.url}/problems/cancel", data={"csrf": token, "ids": refused})
    assert f"{refused[0]}: cancelled" in r.text
    job = ledger.jobs("event_id = ?", (refused[0],))[0]
    assert (job.state, job.code) == (JobState.CANCELLED, "WITHDRAWN")
    queued = ledger.jobs("state = 'queued'", limit=1)[0].event_id
    r = session.post(f"{server.url}/problems/cancel", data={"csrf": token, "ids": queued})
    assert "not cancelled" in r.text  # a queued unit is neither refused nor notified


def test_problems_filters(setup: Any) -> None:
    _, _, server = setup
    page = requests.get(f"{server.url}/problems?code=60002").text
    assert page.count('data-state="refused"') == 4
    assert requests.get(f"{server.url}/problems?code=99999").text.count('data-state="refused"') == 0
    assert requests.get(f"{server.url}/problems?station=dock-1").text.count('data-state="refused"') == 0
    assert requests.get(f"{server.url}/problems?since=2999-01-01").text.count('data-state="refused"') == 0
    bad = requests.get(f"{server.url}/problems?since=2026-13-01")
    assert bad.status_code == 400 and "2026-13-01" in bad.text


def test_proxy_user_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    config = console_config(tmp_path)
    config = replace(config, web=replace(config.web, proxy_user_header="X-Remote-User", trusted_proxies=("127.0.0.2",)))
    ledger = Ledger(config.ledger, config.id)
    server = ConsoleServer(config, ledger)
    try:
        page = requests.get(f"{server.url}/problems", headers={"X-Remote-User": "mehmet"}).text
        assert "mehmet" not in page  # 127.0.0.1 is not the trusted proxy
    finally:
        server.close()
    config = replace(config, web=replace(config.web, trusted_proxies=("127.0.0.1",)))
    ingest(ledger, config, "line-1", range(1, 3))
    (target,) = refuse(ledger, "its", "60002", "Ürün 8680000000007 üzerinde kayıtlı.", 1)
    server = ConsoleServer(config, ledger)
    proxied = {"X-Remote-User": "mehmet"}
    try:
        page = requests.get(f"{server.url}/problems", headers=proxied).text
        assert 'id="operator"' in page and "mehmet" in page
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert token is not None
        bad = requests.post(f"{server.url}/problems/retry", data={"ids": target, "csrf": "f" * 32}, headers=proxied)
        assert bad.status_code == 403
        r = requests.post(f"{server.url}/problems/retry", data={"ids": target, "csrf": token.group(1)}, headers=proxied)
        assert f"{target}: retried" in r.text
        assert console.audit_log(ledger)[0].who == "mehmet"
    finally:
        server.close()


def test_unit_lookup_by_scan_or_gtin_and_serial(setup: Any) -> None:
    _, ledger, server = setup
    sn = console.needing_person(ledger)[0].serial
    for q in (f"{gtin(1)} {sn}", f"(01){gtin(1)}(21){sn}(17)301231(10)B1", f"01{gtin(1)}21{sn}<GS>17301231"):
        page = requests.get(f"{server.url}/units", params={"q": q}).text
        assert f"{gtin(1)} {sn}" in page, q
        assert page.count("60002") >= 1, q


def _delivery(ledger: Ledger) -> DeliveryMessage:
    d = DeliveryMessage(
        id="uts-d1",
        version=1,
        state=DeliveryState.OPEN,
        service="uts",
        document="IRS-9",
        sender="2000002",
        lines=(DeliveryLine(di=gtin(3), serials=("A1", "A2", "A3")),),
    )
    deliveries.store(ledger, "hospital-dock", d)
    return d


def test_delivery_progress_and_summary_csv(setup: Any) -> None:
    config, ledger, server = setup
    _delivery(ledger)
    row = lambda: re.search(r'id="delivery-uts-d1" data-received="(\d+)" data-expected="(\d+)"', page())  # noqa: E731
    page = lambda: requests.get(f"{server.url}/deliveries?partial=1").text  # noqa: E731
    assert row().groups() == ("0", "3")  # type: ignore[union-attr]
    ingest(ledger, config, "dock-1", range(1, 3), gtin=gtin(3), delivery="uts-d1", operation="receipt")
    assert row().groups() == ("2", "3")  # type: ignore[union-attr]
    csv_text = requests.get(f"{server.url}/deliveries/uts-d1/summary.csv").text.splitlines()
    assert csv_text[0] == "status,station,di,serial,batch,quantity,carrier,notification,code,message"
    assert len(csv_text) == 3 and all(line.startswith("received,dock-1,") for line in csv_text[1:])
    assert requests.get(f"{server.url}/deliveries/nope").status_code == 404


def test_metrics_parse(setup: Any) -> None:
    _, _, server = setup
    r = requests.get(f"{server.url}/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }
    assert samples[("karekod_jobs", (("service", "its"), ("state", "refused")))] == 4
    assert samples[("karekod_jobs", (("service", "its"), ("state", "queued")))] == 2
    assert samples[("karekod_stations", (("liveness", "online"),))] == 1
    assert samples[("karekod_stations", (("liveness", "offline"),))] == 1
    assert samples[("karekod_station_backlog", (("site", "depot-line"), ("station", "line-1")))] == 2
    assert samples[("karekod_events_ingested_total", (("station", "line-1"),))] == 6
    assert samples[("karekod_service_requests_total", (("service", "its"), ("state", "answered")))] == 1


# -- the API --


@pytest.fixture
def api(setup: Any) -> tuple[SubmitterConfig, Ledger, ConsoleServer, dict[str, str]]:
    config, ledger, server = setup
    return config, ledger, server, {"Authorization": f"Bearer {accounts.add_token(ledger, 'hbys')}"}


def test_api_needs_a_token(api: Any) -> None:
    _, ledger, server, _ = api
    for headers in ({}, {"Authorization": "Bearer kk_wrong"}, {"Authorization": "Basic eDp5"}):
        r = requests.get(f"{server.url}/api/v1/results", headers=headers)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    accounts.remove_token(ledger, "hbys")


def test_api_orders_recalls_results_and_announcements(api: Any) -> None:
    _, ledger, server, auth = api
    url = f"{server.url}/api/v1"
    lines = [{"gtin": gtin(5)[1:], "quantity": 2}]
    order = {"station": "line-1", "buyer": "8680000000009", "document": "SIP-1", "lines": lines}
    r = requests.post(f"{url}/orders", json=order, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["ordered"] == 2 and r.json()["station"] == "line-1"
    assert requests.post(f"{url}/orders", json={**order, "station": "nowhere"}, headers=auth).status_code == 404
    assert requests.post(f"{url}/orders", json={**order, "buyer": "GLN"}, headers=auth).status_code == 422
    assert [o["document"] for o in requests.get(f"{url}/orders", headers=auth).json()] == ["SIP-1"]
    assert requests.post(f"{url}/recalls", json={"gtin": gtin(7), "batch": "L9"}, headers=auth).status_code == 201
    assert requests.post(f"{url}/recalls", json={"gtin": gtin(7), "batch": "L9"}, headers=auth).status_code == 200
    assert requests.get(f"{url}/recalls", headers=auth).json()[0]["source"] == "api:hbys"
    assert requests.delete(f"{url}/recalls", params={"gtin": gtin(7), "batch": "L9"}, headers=auth).status_code == 200
    assert requests.delete(f"{url}/recalls", params={"gtin": gtin(7), "batch": "L9"}, headers=auth).status_code == 404
    results = requests.get(f"{url}/results", params={"state": "refused", "code": "60002"}, headers=auth).json()
    assert len(results) == 4 and results[0]["message"].startswith("Ürün")
    assert requests.get(f"{url}/results", params={"since": "2026-13-01"}, headers=auth).status_code == 422
    unit = requests.get(f"{url}/units", params={"gtin": gtin(1), "serial": "S1"}, headers=auth).json()
    assert len(unit) == 1 and unit[0]["serial"] == "S1"
    feed = requests.get(f"{url}/announcements", params={"after": 0}, headers=auth).json()
    assert [a["kind"] for a in feed["announcements"]] == ["unit.refused"] * 4
    assert feed["announcements"][0]["code"] == "60002" and feed["next_after"] == 4
    assert requests.get(f"{url}/announcements", params={"after": 4}, headers=auth).json()["announcements"] == []
    actions = {a.action for a in console.audit_log(ledger)}
    assert {"order", "recall add", "recall remove"} <= actions


def test_api_delivery_and_its_closing_announcement(api: Any) -> None:
    config, ledger, server, auth = api
    _delivery(ledger)
    ingest(ledger, config, "dock-1", range(1, 3), gtin=gtin(3), delivery="uts-d1", operation="receipt")
    listed = requests.get(f"{server.url}/api/v1/deliveries", params={"state": "open"}, headers=auth).json()
    assert [(d["id"], d["received_so_far"], d["expected"]) for d in listed] == [("uts-d1", 2, 3)]
    from station.wire import SummaryMessage

    summary = SummaryMessage.from_dict(
        {
            "kind": "delivery",
            "id": "uts-d1.dock-1",
            "delivery": "uts-d1",
            "station": "dock-1",
            "opened_at": "2026-11-23T09:00:00.000Z",
            "closed_at": "2026-11-23T10:00:00.000Z",
            "expected": 3,
            "closed_by": "operator",
            "received": 2,
            "missing": 1,
            "unexpected": 0,
            "last_seq": 2,
            "missing_units": [{"di": gtin(3), "serial": "A3", "quantity": 1}],
        }
    )
    deliveries.close(ledger, summary)
    deliveries.close(ledger, summary)  # again: announced once
    detail = requests.get(f"{server.url}/api/v1/deliveries/uts-d1", headers=auth).json()
    assert detail["summary"]["missing"] == 1 and len(detail["units"]) == 2
    feed = requests.get(f"{server.url}/api/v1/announcements", params={"after": 4}, headers=auth).json()
    assert [a["kind"] for a in feed["announcements"]] == ["delivery.closed"]
    assert feed["announcements"][0]["site"] == "hospital-dock"


# -- webhooks --


class Receiver:
    """A local HTTP server standing in for the HBYS's webhook: answers ``fail`` times with 500."""

    def __init__(self, fail: int = 0) -> None:
        self.bodies: list[tuple[dict[str, str], bytes]] = []
        self.fail = fail
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.fail > 0:
                    outer.fail -= 1
                    self.send_response(500)
                else:
                    outer.bodies.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_webhook_delivers_in_order_signed_and_survives_a_receiver_outage(tmp_path: Path) -> None:
    receiver = Receiver(fail=2)
    (tmp_path / "hook-secret").write_text("s3cret\n")
    (tmp_path / "hook-secret").chmod(0o600)
    config = console_config(
        tmp_path,
        extra=f'[[webhooks]]\nurl = "{receiver.url}"\nsecret_file = "{tmp_path / "hook-secret"}"\n'
        'kinds = ["unit.refused"]\n',
    )
    ledger = Ledger(config.ledger, config.id)
    hooks = announce.Webhooks(config, ledger)
    hook = config.webhooks[0]
    assert hooks.position(hook) == 0  # a new address starts at the newest announcement
    ingest(ledger, config, "line-1", range(1, 6))
    refuse(ledger, "its", "60002", "Ürün 8680000000007 üzerinde kayıtlı.", 3)
    now = 1e10
    assert hooks.push(hook, now) == 0 and hooks.push(hook, now) == 0  # 500: kept; then waits its back-off
    assert hooks.push(hook, now + 5) == 0  # 500 again
    assert hooks.lag() == {receiver.url: 3}
    assert hooks.push(hook, now + 100) == 3
    refuse(ledger, "its", "60004", "Ürün eczane tarafından satılmış.", 2)
    assert hooks.push(hook, now + 101) == 2
    seqs = []
    for headers, body in receiver.bodies:
        expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Karekod-Signature"] == expected
        seqs += [a["seq"] for a in json.loads(body)["announcements"]]
    assert seqs == [1, 2, 3, 4, 5]
    assert hooks.lag() == {receiver.url: 0}
    other = announce.Webhooks(replace(config, webhooks=(replace(hook, url=receiver.url + "/new"),)), ledger)
    assert other.lag() == {receiver.url + "/new": 0}  # read only: a scrape sets no starting point
    assert ledger.meta(other.key(other.config.webhooks[0])) is None
    receiver.close()


# -- the CLI's manners --


def test_cli_filters_headers_and_bad_arguments(setup: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from station.central import cli
    from station.central.cli import main

    config, ledger, _ = setup
    args = ["--config", config.path]
    assert main(["failures", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("event_id") and len(out) == 5
    assert main(["failures", *args, "--code", "99999"]) == 0
    assert "no units need a person (with these filters)" in capsys.readouterr().out
    for bad in (
        ["failures", *args, "--since", "2026-13-01"],
        ["retry", *args],
        ["export", *args, "--from", "2026-13-01", "--to", "2026-12-01"],
        ["failures", *args, "--state", "lost"],
    ):
        assert main(bad) == 2, bad
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("station-submitter: "), (bad, err)
    with pytest.raises(SystemExit) as e:
        main(["failures", *args, "--service", "xyz"])
    assert e.value.code == 2
    capsys.readouterr()
    assert main(["retry", *args, "--code", "60002"]) == 0
    out = capsys.readouterr()
    assert out.out.count(": retried") == 4 and "4 retried, 0 not" in out.err
    assert {a.who for a in console.audit_log(ledger) if a.action == "retry"} == {cli._who()}
    assert cli._who().startswith("cli")
    assert main(["retry", *args, "no-such-id"]) == 1
    assert "no-such-id: no such unit" in capsys.readouterr().err
    assert main(["status", *args]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("station ")


def test_cli_operator_and_token(
    setup: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from station.central.cli import main

    config, ledger, server = setup
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["operator", "add", "mehmet", "--config", config.path]) == 0
    assert accounts.login(ledger, "mehmet", "a long enough password")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["operator", "add", "ali", "--config", config.path]) == 2
    assert main(["token", "add", "erp", "--config", config.path]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert requests.get(f"{server.url}/api/v1/orders", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert main(["token", "remove", "erp", "--config", config.path]) == 0
    assert requests.get(f"{server.url}/api/v1/orders", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    capsys.readouterr()
    assert main(["operator", "list", "--config", config.path]) == 0
    assert capsys.readouterr().out.split() == ["operator", "ayse", "mehmet"]


def test_sessions_are_signed_and_expire(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    s = accounts.Sessions.of(ledger, hours=1)
    cookie = s.issue("ayse", now=1000)
    assert s.who(cookie, now=1000 + 3599) == "ayse"
    assert s.who(cookie, now=1000 + 3601) is None
    assert s.who(cookie.replace("ayse", "root"), now=1000) is None
    assert accounts.Sessions.of(ledger).key == s.key  # every submitter on the ledger shares it
    assert s.csrf_ok(cookie, s.csrf(cookie)) and not s.csrf_ok(cookie, s.csrf(s.issue("ayse")))
