"""The console in a real headless Chromium (Debian's, driven by Playwright).

End to end: the sandbox's PTS package -> ``station-submitter run`` with the console enabled -> a
dock station (real process) -> scans; the delivery's progress bar moves as they arrive and the
stations page shows the station offline after it is killed, both without reloading the page
(htmx's refresh). Then a refused unit retried by a logged-in operator (queued, audited) and the
same click refused without login. Each page's screenshot is saved to ``build/screenshots`` (or
``$KAREKOD_SCREENSHOTS``); the README shows the committed copies in ``docs/screenshots``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from central import HOSPITAL, SandboxServer, submitter_config
from chaos import Submitter, karekod
from harness import ROOT, Broker, Daemon, free_port, wait_for, write_config
from scans import gtin, sscc
from web import PASSWORD_FOR_TESTS, ConsoleServer, console_config, ingest, refuse, status

from station.central import accounts, console
from station.central.ledger import JobState, Ledger

WAYBILL = "IRS2026000999"
SHOTS = Path(os.environ.get("KAREKOD_SCREENSHOTS") or ROOT / "build" / "screenshots")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str | None:
    return shutil.which("chromium") or next((p for p in ("/usr/bin/chromium",) if os.path.exists(p)), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium()
    if executable is None:
        pytest.skip("no Chromium here: the README's test command installs Debian's chromium with apt-get")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=FLAGS)
        yield b
        b.close()


def serving(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def package() -> dict[str, Any]:
    return {
        "transfer_id": "900009",
        "sender": "8680000000001",
        "receiver": HOSPITAL,
        "document": WAYBILL,
        "date": date.today().isoformat(),
        "carriers": [{"sscc": sscc(20), "kind": "C"}],
        "lines": [
            {
                "di": gtin(c),
                "batch": f"B{c}",
                "expiry": "2030-12-31",
                "carrier": sscc(20),
                "serials": [f"S{c}-{i}" for i in range(4)],
            }
            for c in range(3)
        ],
    }


def test_delivery_progress_moves_and_a_station_goes_offline_without_reloading(
    tmp_path: Path, broker: Broker, browser: Any
) -> None:
    sandbox = SandboxServer(seed=3)
    sandbox.sandbox.seed(
        {
            "its": {
                "users": [{"username": HOSPITAL, "password": "hospital-pass", "gln": HOSPITAL}],
                "packages": [package()],
            }
        }
    )
    port = free_port()
    extra = f"""
[sites.pharmacy-dock]
service = "its"
institution = "{HOSPITAL}"
operation = "receipt"
stations = ["pharm-dock"]

[web]
enabled = true
port = {port}
refresh_seconds = 1
language = "en"
"""
    cfg = submitter_config(tmp_path, broker.port, sandbox.url, its_user=HOSPITAL, extra=extra)
    (tmp_path / "its-password").write_text("hospital-pass\n")
    (tmp_path / "pharm").mkdir()
    station_cfg = write_config(tmp_path / "pharm", broker.port, "pharm-dock", delivery={"require": True})
    submitter = Submitter(cfg, tmp_path / "submitter.log")
    station = Daemon(station_cfg, tmp_path / "pharm" / "daemon.log")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: serving(url), 30, what="the console inside station-submitter run")
        page.goto(f"{url}/stations")
        page.wait_for_selector('#station-pharm-dock[data-liveness="online"]', timeout=30_000)
        page.goto(f"{url}/deliveries")
        row = page.wait_for_selector("tr[id^=delivery-its-]", timeout=60_000)
        assert row.get_attribute("data-expected") == "12" and row.get_attribute("data-received") == "0"
        ident = (row.get_attribute("id") or "").removeprefix("delivery-")
        wait_for(
            lambda: b"delivery" in (tmp_path / "pharm" / "daemon.log").read_bytes(), 30, what="the station to have it"
        )
        time.sleep(0.5)
        station.scan(f"]C0{WAYBILL}", *(karekod(gtin(0), f"S0-{i}", "B0") for i in range(4)))
        page.wait_for_selector(f'#delivery-{ident}[data-received="4"]', timeout=20_000)  # no reload: htmx
        shot(page, "deliveries")
        page.goto(f"{url}/deliveries/{ident}")
        assert page.get_attribute("#progress", "value") == "4"
        station.scan(karekod(gtin(1), "S1-0", "B1"), karekod(gtin(1), "S1-1", "B1"))
        page.wait_for_selector('#progress[value="6"]', timeout=20_000)  # swapped in by htmx
        shot(page, "delivery")
        page.goto(f"{url}/stations")
        page.wait_for_selector('#station-pharm-dock[data-liveness="online"]')
        shot(page, "stations")
        killed = time.monotonic()
        station.kill()  # the broker publishes its will: offline
        page.wait_for_selector('#station-pharm-dock[data-liveness="offline"]', timeout=10_000)
        took = time.monotonic() - killed
        assert took < 5, f"offline shown {took:.1f} s after the kill (refresh every 1 s)"
        page.goto(f"{url}/stations/pharm-dock")
        shot(page, "station")
        page.goto(f"{url}/metrics")
        assert "karekod_station_up" in page.content()
    finally:
        page.close()
        if station.proc.poll() is None:
            station.kill()
        submitter.stop()
        sandbox.close()


@pytest.fixture
def refused(tmp_path: Path) -> Iterator[tuple[Ledger, ConsoleServer, list[str]]]:
    config = console_config(tmp_path)
    ledger = Ledger(config.ledger, config.id)
    ingest(ledger, config, "line-1", range(1, 5))
    ids = refuse(ledger, "its", "60002", "Ürün 8680000000007 üzerinde kayıtlı.", 3)
    status(ledger, "line-1", backlog=1, scanner_connected=True)
    accounts.add_operator(ledger, "ayse", PASSWORD_FOR_TESTS)
    server = ConsoleServer(config, ledger)
    yield ledger, server, ids
    server.close()


def test_retry_as_an_operator_is_queued_and_audited_and_refused_without_login(refused: Any, browser: Any) -> None:
    ledger, server, ids = refused
    target = ids[0]
    anonymous = browser.new_page()
    anonymous.goto(f"{server.url}/problems")
    shot(anonymous, "problems")
    anonymous.check(f'input[value="{target}"]')
    anonymous.click("#retry")
    assert "operator" in anonymous.inner_text("#error")
    assert ledger.jobs("event_id = ?", (target,))[0].state is JobState.REFUSED
    assert not [a for a in console.audit_log(ledger) if a.action == "retry"]
    anonymous.close()

    operator = browser.new_page()
    operator.goto(f"{server.url}/login?lang=tr")
    shot(operator, "login")
    operator.fill('input[name="name"]', "ayse")
    operator.fill('input[name="password"]', PASSWORD_FOR_TESTS)
    operator.click("#login-button")
    operator.wait_for_url(f"{server.url}/problems")
    assert "ayse" in operator.inner_text("#operator")
    operator.check(f'input[value="{target}"]')
    operator.click("#retry")
    operator.wait_for_selector("#notice")
    assert f"{target}: retried" in operator.inner_text("#notice")
    assert ledger.jobs("event_id = ?", (target,))[0].state is JobState.QUEUED
    retry = next(a for a in console.audit_log(ledger) if a.action == "retry")
    assert (retry.who, retry.target) == ("ayse", target)
    operator.goto(f"{server.url}/audit")
    shot(operator, "audit")
    job = ledger.jobs("event_id = ?", (ids[1],))[0]
    operator.goto(f"{server.url}/units?q={job.gtin}%20{job.serial}")
    assert "60002" in operator.inner_text("#unit-jobs")
    shot(operator, "unit")
    operator.close()
